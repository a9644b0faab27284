//! Serving: exact values, per-batch ids, paging, cursors, interning.

use super::*;

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
fn reads_racing_appends_and_evictions_stay_valid_and_contiguous() {
    let dir = tempfile::tempdir().unwrap();
    // About 15 rounds held: every append evicts and, with the churn, collects series.
    let (_store, buffer) = open(dir.path(), &config(86_400, 6_000));
    let buffer = Arc::new(buffer);
    const ROUNDS: u64 = 600;
    let writer = {
        let buffer = buffer.clone();
        std::thread::spawn(move || {
            for seq in 1..=ROUNDS {
                let container = format!("c{}", seq / 3);
                let mut values = Vec::new();
                for i in 0..20u64 {
                    let id = buffer.intern("m", &[("i", &i.to_string()), ("c", &container)]);
                    values.push((id, (seq * 100 + i) as f64));
                }
                assert_eq!(buffer.append(seq, &values).unwrap(), seq);
            }
        })
    };
    let mut after = 0;
    let mut served = 0;
    let mut gaps = 0;
    let mut reads = 0;
    while after < ROUNDS {
        let batch = buffer.read(&query(after, 4)).unwrap();
        batch.validate().unwrap();
        // Contiguous: the gap starts at the cursor, the rounds follow the gap or the cursor.
        let mut expect = after + 1;
        if let Some(gap) = batch.gap {
            assert_eq!(gap.first_missing, expect);
            expect = gap.last_missing + 1;
            gaps += 1;
        }
        for (seq, timestamp, values) in named(&batch) {
            assert_eq!((seq, timestamp), (expect, expect));
            let container = format!("c{}", seq / 3);
            assert_eq!(values.len(), 20);
            for i in 0..20u64 {
                let name = series_name("m", &[("i", &i.to_string()), ("c", &container)]);
                assert_eq!(values[&name], ((seq * 100 + i) as f64).to_bits());
            }
            expect += 1;
            served += 1;
        }
        assert!(batch.next_after >= after);
        after = batch.next_after;
        reads += 1;
        if reads % 16 == 0 {
            // Fall behind now and then, for the bound to evict under the reader.
            std::thread::sleep(std::time::Duration::from_millis(40));
        } else if batch.rounds.is_empty() {
            std::thread::yield_now();
        }
    }
    writer.join().unwrap();
    assert!(served > 0 && gaps > 0, "served {served}, gaps {gaps}");
}
