//! A typed view of one sled tree.

use std::fmt;
use std::marker::PhantomData;
use std::ops::{Bound, RangeBounds};

use super::StoreError;
use super::key::Key;
use super::record::{Record, decode_record, encode_record, key_hex};

/// A named tree of `K → V`, from [`super::Store::tree`]. Cheap to clone (it shares the
/// store's handle); every method blocks on disk I/O and belongs in `spawn_blocking` when
/// called from async code.
///
/// Each single operation is atomic; [`Tree::apply`] makes a [`TreeBatch`] atomic within this
/// tree. Nothing is durable until [`super::Store::flush`] returns.
pub struct Tree<K, V> {
    name: &'static str,
    inner: sled::Tree,
    // fn() -> (K, V): the tree neither owns K/V nor cares about their Send/Sync.
    types: PhantomData<fn() -> (K, V)>,
}

/// A [`Tree::compare_and_swap`] whose expected value was not the current one.
#[derive(Debug, Clone, PartialEq)]
pub struct CasConflict<V> {
    /// The value the key holds now (`None`: absent).
    pub current: Option<V>,
}

impl<K, V> Clone for Tree<K, V> {
    fn clone(&self) -> Self {
        Tree {
            name: self.name,
            inner: self.inner.clone(),
            types: PhantomData,
        }
    }
}

impl<K, V> fmt::Debug for Tree<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tree").field("name", &self.name).finish()
    }
}

impl<K: Key, V: Record> Tree<K, V> {
    pub(super) fn new(name: &'static str, inner: sled::Tree) -> Self {
        Tree {
            name,
            inner,
            types: PhantomData,
        }
    }

    /// The tree's name, as given to [`super::Store::tree`].
    pub fn name(&self) -> &'static str {
        self.name
    }

    fn backend(&self, op: &'static str) -> impl FnOnce(sled::Error) -> StoreError + use<K, V> {
        let tree = self.name;
        move |source| StoreError::Backend {
            tree,
            op,
            source: Box::new(source),
        }
    }

    fn decode_opt(&self, key: &[u8], stored: Option<sled::IVec>) -> Result<Option<V>, StoreError> {
        stored
            .map(|bytes| decode_record(self.name, key, &bytes))
            .transpose()
    }

    /// The value at `key`, if any.
    ///
    /// # Errors
    /// [`StoreError::Backend`] on I/O failure; [`StoreError::SchemaMismatch`] or
    /// [`StoreError::Decode`] when the stored value is not a current `V`.
    pub fn get(&self, key: &K) -> Result<Option<V>, StoreError> {
        let key = key.to_key();
        let stored = self.inner.get(&key).map_err(self.backend("get"))?;
        self.decode_opt(&key, stored)
    }

    /// Sets `key` to `value`, returning the previous value.
    ///
    /// # Errors
    /// [`StoreError::Encode`] and [`StoreError::ValueTooLarge`] (over
    /// [`super::MAX_RECORD_BYTES`]) before anything is written; [`StoreError::Backend`] on
    /// I/O failure. When the previous value does not decode as a `V`
    /// ([`StoreError::SchemaMismatch`], [`StoreError::Decode`]) the write has happened
    /// anyway; a migration writes with [`Tree::apply`], which decodes nothing.
    pub fn insert(&self, key: &K, value: &V) -> Result<Option<V>, StoreError> {
        let key = key.to_key();
        let value = encode_record(self.name, &key, value)?;
        let previous = self
            .inner
            .insert(key.as_slice(), value)
            .map_err(self.backend("insert"))?;
        self.decode_opt(&key, previous)
    }

    /// Removes `key`, returning the value it had.
    ///
    /// # Errors
    /// As [`Tree::get`]; the removal has happened even when the old value fails to decode.
    pub fn remove(&self, key: &K) -> Result<Option<V>, StoreError> {
        let key = key.to_key();
        let previous = self.inner.remove(&key).map_err(self.backend("remove"))?;
        self.decode_opt(&key, previous)
    }

    /// Whether `key` holds a value (without decoding it).
    ///
    /// # Errors
    /// [`StoreError::Backend`] on I/O failure.
    pub fn contains_key(&self, key: &K) -> Result<bool, StoreError> {
        self.inner
            .contains_key(key.to_key())
            .map_err(self.backend("contains_key"))
    }

    /// The number of entries. Walks the whole tree (sled keeps no count): O(n).
    ///
    /// # Errors
    /// [`StoreError::Backend`] on I/O failure.
    pub fn len(&self) -> Result<usize, StoreError> {
        let mut n = 0;
        for entry in self.inner.iter().keys() {
            entry.map_err(self.backend("len"))?;
            n += 1;
        }
        Ok(n)
    }

    /// Whether the tree has no entries.
    ///
    /// # Errors
    /// [`StoreError::Backend`] on I/O failure.
    pub fn is_empty(&self) -> Result<bool, StoreError> {
        Ok(self
            .inner
            .first()
            .map_err(self.backend("is_empty"))?
            .is_none())
    }

    /// All entries in key order. Each item decodes on its own: one bad value is an `Err`
    /// item, and iteration can go on past it. The iterator sees a consistent snapshot of
    /// each leaf, not of the whole tree.
    pub fn iter(&self) -> Iter<K, V> {
        self.wrap(self.inner.iter())
    }

    /// The entries whose keys lie in `range`, in key order (reversible with `.rev()`).
    /// An empty or inverted range yields nothing.
    ///
    /// ```
    /// # use muster_shared::store::{Record, Store, StoreOptions};
    /// # #[derive(serde::Serialize, serde::Deserialize)] struct Round(u32);
    /// # impl Record for Round { const SCHEMA: u8 = 1; }
    /// # let dir = tempfile::tempdir()?;
    /// # let store = Store::open(dir.path(), StoreOptions::agent())?;
    /// let rounds = store.tree::<u64, Round>("rounds")?;
    /// for seq in 1..=10 {
    ///     rounds.insert(&seq, &Round(0))?;
    /// }
    /// let after_7: Vec<u64> = rounds.range(8..).map(|e| e.map(|(k, _)| k)).collect::<Result<_, _>>()?;
    /// assert_eq!(after_7, [8, 9, 10]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn range<R: RangeBounds<K>>(&self, range: R) -> Iter<K, V> {
        let encode = |bound: Bound<&K>| match bound {
            Bound::Included(k) => Bound::Included(k.to_key()),
            Bound::Excluded(k) => Bound::Excluded(k.to_key()),
            Bound::Unbounded => Bound::Unbounded,
        };
        let bounds = (encode(range.start_bound()), encode(range.end_bound()));
        self.wrap(self.inner.range::<Vec<u8>, _>(bounds))
    }

    /// The entries whose encoded key ([`Key::to_key`]) starts with `prefix`, in key order.
    /// For `String` keys that is a string prefix: `scan_prefix("web1/")`.
    pub fn scan_prefix(&self, prefix: impl AsRef<[u8]>) -> Iter<K, V> {
        self.wrap(self.inner.scan_prefix(prefix))
    }

    /// The entry with the smallest key.
    ///
    /// # Errors
    /// As [`Tree::get`], and [`StoreError::Key`] for an undecodable key.
    pub fn first(&self) -> Result<Option<(K, V)>, StoreError> {
        self.iter().next().transpose()
    }

    /// The entry with the largest key.
    ///
    /// # Errors
    /// As [`Tree::first`].
    pub fn last(&self) -> Result<Option<(K, V)>, StoreError> {
        self.iter().next_back().transpose()
    }

    /// Atomically sets `key` to `new` (`None` removes it) if it currently holds `old`
    /// (`None`: absent). Values are compared as encoded bytes, schema byte included.
    ///
    /// Returns `Ok(Err(conflict))` with the current value when it was not `old`.
    ///
    /// # Errors
    /// As [`Tree::insert`]; the current value of a conflict must decode as a `V`.
    pub fn compare_and_swap(
        &self,
        key: &K,
        old: Option<&V>,
        new: Option<&V>,
    ) -> Result<Result<(), CasConflict<V>>, StoreError> {
        let key = key.to_key();
        let old = old.map(|v| encode_record(self.name, &key, v)).transpose()?;
        let new = new.map(|v| encode_record(self.name, &key, v)).transpose()?;
        match self
            .inner
            .compare_and_swap(key.as_slice(), old, new)
            .map_err(self.backend("compare_and_swap"))?
        {
            Ok(()) => Ok(Ok(())),
            Err(conflict) => Ok(Err(CasConflict {
                current: self.decode_opt(&key, conflict.current)?,
            })),
        }
    }

    /// A new, empty batch of writes for this tree.
    pub fn batch(&self) -> TreeBatch<K, V> {
        TreeBatch {
            tree: self.name,
            inner: sled::Batch::default(),
            len: 0,
            types: PhantomData,
        }
    }

    /// Applies every write of `batch` atomically: after a crash, either all of them or none
    /// are there (once flushed, all). Writes are applied in the order they were added.
    ///
    /// # Errors
    /// [`StoreError::Backend`] on I/O failure (then nothing was applied).
    pub fn apply(&self, batch: TreeBatch<K, V>) -> Result<(), StoreError> {
        self.inner
            .apply_batch(batch.inner)
            .map_err(self.backend("apply"))
    }

    fn wrap(&self, inner: sled::Iter) -> Iter<K, V> {
        Iter {
            tree: self.name,
            inner,
            types: PhantomData,
        }
    }
}

/// Writes to one tree, applied atomically by [`Tree::apply`]. Build it with [`Tree::batch`].
pub struct TreeBatch<K, V> {
    tree: &'static str,
    inner: sled::Batch,
    len: usize,
    types: PhantomData<fn() -> (K, V)>,
}

impl<K, V> fmt::Debug for TreeBatch<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TreeBatch")
            .field("tree", &self.tree)
            .field("len", &self.len)
            .finish()
    }
}

impl<K: Key, V: Record> TreeBatch<K, V> {
    /// Adds a write of `value` at `key`.
    ///
    /// # Errors
    /// [`StoreError::Encode`] or [`StoreError::ValueTooLarge`]; the batch is unchanged.
    pub fn insert(&mut self, key: &K, value: &V) -> Result<(), StoreError> {
        let key = key.to_key();
        let value = encode_record(self.tree, &key, value)?;
        self.inner.insert(key, value);
        self.len += 1;
        Ok(())
    }

    /// Adds a removal of `key`.
    pub fn remove(&mut self, key: &K) {
        self.inner.remove(key.to_key());
        self.len += 1;
    }

    /// The number of writes added (a key written twice counts twice).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no write was added.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// Typed entries of a tree, from [`Tree::iter`], [`Tree::range`] or [`Tree::scan_prefix`].
pub struct Iter<K, V> {
    tree: &'static str,
    inner: sled::Iter,
    types: PhantomData<fn() -> (K, V)>,
}

impl<K, V> fmt::Debug for Iter<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Iter").field("tree", &self.tree).finish()
    }
}

impl<K: Key, V: Record> Iter<K, V> {
    fn decode(
        &self,
        op: &'static str,
        entry: sled::Result<(sled::IVec, sled::IVec)>,
    ) -> Result<(K, V), StoreError> {
        let (key, value) = entry.map_err(|source| StoreError::Backend {
            tree: self.tree,
            op,
            source: Box::new(source),
        })?;
        let typed_key = K::from_key(&key).map_err(|source| StoreError::Key {
            tree: self.tree,
            key_hex: key_hex(&key),
            source,
        })?;
        Ok((typed_key, decode_record(self.tree, &key, &value)?))
    }
}

impl<K: Key, V: Record> Iterator for Iter<K, V> {
    type Item = Result<(K, V), StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        let entry = self.inner.next()?;
        Some(self.decode("iter", entry))
    }
}

impl<K: Key, V: Record> DoubleEndedIterator for Iter<K, V> {
    fn next_back(&mut self) -> Option<Self::Item> {
        let entry = self.inner.next_back()?;
        Some(self.decode("iter", entry))
    }
}
