//! Durability: reopen, sequence numbers, repair at open.

use super::*;

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
