//! Ingesting an agent's [`SampleBatch`]: checks, series resolution through a per-host
//! cache, and appends to the head.
//!
//! A batch is checked whole before anything is stored, so a malformed batch changes
//! nothing. Each batch carries its own series dictionary; a host's cache maps a dictionary
//! entry's *content* (metric and labels, the agent's `host` label left out since ours
//! replaces it) to the series' id and head slot. The key is a 128-bit hash with seeds
//! chosen at random per process (a collision needs ~2^64 series of one host; an agent
//! cannot aim for one without the seeds), so a steady-state batch costs one hash per
//! series, no index lookup and no allocation beyond the cache's own growth. Misses go to
//! the index in one call, which writes all new series in one batch. A batch whose agent
//! left its dictionary out (the collector holds it, `dictionary.rs`) skips even that: its
//! ids are read with the map the held dictionary filled.
//!
//! Rounds are appended under their host's head shard lock, one lock per round, then
//! noted for the durable cursor (`cursor.rs`).

use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use hashbrown::{DefaultHashBuilder, HashTable};
use muster_shared::protocol::samples::{SampleBatch, SeriesDef};

use super::align::RoundAligners;
use super::cursor::PendingRounds;
use super::dictionary::{DefMap, Dictionary, SeriesRef};
use super::error::TsdbError;
use super::head::Append;
use super::index::{HOST_LABEL, SeriesId};
use super::{Tsdb, lock};
use crate::series::{Labels, METRIC_NAME};

/// Latest round timestamp accepted: the start of the year 10000, in ms.
const MAX_TIMESTAMP_MS: u64 = 253_402_300_800_000;
/// Most labels a series may have.
const MAX_LABELS: usize = 256;

/// What one [`Tsdb::ingest`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IngestStats {
    /// Samples stored.
    pub appended: u64,
    /// Samples dropped because the series already has a sample at or after their
    /// timestamp: a re-pull's overlap.
    pub duplicates: u64,
    /// Samples dropped because they are older than the raw data kept (already rolled up).
    pub too_old: u64,
    /// Samples dropped because their series would exceed `max_series`.
    pub over_limit: u64,
    /// Series this batch created.
    pub new_series: u64,
}

/// Per-host ingest state.
#[derive(Debug)]
pub(super) struct HostState {
    /// The head shard of this host's series.
    pub shard: usize,
    /// Held for a whole ingest call: one host's batches are stored one at a time.
    ingest: Mutex<HostIngest>,
    /// Rounds not yet covered by the durable cursor.
    pub rounds: Mutex<PendingRounds>,
}

#[derive(Debug, Default)]
struct HostIngest {
    cache: HashTable<(u128, SeriesRef)>,
    aligner: RoundAligners,
    /// The last batch dictionary's ids → series (reused across batches).
    defs: DefMap,
    /// The name of the dictionary `defs` holds, when its agent named it.
    held: Option<String>,
}

impl HostState {
    pub(super) fn new(shard: usize) -> Self {
        HostState {
            shard,
            ingest: Mutex::default(),
            rounds: Mutex::default(),
        }
    }
}

/// The two random seeds of the cache key.
#[derive(Debug, Default)]
pub(super) struct CacheSeeds(DefaultHashBuilder, DefaultHashBuilder);

impl CacheSeeds {
    fn key<S: AsRef<str>>(&self, def: &SeriesDef<S>) -> u128 {
        let feed = |builder: &DefaultHashBuilder| {
            let mut h = builder.build_hasher();
            h.write(def.metric.as_ref().as_bytes());
            h.write_u8(0xff);
            for label in def.labels.iter().filter(|l| l.name.as_ref() != HOST_LABEL) {
                h.write(label.name.as_ref().as_bytes());
                h.write_u8(0xfe);
                h.write(label.value.as_ref().as_bytes());
                h.write_u8(0xff);
            }
            h.finish()
        };
        (u128::from(feed(&self.0)) << 64) | u128::from(feed(&self.1))
    }
}

/// Refuses what validation does not cover and the store cannot hold.
fn check<S: AsRef<str>>(host: &str, batch: &SampleBatch<S>) -> Result<(), TsdbError> {
    let refuse = |reason: String| TsdbError::Refused {
        host: host.to_owned(),
        reason,
    };
    if host.is_empty() {
        return Err(refuse("the host id is empty".to_owned()));
    }
    batch.validate().map_err(|source| TsdbError::InvalidBatch {
        host: host.to_owned(),
        source,
    })?;
    for def in &batch.series {
        if def.metric.as_ref().is_empty() {
            return Err(refuse(format!("series id {} has no metric name", def.id)));
        }
        if def.labels.len() > MAX_LABELS {
            return Err(refuse(format!(
                "series id {} has {} labels, more than {MAX_LABELS}",
                def.id,
                def.labels.len()
            )));
        }
        if def.labels.iter().any(|l| l.name.as_ref().is_empty()) {
            return Err(refuse(format!(
                "series id {} has an empty label name",
                def.id
            )));
        }
    }
    check_timestamps(host, batch)
}

/// [`check`] for a batch whose dictionary was left out: `defined` are the held
/// dictionary's ids (its series were checked when it came).
fn check_elided<S: AsRef<str>>(
    host: &str,
    batch: &SampleBatch<S>,
    defined: &[u32],
) -> Result<(), TsdbError> {
    batch
        .validate_elided(defined)
        .map_err(|source| TsdbError::InvalidBatch {
            host: host.to_owned(),
            source,
        })?;
    check_timestamps(host, batch)
}

fn check_timestamps<S>(host: &str, batch: &SampleBatch<S>) -> Result<(), TsdbError> {
    if let Some(round) = batch
        .rounds
        .iter()
        .find(|r| r.timestamp_unix_ms > MAX_TIMESTAMP_MS)
    {
        return Err(TsdbError::Refused {
            host: host.to_owned(),
            reason: format!(
                "round seq {} has timestamp {} ms, after the year 9999",
                round.seq, round.timestamp_unix_ms
            ),
        });
    }
    Ok(())
}

/// The labels stored for `def` from `host`: its labels, `__name__` and our `host`.
pub fn stored_labels<S: AsRef<str>>(host: &str, def: &SeriesDef<S>) -> Labels {
    Labels::from_pairs(
        def.labels
            .iter()
            .map(|l| (l.name.as_ref(), l.value.as_ref()))
            .chain([(METRIC_NAME, def.metric.as_ref()), (HOST_LABEL, host)]),
    )
}

impl Tsdb {
    /// Stores a batch pulled from `host`: checks it (nothing is stored if any check
    /// fails), labels every series `host="<host>"` (replacing an agent's own `host`
    /// label), and appends its samples to the head. Safe to call from many threads for
    /// different hosts at once; one host's calls run one after another. Blocks (index
    /// writes for new series, segment reads for series new to the head): call it from
    /// `spawn_blocking`.
    ///
    /// Samples at or before a series' last timestamp are dropped and counted, so
    /// re-ingesting rounds after a crash is harmless.
    ///
    /// # Errors
    /// [`TsdbError::InvalidBatch`] and [`TsdbError::Refused`] for a batch that will never
    /// be stored; [`TsdbError::IndexWrite`] and [`TsdbError::ReadSegment`] when the store
    /// fails (nothing of the batch was appended; retry it).
    pub fn ingest<S: AsRef<str>>(
        &self,
        host: &str,
        batch: &SampleBatch<S>,
    ) -> Result<IngestStats, TsdbError> {
        self.ingest_with(host, batch, &Dictionary::Inline)
    }

    /// [`Tsdb::ingest`] of a batch whose dictionary is where `dictionary` says: a named
    /// one is held for the host after the batch is stored; an elided one must be the one
    /// held, and the batch's ids are read with it (no series decoded, hashed or looked
    /// up). [`Tsdb::held_dictionary`] names the one held, for the next request.
    ///
    /// # Errors
    /// Those of [`Tsdb::ingest`]; [`TsdbError::Refused`] for an elided dictionary that
    /// is not the one held (nothing is held afterwards, so the next pull asks for the
    /// whole dictionary).
    pub fn ingest_with<S: AsRef<str>>(
        &self,
        host: &str,
        batch: &SampleBatch<S>,
        dictionary: &Dictionary,
    ) -> Result<IngestStats, TsdbError> {
        let state = self.host_state(host);
        let mut guard = lock(&state.ingest);
        let ing = &mut *guard;
        let mut stats = IngestStats::default();
        match dictionary {
            Dictionary::Elided(name) => {
                if ing.held.as_deref() != Some(name.as_str()) {
                    ing.held = None;
                    return Err(TsdbError::Refused {
                        host: host.to_owned(),
                        reason: format!(
                            "the agent left out dictionary {name}, which this collector does not hold"
                        ),
                    });
                }
                check_elided(host, batch, ing.defs.ids())?;
            }
            Dictionary::Named(_) | Dictionary::Inline => {
                check(host, batch)?;
                // A batch with no series (no rounds) changes nothing: the held
                // dictionary stays for the next pull.
                if !batch.series.is_empty() {
                    ing.held = None;
                    self.resolve(
                        host,
                        &state,
                        &mut ing.cache,
                        &mut ing.defs,
                        batch,
                        &mut stats,
                    )?;
                    if let Dictionary::Named(name) = dictionary {
                        ing.held = Some(name.clone());
                    }
                }
            }
        }

        let window = self.options.window_ms;
        let tolerance = self.options.tolerance_ms;
        for round in &batch.rounds {
            // `check` bounds the timestamp, so it fits an i64.
            let first = round.values.first().map(|v| v.series);
            let ts = ing
                .aligner
                .align(first, round.timestamp_unix_ms as i64, tolerance);
            {
                let mut shard = self.head.lock(state.shard);
                // Read under the shard lock: a compaction raising the floor then cuts
                // this shard, so every sample is either cut by it or sees the new floor.
                let floor = self.floors.sealed_before.load(Ordering::Acquire);
                for value in &round.values {
                    let Some(r) = ing.defs.lookup(value.series) else {
                        stats.over_limit += 1;
                        continue;
                    };
                    match shard.append(r.slot, ts, value.value, window, tolerance, floor) {
                        Append::Added => stats.appended += 1,
                        Append::Duplicate => stats.duplicates += 1,
                        Append::TooOld => stats.too_old += 1,
                    }
                }
            }
            lock(&state.rounds).record(round.seq, ts, window);
        }
        if batch.rounds.is_empty() && batch.next_after > 0 {
            lock(&state.rounds).record_empty(batch.next_after, window);
        }
        self.counters.add_ingest(&stats);
        Ok(stats)
    }

    /// Stores series the collector itself writes about `host` at `timestamp_ms`: `up`,
    /// the pull's duration and size, as Prometheus writes them for each target. Each
    /// name in `values` becomes `{__name__="<name>", host="<host>"}`. No round, and so no
    /// cursor, is involved: these samples exist only here, and a crash loses those still
    /// in the head (the agents' buffers cannot give them back).
    ///
    /// # Errors
    /// [`TsdbError::Refused`] or [`TsdbError::InvalidBatch`] for an empty host or name;
    /// [`TsdbError::IndexWrite`] and [`TsdbError::ReadSegment`] when the store fails.
    pub fn append_local(
        &self,
        host: &str,
        timestamp_ms: i64,
        values: &[(&str, f64)],
    ) -> Result<IngestStats, TsdbError> {
        let batch: SampleBatch<&str> = SampleBatch {
            first_seq: 0,
            last_seq: 0,
            next_after: 0,
            more: false,
            gap: None,
            series: values
                .iter()
                .zip(0u32..)
                .map(|(&(metric, _), id)| SeriesDef {
                    id,
                    metric,
                    labels: Vec::new(),
                })
                .collect(),
            rounds: Vec::new(),
        };
        check(host, &batch)?;
        let state = self.host_state(host);
        let mut guard = lock(&state.ingest);
        let ing = &mut *guard;
        let mut stats = IngestStats::default();
        // A map of its own: the held batch dictionary's must stay as its name says.
        let mut defs = DefMap::default();
        self.resolve(host, &state, &mut ing.cache, &mut defs, &batch, &mut stats)?;
        let mut shard = self.head.lock(state.shard);
        let floor = self.floors.sealed_before.load(Ordering::Acquire);
        for (&(_, value), id) in values.iter().zip(0u32..) {
            let Some(r) = defs.lookup(id) else {
                stats.over_limit += 1;
                continue;
            };
            let window = self.options.window_ms;
            let tolerance = self.options.tolerance_ms;
            match shard.append(r.slot, timestamp_ms, value, window, tolerance, floor) {
                Append::Added => stats.appended += 1,
                Append::Duplicate => stats.duplicates += 1,
                Append::TooOld => stats.too_old += 1,
            }
        }
        drop(shard);
        self.counters.add_ingest(&stats);
        Ok(stats)
    }

    /// The name of the batch dictionary held for `host` (see [`Tsdb::ingest_with`]), to
    /// send with the next pull.
    pub fn held_dictionary(&self, host: &str) -> Option<String> {
        let state = self.hosts_read().get(host).cloned()?;
        lock(&state.ingest).held.clone()
    }

    /// [`Tsdb::append_local`] when it can finish without I/O: every named series of `host`
    /// is already in its ingest cache (so neither the index nor a segment is read), which
    /// holds from a host's second pull on. `None` (nothing stored) otherwise; then call
    /// [`Tsdb::append_local`] off the async runtime. Takes only memory locks, briefly, so
    /// the scrape loop calls it inline and saves a blocking-pool hop per pull.
    pub fn append_local_cached(
        &self,
        host: &str,
        timestamp_ms: i64,
        values: &[(&str, f64)],
    ) -> Option<IngestStats> {
        let state = self.hosts_read().get(host).cloned()?;
        let ing = lock(&state.ingest);
        let refs = values
            .iter()
            .map(|&(metric, _)| {
                let def = SeriesDef::<&str> {
                    id: 0,
                    metric,
                    labels: Vec::new(),
                };
                let key = self.cache_seeds.key(&def);
                ing.cache
                    .find(key as u64, |(k, _)| *k == key)
                    .map(|&(_, r)| r)
            })
            .collect::<Option<Vec<SeriesRef>>>()?;
        let mut stats = IngestStats::default();
        let mut shard = self.head.lock(state.shard);
        let floor = self.floors.sealed_before.load(Ordering::Acquire);
        let (window, tolerance) = (self.options.window_ms, self.options.tolerance_ms);
        for (r, &(_, value)) in refs.iter().zip(values) {
            match shard.append(r.slot, timestamp_ms, value, window, tolerance, floor) {
                Append::Added => stats.appended += 1,
                Append::Duplicate => stats.duplicates += 1,
                Append::TooOld => stats.too_old += 1,
            }
        }
        drop(shard);
        drop(ing);
        self.counters.add_ingest(&stats);
        Some(stats)
    }

    /// Fills `defs` for `batch`, resolving `cache` misses through the index.
    fn resolve<S: AsRef<str>>(
        &self,
        host: &str,
        state: &HostState,
        cache: &mut HashTable<(u128, SeriesRef)>,
        defs: &mut DefMap,
        batch: &SampleBatch<S>,
        stats: &mut IngestStats,
    ) -> Result<(), TsdbError> {
        let max_id = batch.series.iter().map(|d| d.id).max().unwrap_or(0);
        let dense = defs.reset(batch.series.len(), max_id);
        let mut misses: Vec<(usize, u128)> = Vec::new();
        for (i, def) in batch.series.iter().enumerate() {
            let key = self.cache_seeds.key(def);
            let found = cache.find(key as u64, |(k, _)| *k == key).map(|&(_, r)| r);
            if found.is_none() {
                misses.push((i, key));
            }
            defs.set(dense, def.id, found);
            defs.define(def.id);
        }
        if !dense {
            defs.seal();
        }
        if !misses.is_empty() {
            let labels: Vec<Labels> = misses
                .iter()
                .map(|&(i, _)| stored_labels(host, &batch.series[i]))
                .collect();
            let resolved = self.index.resolve(host, &labels, self.options.max_series)?;
            // Series new to the head start after their last durable sample.
            let mut found = Vec::with_capacity(misses.len());
            for ((i, key), r) in misses.into_iter().zip(resolved) {
                let Some(r) = r else { continue };
                stats.new_series += u64::from(r.created);
                let known = !r.created && lock_slot(self, state.shard, r.id).is_none();
                let last = if known {
                    self.blocks
                        .last_ts(r.id)
                        .map_err(|source| TsdbError::ReadSegment {
                            series: r.id,
                            source,
                        })?
                } else {
                    None
                };
                found.push((i, key, r.id, last));
            }
            let mut shard = self.head.lock(state.shard);
            for (i, key, id, last) in found {
                let r = SeriesRef {
                    id,
                    slot: shard.add(id, last),
                };
                cache.insert_unique(key as u64, (key, r), |(k, _)| *k as u64);
                defs.set(dense, batch.series[i].id, Some(r));
            }
        }
        Ok(())
    }

    /// The ingest state of `host`, created on first use.
    pub(super) fn host_state(&self, host: &str) -> Arc<HostState> {
        if let Some(state) = self.hosts_read().get(host) {
            return Arc::clone(state);
        }
        let mut hosts = self
            .hosts
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let shard = self.head.shard_of_host(host);
        Arc::clone(
            hosts
                .entry(host.into())
                .or_insert_with(|| Arc::new(HostState::new(shard))),
        )
    }
}

/// Whether series `id` has a head slot (briefly locks the shard).
fn lock_slot(tsdb: &Tsdb, shard: usize, id: SeriesId) -> Option<u32> {
    tsdb.head.lock(shard).slot(id)
}
