//! Opening the buffer: one scan of each tree rebuilds the dictionary and the bounds, and
//! repairs what an interrupted append or eviction left behind (module docs of `buffer`).

use std::sync::Mutex;

use muster_shared::store::{Store, StoreError, Tree};

use super::dictionary::Dictionary;
use super::record::{
    META_KEY, META_TREE, MetaRecord, ROUNDS_TREE, RoundRecord, SERIES_TREE, SeriesRecord,
};
use super::{Buffer, BufferConfig, BufferError, Held, State, Writer};

pub(super) fn open(store: &Store, config: &BufferConfig) -> Result<Buffer, BufferError> {
    let load = |source| BufferError::Load { source };
    let rounds = store.tree::<u64, RoundRecord>(ROUNDS_TREE).map_err(load)?;
    let series = store.tree::<u64, SeriesRecord>(SERIES_TREE).map_err(load)?;
    let meta_tree = store.tree::<String, MetaRecord>(META_TREE).map_err(load)?;

    let meta = match meta_tree.get(&META_KEY.to_owned()) {
        Ok(meta) => meta,
        Err(err) if is_bad_record(&err) => {
            tracing::warn!(error = %err, "the buffer's meta record is unreadable; rebuilding it from the rounds");
            None
        }
        Err(err) => return Err(load(err)),
    };

    let mut dictionary = Dictionary::default();
    let mut bad_series = Vec::new();
    for item in series.iter() {
        match item {
            Ok((key, record)) => match u32::try_from(key) {
                Ok(id) => dictionary.load(id, &record),
                Err(_) => bad_series.push(key),
            },
            Err(err) => bad_series.push(bad_record_key(err).map_err(load)?),
        }
    }

    let mut state = State::default();
    let mut bad_rounds = Vec::new();
    let mut last_key = 0;
    for item in rounds.iter() {
        let (seq, record) = match item {
            Ok(entry) => entry,
            Err(err) => {
                let seq = bad_record_key(err).map_err(load)?;
                last_key = last_key.max(seq);
                bad_rounds.push(seq);
                continue;
            }
        };
        last_key = last_key.max(seq);
        // Unpacked ids are strictly increasing: each once. Every one must be defined.
        let values = record
            .unpack()
            .ok()
            .filter(|values| values.iter().all(|&(id, _)| dictionary.contains(id)));
        let Some(values) = values else {
            bad_rounds.push(seq);
            continue;
        };
        for &(id, _) in &values {
            dictionary.touch(id, seq);
        }
        let bytes = record.stored_len();
        state.round_bytes += bytes;
        state.held.push_back(Held {
            seq,
            timestamp_unix_ms: record.timestamp_unix_ms,
            bytes,
        });
    }

    state.newest_issued = meta.map_or(0, |m| m.last_seq).max(last_key);
    dictionary.raise_next_id(meta.map_or(0, |m| m.next_series_id));
    // No id is cached anywhere yet: no grace.
    let unused = dictionary.collect(state.floor(), state.newest_issued, 0);
    state.dictionary = dictionary;

    if !bad_rounds.is_empty() {
        tracing::warn!(
            rounds = bad_rounds.len(),
            first = bad_rounds.first(),
            last = bad_rounds.last(),
            "removed buffered rounds that were unreadable or lacked their series (an interrupted append or eviction)"
        );
    }
    if !bad_series.is_empty() {
        tracing::warn!(
            series = bad_series.len(),
            "removed unreadable series definitions from the buffer"
        );
    }
    let repaired = remove(&rounds, &bad_rounds).map_err(load)?
        | remove(&series, &bad_series).map_err(load)?
        | remove(
            &series,
            &unused.iter().map(|&id| u64::from(id)).collect::<Vec<_>>(),
        )
        .map_err(load)?;
    if repaired {
        store.flush().map_err(load)?;
    }

    tracing::debug!(
        first = state.held.front().map(|h| h.seq),
        last = state.last_held(),
        rounds = state.held.len(),
        bytes = state.round_bytes + state.dictionary.bytes(),
        series = state.dictionary.len(),
        "sample buffer opened"
    );
    Ok(Buffer {
        store: store.clone(),
        rounds,
        series,
        meta: meta_tree,
        max_age_ms: u64::try_from(config.max_age.get().as_millis()).unwrap_or(u64::MAX),
        max_bytes: config.max_bytes.bytes(),
        writer: Mutex::new(Writer::default()),
        state: Mutex::new(state),
    })
}

/// Removes `keys` in one batch; whether there were any.
fn remove<V: muster_shared::store::Record>(
    tree: &Tree<u64, V>,
    keys: &[u64],
) -> Result<bool, StoreError> {
    if keys.is_empty() {
        return Ok(false);
    }
    let mut batch = tree.batch();
    for key in keys {
        batch.remove(key);
    }
    tree.apply(batch)?;
    Ok(true)
}

/// Whether `err` is about one stored record (it can be dropped), not the store itself.
fn is_bad_record(err: &StoreError) -> bool {
    matches!(
        err,
        StoreError::SchemaMismatch { .. }
            | StoreError::Decode { .. }
            | StoreError::EmptyValue { .. }
            | StoreError::Key { .. }
    )
}

/// The u64 key of a record that does not decode, read back from the error's hex key; the
/// error itself when it is not about one record or the key is not a u64.
fn bad_record_key(err: StoreError) -> Result<u64, StoreError> {
    let key_hex = match &err {
        StoreError::SchemaMismatch { key_hex, .. }
        | StoreError::Decode { key_hex, .. }
        | StoreError::EmptyValue { key_hex, .. } => key_hex,
        _ => return Err(err),
    };
    match u64::from_str_radix(key_hex, 16) {
        Ok(key) if key_hex.len() == 16 => Ok(key),
        _ => Err(err),
    }
}
