//! Moving the index out of sled: earlier builds kept it in the tree `tsdb_index` (`S`·id
//! series records, `P` postings records; sled took 517 bytes per series on disk). When
//! the series log does not exist yet, its series records are read, written as the new
//! log (durably, `log::SeriesLog::create`), and only then is the tree dropped. The
//! postings records are not read: postings are rebuilt from the labels.
//!
//! An interruption before the log is renamed into place leaves the tree as it was and no
//! log, so the next open starts over; after it, the log is complete and the next open
//! drops the tree it finds beside it.

use std::path::Path;

use muster_shared::store::{Record, Store, StoreError};
use serde::{Deserialize, Serialize};

use super::SeriesId;
use super::log::{SeriesLog, SeriesLogError};
use crate::series::{Label, Labels};
use crate::tsdb::error::TsdbError;

/// The tree earlier builds kept the index in.
const TREE: &str = "tsdb_index";
/// Its series keys' first byte (then the id, u32 big endian).
const SERIES: u8 = b'S';

/// A series record of `tsdb_index`, schema 1. Only the series variant is read; bincode
/// stores the variant's index, so it must stay the first (the postings variant was
/// second).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
enum IndexRecord {
    /// A series' labels, sorted by name, the metric name as `__name__`.
    Series(Vec<Label>),
}

impl Record for IndexRecord {
    const SCHEMA: u8 = 1;
}

/// Makes sure the series log exists at `path`: new and empty, or holding what sled's
/// tree held; then drops the tree if it is there.
///
/// # Errors
/// [`TsdbError::Open`] when sled cannot be read or the tree dropped,
/// [`TsdbError::OpenIndex`] when the log cannot be written.
pub(super) fn ensure_log(store: &Store, path: &Path) -> Result<(), TsdbError> {
    let open_index = |source| TsdbError::OpenIndex { source };
    let exists = path.try_exists().map_err(|source| {
        open_index(SeriesLogError::Io {
            op: "looking for",
            path: path.to_owned(),
            source,
        })
    })?;
    if !exists {
        let series = read_sled_series(store)?;
        SeriesLog::create(path, &series).map_err(open_index)?;
        if !series.is_empty() {
            tracing::info!(series = series.len(), path = %path.display(),
                "moved the series index from sled into the series log");
        }
    }
    let open = |what| move |source| TsdbError::Open { what, source };
    // `read_sled_series` opened the tree (creating it if there was none): either way it
    // goes now that the log holds its series.
    if let Some(records) = store
        .drop_tree(TREE)
        .map_err(open("dropping the old index tree"))?
    {
        store.flush().map_err(open("dropping the old index tree"))?;
        if exists && records > 0 {
            tracing::info!(
                records,
                "dropped the sled index tree an interrupted move left"
            );
        }
    }
    Ok(())
}

/// The series of sled's `tsdb_index`, ids ascending; none when there is no such tree. A
/// record that does not decode is skipped with a warning, as the sled index did at open.
fn read_sled_series(store: &Store) -> Result<Vec<(SeriesId, Labels)>, TsdbError> {
    let open = |what| move |source| TsdbError::Open { what, source };
    let tree = store
        .tree::<Vec<u8>, IndexRecord>(TREE)
        .map_err(open("old index tree"))?;
    let mut out = Vec::new();
    for entry in tree.scan_prefix([SERIES]) {
        let (key, IndexRecord::Series(labels)) = match entry {
            Ok(entry) => entry,
            Err(err @ StoreError::Backend { .. }) => return Err(open("old index records")(err)),
            Err(err) => {
                tracing::warn!(error = %err, "skipping a damaged series record of the old index");
                continue;
            }
        };
        let Some(id) = key
            .get(1..5)
            .and_then(|b| b.try_into().ok())
            .map(u32::from_be_bytes)
        else {
            tracing::warn!(key = %hex::encode(&key), "skipping an old index record with a bad key");
            continue;
        };
        out.push((
            id,
            Labels::from_pairs(labels.into_iter().map(|l| (l.name, l.value))),
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tsdb::index::{Index, Resolved};

    /// The values the sled index wrote (schema 1), both variants.
    #[derive(Debug, Serialize, Deserialize)]
    enum OldRecord {
        Series(Vec<Label>),
        Postings(Vec<SeriesId>),
    }

    impl Record for OldRecord {
        const SCHEMA: u8 = 1;
    }

    /// Writes `series` as the sled index did: an `S` record each, and a `P` segment per
    /// label pair.
    fn write_sled_index(store: &Store, series: &[(SeriesId, Labels)]) {
        let tree = store.tree::<Vec<u8>, OldRecord>(TREE).unwrap();
        for (id, labels) in series {
            let mut key = vec![SERIES];
            key.extend_from_slice(&id.to_be_bytes());
            tree.insert(&key, &OldRecord::Series(labels.clone().into_vec()))
                .unwrap();
            for l in labels.iter() {
                let mut key = vec![b'P'];
                key.extend_from_slice(l.name.as_bytes());
                key.push(0xFF);
                key.extend_from_slice(l.value.as_bytes());
                key.push(0xFF);
                key.extend_from_slice(&id.to_be_bytes());
                tree.insert(&key, &OldRecord::Postings(vec![*id])).unwrap();
            }
        }
        store.flush().unwrap();
    }

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        Labels::from_pairs(pairs.iter().copied())
    }

    #[test]
    fn ids_survive_the_move_from_sled_and_the_tree_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let old = vec![
            (3, labels(&[("__name__", "up"), ("host", "web1")])),
            (7, labels(&[("__name__", "load1"), ("host", "web1")])),
            (
                12,
                labels(&[("__name__", "up"), ("host", "db1"), ("job", "é✓")]),
            ),
        ];
        {
            let store = crate::tsdb::tests::open_store(&dir.path().join("store"));
            write_sled_index(&store, &old);
        }
        let tsdb_dir = dir.path().join("tsdb");
        std::fs::create_dir_all(&tsdb_dir).unwrap();
        for round in 0..2 {
            let store = crate::tsdb::tests::open_store(&dir.path().join("store"));
            let index = Index::open(&store, &tsdb_dir, 1).unwrap();
            assert_eq!(store.drop_tree(TREE).unwrap(), None, "round {round}");
            let wanted: Vec<Labels> = old.iter().map(|(_, l)| l.clone()).collect();
            let got = index.resolve("web1", &wanted, 100).unwrap();
            for ((id, _), r) in old.iter().zip(got) {
                assert_eq!(
                    r,
                    Some(Resolved {
                        id: *id,
                        created: false
                    }),
                    "round {round}"
                );
            }
            assert_eq!(index.next_id(), 13);
            // Postings come back from the labels.
            let mem = index.read();
            let host = mem.symbol("host").unwrap();
            let web1 = mem.symbol("web1").unwrap();
            assert_eq!(mem.postings[mem.pair(host, web1).unwrap() as usize], [3, 7]);
        }
    }

    #[test]
    fn a_move_interrupted_after_the_log_is_written_drops_the_tree_next_time() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::tsdb::tests::open_store(&dir.path().join("store"));
        let old = vec![(5, labels(&[("__name__", "up"), ("host", "a")]))];
        write_sled_index(&store, &old);
        let path = dir.path().join("series.log");
        // The log is in place but the tree was not dropped yet.
        SeriesLog::create(&path, &old).unwrap();
        let index = Index::open(&store, dir.path(), 1).unwrap();
        assert_eq!(store.drop_tree(TREE).unwrap(), None);
        assert_eq!(index.read().lookup(&old[0].1), Some(5));
    }

    #[test]
    fn a_new_store_gets_an_empty_log_and_no_tree() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::tsdb::tests::open_store(&dir.path().join("store"));
        let index = Index::open(&store, dir.path(), 4).unwrap();
        assert_eq!(store.drop_tree(TREE).unwrap(), None);
        assert_eq!(index.next_id(), 4);
        assert!(dir.path().join("series.log").exists());
    }
}
