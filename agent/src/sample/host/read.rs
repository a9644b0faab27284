//! File reading shared by the host samplers: one reused byte buffer per
//! sampler, read whole, then viewed as text without copying.
//!
//! Owns only the I/O step; parsing stays in each sampler's `parse_*`.

use std::borrow::Cow;
use std::io::Read;
use std::path::Path;

use crate::sample::SampleError;

/// Reads the whole of `path` into `buf` (cleared first, capacity kept).
///
/// # Errors
/// [`SampleError::Read`] with the path.
pub(crate) fn read_into(path: &Path, buf: &mut Vec<u8>) -> Result<(), SampleError> {
    buf.clear();
    std::fs::File::open(path)
        .and_then(|mut f| f.read_to_end(buf))
        .map(|_| ())
        .map_err(|e| SampleError::read(path, e))
}

/// The buffer as text. Kernel files are ASCII, so this borrows; a stray
/// non-UTF-8 byte (a mount point, a sensor label) becomes U+FFFD instead of
/// failing the whole file, at the cost of one copy.
pub(crate) fn as_text(buf: &[u8]) -> Cow<'_, str> {
    String::from_utf8_lossy(buf)
}

/// Parses a `u64` counter field; `None` for non-numeric or overflowing text.
pub(crate) fn parse_u64(field: &str) -> Option<u64> {
    field.parse().ok()
}

/// Parses a finite `f64`; `None` for non-numeric, NaN or infinite text.
pub(crate) fn parse_finite(field: &str) -> Option<f64> {
    field.parse::<f64>().ok().filter(|v| v.is_finite())
}
