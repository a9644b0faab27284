//! Downsampling: raw samples rolled up into 5-minute buckets (min, max, sum, count, last),
//! one record per series per day, and read back as one sample per bucket.
//!
//! A read over a range older than raw retention gets, per bucket, the **last** value at the
//! timestamp of the last raw sample in the bucket. For a counter that is the counter's value
//! at a real scrape time, so `rate()` and `increase()` over the rollups agree with the raw
//! data at the bucket edges (resets inside a bucket are lost, as with any 5-minute
//! sampling). For a gauge it is a 5-minute sample; min, max, sum and count are kept for
//! `*_over_time` functions that a later query layer may read (`min`/`max`/`sum`/`count`
//! count non-NaN values only, so a staleness marker does not poison them; `last` is the
//! last value as it was, NaN included).
//!
//! # Layout (a chunk in a rollup segment, `segment/`, folder `rollups`)
//!
//! One chunk per series per day, in that day's segment (`rollups/day-YYYY-MM-DD.seg`):
//!
//! | offset | size | field                                                               |
//! |-------:|-----:|---------------------------------------------------------------------|
//! | 0      | 2    | bucket count, u16 LE, `1..=288`                                     |
//! | 2      | n    | bit stream: per bucket the last sample's timestamp ([`TsEncoder`]), |
//! |        |      | then min, max, sum, count, last (five [`ValueEncoder`] columns)     |
//! | 2 + n  | 4    | CRC-32 of bytes `0..2 + n`, LE                                      |

use super::bitstream::{BitReader, BitWriter, ChunkError};
use super::config::{DAY_MS, ROLLUP_BUCKET_MS};
use super::encoding::{TsDecoder, TsEncoder, ValueDecoder, ValueEncoder};
use super::error::TsdbError;
use super::index::SeriesId;
use super::segment::SeriesReader;
use crate::series::Sample;

/// One 5-minute bucket of one series.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bucket {
    /// Timestamp of the bucket's last raw sample, ms.
    pub last_ts: i64,
    /// Smallest non-NaN value (NaN when there is none).
    pub min: f64,
    /// Largest non-NaN value (NaN when there is none).
    pub max: f64,
    /// Sum of non-NaN values.
    pub sum: f64,
    /// Number of non-NaN values.
    pub count: f64,
    /// The last value.
    pub last: f64,
}

/// The start of the 5-minute bucket holding `ts`.
pub fn bucket_of(ts: i64) -> i64 {
    ts.div_euclid(ROLLUP_BUCKET_MS) * ROLLUP_BUCKET_MS
}

/// The start of the UTC day holding `ts`.
pub fn day_of(ts: i64) -> i64 {
    ts.div_euclid(DAY_MS).saturating_mul(DAY_MS)
}

/// Rolls up `samples` (oldest first) into buckets, oldest first.
pub fn roll_up(samples: &[Sample]) -> Vec<Bucket> {
    let mut out: Vec<Bucket> = Vec::new();
    for s in samples {
        let v = s.value;
        match out.last_mut() {
            Some(b) if bucket_of(b.last_ts) == bucket_of(s.timestamp_ms) => {
                if !v.is_nan() {
                    b.min = if b.min.is_nan() { v } else { b.min.min(v) };
                    b.max = if b.max.is_nan() { v } else { b.max.max(v) };
                    b.sum += v;
                    b.count += 1.0;
                }
                b.last_ts = s.timestamp_ms;
                b.last = v;
            }
            _ => out.push(Bucket {
                last_ts: s.timestamp_ms,
                min: v,
                max: v,
                sum: if v.is_nan() { 0.0 } else { v },
                count: if v.is_nan() { 0.0 } else { 1.0 },
                last: v,
            }),
        }
    }
    out
}

fn columns(b: &Bucket) -> [f64; 5] {
    [b.min, b.max, b.sum, b.count, b.last]
}

/// Encodes buckets (oldest first, at most `u16::MAX`, timestamps increasing).
pub fn encode(buckets: &[Bucket]) -> Option<Vec<u8>> {
    let (first, rest) = buckets.split_first()?;
    let count = u16::try_from(buckets.len()).ok()?;
    let mut w = BitWriter::with_capacity(buckets.len() * 8);
    let mut ts = TsEncoder::first(&mut w, first.last_ts);
    let mut values = columns(first).map(|v| ValueEncoder::first(&mut w, v));
    for b in rest {
        ts.encode(&mut w, b.last_ts);
        for (enc, v) in values.iter_mut().zip(columns(b)) {
            enc.encode(&mut w, v);
        }
    }
    let mut out = Vec::with_capacity(w.bytes().len() + 6);
    out.extend_from_slice(&count.to_le_bytes());
    out.extend_from_slice(w.bytes());
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    Some(out)
}

/// Decodes [`encode`]'s bytes.
///
/// # Errors
/// [`ChunkError`] for truncated or damaged bytes.
pub fn decode(bytes: &[u8]) -> Result<Vec<Bucket>, ChunkError> {
    let (body, stored) = bytes.split_last_chunk::<4>().ok_or(ChunkError::Truncated)?;
    let (count, stream) = body.split_first_chunk::<2>().ok_or(ChunkError::Truncated)?;
    let stored = u32::from_le_bytes(*stored);
    let computed = crc32fast::hash(body);
    if stored != computed {
        return Err(ChunkError::Checksum { stored, computed });
    }
    let count = usize::from(u16::from_le_bytes(*count));
    if count == 0 {
        return Err(ChunkError::Corrupt {
            reason: "rollup has no buckets",
        });
    }
    let mut r = BitReader::new(stream);
    let (mut ts, first_ts) = TsDecoder::first(&mut r)?;
    let mut firsts = [0.0; 5];
    let mut decoders = Vec::with_capacity(5);
    for v in &mut firsts {
        let (dec, first) = ValueDecoder::first(&mut r)?;
        decoders.push(dec);
        *v = first;
    }
    let bucket = |t, [min, max, sum, count, last]: [f64; 5]| Bucket {
        last_ts: t,
        min,
        max,
        sum,
        count,
        last,
    };
    let mut out = Vec::with_capacity(count);
    out.push(bucket(first_ts, firsts));
    for _ in 1..count {
        let t = ts.decode(&mut r)?;
        let mut vs = [0.0; 5];
        for (dec, v) in decoders.iter_mut().zip(&mut vs) {
            *v = dec.decode(&mut r)?;
        }
        out.push(bucket(t, vs));
    }
    Ok(out)
}

/// Appends to `out` one sample per bucket of `series` whose last timestamp is in
/// `start..=end`, `(last_ts, last)`, from the rollup segments `reader` (made for that
/// range) finds.
///
/// # Errors
/// [`TsdbError::ReadSegment`], [`TsdbError::Chunk`].
pub fn read(
    reader: &mut SeriesReader<'_>,
    series: SeriesId,
    start: i64,
    end: i64,
    out: &mut Vec<Sample>,
) -> Result<(), TsdbError> {
    let failed = |source| TsdbError::ReadSegment { series, source };
    if start > end || reader.find(series).map_err(failed)?.count() == 0 {
        return Ok(());
    }
    let mut after = out.last().map_or(i64::MIN, |s| s.timestamp_ms);
    for c in reader.gather().map_err(failed)?.chunks() {
        let buckets = decode(c.bytes).map_err(|source| TsdbError::Chunk {
            series,
            path: c.segment.path().to_owned(),
            source,
        })?;
        for b in buckets {
            if (start..=end).contains(&b.last_ts) && b.last_ts > after {
                after = b.last_ts;
                out.push(Sample {
                    timestamp_ms: b.last_ts,
                    value: b.last,
                });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(timestamp_ms: i64, value: f64) -> Sample {
        Sample {
            timestamp_ms,
            value,
        }
    }

    #[test]
    fn buckets_aggregate_and_round_trip() {
        let m = ROLLUP_BUCKET_MS;
        let samples = [
            s(0, 1.0),
            s(10_000, 3.0),
            s(20_000, f64::NAN),
            s(m, 5.0),
            s(m + 10, -0.0),
            s(3 * m + 1, 7.5),
        ];
        let buckets = roll_up(&samples);
        assert_eq!(buckets.len(), 3);
        let b = buckets[0];
        assert_eq!(
            (b.last_ts, b.min, b.max, b.sum, b.count),
            (20_000, 1.0, 3.0, 4.0, 2.0)
        );
        assert!(b.last.is_nan());
        assert_eq!(buckets[1].last.to_bits(), (-0.0f64).to_bits());
        let back = decode(&encode(&buckets).unwrap()).unwrap();
        assert_eq!(back.len(), 3);
        for (a, b) in back.iter().zip(&buckets) {
            assert_eq!(a.last_ts, b.last_ts);
            for (x, y) in columns(a).iter().zip(columns(b)) {
                assert_eq!(x.to_bits(), y.to_bits());
            }
        }
    }

    #[test]
    fn damaged_rollups_are_errors() {
        let bytes = encode(&roll_up(&[s(0, 1.0), s(400_000, 2.0)])).unwrap();
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 0x10;
            assert!(decode(&bad).is_err(), "flip at {i}");
            assert!(decode(&bytes[..i]).is_err(), "cut at {i}");
        }
    }

    #[test]
    fn a_day_of_counter_buckets_is_small() {
        // A counter scraped every 10 s for a day: 288 buckets in well under 8 bytes each.
        let samples: Vec<Sample> = (0..8640)
            .map(|i| s(i * 10_000 + 1, (i * 1_234) as f64))
            .collect();
        let buckets = roll_up(&samples);
        assert_eq!(buckets.len(), 288);
        let bytes = encode(&buckets).unwrap().len();
        assert!(bytes < 288 * 8, "{bytes}");
    }
}
