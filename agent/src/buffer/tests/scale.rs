//! A large host: batch limits, and the measurement of record size and append time.

use super::*;

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
