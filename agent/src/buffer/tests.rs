//! Tests of the buffer through its public API (and, to stage damage, its trees).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use muster_shared::codec;
use muster_shared::config::{ByteSize, Duration};
use muster_shared::protocol::samples::{Gap, SampleBatch, SamplesQuery};
use muster_shared::protocol::{PROTOCOL_VERSION, is_compatible};
use muster_shared::store::{Record, Store, StoreOptions};
use serde::{Deserialize, Serialize};

use super::record::{ROUNDS_TREE, RoundRecord, SERIES_TREE, SeriesRecord};
use super::*;

pub(super) fn open(dir: &Path, config: &BufferConfig) -> (Store, Buffer) {
    let store = Store::open(dir, StoreOptions::agent()).unwrap();
    let buffer = Buffer::open(&store, config).unwrap();
    (store, buffer)
}

fn config(max_age_secs: u64, max_bytes: u64) -> BufferConfig {
    BufferConfig {
        max_age: Duration::from_secs(max_age_secs),
        max_bytes: ByteSize(max_bytes),
    }
}

fn query(after: u64, max: u32) -> SamplesQuery {
    SamplesQuery {
        after,
        max: Some(max),
    }
}

/// A served round as names → value bits, so comparisons ignore per-batch ids.
pub(super) type Named = (u64, u64, BTreeMap<String, u64>);

pub(super) fn series_name(metric: &str, labels: &[(&str, &str)]) -> String {
    let mut labels = labels.to_vec();
    labels.sort();
    let labels: Vec<String> = labels.iter().map(|(n, v)| format!("{n}={v:?}")).collect();
    format!("{metric}{{{}}}", labels.join(","))
}

pub(super) fn named(batch: &SampleBatch) -> Vec<Named> {
    batch.validate().unwrap();
    let names: BTreeMap<u32, String> = batch
        .series
        .iter()
        .map(|def| {
            let labels: Vec<(&str, &str)> = def
                .labels
                .iter()
                .map(|l| (l.name.as_str(), l.value.as_str()))
                .collect();
            (def.id, series_name(&def.metric, &labels))
        })
        .collect();
    batch
        .rounds
        .iter()
        .map(|r| {
            let values = r
                .values
                .iter()
                .map(|v| (names[&v.series].clone(), v.value.to_bits()))
                .collect();
            (r.seq, r.timestamp_unix_ms, values)
        })
        .collect()
}

/// Every held round, page by page; the first page's gap.
pub(super) fn read_all(buffer: &Buffer) -> (Option<Gap>, Vec<Named>) {
    let mut after = 0;
    let mut all = Vec::new();
    let mut first_gap = None;
    loop {
        let batch = buffer.read(&query(after, 7)).unwrap();
        if after == 0 {
            first_gap = batch.gap;
        } else {
            assert_eq!(batch.gap, None, "a gap in the middle of a read");
        }
        all.extend(named(&batch));
        after = batch.next_after;
        if !batch.more {
            return (first_gap, all);
        }
    }
}

/// `(metric, labels, value)`.
type NamedValue<'a> = (&'a str, &'a [(&'a str, &'a str)], f64);

fn append_named(buffer: &Buffer, ts: u64, values: &[NamedValue<'_>]) -> u64 {
    let ids: Vec<(u32, f64)> = values
        .iter()
        .map(|(metric, labels, v)| (buffer.intern(metric, labels), *v))
        .collect();
    buffer.append(ts, &ids).unwrap()
}

#[test]
fn append_then_read_round_trips_exact_values() {
    let dir = tempfile::tempdir().unwrap();
    let (_store, buffer) = open(dir.path(), &BufferConfig::default());
    let nan = f64::from_bits(0x7ff8_0000_dead_beef);
    let fs: &[(&str, &str)] = &[("mountpoint", "/"), ("device", "/dev/sda1")];
    let seq1 = append_named(
        &buffer,
        1_000,
        &[
            ("node_load1", &[], 0.25),
            ("node_filesystem_avail_bytes", fs, 1e12),
        ],
    );
    let seq2 = append_named(
        &buffer,
        2_000,
        &[
            ("node_load1", &[], nan),
            ("node_filesystem_avail_bytes", fs, -0.0),
        ],
    );
    assert_eq!((seq1, seq2), (1, 2));

    let batch = buffer.read(&query(0, 100)).unwrap();
    batch.validate().unwrap();
    assert_eq!(
        (batch.first_seq, batch.last_seq, batch.next_after),
        (1, 2, 2)
    );
    assert!(!batch.more);
    assert_eq!(batch.gap, None);
    let ids: Vec<u32> = batch.series.iter().map(|s| s.id).collect();
    assert_eq!(ids, [0, 1], "per-batch ids are dense, each defined once");
    let fs_def = &batch.series[1];
    assert_eq!(fs_def.metric, "node_filesystem_avail_bytes");
    let label_names: Vec<&str> = fs_def.labels.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(
        label_names,
        ["device", "mountpoint"],
        "labels sorted by name"
    );
    let values: Vec<(u32, u64)> = batch.rounds[1]
        .values
        .iter()
        .map(|v| (v.series, v.value.to_bits()))
        .collect();
    assert_eq!(values, [(0, nan.to_bits()), (1, (-0.0f64).to_bits())]);
    assert_eq!(batch.rounds[0].timestamp_unix_ms, 1_000);

    // The binary form the API serves carries it bit for bit.
    let frame = codec::encode_frame(&batch, PROTOCOL_VERSION, 3).unwrap();
    let (_, back): (u16, SampleBatch) =
        codec::decode_frame(&frame, &codec::Limits::DEFAULT, is_compatible).unwrap();
    assert_eq!(named(&back), named(&batch));
}

#[test]
fn batch_ids_are_dense_even_when_buffer_ids_are_not() {
    let dir = tempfile::tempdir().unwrap();
    let (_store, buffer) = open(dir.path(), &BufferConfig::default());
    let ids: Vec<u32> = (0..300)
        .map(|i| buffer.intern("m", &[("i", &i.to_string())]))
        .collect();
    buffer.append(1, &[(ids[299], 1.0), (ids[7], 2.0)]).unwrap();
    buffer
        .append(2, &[(ids[150], 3.0), (ids[299], 4.0)])
        .unwrap();
    let batch = buffer.read(&query(0, 10)).unwrap();
    batch.validate().unwrap();
    let defs: Vec<(u32, &str)> = batch
        .series
        .iter()
        .map(|s| (s.id, s.labels[0].value.as_str()))
        .collect();
    // Numbered in order of first use; a stored round's values are sorted by buffer id.
    assert_eq!(defs, [(0, "7"), (1, "299"), (2, "150")]);
    let second: Vec<u32> = batch.rounds[1].values.iter().map(|v| v.series).collect();
    assert_eq!(second, [2, 1]);
    // Read from the second round alone: numbered afresh.
    let batch = buffer.read(&query(1, 10)).unwrap();
    let defs: Vec<(u32, &str)> = batch
        .series
        .iter()
        .map(|s| (s.id, s.labels[0].value.as_str()))
        .collect();
    assert_eq!(defs, [(0, "150"), (1, "299")]);
}

#[test]
fn pages_follow_more_and_next_after() {
    let dir = tempfile::tempdir().unwrap();
    let (_store, buffer) = open(dir.path(), &BufferConfig::default());
    let id = buffer.intern("m", &[]);
    for ts in 1..=10 {
        buffer.append(ts * 1000, &[(id, ts as f64)]).unwrap();
    }
    let mut pages = Vec::new();
    let mut after = 0;
    loop {
        let batch = buffer.read(&query(after, 4)).unwrap();
        batch.validate().unwrap();
        pages.push((
            batch.first_seq,
            batch.last_seq,
            batch.next_after,
            batch.more,
        ));
        after = batch.next_after;
        if !batch.more {
            break;
        }
    }
    assert_eq!(
        pages,
        [(1, 4, 4, true), (5, 8, 8, true), (9, 10, 10, false)]
    );
    // Caught up: empty, cursor unchanged.
    assert_eq!(buffer.read(&query(10, 4)).unwrap(), SampleBatch::empty(10));
    // `max` defaults and clamps as the protocol says.
    let all = buffer
        .read(&SamplesQuery {
            after: 0,
            max: None,
        })
        .unwrap();
    assert_eq!(all.rounds.len(), 10);
    assert_eq!(buffer.read(&query(0, 0)).unwrap().rounds.len(), 1);
}

#[test]
fn cursor_beyond_the_newest_seq_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (_store, buffer) = open(dir.path(), &BufferConfig::default());
    assert_eq!(buffer.read(&query(0, 10)).unwrap(), SampleBatch::empty(0));
    assert!(matches!(
        buffer.read(&query(1, 10)),
        Err(BufferError::CursorAhead {
            after: 1,
            newest: 0
        })
    ));
    let id = buffer.intern("m", &[]);
    for ts in 1..=3 {
        buffer.append(ts, &[(id, 1.0)]).unwrap();
    }
    assert_eq!(buffer.read(&query(3, 10)).unwrap(), SampleBatch::empty(3));
    let err = buffer.read(&query(1_000, 10)).unwrap_err();
    assert!(matches!(
        err,
        BufferError::CursorAhead {
            after: 1_000,
            newest: 3
        }
    ));
    assert!(err.to_string().contains("after=0"), "{err}");
}

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
fn buffer_survives_a_reopen_with_everything_appended() {
    let dir = tempfile::tempdir().unwrap();
    let before = {
        let (_store, buffer) = open(dir.path(), &BufferConfig::default());
        for n in 1..=40u64 {
            let host = n.to_string();
            append_named(
                &buffer,
                n * 10_000,
                &[
                    ("node_load1", &[], n as f64 / 7.0),
                    (
                        "container_cpu_usage_seconds_total",
                        &[("name", &host)],
                        n as f64,
                    ),
                ],
            );
        }
        read_all(&buffer)
    };
    let (_store, buffer) = open(dir.path(), &BufferConfig::default());
    assert_eq!(read_all(&buffer), before);
    assert_eq!(before.1.len(), 40);
    // Ids survive: the same series gets the same id; the next seq follows.
    let id = buffer.intern("node_load1", &[]);
    assert_eq!(buffer.append(500_000, &[(id, 1.0)]).unwrap(), 41);
    let stats = buffer.stats();
    assert_eq!((stats.first_seq, stats.last_seq, stats.series), (1, 41, 41));
}

#[test]
fn seq_is_never_reused_after_a_restart_or_when_everything_is_gone() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (_store, buffer) = open(dir.path(), &config(1, u64::MAX));
        let id = buffer.intern("m", &[]);
        for n in 1..=5u64 {
            assert_eq!(buffer.append(n * 10_000, &[(id, 1.0)]).unwrap(), n);
        }
        // Everything but the newest is evicted by age.
        assert_eq!(buffer.stats().rounds, 1);
    }
    {
        let (store, buffer) = open(dir.path(), &config(1, u64::MAX));
        let id = buffer.intern("m", &[]);
        assert_eq!(buffer.append(60_000, &[(id, 1.0)]).unwrap(), 6);
        drop(buffer);
        // Empty the rounds tree entirely (as if every round had been evicted).
        let rounds = store.tree::<u64, RoundRecord>(ROUNDS_TREE).unwrap();
        for seq in 1..=6 {
            rounds.remove(&seq).unwrap();
        }
        store.flush().unwrap();
    }
    let (_store, buffer) = open(dir.path(), &config(1, u64::MAX));
    let stats = buffer.stats();
    assert_eq!((stats.rounds, stats.newest_issued, stats.series), (0, 6, 0));
    // Everything issued is gone: a gap up to the newest, and the cursor moves past it.
    let batch = buffer.read(&query(0, 10)).unwrap();
    batch.validate().unwrap();
    assert_eq!(
        batch.gap,
        Some(Gap {
            first_missing: 1,
            last_missing: 6
        })
    );
    assert_eq!((batch.next_after, batch.more), (6, false));
    assert_eq!(buffer.read(&query(6, 10)).unwrap(), SampleBatch::empty(6));
    let id = buffer.intern("m", &[]);
    assert_eq!(buffer.append(70_000, &[(id, 1.0)]).unwrap(), 7);
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

#[test]
fn concurrent_intern_gives_one_id_per_series() {
    let dir = tempfile::tempdir().unwrap();
    let (_store, buffer) = open(dir.path(), &BufferConfig::default());
    let buffer = Arc::new(buffer);
    let threads: Vec<_> = (0..6)
        .map(|t| {
            let buffer = buffer.clone();
            std::thread::spawn(move || {
                (0..2_000)
                    .map(|i| {
                        let i = i.to_string();
                        // Label order differs by thread; the series is the same.
                        if t % 2 == 0 {
                            buffer.intern("m", &[("a", &i), ("b", "x")])
                        } else {
                            buffer.intern("m", &[("b", "x"), ("a", &i)])
                        }
                    })
                    .collect::<Vec<u32>>()
            })
        })
        .collect();
    let results: Vec<Vec<u32>> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    assert!(results.iter().all(|r| *r == results[0]));
    let mut distinct = results[0].clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert_eq!(distinct.len(), 2_000);
    assert_eq!(buffer.stats().series, 2_000);
}

#[test]
fn repeated_label_names_keep_the_first() {
    let dir = tempfile::tempdir().unwrap();
    let (_store, buffer) = open(dir.path(), &BufferConfig::default());
    let id = buffer.intern("m", &[("a", "1"), ("a", "2")]);
    assert_eq!(id, buffer.intern("m", &[("a", "1")]));
    buffer.append(1, &[(id, 1.0)]).unwrap();
    let batch = buffer.read(&query(0, 1)).unwrap();
    batch.validate().unwrap();
    assert_eq!(batch.series[0].labels.len(), 1);
    assert_eq!(batch.series[0].labels[0].value, "1");
}

#[derive(Serialize, Deserialize)]
struct FutureRound(String);

impl Record for FutureRound {
    const SCHEMA: u8 = 9;
}

#[test]
fn open_removes_rounds_it_cannot_serve() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (store, buffer) = open(dir.path(), &BufferConfig::default());
        let id = buffer.intern("m", &[]);
        for n in 1..=3 {
            buffer.append(n, &[(id, n as f64)]).unwrap();
        }
        drop(buffer);
        // Round 4 uses a series that never reached the disk; round 5 is from a newer build.
        let rounds = store.tree::<u64, RoundRecord>(ROUNDS_TREE).unwrap();
        let orphan = RoundRecord::pack(4, &mut [(id, 4.0), (777, 4.0)]).unwrap();
        rounds.insert(&4, &orphan).unwrap();
        store
            .tree::<u64, FutureRound>(ROUNDS_TREE)
            .unwrap()
            .insert(&5, &FutureRound("v9".to_owned()))
            .unwrap();
        store.flush().unwrap();
    }
    let (_store, buffer) = open(dir.path(), &BufferConfig::default());
    let (gap, rounds) = read_all(&buffer);
    assert_eq!(gap, None);
    let seqs: Vec<u64> = rounds.iter().map(|r| r.0).collect();
    assert_eq!(seqs, [1, 2, 3]);
    // Their numbers are not reused.
    let id = buffer.intern("m", &[]);
    assert_eq!(buffer.append(6, &[(id, 6.0)]).unwrap(), 6);
}

#[test]
fn large_host_batches_stay_within_the_codec_limits() {
    let dir = tempfile::tempdir().unwrap();
    let (_store, buffer) = open(dir.path(), &config(86_400, 1 << 30));
    let ids: Vec<u32> = (0..2_000)
        .map(|i| {
            let cpu = (i / 8).to_string();
            buffer.intern(
                "node_cpu_seconds_total",
                &[("cpu", &cpu), ("mode", MODES[i % 8])],
            )
        })
        .collect();
    // Enough rounds to exceed the byte cap (~480 rounds of this host); more would only
    // make the test slower, the read stops at the cap either way.
    let rounds = 700u64;
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for n in 1..=rounds {
        // Random mantissas: next to incompressible, the worst case for the frame size.
        let values: Vec<(u32, f64)> = ids.iter().map(|&id| (id, rng.f64())).collect();
        buffer.append(n * 10_000, &values).unwrap();
    }
    let batch = buffer.read(&query(0, 5_000)).unwrap();
    batch.validate().unwrap();
    assert!(batch.more, "the batch was cut by bytes");
    assert!(batch.rounds.len() > 100 && (batch.rounds.len() as u64) < rounds);
    assert_eq!(batch.series.len(), 2_000);
    let frame = codec::encode_frame(&batch, PROTOCOL_VERSION, 3).unwrap();
    assert!(frame.len() as u64 <= MAX_BATCH_BYTES);
    let plain = codec::encode_value(&batch).unwrap().len() as u64;
    assert!(plain <= MAX_BATCH_BYTES, "{plain}");
    let (_, back): (u16, SampleBatch) =
        codec::decode_frame(&frame, &codec::Limits::DEFAULT, is_compatible).unwrap();
    assert_eq!(back.rounds.len(), batch.rounds.len());
    eprintln!(
        "large host: {} of {rounds} rounds per batch, {plain} bytes bincode, {} bytes framed",
        batch.rounds.len(),
        frame.len()
    );
}

/// xorshift64: values without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// In `[0, 1)`, with a full mantissa.
    fn f64(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

const MODES: [&str; 8] = [
    "idle", "iowait", "irq", "nice", "softirq", "steal", "system", "user",
];

/// Prints what a round of a 2,000-series host costs: stored bytes and append time.
/// Run with `--release -- --nocapture` for the release figure; nothing is asserted on time.
#[test]
fn measure_round_size_and_append_time() {
    let dir = tempfile::tempdir().unwrap();
    let (store, buffer) = open(dir.path(), &BufferConfig::default());
    let ids: Vec<u32> = (0..2_000)
        .map(|i| {
            buffer.intern(
                "node_network_receive_bytes_total",
                &[("device", &format!("eth{i}"))],
            )
        })
        .collect();
    // A host's mix: error counters at zero, byte counters (integers), fractional gauges
    // and small integer gauges, each moving by a random amount every round.
    let mut rng = Rng(11);
    let mut counters: Vec<f64> = (0..ids.len())
        .map(|_| (rng.next() % (1 << 40)) as f64)
        .collect();
    let rounds = 200u64;
    let mut elapsed = std::time::Duration::ZERO;
    let mut plain = 0;
    for n in 1..=rounds {
        let values: Vec<(u32, f64)> = ids
            .iter()
            .enumerate()
            .map(|(i, &id)| {
                let v = match i % 4 {
                    0 => 0.0,
                    1 => {
                        counters[i] += (rng.next() % 100_000) as f64;
                        counters[i]
                    }
                    2 => rng.f64() * 100.0,
                    _ => (rng.next() % 1_000) as f64,
                };
                (id, v)
            })
            .collect();
        plain = 9 + codec::encode_value(&(n, &values)).unwrap().len();
        let started = Instant::now();
        buffer
            .append(1_700_000_000_000 + n * 10_000, &values)
            .unwrap();
        elapsed += started.elapsed();
    }
    let per_round = elapsed / rounds as u32;
    let stats = buffer.stats();
    let record = (stats.bytes - dictionary_bytes(&store)) / stats.rounds;
    let read_started = Instant::now();
    let batch = buffer.read(&query(0, 500)).unwrap();
    let read_time = read_started.elapsed();
    let frame = codec::encode_frame(&batch, PROTOCOL_VERSION, 3).unwrap();
    eprintln!(
        "buffer ({}): 2,000 series, {record} bytes stored per round (plain Vec<(u32, f64)>: \
         {plain}), append {per_round:?} per round (flush included); read of {} rounds \
         {read_time:?}, {} bytes framed; store {} bytes on disk",
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        },
        batch.rounds.len(),
        frame.len(),
        store.size_on_disk().unwrap(),
    );
}

/// Stored bytes of the dictionary.
fn dictionary_bytes(store: &Store) -> u64 {
    store
        .tree::<u64, SeriesRecord>(SERIES_TREE)
        .unwrap()
        .iter()
        .map(|e| e.unwrap().1.stored_len())
        .sum()
}

#[test]
fn config_has_defaults_and_refuses_unknown_keys() {
    let parsed: BufferConfig = muster_shared::config::parse("", Path::new("a.toml")).unwrap();
    assert_eq!(parsed, BufferConfig::default());
    assert_eq!(parsed.max_bytes, ByteSize::mib(64));
    assert_eq!(parsed.max_age, Duration::from_secs(21_600));
    let parsed: BufferConfig = muster_shared::config::parse(
        "max_age = \"30m\"\nmax_bytes = \"8MiB\"\n",
        Path::new("a.toml"),
    )
    .unwrap();
    assert_eq!(parsed, config(1_800, 8 << 20));
    let err = muster_shared::config::parse::<BufferConfig>("max_rounds = 5\n", Path::new("a.toml"))
        .unwrap_err();
    assert!(
        err.to_string().contains("unknown field `max_rounds`"),
        "{err}"
    );
}
