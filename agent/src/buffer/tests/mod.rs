//! Tests of the buffer through its public API (and, to stage damage, its trees), with the
//! helpers they and the crash test share.

mod bounds;
mod durability;
mod read;
mod scale;

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

/// Opens the store and the buffer in `dir`.
///
/// A reopen right after a drop can find the store locked for a moment: sled's `flock`
/// belongs to the open file description, and a child process forked by a concurrent test
/// (the crash test spawns one every few hundred milliseconds) holds a copy of every
/// descriptor until it execs. So `Locked` is retried for up to 5 s.
pub(super) fn open(dir: &Path, config: &BufferConfig) -> (Store, Buffer) {
    let deadline = Instant::now() + std::time::Duration::from_secs(5);
    let store = loop {
        match Store::open(dir, StoreOptions::agent()) {
            Err(StoreError::Locked { .. }) if Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            other => break other.unwrap(),
        }
    };
    let buffer = Buffer::open(&store, config).unwrap();
    (store, buffer)
}

pub(super) fn config(max_age_secs: u64, max_bytes: u64) -> BufferConfig {
    BufferConfig {
        max_age: Duration::from_secs(max_age_secs),
        max_bytes: ByteSize(max_bytes),
    }
}

pub(super) fn query(after: u64, max: u32) -> SamplesQuery {
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
pub(super) type NamedValue<'a> = (&'a str, &'a [(&'a str, &'a str)], f64);

pub(super) fn append_named(buffer: &Buffer, ts: u64, values: &[NamedValue<'_>]) -> u64 {
    let ids: Vec<(u32, f64)> = values
        .iter()
        .map(|(metric, labels, v)| (buffer.intern(metric, labels), *v))
        .collect();
    buffer.append(ts, &ids).unwrap()
}

/// xorshift64: values without a dependency.
pub(super) struct Rng(pub(super) u64);

impl Rng {
    pub(super) fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// In `[0, 1)`, with a full mantissa.
    pub(super) fn f64(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
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

#[test]
fn buffer_is_send_and_sync() {
    fn shared<T: Send + Sync>() {}
    shared::<Buffer>();
}
