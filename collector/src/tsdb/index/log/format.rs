//! The series log's layout, version 1, as types whose fields are the layout, and the pure
//! functions that encode and check it. No I/O here: `mod.rs` reads and appends.
//!
//! Integers are little endian.
//!
//! | part    | size             | content                                              |
//! |---------|------------------|------------------------------------------------------|
//! | header  | 8                | [`MAGIC`] then [`VERSION`]                           |
//! | records | 12 + n each      | [`RecordHeader`], then its payload: one zstd frame   |
//!
//! A record holds the series one [`super::super::Index::resolve`] call created; its
//! payload, once decompressed, is the columns `payload.rs` describes.
use crate::series::Labels;

use super::super::SeriesId;
use super::payload::{decode_payload, encode_payload};

/// First bytes of a series log.
pub const MAGIC: [u8; 7] = *b"MUSTIDX";
/// The layout version, the header's eighth byte.
pub const VERSION: u8 = 1;
/// Bytes of the file header.
pub const HEADER_BYTES: u64 = 8;
/// Bytes of a [`RecordHeader`].
pub const RECORD_HEADER_BYTES: usize = 12;
/// Largest payload, compressed or not. Records are a host's new series (tens of KB); a
/// migration from sled splits its series to stay far below this.
pub const MAX_PAYLOAD_BYTES: u32 = 256 << 20;
/// zstd level: the default. On the realistic host of `tests.rs` (503 series, 24.9 bytes
/// per series before compression) level 3 gave 6.7 bytes per series in 0.08 ms, 12 gave
/// 6.0 in 0.6 ms and 19 gave 6.0 in 3.5 ms (release build): the gain is a few hundred KB
/// per 500,000 series.
pub const ZSTD_LEVEL: i32 = 3;

/// The file header's 8 bytes.
pub fn header() -> [u8; HEADER_BYTES as usize] {
    let mut out = [0u8; HEADER_BYTES as usize];
    out[..MAGIC.len()].copy_from_slice(&MAGIC);
    out[MAGIC.len()] = VERSION;
    out
}

/// Checks a file's first bytes (all of them if the file is shorter than a header).
///
/// # Errors
/// [`Damage::TooShort`], [`Damage::Magic`] or [`Damage::Version`].
pub fn parse_header(b: &[u8]) -> Result<(), Damage> {
    let Some(b) = b.first_chunk::<{ HEADER_BYTES as usize }>() else {
        return Err(Damage::TooShort {
            len: b.len() as u64,
        });
    };
    if b[..MAGIC.len()] != MAGIC {
        return Err(Damage::Magic);
    }
    match b[MAGIC.len()] {
        VERSION => Ok(()),
        version => Err(Damage::Version { version }),
    }
}

/// Why bytes of the file are not a series log or not a record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Damage {
    /// Shorter than the file header.
    #[error("{len} bytes is too short for a series log header")]
    TooShort {
        /// The file's length.
        len: u64,
    },
    /// The magic number is wrong: not a series log, or overwritten.
    #[error("bad magic number: not a series log")]
    Magic,
    /// Written by a layout this build does not read.
    #[error("unsupported series log version {version}")]
    Version {
        /// The header's version byte.
        version: u8,
    },
    /// The record runs past the end of the file.
    #[error("record of {need} bytes cut off after {have}")]
    Cut {
        /// Bytes the record needs (its header included).
        need: u64,
        /// Bytes left in the file.
        have: u64,
    },
    /// A length in the record header is zero or above [`MAX_PAYLOAD_BYTES`].
    #[error("record length out of bounds: {reason}")]
    Length {
        /// Which length.
        reason: &'static str,
    },
    /// The record's CRC does not match.
    #[error("record checksum mismatch (stored {stored:08x}, computed {computed:08x})")]
    Checksum {
        /// The stored CRC-32.
        stored: u32,
        /// The CRC-32 of the bytes read.
        computed: u32,
    },
    /// The record's checksum matched but its payload does not decode (a bug, or damage
    /// the CRC missed).
    #[error("record payload does not decode: {reason}")]
    Payload {
        /// What is wrong.
        reason: &'static str,
    },
}

/// Why series could not be made into a record; nothing was written.
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    /// Two of the series have the same id (a caller's bug).
    #[error("series id {id} appears twice in one record")]
    DuplicateId {
        /// The id.
        id: SeriesId,
    },
    /// The record would exceed [`MAX_PAYLOAD_BYTES`].
    #[error("a record of {bytes} bytes exceeds the limit of {MAX_PAYLOAD_BYTES}")]
    TooLarge {
        /// Bytes of the payload, before compression.
        bytes: usize,
    },
    /// zstd failed (out of memory).
    #[error("zstd compression failed")]
    Compress(#[source] std::io::Error),
}

/// What precedes each record's payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordHeader {
    /// Bytes of the zstd payload that follows, 1..=[`MAX_PAYLOAD_BYTES`] (u32, offset 0).
    pub payload_len: u32,
    /// Bytes the payload decompresses to, 1..=[`MAX_PAYLOAD_BYTES`] (u32, offset 4).
    pub plain_len: u32,
    /// CRC-32 (IEEE) of bytes 0..8 of the header, then of the payload (u32, offset 8).
    pub crc: u32,
}

impl RecordHeader {
    /// Reads a record header and checks its lengths (not its CRC: that needs the payload).
    ///
    /// # Errors
    /// [`Damage::Length`] for a length of zero or above [`MAX_PAYLOAD_BYTES`].
    pub fn parse(b: &[u8; RECORD_HEADER_BYTES]) -> Result<RecordHeader, Damage> {
        let word = |at: usize| u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
        let h = RecordHeader {
            payload_len: word(0),
            plain_len: word(4),
            crc: word(8),
        };
        if !(1..=MAX_PAYLOAD_BYTES).contains(&h.payload_len) {
            return Err(Damage::Length {
                reason: "payload length",
            });
        }
        if !(1..=MAX_PAYLOAD_BYTES).contains(&h.plain_len) {
            return Err(Damage::Length {
                reason: "decompressed length",
            });
        }
        Ok(h)
    }

    /// Bytes of the whole record: header and payload.
    pub fn record_len(&self) -> u64 {
        RECORD_HEADER_BYTES as u64 + u64::from(self.payload_len)
    }

    fn crc_of(lengths: &[u8], payload: &[u8]) -> u32 {
        let mut hasher = crc32fast::Hasher::new();
        hasher.update(lengths);
        hasher.update(payload);
        hasher.finalize()
    }
}

/// The bytes of one record (header and payload) holding `series`, in any order.
///
/// # Errors
/// [`EncodeError`]; nothing is to be written then.
pub fn encode_record(series: &[(SeriesId, &Labels)]) -> Result<Vec<u8>, EncodeError> {
    let plain = encode_payload(series)?;
    let too_large = |bytes| EncodeError::TooLarge { bytes };
    let plain_len = u32::try_from(plain.len())
        .ok()
        .filter(|&n| n <= MAX_PAYLOAD_BYTES)
        .ok_or(too_large(plain.len()))?;
    let payload = zstd::bulk::compress(&plain, ZSTD_LEVEL).map_err(EncodeError::Compress)?;
    let payload_len = u32::try_from(payload.len())
        .ok()
        .filter(|&n| n <= MAX_PAYLOAD_BYTES)
        .ok_or(too_large(payload.len()))?;
    let mut out = Vec::with_capacity(RECORD_HEADER_BYTES + payload.len());
    out.extend_from_slice(&payload_len.to_le_bytes());
    out.extend_from_slice(&plain_len.to_le_bytes());
    let crc = RecordHeader::crc_of(&out, &payload);
    out.extend_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(&payload);
    Ok(out)
}

/// Checks a record's payload against its header and decodes its series, ids ascending.
///
/// # Errors
/// [`Damage::Checksum`] or [`Damage::Payload`].
pub fn decode_record(
    header: &RecordHeader,
    payload: &[u8],
) -> Result<Vec<(SeriesId, Labels)>, Damage> {
    let mut lengths = [0u8; 8];
    lengths[..4].copy_from_slice(&header.payload_len.to_le_bytes());
    lengths[4..].copy_from_slice(&header.plain_len.to_le_bytes());
    let computed = RecordHeader::crc_of(&lengths, payload);
    if computed != header.crc {
        return Err(Damage::Checksum {
            stored: header.crc,
            computed,
        });
    }
    // The capacity is the checked, declared length: zstd fails rather than write past it.
    let plain = zstd::bulk::decompress(payload, header.plain_len as usize).map_err(|_| {
        Damage::Payload {
            reason: "zstd frame",
        }
    })?;
    if plain.len() != header.plain_len as usize {
        return Err(Damage::Payload {
            reason: "decompressed length differs from the header",
        });
    }
    decode_payload(&plain)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        Labels::from_pairs(pairs.iter().copied())
    }

    fn round_trip(series: &[(SeriesId, &Labels)]) -> Vec<(SeriesId, Labels)> {
        let record = encode_record(series).unwrap();
        let (head, payload) = record.split_first_chunk::<RECORD_HEADER_BYTES>().unwrap();
        let header = RecordHeader::parse(head).unwrap();
        assert_eq!(header.record_len(), record.len() as u64);
        decode_record(&header, payload).unwrap()
    }

    #[test]
    fn records_round_trip_odd_labels_in_id_order() {
        let odd = [
            labels(&[("__name__", "up")]),
            labels(&[("__name__", "x"), ("path", "C:\\dir\n\"quoted\" \u{0}")]),
            labels(&[("__name__", "温度"), ("ключ", "значение 🦀"), ("host", "é")]),
            Labels::default(),
            labels(&[("__name__", &"long".repeat(5_000)), ("host", "a")]),
        ];
        // Given out of order, ids far apart and at the bounds.
        let ids = [u32::MAX, 0, 7, 1 << 20, 8];
        let series: Vec<(SeriesId, &Labels)> = ids.iter().copied().zip(&odd).collect();
        let mut want: Vec<(SeriesId, Labels)> =
            series.iter().map(|(id, l)| (*id, (*l).clone())).collect();
        want.sort_by_key(|(id, _)| *id);
        assert_eq!(round_trip(&series), want);
    }

    #[test]
    fn encoding_refuses_a_repeated_id() {
        let a = labels(&[("__name__", "a")]);
        assert!(matches!(
            encode_record(&[(3, &a), (3, &a)]),
            Err(EncodeError::DuplicateId { id: 3 })
        ));
    }

    #[test]
    fn every_flipped_bit_of_a_record_is_found() {
        let a = labels(&[("__name__", "up"), ("host", "web1")]);
        let b = labels(&[("__name__", "up"), ("host", "web2")]);
        let record = encode_record(&[(1, &a), (2, &b)]).unwrap();
        for at in 0..record.len() {
            for bit in 0..8 {
                let mut bad = record.clone();
                bad[at] ^= 1 << bit;
                let (head, payload) = bad.split_first_chunk::<RECORD_HEADER_BYTES>().unwrap();
                let found = RecordHeader::parse(head).and_then(|h| {
                    if h.record_len() != bad.len() as u64 {
                        return Err(Damage::Cut {
                            need: h.record_len(),
                            have: bad.len() as u64,
                        });
                    }
                    decode_record(&h, payload)
                });
                assert!(found.is_err(), "byte {at} bit {bit}");
            }
        }
    }

    #[test]
    fn headers_are_checked() {
        assert_eq!(parse_header(&header()), Ok(()));
        assert_eq!(parse_header(b"MUST"), Err(Damage::TooShort { len: 4 }));
        assert_eq!(parse_header(b"MUSTSEG\x01"), Err(Damage::Magic));
        assert_eq!(
            parse_header(b"MUSTIDX\x02"),
            Err(Damage::Version { version: 2 })
        );
        let zero = [0u8; RECORD_HEADER_BYTES];
        assert!(matches!(
            RecordHeader::parse(&zero),
            Err(Damage::Length { .. })
        ));
    }

    fn any_labels() -> impl Strategy<Value = Labels> {
        proptest::collection::vec((".{0,12}", ".{0,24}"), 0..6).prop_map(|pairs| {
            Labels::from_pairs(
                std::iter::once(("__name__".to_owned(), "m".to_owned())).chain(pairs),
            )
        })
    }

    proptest! {
        #[test]
        fn any_series_round_trip(
            series in proptest::collection::btree_map(any::<u32>(), any_labels(), 1..40)
        ) {
            let refs: Vec<(SeriesId, &Labels)> = series.iter().map(|(id, l)| (*id, l)).collect();
            let want: Vec<(SeriesId, Labels)> = series.clone().into_iter().collect();
            prop_assert_eq!(round_trip(&refs), want);
        }
    }
}
