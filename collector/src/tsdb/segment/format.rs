//! The segment file layout, version 1, as types whose fields are the layout, and the pure
//! functions that encode and check its parts. No I/O here: `writer.rs` and `reader.rs` do
//! it.
//!
//! All integers are little endian.
//!
//! | part     | size                 | content                                            |
//! |----------|----------------------|----------------------------------------------------|
//! | header   | 8                    | [`MAGIC`]                                          |
//! | data     | n                    | one run per series: its chunks in time order, each |
//! |          |                      | a u32 length then the chunk's bytes                |
//! | index    | 32 × entries         | [`Entry`] per series, by series id ascending       |
//! | fences   | 8 × ⌈entries / 128⌉  | [`Fence`] per block of [`BLOCK_ENTRIES`] entries   |
//! | trailer  | 72                   | [`Trailer`]                                        |
//!
//! A chunk is a raw chunk (`chunk.rs`) or a rollup (`downsample.rs`); both carry their own
//! CRC, start with a u16 count and then their first timestamp as 64 big-endian bits, which
//! [`chunk_count`] and [`chunk_first_ts`] read without decoding. The index is read a block
//! (4 KiB) at a time, each checked against its fence's CRC; the fences are small enough to
//! keep in memory (8 bytes per 128 series) and are checked whole by the trailer's CRC, and
//! the trailer by its own. So a damaged byte anywhere is found: in the header, trailer or
//! fences when the file is opened, in an index block or a chunk when it is read.

use std::ops::Range;

/// First bytes of every segment.
pub const MAGIC: [u8; 8] = *b"MUSTSEG\x01";
/// Last bytes of every segment.
pub const TRAILER_MAGIC: [u8; 8] = *b"MUSTEND\x01";
/// Bytes of the header.
pub const HEADER_BYTES: u64 = 8;
/// Bytes of one [`Entry`].
pub const ENTRY_BYTES: usize = 32;
/// Bytes of one [`Fence`].
pub const FENCE_BYTES: usize = 8;
/// Bytes of the [`Trailer`].
pub const TRAILER_BYTES: usize = 72;
/// Entries per index block: one fence per block, and a lookup reads one block.
pub const BLOCK_ENTRIES: usize = 128;
/// The layout version in the trailer.
pub const VERSION: u8 = 1;
/// Bytes before each chunk in a run: its length.
pub const CHUNK_PREFIX_BYTES: usize = 4;

/// What a segment's chunks are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Raw chunks (`chunk.rs`).
    Raw = 1,
    /// 5-minute rollups (`downsample.rs`).
    Rollup = 2,
}

/// How a segment came to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// Written by one flush: the chunks it closed, any days.
    Flush = 0,
    /// One UTC day's chunks, merged by compaction (or rolled up).
    Day = 1,
}

/// Why a segment's bytes are not a segment. Found on open (header, trailer, fences) or
/// on read (index blocks, runs).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Damage {
    /// Shorter than an empty segment.
    #[error("{len} bytes is too short for a segment")]
    TooShort {
        /// The file's length.
        len: u64,
    },
    /// A magic number is wrong: not a segment, or overwritten.
    #[error("bad magic number in the {part}")]
    Magic {
        /// `header` or `trailer`.
        part: &'static str,
    },
    /// Written by a layout this build does not read.
    #[error("unsupported layout version {version}")]
    Version {
        /// The trailer's version byte.
        version: u8,
    },
    /// A checksum does not match.
    #[error("{part} checksum mismatch (stored {stored:08x}, computed {computed:08x})")]
    Checksum {
        /// `trailer`, `fences` or `index block`.
        part: &'static str,
        /// The stored CRC-32.
        stored: u32,
        /// The CRC-32 of the bytes read.
        computed: u32,
    },
    /// The parts do not fit together (lengths, offsets, order).
    #[error("inconsistent layout: {reason}")]
    Layout {
        /// What does not fit.
        reason: &'static str,
    },
}

fn layout(reason: &'static str) -> Damage {
    Damage::Layout { reason }
}

/// One series' run in the data part.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    /// The series id (u32, offset 0).
    pub series: u32,
    /// The run's length in bytes, chunk prefixes included (u32, offset 4).
    pub len: u32,
    /// The run's offset in the file (u64, offset 8).
    pub offset: u64,
    /// The first chunk's first timestamp, ms (i64, offset 16).
    pub first_ts: i64,
    /// The last chunk's last timestamp, ms (i64, offset 24).
    pub last_ts: i64,
}

impl Entry {
    /// Appends the entry's 32 bytes to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.series.to_le_bytes());
        out.extend_from_slice(&self.len.to_le_bytes());
        out.extend_from_slice(&self.offset.to_le_bytes());
        out.extend_from_slice(&self.first_ts.to_le_bytes());
        out.extend_from_slice(&self.last_ts.to_le_bytes());
    }

    /// Reads an entry from its 32 bytes.
    pub fn parse(b: &[u8; ENTRY_BYTES]) -> Entry {
        Entry {
            series: u32::from_le_bytes(field(b, 0)),
            len: u32::from_le_bytes(field(b, 4)),
            offset: u64::from_le_bytes(field(b, 8)),
            first_ts: i64::from_le_bytes(field(b, 16)),
            last_ts: i64::from_le_bytes(field(b, 24)),
        }
    }

    /// Whether the run may hold a sample in `start..=end`.
    pub fn overlaps(&self, start: i64, end: i64) -> bool {
        self.first_ts <= end && self.last_ts >= start
    }
}

/// An index block's first series and the CRC-32 of its entries' bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fence {
    /// The series of the block's first entry (u32, offset 0).
    pub series: u32,
    /// CRC-32 (IEEE) of the block's entries (u32, offset 4).
    pub crc: u32,
}

impl Fence {
    /// Appends the fence's 8 bytes to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.series.to_le_bytes());
        out.extend_from_slice(&self.crc.to_le_bytes());
    }
}

/// The end of a segment: where the index is and what the segment holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Trailer {
    /// Offset of the index (u64, offset 0).
    pub index_offset: u64,
    /// Entries in the index, at least 1 (u32, offset 8).
    pub entries: u32,
    /// CRC-32 of the fences' bytes (u32, offset 12).
    pub fences_crc: u32,
    /// Smallest series id (u32, offset 16).
    pub min_series: u32,
    /// Largest series id (u32, offset 20).
    pub max_series: u32,
    /// Oldest timestamp, ms (i64, offset 24).
    pub min_ts: i64,
    /// Newest timestamp, ms (i64, offset 32).
    pub max_ts: i64,
    /// Samples (raw) or buckets (rollups) held (u64, offset 40).
    pub samples: u64,
    /// For [`Level::Day`], the day's start (UTC midnight, ms); 0 otherwise (i64, offset 48).
    pub day: i64,
    /// [`Kind`] (u8, offset 56).
    pub kind: Kind,
    /// [`Level`] (u8, offset 57).
    pub level: Level,
    // Offset 58: [`VERSION`] (u8); 59: zero; 60: CRC-32 of bytes 0..60 (u32);
    // 64: [`TRAILER_MAGIC`].
}

impl Trailer {
    /// The trailer's 72 bytes.
    pub fn encode(&self) -> [u8; TRAILER_BYTES] {
        let mut out = Vec::with_capacity(TRAILER_BYTES);
        out.extend_from_slice(&self.index_offset.to_le_bytes());
        out.extend_from_slice(&self.entries.to_le_bytes());
        out.extend_from_slice(&self.fences_crc.to_le_bytes());
        out.extend_from_slice(&self.min_series.to_le_bytes());
        out.extend_from_slice(&self.max_series.to_le_bytes());
        out.extend_from_slice(&self.min_ts.to_le_bytes());
        out.extend_from_slice(&self.max_ts.to_le_bytes());
        out.extend_from_slice(&self.samples.to_le_bytes());
        out.extend_from_slice(&self.day.to_le_bytes());
        out.extend_from_slice(&[self.kind as u8, self.level as u8, VERSION, 0]);
        let crc = crc32fast::hash(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        out.extend_from_slice(&TRAILER_MAGIC);
        let mut fixed = [0u8; TRAILER_BYTES];
        fixed.copy_from_slice(&out);
        fixed
    }

    /// Checks and reads a trailer.
    ///
    /// # Errors
    /// [`Damage`] for a wrong magic, version, checksum or value.
    pub fn parse(b: &[u8; TRAILER_BYTES]) -> Result<Trailer, Damage> {
        if field::<8>(b, 64) != TRAILER_MAGIC {
            return Err(Damage::Magic { part: "trailer" });
        }
        let stored = u32::from_le_bytes(field(b, 60));
        let computed = crc32fast::hash(&b[..60]);
        if stored != computed {
            return Err(Damage::Checksum {
                part: "trailer",
                stored,
                computed,
            });
        }
        if b[58] != VERSION {
            return Err(Damage::Version { version: b[58] });
        }
        let kind = match b[56] {
            1 => Kind::Raw,
            2 => Kind::Rollup,
            _ => return Err(layout("unknown kind")),
        };
        let level = match b[57] {
            0 => Level::Flush,
            1 => Level::Day,
            _ => return Err(layout("unknown level")),
        };
        let t = Trailer {
            index_offset: u64::from_le_bytes(field(b, 0)),
            entries: u32::from_le_bytes(field(b, 8)),
            fences_crc: u32::from_le_bytes(field(b, 12)),
            min_series: u32::from_le_bytes(field(b, 16)),
            max_series: u32::from_le_bytes(field(b, 20)),
            min_ts: i64::from_le_bytes(field(b, 24)),
            max_ts: i64::from_le_bytes(field(b, 32)),
            samples: u64::from_le_bytes(field(b, 40)),
            day: i64::from_le_bytes(field(b, 48)),
            kind,
            level,
        };
        if t.entries == 0 {
            return Err(layout("no entries"));
        }
        if t.min_series > t.max_series || t.min_ts > t.max_ts {
            return Err(layout("minimum above maximum"));
        }
        Ok(t)
    }

    /// Blocks (and fences) of the index.
    pub fn blocks(&self) -> usize {
        (self.entries as usize).div_ceil(BLOCK_ENTRIES)
    }

    /// Bytes of the index.
    pub fn index_bytes(&self) -> u64 {
        u64::from(self.entries) * ENTRY_BYTES as u64
    }

    /// Offset of the fences.
    pub fn fences_offset(&self) -> u64 {
        self.index_offset.saturating_add(self.index_bytes())
    }

    /// The file length this trailer describes.
    pub fn file_len(&self) -> u64 {
        self.fences_offset()
            .saturating_add((self.blocks() * FENCE_BYTES) as u64)
            .saturating_add(TRAILER_BYTES as u64)
    }
}

fn field<const N: usize>(b: &[u8], at: usize) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(&b[at..at + N]);
    out
}

/// Checks the fences' bytes against the trailer and reads them.
///
/// # Errors
/// [`Damage`] for a checksum mismatch or fences out of order.
pub fn parse_fences(bytes: &[u8], trailer: &Trailer) -> Result<Vec<Fence>, Damage> {
    let computed = crc32fast::hash(bytes);
    if computed != trailer.fences_crc {
        return Err(Damage::Checksum {
            part: "fences",
            stored: trailer.fences_crc,
            computed,
        });
    }
    if bytes.len() != trailer.blocks() * FENCE_BYTES {
        return Err(layout("fence count"));
    }
    let fences: Vec<Fence> = bytes
        .chunks_exact(FENCE_BYTES)
        .map(|f| Fence {
            series: u32::from_le_bytes(field(f, 0)),
            crc: u32::from_le_bytes(field(f, 4)),
        })
        .collect();
    let ordered = fences.windows(2).all(|w| w[0].series < w[1].series);
    let first = fences.first().map(|f| f.series);
    if !ordered || first != Some(trailer.min_series) {
        return Err(layout("fences out of order"));
    }
    Ok(fences)
}

/// Checks an index block's bytes against its fence and reads its entries; `data_end` is
/// the index's offset, which no run may pass.
///
/// # Errors
/// [`Damage`] for a checksum mismatch, entries out of order or a run outside the data.
pub fn parse_block(bytes: &[u8], fence: &Fence, data_end: u64) -> Result<Vec<Entry>, Damage> {
    let computed = crc32fast::hash(bytes);
    if computed != fence.crc {
        return Err(Damage::Checksum {
            part: "index block",
            stored: fence.crc,
            computed,
        });
    }
    if bytes.is_empty() || !bytes.len().is_multiple_of(ENTRY_BYTES) {
        return Err(layout("index block length"));
    }
    let mut out = Vec::with_capacity(bytes.len() / ENTRY_BYTES);
    for raw in bytes.chunks_exact(ENTRY_BYTES) {
        let e = Entry::parse(&field(raw, 0));
        let end = e.offset.checked_add(u64::from(e.len));
        if e.offset < HEADER_BYTES || end.is_none_or(|end| end > data_end) {
            return Err(layout("run outside the data"));
        }
        if e.first_ts > e.last_ts || out.last().is_some_and(|p: &Entry| p.series >= e.series) {
            return Err(layout("index entries out of order"));
        }
        out.push(e);
    }
    if out.first().map(|e| e.series) != Some(fence.series) {
        return Err(layout("index block does not start at its fence"));
    }
    Ok(out)
}

/// The chunks of a run, in order, as byte ranges of `run`.
pub fn run_chunks(run: &[u8]) -> RunChunks<'_> {
    RunChunks { run, pos: 0 }
}

/// Iterator over a run's chunks; after a [`Damage`] it yields nothing more.
#[derive(Debug, Clone)]
pub struct RunChunks<'a> {
    run: &'a [u8],
    pos: usize,
}

impl Iterator for RunChunks<'_> {
    type Item = Result<Range<usize>, Damage>;

    fn next(&mut self) -> Option<Self::Item> {
        let rest = self.run.get(self.pos..).filter(|r| !r.is_empty())?;
        let Some((len, rest)) = rest.split_first_chunk::<CHUNK_PREFIX_BYTES>() else {
            self.pos = self.run.len();
            return Some(Err(layout("chunk length cut off")));
        };
        let len = u32::from_le_bytes(*len) as usize;
        if len > rest.len() || len < MIN_CHUNK_BYTES {
            self.pos = self.run.len();
            return Some(Err(layout("chunk length beyond its run")));
        }
        let start = self.pos + CHUNK_PREFIX_BYTES;
        self.pos = start + len;
        Some(Ok(start..start + len))
    }
}

/// The smallest chunk of either format: count, first timestamp, CRC.
const MIN_CHUNK_BYTES: usize = 2 + 8 + 4;

/// The sample (or bucket) count of a chunk of either format, unchecked.
pub fn chunk_count(chunk: &[u8]) -> u64 {
    chunk
        .first_chunk::<2>()
        .map_or(0, |c| u64::from(u16::from_le_bytes(*c)))
}

/// The first timestamp of a chunk of either format, unchecked (its CRC is checked when it
/// is decoded): for ordering chunks before decoding them.
pub fn chunk_first_ts(chunk: &[u8]) -> Option<i64> {
    let ts: [u8; 8] = chunk.get(2..10)?.try_into().ok()?;
    Some(i64::from_be_bytes(ts))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn trailer() -> Trailer {
        Trailer {
            index_offset: 100,
            entries: 300,
            fences_crc: 7,
            min_series: 1,
            max_series: 900,
            min_ts: -5,
            max_ts: 1_700_000_000_000,
            samples: 54_000,
            day: 1_699_920_000_000,
            kind: Kind::Rollup,
            level: Level::Day,
        }
    }

    #[test]
    fn trailer_round_trips_and_every_flipped_byte_is_found() {
        let t = trailer();
        let bytes = t.encode();
        assert_eq!(Trailer::parse(&bytes), Ok(t));
        assert_eq!(t.blocks(), 3);
        assert_eq!(t.file_len(), 100 + 300 * 32 + 3 * 8 + 72);
        for i in 0..TRAILER_BYTES {
            let mut bad = bytes;
            bad[i] ^= 0x01;
            assert!(Trailer::parse(&bad).is_err(), "flip at {i}");
        }
    }

    proptest! {
        #[test]
        fn entries_round_trip(series: u32, len: u32, offset: u64, first_ts: i64, last_ts: i64) {
            let e = Entry { series, len, offset, first_ts, last_ts };
            let mut out = Vec::new();
            e.encode(&mut out);
            prop_assert_eq!(out.len(), ENTRY_BYTES);
            prop_assert_eq!(Entry::parse(&field(&out, 0)), e);
        }

        #[test]
        fn runs_split_back_into_their_chunks(lens in proptest::collection::vec(14usize..300, 0..20)) {
            let chunks: Vec<Vec<u8>> = lens.iter().enumerate()
                .map(|(i, &n)| (0..n).map(|j| (i * 31 + j) as u8).collect())
                .collect();
            let mut run = Vec::new();
            for c in &chunks {
                run.extend_from_slice(&(c.len() as u32).to_le_bytes());
                run.extend_from_slice(c);
            }
            let back: Vec<&[u8]> = run_chunks(&run).map(|r| r.map(|r| &run[r])).collect::<Result<_, _>>().unwrap();
            prop_assert_eq!(back.len(), chunks.len());
            for (a, b) in back.iter().zip(&chunks) {
                prop_assert_eq!(*a, &b[..]);
            }
            // A cut run ends in an error, never a panic or a short chunk taken as whole.
            if !run.is_empty() {
                let cut = &run[..run.len() - 1];
                prop_assert!(run_chunks(cut).any(|c| c.is_err()));
            }
        }
    }

    #[test]
    fn blocks_check_their_fence_and_order() {
        let entries = [
            Entry {
                series: 3,
                len: 20,
                offset: 8,
                first_ts: 0,
                last_ts: 10,
            },
            Entry {
                series: 5,
                len: 20,
                offset: 28,
                first_ts: 0,
                last_ts: 10,
            },
        ];
        let mut bytes = Vec::new();
        entries.iter().for_each(|e| e.encode(&mut bytes));
        let fence = Fence {
            series: 3,
            crc: crc32fast::hash(&bytes),
        };
        assert_eq!(parse_block(&bytes, &fence, 48).unwrap(), entries);
        assert!(matches!(
            parse_block(&bytes, &fence, 47),
            Err(Damage::Layout { .. })
        ));
        let mut swapped = Vec::new();
        entries.iter().rev().for_each(|e| e.encode(&mut swapped));
        let fence = Fence {
            series: 5,
            crc: crc32fast::hash(&swapped),
        };
        assert!(matches!(
            parse_block(&swapped, &fence, 48),
            Err(Damage::Layout { .. })
        ));
    }
}
