//! Measurements (ignored, they print figures and assert only sanity). Run one with
//! `cargo test --release -p muster-collector --lib <name> -- --ignored --nocapture`;
//! `MUSTER_TSDB_MEASURE_HOSTS` and `MUSTER_TSDB_MEASURE_DAYS` scale them.

use std::time::Instant;

use super::*;
use crate::tsdb::config::DAY_MS;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// CPU time of the calling thread, ns (`/proc/thread-self/schedstat`, first field).
fn thread_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Resident set size of the process, bytes.
fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            let line = s.lines().find(|l| l.starts_with("VmRSS:"))?;
            line.split_whitespace().nth(1)?.parse::<u64>().ok()
        })
        .map_or(0, |kib| kib * 1024)
}

fn dir_bytes(path: &std::path::Path) -> u64 {
    std::fs::read_dir(path)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| match e.metadata() {
                    Ok(m) if m.is_dir() => dir_bytes(&e.path()),
                    Ok(m) => m.len(),
                    Err(_) => 0,
                })
                .sum()
        })
        .unwrap_or(0)
}

/// Hosts of the default synthetic profile, each sending one round per batch.
fn hosts(n: u64) -> Vec<(String, SyntheticHost)> {
    (0..n)
        .map(|i| {
            let profile = HostProfile {
                start_ms: START,
                ..HostProfile::default()
            };
            (format!("host{i:04}"), SyntheticHost::new(i, profile))
        })
        .collect()
}

#[test]
#[ignore = "measurement: prints ingest CPU per sample and memory per series"]
fn measure_ingest_cpu_and_memory() {
    let n = env_or("MUSTER_TSDB_MEASURE_HOSTS", 100);
    let rounds = env_or("MUSTER_TSDB_MEASURE_ROUNDS", 60);
    let dir = tempfile::tempdir().unwrap();
    let tsdb = open(dir.path(), TsdbOptions::default());
    let mut hosts = hosts(n);
    let mut batches: Vec<SampleBatch> = hosts.iter_mut().map(|(_, s)| s.next_batch(1)).collect();
    let rss_before = rss_bytes();
    // First round: series creation (index writes), measured apart.
    let (cpu, wall) = (thread_cpu_ns(), Instant::now());
    for ((host, _), batch) in hosts.iter().zip(&batches) {
        tsdb.ingest(host, batch).unwrap();
    }
    let series = tsdb.stats().unwrap().series;
    eprintln!(
        "created {series} series: {:.1} µs CPU each, {:.2?} wall, RSS grew {:.0} B per series",
        (thread_cpu_ns() - cpu) as f64 / 1e3 / series as f64,
        wall.elapsed(),
        rss_bytes().saturating_sub(rss_before) as f64 / series as f64,
    );
    // Steady state: one round per host per batch, as a 10 s scrape delivers. The rounds
    // are generated before the clock starts; the dictionaries are built once.
    let mut appended = 0u64;
    let mut ingest_ns = 0u64;
    let mut flush_ns = 0u64;
    for _ in 1..rounds {
        for ((_, synth), batch) in hosts.iter_mut().zip(&mut batches) {
            synth.refill(batch, 1);
        }
        let now = batches[0].rounds[0].timestamp_unix_ms as i64;
        let cpu = thread_cpu_ns();
        for ((host, _), batch) in hosts.iter().zip(&batches) {
            appended += tsdb.ingest(host, batch).unwrap().appended;
        }
        let mid = thread_cpu_ns();
        tsdb.flush(now).unwrap();
        ingest_ns += mid - cpu;
        flush_ns += thread_cpu_ns() - mid;
    }
    let stats = tsdb.stats().unwrap();
    eprintln!(
        "ingest: {appended} samples, {:.0} ns CPU per sample, flush {:.0} ns per sample",
        ingest_ns as f64 / appended as f64,
        flush_ns as f64 / appended as f64
    );
    eprintln!(
        "memory per series: head {:.0} B and index {:.0} B (estimates, {} samples in the head), \
         RSS grew {:.0} B (sled's cache included)",
        stats.head_bytes as f64 / series as f64,
        stats.index_bytes as f64 / series as f64,
        stats.head_samples,
        rss_bytes().saturating_sub(rss_before) as f64 / series as f64,
    );
    assert!(appended > 0);
}

#[test]
#[ignore = "measurement: prints the store's size on disk over many days of retention"]
fn measure_sled_space_over_retention_cycles() {
    // 2 hosts x 500 series at 10 s, retention 2 days, rollups 4 days, for 14 days: the raw
    // data should level off at about 3 days' worth (2 days + the day being rolled up) and
    // the rollups at 4-5 days' worth, if sled reuses the space it frees.
    let n = env_or("MUSTER_TSDB_MEASURE_HOSTS", 2);
    let days = env_or("MUSTER_TSDB_MEASURE_DAYS", 14);
    let dir = tempfile::tempdir().unwrap();
    let opts = TsdbOptions {
        retention_ms: 2 * DAY_MS,
        rollup_retention_ms: 4 * DAY_MS,
        ..TsdbOptions::default()
    };
    let tsdb = open(dir.path(), opts);
    let mut hosts = hosts(n);
    let per_hour = 360;
    let mut samples_per_day = 0u64;
    eprintln!("day  size_on_disk  files  raw blocks  rollups  raw samples kept  B/raw sample");
    for day in 1..=days {
        let started = Instant::now();
        let mut now = 0;
        for _hour in 0..24 {
            for (host, synth) in &mut hosts {
                let batch = synth.next_batch(per_hour);
                now = batch
                    .rounds
                    .last()
                    .map_or(now, |r| r.timestamp_unix_ms as i64);
                let s = tsdb.ingest(host, &batch).unwrap();
                if day == 1 {
                    samples_per_day += s.appended;
                }
            }
            tsdb.flush(now).unwrap();
        }
        let compacted = tsdb.compact(now).unwrap();
        let size = tsdb.stats().unwrap().disk_bytes;
        let blocks = tsdb.blocks.iter().count() as u64;
        let rollups = tsdb.rollups.iter().count();
        // Raw samples kept: what the blocks hold (each has ~180).
        let kept: u64 = tsdb
            .blocks
            .iter()
            .flatten()
            .map(|(_, r)| u64::from(u16::from_le_bytes([r.chunk[0], r.chunk[1]])))
            .sum();
        eprintln!(
            "{day:>3}  {:>9.1} MB  {:>6.1} MB  {blocks:>10}  {rollups:>7}  {kept:>16}  {:>12.2}   ({compacted:?}, {:.1?})",
            size as f64 / 1e6,
            dir_bytes(dir.path()) as f64 / 1e6,
            size as f64 / kept.max(1) as f64,
            started.elapsed()
        );
    }
    eprintln!("samples per day: {samples_per_day}");
    let before = tsdb.stats().unwrap().disk_bytes;
    drop(tsdb);
    let reopened = Instant::now();
    let tsdb = open(dir.path(), opts);
    eprintln!(
        "reopen: {:.1?}, size {:.1} MB -> {:.1} MB",
        reopened.elapsed(),
        before as f64 / 1e6,
        tsdb.stats().unwrap().disk_bytes as f64 / 1e6
    );
}

/// Writes `series` records of `value_len` bytes `per_day` times a day for `days`, keeping 3
/// days, keyed series-major or time-major; prints the store's size against the live bytes.
fn sled_layout(name: &str, series: u32, value_len: usize, per_day: i64, time_major: bool) {
    use crate::tsdb::block::ChunkRecord;
    use muster_shared::store::Key;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), StoreOptions::collector()).unwrap();
    let tree = store.tree::<Vec<u8>, ChunkRecord>("layout").unwrap();
    let key = |series: u32, ts: i64| {
        let k = crate::tsdb::block::SeriesTimeKey { series, ts }.to_key();
        if time_major {
            [&k[4..], &k[..4]].concat()
        } else {
            k
        }
    };
    let step = DAY_MS / per_day;
    let mut live = std::collections::VecDeque::new();
    for day in 0..10 {
        for w in 0..per_day {
            let t = day * DAY_MS + w * step;
            let mut batch = tree.batch();
            for s in 1..=series {
                let chunk = (0..value_len)
                    .map(|i| ((i as u32).wrapping_mul(2_654_435_761) ^ s ^ t as u32) as u8)
                    .collect();
                batch.insert(&key(s, t), &ChunkRecord { chunk }).unwrap();
            }
            tree.apply(batch).unwrap();
            store.flush().unwrap();
            live.push_back(t);
        }
        let mut batch = tree.batch();
        while live.len() as i64 > 3 * per_day {
            let t = live.pop_front().unwrap();
            (1..=series).for_each(|s| batch.remove(&key(s, t)));
        }
        tree.apply(batch).unwrap();
        store.flush().unwrap();
        let live_bytes = (live.len() * series as usize * value_len) as f64;
        let size = store.size_on_disk().unwrap() as f64;
        eprintln!(
            "{name} day {day}: {:.1} MB on disk for {:.1} MB live: x{:.2}",
            size / 1e6,
            live_bytes / 1e6,
            size / live_bytes
        );
    }
}

#[test]
#[ignore = "measurement: sled's space amplification by record size and key order"]
fn measure_sled_amplification_by_record_layout() {
    // ~33 MB live in each case, 3 days kept, 10 days written.
    sled_layout("series-major, 230 B x 48/day", 1000, 230, 48, false);
    sled_layout("time-major,   230 B x 48/day", 1000, 230, 48, true);
    sled_layout("series-major, 11 KB x 1/day ", 1000, 11_040, 1, false);
    sled_layout(
        "series-major, 150 KB x 1/day (blobs)",
        75,
        150_000,
        1,
        false,
    );
}

#[test]
#[ignore = "measurement: sled's resident memory as block records accumulate"]
fn measure_sled_memory_by_block_records() {
    // 100,000 series, one 230-byte block each per batch, committed after every batch, as
    // flushes do. Stops at 1.5 GB of growth: sled's memory grows with what it has written
    // (spacejam/sled#1093), which is what this prints.
    use crate::tsdb::block::{ChunkRecord, SeriesTimeKey};
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), StoreOptions::collector()).unwrap();
    let tree = crate::tsdb::block::open_tree(&store, "blocks").unwrap();
    let before = rss_bytes();
    let series: u32 = 100_000;
    for window in 0..48i64 {
        let mut batch = tree.batch();
        for s in 0..series {
            let chunk = (0..230u32)
                .map(|i| (i.wrapping_mul(2_654_435_761) ^ s ^ window as u32) as u8)
                .collect();
            let key = SeriesTimeKey {
                series: s,
                ts: window * 1_800_000,
            };
            batch.insert(&key, &ChunkRecord { chunk }).unwrap();
        }
        tree.apply(batch).unwrap();
        store.flush().unwrap();
        let grown = rss_bytes().saturating_sub(before);
        let records = (window + 1) as u64 * u64::from(series);
        eprintln!(
            "{records} records ({:.0} MB of chunks): RSS +{:.0} MB ({:.0} B per record), disk {:.0} MB",
            records as f64 * 230.0 / 1e6,
            grown as f64 / 1e6,
            grown as f64 / records as f64,
            store.size_on_disk().unwrap() as f64 / 1e6
        );
        if grown > 1_500_000_000 {
            break;
        }
    }
}
