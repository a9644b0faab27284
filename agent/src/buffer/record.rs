//! What the buffer stores: its three trees and their records.
//!
//! | tree            | key                        | value          |
//! |-----------------|----------------------------|----------------|
//! | `buffer_rounds` | seq, u64 big endian        | [`RoundRecord`]  |
//! | `buffer_series` | series id as u64 big endian | [`SeriesRecord`] |
//! | `buffer_meta`   | `"meta"`                   | [`MetaRecord`]   |
//!
//! Each value is the store's schema byte followed by bincode (`shared::store::Record`). A
//! round's values are packed by column and zstd-compressed ([`RoundRecord::pack`]): for a
//! 2,000-series host that stores a round in about a third of the plain `Vec<(u32, f64)>`
//! (about 21.5 KB), so the byte bound holds three times the history.
//! [`RoundRecord::stored_len`] and [`SeriesRecord::stored_len`] compute the stored size
//! (key + schema byte + bincode) without encoding; a test holds them to the codec.

use muster_shared::codec::{self, CodecError, Limits};
use muster_shared::store::Record;
use serde::{Deserialize, Serialize};

/// The rounds, by sequence number.
pub(super) const ROUNDS_TREE: &str = "buffer_rounds";
/// The series dictionary, by buffer-wide series id.
pub(super) const SERIES_TREE: &str = "buffer_series";
/// The high-water marks, under [`META_KEY`].
pub(super) const META_TREE: &str = "buffer_meta";
/// The one key of [`META_TREE`].
pub(super) const META_KEY: &str = "meta";

/// One round: a timestamp and the values of that sampling pass, packed (see
/// [`RoundRecord::pack`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct RoundRecord {
    /// When the pass ran, milliseconds since the Unix epoch.
    pub timestamp_unix_ms: u64,
    /// The values: a codec frame (header version [`PACKED_VERSION`]) of [`Columns`].
    pub packed: Vec<u8>,
}

impl Record for RoundRecord {
    const SCHEMA: u8 = 1;
}

/// The frame version of [`RoundRecord::packed`] (the record's schema byte versions the
/// rest; this one only guards against reading some other frame).
const PACKED_VERSION: u16 = 1;
/// zstd level of [`RoundRecord::packed`]: the fastest; higher levels gained under 5 %.
const PACKED_ZSTD_LEVEL: i32 = 1;

/// A round's values by column: series ids sorted ascending, each stored as its distance
/// from the previous one (so mostly 1: one byte, and zstd erases them), then the values
/// in the same order. Columns let zstd find what repeats in values (zeros, integer
/// counters' empty low mantissa bytes).
#[derive(Debug, Serialize, Deserialize)]
struct Columns {
    id_deltas: Vec<u32>,
    values: Vec<f64>,
}

impl RoundRecord {
    /// Packs a round. `values` must hold each id once; they are sorted by id in place.
    ///
    /// # Errors
    /// A [`CodecError`] from the codec (not expected for these types).
    pub fn pack(
        timestamp_unix_ms: u64,
        values: &mut [(u32, f64)],
    ) -> Result<RoundRecord, CodecError> {
        values.sort_unstable_by_key(|&(id, _)| id);
        let mut previous = 0;
        let columns = Columns {
            id_deltas: values
                .iter()
                .map(|&(id, _)| {
                    let delta = id.wrapping_sub(previous);
                    previous = id;
                    delta
                })
                .collect(),
            values: values.iter().map(|&(_, v)| v).collect(),
        };
        Ok(RoundRecord {
            timestamp_unix_ms,
            packed: codec::encode_frame(&columns, PACKED_VERSION, PACKED_ZSTD_LEVEL)?,
        })
    }

    /// The values, `(series id, value)` sorted by id, each id once.
    ///
    /// # Errors
    /// A [`CodecError`] when `packed` is not a packed round (corruption).
    pub fn unpack(&self) -> Result<Vec<(u32, f64)>, CodecError> {
        let (_, columns): (u16, Columns) =
            codec::decode_frame(&self.packed, &Limits::DEFAULT, |v| v == PACKED_VERSION)?;
        if columns.id_deltas.len() != columns.values.len() {
            return Err(CodecError::Decode("round columns differ in length".into()));
        }
        let mut id: Option<u32> = None;
        columns
            .id_deltas
            .iter()
            .zip(columns.values)
            .map(|(&delta, value)| {
                let next = match id {
                    None => Some(delta),
                    Some(id) if delta > 0 => id.checked_add(delta),
                    Some(_) => None,
                };
                id = next;
                next.map(|id| (id, value))
                    .ok_or_else(|| CodecError::Decode("round series ids out of order".into()))
            })
            .collect()
    }

    /// Bytes this record takes in the store: key, schema byte and bincode.
    pub fn stored_len(&self) -> u64 {
        KEY_LEN
            + SCHEMA_LEN
            + varint_len(self.timestamp_unix_ms)
            + varint_len(self.packed.len() as u64)
            + self.packed.len() as u64
    }
}

/// A dictionary entry: the metric name and its labels, sorted by name, names unique.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct SeriesRecord {
    /// The metric name.
    pub metric: String,
    /// `(name, value)`, sorted by name.
    pub labels: Vec<(String, String)>,
}

impl Record for SeriesRecord {
    const SCHEMA: u8 = 1;
}

/// What must survive even when every round is gone: the newest sequence number ever
/// issued and the next series id, so that neither is ever reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct MetaRecord {
    /// The newest round's sequence number when this was written.
    pub last_seq: u64,
    /// The next series id to assign.
    pub next_series_id: u32,
}

impl Record for MetaRecord {
    const SCHEMA: u8 = 1;
}

/// Key bytes of a round or series entry (u64 big endian).
const KEY_LEN: u64 = 8;
/// The store's schema byte.
const SCHEMA_LEN: u64 = 1;

impl SeriesRecord {
    /// Bytes this record takes in the store: key, schema byte and bincode.
    pub fn stored_len(&self) -> u64 {
        let labels: u64 = self
            .labels
            .iter()
            .map(|(name, value)| str_len(name) + str_len(value))
            .sum();
        KEY_LEN + SCHEMA_LEN + str_len(&self.metric) + varint_len(self.labels.len() as u64) + labels
    }
}

/// bincode 2's standard varint: one byte below 251, else a tag byte and 2, 4 or 8 bytes.
fn varint_len(n: u64) -> u64 {
    match n {
        0..=250 => 1,
        251..=0xffff => 3,
        0x1_0000..=0xffff_ffff => 5,
        _ => 9,
    }
}

fn str_len(s: &str) -> u64 {
    varint_len(s.len() as u64) + s.len() as u64
}

#[cfg(test)]
mod tests {
    use muster_shared::codec;

    use super::*;

    fn encoded_stored_len<T: Serialize>(value: &T) -> u64 {
        KEY_LEN + SCHEMA_LEN + codec::encode_value(value).unwrap().len() as u64
    }

    #[test]
    fn stored_len_matches_the_codec() {
        for n in [0, 1, 300, 70_000] {
            let mut values: Vec<(u32, f64)> = (0..n).map(|id| (id * 7, 1.5)).collect();
            let round = RoundRecord::pack(1_700_000_000_000, &mut values).unwrap();
            assert_eq!(round.stored_len(), encoded_stored_len(&round), "{n} values");
        }
        let series = SeriesRecord {
            metric: "node_filesystem_avail_bytes".to_owned(),
            labels: vec![
                ("device".to_owned(), "/dev/sda1".to_owned()),
                ("mountpoint".to_owned(), "é".repeat(300)),
            ],
        };
        assert_eq!(series.stored_len(), encoded_stored_len(&series));
        let bare = SeriesRecord {
            metric: String::new(),
            labels: vec![],
        };
        assert_eq!(bare.stored_len(), encoded_stored_len(&bare));
    }

    #[test]
    fn packed_values_round_trip_sorted_by_id_bit_for_bit() {
        let nan = f64::from_bits(0x7ff8_0000_dead_beef);
        let mut values = vec![(u32::MAX, nan), (0, -0.0), (7, f64::INFINITY), (6, 1e300)];
        let round = RoundRecord::pack(5, &mut values).unwrap();
        let back = round.unpack().unwrap();
        let bits = |v: &[(u32, f64)]| {
            v.iter()
                .map(|&(id, x)| (id, x.to_bits()))
                .collect::<Vec<_>>()
        };
        assert_eq!(bits(&back), bits(&values));
        assert_eq!(back[0].0, 0);
        let empty = RoundRecord::pack(5, &mut []).unwrap();
        assert_eq!(empty.unpack().unwrap(), []);
    }

    #[test]
    fn damaged_packed_values_are_an_error() {
        let mut values = vec![(1, 1.0), (2, 2.0)];
        let mut round = RoundRecord::pack(5, &mut values).unwrap();
        round.packed.truncate(round.packed.len() - 1);
        assert!(round.unpack().is_err());
        // Ids that repeat (a zero delta after the first) are refused.
        let columns = Columns {
            id_deltas: vec![3, 0],
            values: vec![1.0, 2.0],
        };
        round.packed = codec::encode_frame(&columns, PACKED_VERSION, 1).unwrap();
        assert!(round.unpack().is_err());
    }
}
