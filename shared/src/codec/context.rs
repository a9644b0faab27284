//! A zstd decompression context kept per thread, so a frame costs no context allocation.
//!
//! `zstd::bulk::decompress` creates and frees a context on every call: one ~100 KiB
//! allocation per frame, and at a collector's rate of pulls it made glibc consolidate its
//! small blocks on every batch (12–16 % of the collector's CPU, docs/benchmarks.md). zstd
//! resets a context at the start of each frame, so reuse carries nothing from one frame to
//! the next. Threads are few (the async workers and a capped blocking pool), so the
//! contexts are few too.
//!
//! Only [`super::open_frame_reusing`] uses it (the collector's pulls). Agents open a frame
//! (a buffered round) now and then and compress one per pull: they keep a context per call,
//! as a context kept on each of their threads would only hold memory.

use std::cell::RefCell;
use std::io;

use zstd::bulk::Decompressor;

thread_local! {
    static DECOMPRESSOR: RefCell<Option<Decompressor<'static>>> = const { RefCell::new(None) };
}

/// Decompresses `data`, which must decode to at most `capacity` bytes (more is an error,
/// not a reallocation).
///
/// # Errors
/// zstd's error for a malformed input, one that decodes past `capacity`, or no memory for
/// a context.
pub(super) fn decompress(data: &[u8], capacity: usize) -> io::Result<Vec<u8>> {
    DECOMPRESSOR.with(|cell| {
        // A re-entrant call (impossible today: nothing here calls back) gets a fresh
        // context instead of a panic.
        let Ok(mut slot) = cell.try_borrow_mut() else {
            return zstd::bulk::decompress(data, capacity);
        };
        if slot.is_none() {
            *slot = Some(Decompressor::new()?);
        }
        match slot.as_mut() {
            Some(ctx) => ctx.decompress(data, capacity),
            None => zstd::bulk::decompress(data, capacity),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reused_context_reads_frames_of_any_level_and_size() {
        let texts: Vec<Vec<u8>> = (0..6)
            .map(|n| {
                (0..n * 5_000)
                    .map(|i: usize| (i % 251) as u8 ^ n as u8)
                    .collect()
            })
            .collect();
        for (n, text) in texts.iter().enumerate() {
            let level = [1, 3, 19, -5, 3, 9][n];
            let packed = zstd::bulk::compress(text, level).unwrap();
            assert_eq!(zstd::bulk::decompress(&packed, text.len()).unwrap(), *text);
            assert_eq!(decompress(&packed, text.len()).unwrap(), *text);
        }
    }

    #[test]
    fn a_bad_frame_leaves_the_context_usable() {
        let good = zstd::bulk::compress(b"hello hello hello hello", 3).unwrap();
        assert!(decompress(b"\x28\xb5\x2f\xfdgarbage", 100).is_err());
        assert!(decompress(&good, 4).is_err(), "capacity is a hard bound");
        assert_eq!(decompress(&good, 100).unwrap(), b"hello hello hello hello");
    }
}
