//! Bounds: eviction by age and bytes, gaps, dictionary collection.

use super::*;

#[test]
fn age_eviction_is_reported_as_a_gap() {
    let dir = tempfile::tempdir().unwrap();
    // Keep one minute; a round every 20 s.
    let (_store, buffer) = open(dir.path(), &config(60, u64::MAX));
    let id = buffer.intern("m", &[]);
    for n in 1..=10u64 {
        buffer.append(n * 20_000, &[(id, n as f64)]).unwrap();
    }
    // Newest at 200 s: rounds at 140 s and later are within 60 s.
    let stats = buffer.stats();
    assert_eq!((stats.first_seq, stats.last_seq, stats.rounds), (7, 10, 4));
    assert_eq!(stats.evicted_rounds, 6);

    let batch = buffer.read(&query(2, 100)).unwrap();
    batch.validate().unwrap();
    assert_eq!(
        batch.gap,
        Some(Gap {
            first_missing: 3,
            last_missing: 6
        })
    );
    assert_eq!(
        (batch.first_seq, batch.last_seq, batch.next_after),
        (7, 10, 10)
    );
    // after = 0: the gap from 1 says history was lost before this collector started.
    let batch = buffer.read(&query(0, 100)).unwrap();
    assert_eq!(
        batch.gap,
        Some(Gap {
            first_missing: 1,
            last_missing: 6
        })
    );
    // A cursor right before the oldest held round: no gap.
    assert_eq!(buffer.read(&query(6, 100)).unwrap().gap, None);
}

#[test]
fn byte_eviction_is_reported_as_a_gap() {
    let dir = tempfile::tempdir().unwrap();
    let (_store, buffer) = open(dir.path(), &config(86_400, 4_000));
    let ids: Vec<u32> = (0..20)
        .map(|i| buffer.intern("m", &[("i", &i.to_string())]))
        .collect();
    let mut rng = Rng(7);
    for n in 1..=50u64 {
        // Incompressible values, so each round takes about 200 bytes.
        let values: Vec<(u32, f64)> = ids.iter().map(|&id| (id, rng.f64())).collect();
        buffer.append(n, &values).unwrap();
    }
    let stats = buffer.stats();
    assert!(stats.bytes <= 4_000, "{stats:?}");
    assert!(stats.evicted_rounds > 0 && stats.first_seq > 1, "{stats:?}");
    assert_eq!(stats.first_seq + stats.rounds - 1, 50);
    // Filling is as tight as a round allows.
    assert!(stats.bytes + 300 > 4_000, "{stats:?}");

    let batch = buffer.read(&query(10, 5)).unwrap();
    batch.validate().unwrap();
    assert_eq!(
        batch.gap,
        Some(Gap {
            first_missing: 11,
            last_missing: stats.first_seq - 1
        })
    );
    assert_eq!(batch.first_seq, stats.first_seq);
    assert!(batch.more);
    let (gap, rounds) = read_all(&buffer);
    assert_eq!(
        gap.map(|g| (g.first_missing, g.last_missing)),
        Some((1, stats.first_seq - 1))
    );
    assert_eq!(rounds.len() as u64, stats.rounds);
}

#[test]
fn no_gap_at_zero_when_nothing_was_evicted() {
    let dir = tempfile::tempdir().unwrap();
    let (_store, buffer) = open(dir.path(), &BufferConfig::default());
    let id = buffer.intern("m", &[]);
    buffer.append(1, &[(id, 1.0)]).unwrap();
    assert_eq!(buffer.read(&query(0, 10)).unwrap().gap, None);
}

#[test]
fn dictionary_stays_bounded_under_container_churn() {
    let dir = tempfile::tempdir().unwrap();
    let (store, buffer) = open(dir.path(), &config(86_400, 16 << 10));
    let stable: Vec<u32> = (0..10)
        .map(|i| buffer.intern("node_cpu_seconds_total", &[("cpu", &i.to_string())]))
        .collect();
    let mut max_series = 0;
    for n in 0..10_000u64 {
        // Every round a new container with three series appears, and lives 5 rounds.
        let mut values: Vec<(u32, f64)> = stable.iter().map(|&id| (id, n as f64)).collect();
        for c in n.saturating_sub(4)..=n {
            let name = format!("c{c}");
            for metric in ["cpu", "mem", "net"] {
                let id = buffer.intern(metric, &[("name", &name)]);
                values.push((id, c as f64));
            }
        }
        buffer.append(n * 1_000, &values).unwrap();
        max_series = max_series.max(buffer.stats().series);
    }
    let stats = buffer.stats();
    // Held rounds use 10 + 15 series each, plus the grace of the collected containers.
    let bound = 10 + 3 * (stats.rounds + 4 + SERIES_GRACE_ROUNDS);
    assert!(
        max_series <= bound,
        "dictionary grew to {max_series} (bound {bound})"
    );
    assert!(stats.evicted_rounds > 9_000, "{stats:?}");
    drop(buffer);
    let stored = store
        .tree::<u64, SeriesRecord>(SERIES_TREE)
        .unwrap()
        .len()
        .unwrap() as u64;
    assert!(stored <= bound, "{stored} series stored (bound {bound})");
    // And a reopen collects what no held round uses, without any grace.
    let buffer = Buffer::open(&store, &config(86_400, 16 << 10)).unwrap();
    assert_eq!(buffer.stats().series, 10 + 3 * (stats.rounds + 4));
}

#[test]
fn collected_id_is_dropped_not_misread() {
    let dir = tempfile::tempdir().unwrap();
    let (_store, buffer) = open(dir.path(), &config(86_400, 1));
    let gone = buffer.intern("container_memory_usage_bytes", &[("name", "old")]);
    let keep = buffer.intern("node_load1", &[]);
    buffer.append(1, &[(gone, 1.0), (keep, 1.0)]).unwrap();
    for n in 2..=(SERIES_GRACE_ROUNDS + 3) {
        buffer.append(n, &[(keep, 1.0)]).unwrap();
    }
    // A sampler that still cached `gone` (and repeats `keep`): only `keep`, once, remains.
    let seq = buffer
        .append(1_000, &[(gone, 5.0), (keep, 2.0), (keep, 3.0)])
        .unwrap();
    assert_eq!(buffer.stats().dropped_values, 2);
    let batch = buffer.read(&query(seq - 1, 10)).unwrap();
    assert_eq!(named(&batch)[0].2.len(), 1);
    assert_eq!(batch.series[0].metric, "node_load1");
    // Interning it again gives a new id: ids are never reused.
    let again = buffer.intern("container_memory_usage_bytes", &[("name", "old")]);
    assert!(again > keep && again != gone);
}

#[test]
fn grace_outlasts_the_samplers_memory() {
    const { assert!(SERIES_GRACE_ROUNDS > crate::sample::series::FORGET_AFTER_ROUNDS) };
}
