//! Measurements (ignored, they print figures and assert only sanity). Run one with
//! `cargo test --release -p muster-collector --lib <name> -- --ignored --nocapture`;
//! `MUSTER_TSDB_MEASURE_HOSTS`, `MUSTER_TSDB_MEASURE_WINDOWS` and
//! `MUSTER_TSDB_MEASURE_DAYS` scale them. Each stays under about 4 GB of RSS at its
//! default size (the machines running them are shared).
//!
//! `measure_sled_*` measure sled itself with the record shape chunks had when they were
//! sled records (the figures that moved them out); `measure_segment_memory_by_chunks` is
//! the same shape written as segments.

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
#[ignore = "measurement: RSS growth per flushed chunk and disk bytes per sample"]
fn measure_flush_memory_and_disk() {
    // 100 hosts x 500 series (50,000) by default, 1,000 hosts for 500,000; 10 s interval;
    // 30-minute windows, each flushed when its grace is over, as the collector does. RSS
    // is read right after each flush, when the head holds the same amount each time, so
    // what it gains from one flush to the next is what the flushed chunks left behind.
    // The baseline is the second flush: the first window is partial (the synthetic clock
    // does not start on a window), and the head's chunk buffers, which are kept from one
    // window to the next, grow to a full window's size during the second.
    let n = env_or("MUSTER_TSDB_MEASURE_HOSTS", 100);
    let windows = env_or("MUSTER_TSDB_MEASURE_WINDOWS", 4).max(3);
    let dir = tempfile::tempdir().unwrap();
    let options = TsdbOptions::default();
    let tsdb = open(dir.path(), options);
    let mut hosts = hosts(n);
    let mut batches: Vec<SampleBatch> = hosts.iter_mut().map(|(_, s)| s.next_batch(1)).collect();
    let rss_start = rss_bytes();
    let per_window = (options.window_ms / 10_000) as usize;
    let (mut baseline, mut later_chunks, mut appended, mut last_rss) = (None, 0, 0u64, 0);
    eprintln!("flush  series  chunks written  flush time  RSS after flush  change  head samples");
    for w in 1..=windows {
        let mut now = 0;
        for _ in 0..per_window {
            for ((host, synth), batch) in hosts.iter_mut().zip(&mut batches) {
                synth.refill(batch, 1);
                now = batch.rounds[0].timestamp_unix_ms as i64;
                appended += tsdb.ingest(host, batch).unwrap().appended;
            }
        }
        let started = Instant::now();
        let flushed = tsdb.flush(now).unwrap();
        let elapsed = started.elapsed();
        let rss = rss_bytes();
        let stats = tsdb.stats().unwrap();
        eprintln!(
            "{w:>5}  {:>6}  {:>14}  {:>10.2?}  {:>12.1} MB  {:>+6.1}  {:>12}",
            stats.series,
            flushed.chunks,
            elapsed,
            rss as f64 / 1e6,
            (rss as f64 - last_rss as f64) / 1e6,
            stats.head_samples
        );
        last_rss = rss;
        if w == 2 {
            baseline = Some(rss);
        } else if w > 2 {
            later_chunks += flushed.chunks;
        }
    }
    let grown = rss_bytes().saturating_sub(baseline.unwrap_or(0));
    eprintln!(
        "RSS growth per flushed chunk, flushes 3..{windows}: {:.2} B ({:.1} MB over {} chunks)",
        grown as f64 / later_chunks.max(1) as f64,
        grown as f64 / 1e6,
        later_chunks
    );
    let flushed = tsdb.flush_all().unwrap();
    let stats = tsdb.stats().unwrap();
    eprintln!(
        "disk: {:.1} MB in {} segments for {} samples: {:.3} B per sample in segments, \
         {:.3} with the series log and the sled store (cursors); segment heap {:.1} KB; RSS grew \
         {:.1} MB since the start (the last flush wrote {} chunks)",
        stats.raw_bytes as f64 / 1e6,
        stats.raw_segments,
        stats.raw_samples,
        stats.raw_bytes as f64 / stats.raw_samples.max(1) as f64,
        stats.disk_bytes as f64 / stats.raw_samples.max(1) as f64,
        stats.segment_heap_bytes as f64 / 1e3,
        rss_bytes().saturating_sub(rss_start) as f64 / 1e6,
        flushed.chunks,
    );
    assert_eq!(stats.raw_samples, appended);
}

#[test]
#[ignore = "measurement: prints the store's size on disk over many days of retention"]
fn measure_space_over_retention_cycles() {
    // 2 hosts x 500 series at 10 s, retention 2 days, rollups 4 days, for 14 days: raw
    // data should level off at about 3 days' worth (2 days + the day being written) and
    // rollups at the 2 days between the two retentions; no file outlives its data.
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
    eprintln!(
        "day  raw segments  raw MB  rollup segments  rollup MB  index+sled MB  raw samples kept  B/raw sample"
    );
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
                tsdb.ingest(host, &batch).unwrap();
            }
            tsdb.flush(now).unwrap();
        }
        let compacted = tsdb.compact(now).unwrap();
        let s = tsdb.stats().unwrap();
        // The series log and sled's store (cursors, floors).
        let sled = s.disk_bytes - s.raw_bytes - s.rollup_bytes;
        eprintln!(
            "{day:>3}  {:>12}  {:>6.1}  {:>15}  {:>9.1}  {:>13.1}  {:>16}  {:>12.3}   ({compacted:?}, {:.1?})",
            s.raw_segments,
            s.raw_bytes as f64 / 1e6,
            s.rollup_segments,
            s.rollup_bytes as f64 / 1e6,
            sled as f64 / 1e6,
            s.raw_samples,
            s.raw_bytes as f64 / s.raw_samples.max(1) as f64,
            started.elapsed()
        );
    }
    let before = tsdb.stats().unwrap();
    drop(tsdb);
    let reopened = Instant::now();
    let tsdb = open(dir.path(), opts);
    let after = tsdb.stats().unwrap();
    eprintln!(
        "reopen: {:.1?}; files on disk {:.1} MB (segments {:.1} MB before, {:.1} MB after)",
        reopened.elapsed(),
        dir_bytes(dir.path()) as f64 / 1e6,
        (before.raw_bytes + before.rollup_bytes) as f64 / 1e6,
        (after.raw_bytes + after.rollup_bytes) as f64 / 1e6,
    );
}

/// A chunk-sized record, as blocks were stored in sled.
#[derive(serde::Serialize, serde::Deserialize)]
struct SledChunk {
    chunk: Vec<u8>,
}

impl muster_shared::store::Record for SledChunk {
    const SCHEMA: u8 = 1;
}

/// The key blocks had in sled: series id BE, then the timestamp with its sign bit flipped.
fn sled_key(series: u32, ts: i64) -> Vec<u8> {
    let mut key = series.to_be_bytes().to_vec();
    key.extend_from_slice(&((ts as u64) ^ (1 << 63)).to_be_bytes());
    key
}

/// 230 pseudo-random bytes (incompressible, like a chunk).
fn fake_chunk(series: u32, window: i64) -> Vec<u8> {
    (0..230u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) ^ series ^ window as u32) as u8)
        .collect()
}

/// Writes `series` records of `value_len` bytes `per_day` times a day for `days`, keeping 3
/// days, keyed series-major or time-major; prints the store's size against the live bytes.
fn sled_layout(name: &str, series: u32, value_len: usize, per_day: i64, time_major: bool) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), StoreOptions::collector()).unwrap();
    let tree = store.tree::<Vec<u8>, SledChunk>("layout").unwrap();
    let key = |series: u32, ts: i64| {
        let k = sled_key(series, ts);
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
                batch.insert(&key(s, t), &SledChunk { chunk }).unwrap();
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
    // flushes did when chunks were sled records. Stops at 1.5 GB of growth: sled's memory
    // grows with what it has written (spacejam/sled#1093), which is what this prints.
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), StoreOptions::collector()).unwrap();
    let tree = store.tree::<Vec<u8>, SledChunk>("blocks").unwrap();
    let before = rss_bytes();
    let series: u32 = 100_000;
    for window in 0..48i64 {
        let mut batch = tree.batch();
        for s in 0..series {
            let chunk = fake_chunk(s, window);
            batch
                .insert(&sled_key(s, window * 1_800_000), &SledChunk { chunk })
                .unwrap();
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

#[test]
#[ignore = "measurement: resident memory as segment files accumulate (the same shape)"]
fn measure_segment_memory_by_chunks() {
    // The shape of `measure_sled_memory_by_block_records`, written as one segment per
    // window through the set the store uses, all 48 windows of a day.
    use crate::tsdb::segment::{Kind, Segments};
    let dir = tempfile::tempdir().unwrap();
    let set = Segments::open(dir.path(), Kind::Raw).unwrap();
    let before = rss_bytes();
    let series: u32 = 100_000;
    for window in 0..48i64 {
        let mut w = set.flush_writer().unwrap();
        for s in 0..series {
            let mut chunk = fake_chunk(s, window);
            // A count, then the first timestamp where both chunk formats keep them.
            chunk[..2].copy_from_slice(&180u16.to_le_bytes());
            let first = window * 1_800_000;
            chunk[2..10].copy_from_slice(&first.to_be_bytes());
            w.push(s, first, first + 1_790_000, &chunk).unwrap();
        }
        let path = w.finish().unwrap().unwrap();
        set.replace(&[path], &[]).unwrap();
        let grown = rss_bytes().saturating_sub(before);
        let chunks = (window + 1) as u64 * u64::from(series);
        let usage = set.snapshot().usage();
        eprintln!(
            "{chunks} chunks ({:.0} MB of chunks): RSS +{:.1} MB ({:.1} B per chunk), \
             disk {:.0} MB ({:.1} B per chunk), segment heap {:.0} KB",
            chunks as f64 * 230.0 / 1e6,
            grown as f64 / 1e6,
            grown as f64 / chunks as f64,
            usage.bytes as f64 / 1e6,
            usage.bytes as f64 / chunks as f64,
            usage.heap_bytes as f64 / 1e3,
        );
    }
}
