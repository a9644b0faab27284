//! Content-defined chunking: FastCDC (2020) over a file read in large blocks.
//!
//! Cut points depend only on the content and the repository's chunker parameters, never on
//! how the bytes arrive (read sizes, buffer sizes): the golden and property tests below pin
//! that, and pin the cut points of the exact `fastcdc` version we build with (4.0.0 once moved
//! cut points silently).
//!
//! `fastcdc::v2020::StreamCDC` copies its whole window after every chunk; with small chunks
//! that is several times the data. Here the file is read into a buffer of many chunks, cut
//! in place, and only the unfinished tail is moved.

use std::io::{self, Read};

use fastcdc::v2020::{FastCDC, Normalization};
use serde::{Deserialize, Serialize};

/// A repository's chunker parameters (saved in its config; changing them ends dedup with
/// existing data).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkerParams {
    /// The smallest chunk, in bytes (a file's last chunk may be smaller).
    pub min_size: u32,
    /// The average chunk size the cut mask aims for, in bytes.
    pub avg_size: u32,
    /// The largest chunk, in bytes.
    pub max_size: u32,
    /// Keys the gear table, so cut points differ between repositories.
    pub seed: u64,
}

impl ChunkerParams {
    /// Muster's defaults: 16 KiB / 64 KiB / 256 KiB. Smaller than restic's ~1 MiB and borg's
    /// ~2 MiB so a small change adds little (docs/backup.md has the measurements).
    pub fn with_seed(seed: u64) -> Self {
        ChunkerParams {
            min_size: 16 << 10,
            avg_size: 64 << 10,
            max_size: 256 << 10,
            seed,
        }
    }

    /// Checks the sizes against what FastCDC accepts.
    pub fn validate(&self) -> Result<(), String> {
        use fastcdc::v2020 as f;
        let (min, avg, max) = (
            self.min_size as usize,
            self.avg_size as usize,
            self.max_size as usize,
        );
        let within = (f::MINIMUM_MIN..=f::MINIMUM_MAX).contains(&min)
            && (f::AVERAGE_MIN..=f::AVERAGE_MAX).contains(&avg)
            && (f::MAXIMUM_MIN..=f::MAXIMUM_MAX).contains(&max)
            && min <= avg
            && avg <= max;
        if !within {
            return Err(format!(
                "chunk sizes min {min}, avg {avg}, max {max} are outside FastCDC's limits \
                 ({}..={}, {}..={}, {}..={}, min <= avg <= max)",
                f::MINIMUM_MIN,
                f::MINIMUM_MAX,
                f::AVERAGE_MIN,
                f::AVERAGE_MAX,
                f::MAXIMUM_MIN,
                f::MAXIMUM_MAX
            ));
        }
        Ok(())
    }
}

/// Splits a byte stream into content-defined chunks.
#[derive(Debug)]
pub struct Chunker {
    params: ChunkerParams,
    buf: Vec<u8>,
}

impl Chunker {
    /// The read buffer holds this many maximum-size chunks (moves of the tail stay rare).
    const BUFFER_CHUNKS: usize = 8;

    /// A chunker with `params` (validated by the repository config).
    pub fn new(params: ChunkerParams) -> Self {
        Chunker {
            params,
            buf: Vec::new(),
        }
    }

    /// Reads `source` to its end, calling `each` with every chunk in order. Stops at the first
    /// error of the source or of `each`.
    pub fn chunk<R: Read, E: From<io::Error>>(
        &mut self,
        mut source: R,
        mut each: impl FnMut(&[u8]) -> Result<(), E>,
    ) -> Result<(), E> {
        let p = self.params;
        let max = p.max_size as usize;
        let cap = max * Self::BUFFER_CHUNKS;
        self.buf.resize(cap, 0);
        let mut len = 0;
        let mut eof = false;
        loop {
            while !eof && len < cap {
                match source.read(&mut self.buf[len..]) {
                    Ok(0) => eof = true,
                    Ok(n) => len += n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e.into()),
                }
            }
            if len == 0 {
                return Ok(());
            }
            let cdc = FastCDC::with_level_and_seed(
                &self.buf[..len],
                p.min_size as usize,
                p.avg_size as usize,
                max,
                Normalization::Level2,
                p.seed,
            );
            let mut consumed = 0;
            for c in cdc {
                // A chunk whose window could reach past the buffer is cut again after a refill,
                // unless the stream has ended: its cut point must not depend on the buffer.
                if !eof && c.offset + max > len {
                    break;
                }
                each(&self.buf[c.offset..c.offset + c.length])?;
                consumed = c.offset + c.length;
            }
            if eof && consumed == len {
                return Ok(());
            }
            self.buf.copy_within(consumed..len, 0);
            len -= consumed;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic pseudo-random bytes (xorshift), so the golden cut points never change
    /// unless the chunker does.
    fn bytes(n: usize, mut state: u64) -> Vec<u8> {
        (0..n)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state >> 24) as u8
            })
            .collect()
    }

    fn lengths(params: ChunkerParams, data: &[u8], read_size: usize) -> Vec<usize> {
        struct Dribble<'a>(&'a [u8], usize);
        impl Read for Dribble<'_> {
            fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
                let n = self.0.len().min(self.1).min(out.len());
                out[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        let mut out = Vec::new();
        Chunker::new(params)
            .chunk(Dribble(data, read_size), |c| {
                out.push(c.len());
                Ok::<_, io::Error>(())
            })
            .unwrap();
        out
    }

    /// Golden cut points of fastcdc =4.0.1 with Muster's default sizes. If this fails after a
    /// dependency change, the new version cuts differently: every existing repository would
    /// stop deduplicating against new backups. Do not update the numbers; pin the old version.
    #[test]
    fn golden_cut_points_of_the_pinned_fastcdc() {
        let data = bytes(2 << 20, 0x9E37_79B9_7F4A_7C15);
        let got = lengths(ChunkerParams::with_seed(0), &data, 1 << 20);
        assert_eq!(got.iter().sum::<usize>(), data.len());
        let golden: &[usize] = GOLDEN_SEED0;
        assert_eq!(got, golden, "cut points moved: {got:?}");
        let keyed = lengths(ChunkerParams::with_seed(42), &data, 1 << 20);
        assert_eq!(keyed, GOLDEN_SEED42, "keyed cut points moved: {keyed:?}");
    }

    const GOLDEN_SEED0: &[usize] = &[
        67860, 76333, 67038, 99981, 86303, 67325, 74765, 80277, 82251, 66532, 73016, 78819, 86261,
        33572, 103970, 82563, 51995, 90001, 82303, 86362, 73458, 69266, 80081, 69977, 132279,
        48030, 67195, 19339,
    ];
    const GOLDEN_SEED42: &[usize] = &[
        70061, 78510, 68426, 68755, 87561, 99788, 44716, 122948, 71267, 77899, 24696, 86148, 65785,
        27526, 106177, 67588, 67186, 73852, 77444, 72432, 86133, 27052, 104245, 70788, 41379,
        71026, 80652, 95516, 61596,
    ];

    #[test]
    fn cut_points_do_not_depend_on_read_sizes() {
        let params = ChunkerParams::with_seed(7);
        let data = bytes(3 << 20, 99);
        let whole = lengths(params, &data, usize::MAX);
        for read_size in [1, 4093, 65536, 300_000] {
            assert_eq!(
                lengths(params, &data, read_size),
                whole,
                "read size {read_size}"
            );
        }
        assert!(whole.iter().all(|&n| n <= params.max_size as usize));
        assert!(
            whole[..whole.len() - 1]
                .iter()
                .all(|&n| n >= params.min_size as usize)
        );
    }

    #[test]
    fn an_insertion_changes_only_nearby_chunks() {
        let params = ChunkerParams::with_seed(7);
        let data = bytes(4 << 20, 5);
        let mut edited = data.clone();
        edited.splice(1000..1000, [1u8, 2, 3]);
        let a = lengths(params, &data, usize::MAX);
        let b = lengths(params, &edited, usize::MAX);
        // Everything after the first chunk or two realigns.
        let same_tail = a
            .iter()
            .rev()
            .zip(b.iter().rev())
            .take_while(|(x, y)| x == y)
            .count();
        assert!(
            same_tail + 2 >= a.len(),
            "only {same_tail} of {} chunks realigned",
            a.len()
        );
    }

    #[test]
    fn empty_and_tiny_inputs() {
        let params = ChunkerParams::with_seed(0);
        assert!(lengths(params, &[], 10).is_empty());
        assert_eq!(lengths(params, &[1, 2, 3], 10), vec![3]);
    }

    #[test]
    fn invalid_sizes_are_refused() {
        let mut p = ChunkerParams::with_seed(0);
        assert!(p.validate().is_ok());
        p.min_size = 1;
        assert!(p.validate().is_err());
        let mut p = ChunkerParams::with_seed(0);
        p.avg_size = p.max_size * 2;
        assert!(p.validate().is_err());
    }
}
