//! The sample buffer: the agent's write-ahead log of sampling rounds, in the agent's store,
//! served to the collector as `GET /v1/samples?after=SEQ&max=N` (DESIGN.md §2).
//!
//! [`Buffer::append`] stores one round (one timestamp, the values of every live series) under
//! the next sequence number, its values sorted by series id, packed by column and compressed
//! (about 8 KB for a 2,000-series host, against 21.5 KB as plain pairs; layout in
//! `record.rs`). [`Buffer::read`] serves the rounds after a cursor as a self-contained
//! [`SampleBatch`]. Series travel as buffer-wide ids from [`Buffer::intern`]; the dictionary
//! that defines them is stored beside the rounds, and each batch re-numbers the ids it uses
//! densely from 0, in order of first use. Bounds ([`BufferConfig`]: age and bytes) evict the
//! oldest rounds, and dictionary entries that no held round uses go with them.
//!
//! # Sequence numbers
//!
//! Rounds are numbered from 1, strictly increasing, and a number is never reused: not after
//! eviction (even of everything), not after a restart. The newest number issued is kept in
//! the `buffer_meta` tree, written with each round, so an emptied buffer goes on from it.
//! A number whose append failed before its commit is tried again by the next append; a
//! number can be skipped (never served) when a crash interrupts an append after its meta
//! record but before its round reached the disk.
//!
//! # Appending: the commit point
//!
//! An append writes, in this order: the series interned since the last append (one batch in
//! `buffer_series`), the round (`buffer_rounds`), the meta record; then flushes the store.
//! The flush is the commit point: once `append` returns `Ok(seq)`, the round survives a
//! crash, and only then can `read` serve it. Afterwards the bounds are applied (one batch
//! removing the oldest rounds, then one removing the series no held round needs); these
//! are not flushed on their own, the next commit carries them.
//!
//! # What an interruption leaves behind
//!
//! A crash (SIGKILL, power loss) at any point leaves a store that [`Buffer::open`] repairs:
//! - Rounds committed by a returned `append` are all there, except those the bounds had
//!   already evicted.
//! - A round written but not committed may be there or not. If it is there with every
//!   series it uses, it is kept (it is a true sample, never served before); if any of its
//!   series is missing (the store keeps no order between trees), it is removed.
//! - An eviction whose series removals reached the disk but whose round removals did not
//!   leaves old rounds without their series: they are removed the same way (they were
//!   being evicted anyway). So a round is never served without its series definitions.
//! - Series no held round uses (written for a round that did not survive, or left by an
//!   eviction) are removed; rounds or series whose records do not decode (a newer schema
//!   after a downgrade, corruption) are removed with a warning rather than stopping the
//!   agent.
//!
//! # Bounds
//!
//! After each append, while more than the new round is held, the oldest round is evicted
//! if it is older than `max_age` relative to the new round's timestamp, or if the stored
//! bytes (rounds and dictionary: key, schema byte and bincode of each record) exceed
//! `max_bytes`. The newest round is never evicted, so a single round larger than
//! `max_bytes` is still held until the next one. The byte total is a running sum, computed
//! by one scan at open; sled's files on disk take more than it (log, page overhead).
//! Timestamps are the sampler's wall clock: a clock stepped backwards delays age eviction
//! (bytes still bound the buffer), one stepped far forward evicts by age what it passes.
//!
//! A series id is collected when no held round uses it and it was not used or interned in
//! the last [`SERIES_GRACE_ROUNDS`] rounds, so the dictionary follows container churn
//! instead of growing. Ids are never reused, so a sampler that still caches a collected id
//! (a series absent for longer than the grace while its rounds were evicted) cannot
//! mislabel a value: `append` drops values whose id is unknown, or repeated within the
//! round, counts them ([`BufferStats::dropped_values`]) and logs a warning.
//!
//! # Reading
//!
//! `read(after, max)` serves the committed rounds with `seq > after`, oldest first, at most
//! `max` rounds and about [`MAX_BATCH_BYTES`] of bincode (so a batch of a large host stays
//! far inside the codec's limits; `more` is then true). `after = 0` asks from the oldest
//! held round. Rounds after the cursor that are no longer held are reported as a
//! [`Gap`](muster_shared::protocol::samples::Gap) `after + 1 ..= oldest held - 1`; this
//! holds for `after = 0` too, so a collector that starts on an agent whose history was
//! already evicted learns how much it never saw; with nothing evicted there is no gap. A
//! gap with no rounds after it (everything issued is gone) moves the cursor to its end. A
//! gap may also cover a number skipped by a crash; the collector need not tell the two
//! apart. With nothing after the cursor the batch is empty and `next_after = after`.
//!
//! A cursor beyond the newest sequence number this buffer ever issued cannot come from
//! this buffer (the agent's data was wiped, or the cursor belongs to another host). Serving
//! it an empty batch would stall the collector until the buffer caught up, possibly for
//! months; instead `read` answers [`BufferError::CursorAhead`], a client error for the API
//! to answer with 409 Conflict, so that the collector notices and restarts from
//! `after = 0` (where a gap then reports whatever was already evicted).
//!
//! # Locking and blocking
//!
//! `open`, `append` and `read` block on disk I/O (run them under `spawn_blocking`);
//! `intern` and `stats` only take a short lock. Appends are serialized by their own lock;
//! the dictionary and the bounds sit under another that no one holds across store I/O.

mod dictionary;
mod open;
mod read;
mod record;
mod write;

#[cfg(test)]
mod crash_test;
#[cfg(test)]
mod tests;

pub use dictionary::SERIES_GRACE_ROUNDS;
pub use read::MAX_BATCH_BYTES;

use std::collections::{HashSet, VecDeque};
use std::sync::{Mutex, MutexGuard, PoisonError};

use muster_shared::codec::CodecError;
use muster_shared::config::{ByteSize, Duration};
use muster_shared::protocol::samples::{SampleBatch, SamplesQuery};
use muster_shared::store::{Store, StoreError, Tree};
use serde::{Deserialize, Serialize};

use dictionary::{Dictionary, SeriesKey};
use record::{MetaRecord, RoundRecord, SeriesRecord};

/// The buffer's bounds: the `[buffer]` section of `agent.toml`.
///
/// ```toml
/// [buffer]
/// max_age = "6h"
/// max_bytes = "64MiB"
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BufferConfig {
    /// Rounds older than this, relative to the newest round, are evicted. It is how long
    /// the collector may be unreachable without losing samples. Default `"6h"`.
    #[serde(default = "default_max_age")]
    pub max_age: Duration,
    /// The most the buffer's records (rounds and series dictionary) may take in the store;
    /// the oldest rounds are evicted beyond it. Disk use is higher (the store's own log and
    /// pages: about 3× in a young store). Default `"64MiB"`: a 2,000-series host sampled
    /// every 10 s stores about 8 KB per round, so 6 hours take about 18 MiB; the bound
    /// binds first for larger hosts or shorter intervals.
    #[serde(default = "default_max_bytes")]
    pub max_bytes: ByteSize,
}

fn default_max_age() -> Duration {
    Duration::from_secs(6 * 3600)
}

fn default_max_bytes() -> ByteSize {
    ByteSize::mib(64)
}

impl Default for BufferConfig {
    fn default() -> Self {
        BufferConfig {
            max_age: default_max_age(),
            max_bytes: default_max_bytes(),
        }
    }
}

/// Why a buffer operation failed.
#[derive(Debug, thiserror::Error)]
pub enum BufferError {
    /// Opening: the buffer's trees could not be opened, read or repaired.
    #[error("cannot load the sample buffer")]
    Load {
        /// The store's error.
        #[source]
        source: StoreError,
    },
    /// Appending round `seq`: a write failed; the round is not stored (the next append
    /// takes the same sequence number).
    #[error("cannot write round {seq} to the sample buffer")]
    Write {
        /// The round's would-be sequence number.
        seq: u64,
        /// The store's error.
        #[source]
        source: StoreError,
    },
    /// Appending round `seq`: the flush (the commit point) failed; the round is not known
    /// to be durable and is not served.
    #[error("cannot commit round {seq} of the sample buffer")]
    Commit {
        /// The round's would-be sequence number.
        seq: u64,
        /// The store's error.
        #[source]
        source: StoreError,
    },
    /// Appending round `seq`: its values could not be packed (not expected); nothing was
    /// written.
    #[error("cannot pack round {seq} of the sample buffer")]
    Encode {
        /// The round's would-be sequence number.
        seq: u64,
        /// The codec's error.
        #[source]
        source: CodecError,
    },
    /// Reading: the stored round `seq` does not unpack (damaged since the buffer was
    /// opened; a reopen removes it).
    #[error("round {seq} of the sample buffer is damaged")]
    CorruptRound {
        /// The round.
        seq: u64,
        /// The codec's error.
        #[source]
        source: CodecError,
    },
    /// Reading the rounds after `after` failed.
    #[error("cannot read the sample buffer after seq {after}")]
    Read {
        /// The request's cursor.
        after: u64,
        /// The store's error.
        #[source]
        source: StoreError,
    },
    /// The request's cursor is beyond the newest sequence number this buffer ever issued:
    /// the cursor belongs to an earlier life of this agent (its data was wiped) or to
    /// another host. The caller's fault (409 Conflict); it should restart from `after = 0`.
    #[error(
        "cursor {after} is beyond the newest round this agent ever stored ({newest}); its buffer was reset: ask again with after=0"
    )]
    CursorAhead {
        /// The request's cursor.
        after: u64,
        /// The newest sequence number issued (0: none yet).
        newest: u64,
    },
    /// A held round uses a series id the dictionary lacks. The buffer's invariants make
    /// this impossible; it is reported rather than serving a batch the collector refuses.
    #[error("round {seq} uses series id {id}, which the buffer's dictionary lacks")]
    MissingSeries {
        /// The round.
        seq: u64,
        /// The undefined id.
        id: u32,
    },
}

/// A snapshot of the buffer's bounds and counters, for the agent's own metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BufferStats {
    /// The oldest round held; 0 when none is.
    pub first_seq: u64,
    /// The newest round held; 0 when none is.
    pub last_seq: u64,
    /// The newest sequence number ever issued (held or not); 0 before the first append.
    pub newest_issued: u64,
    /// Rounds held.
    pub rounds: u64,
    /// Bytes of records held (rounds and dictionary), as counted against `max_bytes`.
    pub bytes: u64,
    /// Dictionary entries (series ids) held.
    pub series: u64,
    /// Rounds evicted by the bounds since this buffer was opened.
    pub evicted_rounds: u64,
    /// Values dropped by `append` since this buffer was opened: unknown series ids
    /// (collected while a sampler still cached them) or ids repeated within a round.
    pub dropped_values: u64,
}

/// The sample buffer. `Send + Sync`: share it in an `Arc` between the sampling loop
/// (`intern`, `append`) and the API (`read`, `stats`).
#[derive(Debug)]
pub struct Buffer {
    store: Store,
    rounds: Tree<u64, RoundRecord>,
    series: Tree<u64, SeriesRecord>,
    meta: Tree<String, MetaRecord>,
    max_age_ms: u64,
    max_bytes: u64,
    /// Serializes appends; holds what only the writer needs.
    writer: Mutex<Writer>,
    /// The dictionary and the bounds; never held across store I/O.
    state: Mutex<State>,
}

/// The writer's scratch space and the removals still to be applied to the store.
#[derive(Debug, Default)]
struct Writer {
    /// Ids seen in the round being appended (reused: no allocation in steady state).
    seen: HashSet<u32>,
    /// Whether the previous append dropped values (to warn once per episode).
    dropping: bool,
    /// Evicted rounds still in the store (a removal batch failed); retried each append.
    unremoved_rounds: Vec<u64>,
    /// Collected series still in the store; retried each append, after the rounds.
    unremoved_series: Vec<u32>,
}

/// What `read`, `intern` and `stats` see, kept consistent under one lock.
#[derive(Debug, Default)]
struct State {
    dictionary: Dictionary,
    /// The held rounds, oldest first.
    held: VecDeque<Held>,
    /// Stored bytes of the held rounds.
    round_bytes: u64,
    /// The newest sequence number issued; the next append takes the one after.
    newest_issued: u64,
    evicted_rounds: u64,
    dropped_values: u64,
}

/// A held round, as the bounds need it.
#[derive(Debug, Clone, Copy)]
struct Held {
    seq: u64,
    timestamp_unix_ms: u64,
    bytes: u64,
}

impl State {
    /// Every sequence number below this one is gone (evicted, or never committed): the
    /// oldest held round, or, with none held, the next number to issue.
    fn floor(&self) -> u64 {
        self.held
            .front()
            .map_or(self.newest_issued.saturating_add(1), |h| h.seq)
    }

    fn last_held(&self) -> Option<u64> {
        self.held.back().map(|h| h.seq)
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic under these locks leaves counters at worst slightly off (every update keeps
    // the structures valid), never worth taking the agent down for.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Buffer {
    /// Opens (or creates) the buffer in `store`: loads the dictionary and the bounds with
    /// one scan of each tree, and repairs what an interruption left behind (see the
    /// module docs). Blocking; reads every record once.
    ///
    /// # Errors
    /// [`BufferError::Load`] when the store cannot be read or repaired.
    pub fn open(store: &Store, config: &BufferConfig) -> Result<Buffer, BufferError> {
        open::open(store, config)
    }

    /// The buffer-wide id of the series `metric{labels}`, assigning one to a series never
    /// seen (memory only; its definition is written with the next append). Label pairs may
    /// come in any order; they are stored sorted by name, and of a repeated name only the
    /// first is kept. No I/O: callers cache the id (in `Series::global_id`) and call this
    /// once per new series. Ids are never reused; see the module docs for when one is
    /// collected.
    pub fn intern(&self, metric: &str, labels: &[(&str, &str)]) -> u32 {
        let key = SeriesKey::new(metric, labels);
        let mut state = lock(&self.state);
        let newest = state.newest_issued;
        state.dictionary.intern(key, newest)
    }

    /// Appends one round (one timestamp, `(series id, value)` pairs) as the next sequence
    /// number, with the series interned since the last append, then flushes (the commit
    /// point), then evicts by age and bytes. Returns the round's sequence number. Values
    /// with an unknown id, or an id already given in this round, are dropped and counted.
    /// Blocking (the flush waits for fsync).
    ///
    /// # Errors
    /// [`BufferError::Write`] or [`BufferError::Commit`]: the round is not stored, and the
    /// next append reuses its number. Failing to apply the eviction afterwards is not an
    /// error (the round is committed); it is logged and retried with the next append.
    pub fn append(
        &self,
        timestamp_unix_ms: u64,
        values: &[(u32, f64)],
    ) -> Result<u64, BufferError> {
        self.append_round(timestamp_unix_ms, values)
    }

    /// Serves `GET /v1/samples`: see the module docs. The batch passes
    /// [`SampleBatch::validate`]. Blocking.
    ///
    /// # Errors
    /// [`BufferError::CursorAhead`] for a cursor this buffer never issued (a client error);
    /// [`BufferError::Read`] when the store fails.
    pub fn read(&self, query: &SamplesQuery) -> Result<SampleBatch, BufferError> {
        self.read_batch(query)
    }

    /// The current bounds and counters.
    pub fn stats(&self) -> BufferStats {
        let state = lock(&self.state);
        BufferStats {
            first_seq: state.held.front().map_or(0, |h| h.seq),
            last_seq: state.last_held().unwrap_or(0),
            newest_issued: state.newest_issued,
            rounds: state.held.len() as u64,
            bytes: state.round_bytes + state.dictionary.bytes(),
            series: state.dictionary.len() as u64,
            evicted_rounds: state.evicted_rounds,
            dropped_values: state.dropped_values,
        }
    }
}
