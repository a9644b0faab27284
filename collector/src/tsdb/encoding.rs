//! The two sample encoders the chunk formats compose: [`TsEncoder`] for strictly increasing
//! millisecond timestamps and [`ValueEncoder`] for `f64` values, with their decoders.
//!
//! Both start from Gorilla (Pelkonen et al., VLDB 2015, §4.1) and differ where our data
//! differs from Facebook's, measured on the synthetic hosts of `synthetic.rs`
//! (`chunk::tests::bytes_per_sample_on_node_exporter_like_data`):
//!
//! - **Timestamps.** Agents tick every interval from a monotonic timer and stamp the wall
//!   clock on waking, so a timestamp is `grid + jitter` with a few milliseconds of jitter.
//!   Gorilla's delta-of-delta doubles that jitter (`j[i] - 2j[i-1] + j[i-2]`) and its
//!   smallest bucket is sized for seconds. We predict each delta as the previous delta
//!   rounded to 10 ms (the grid interval, as long as the jitter stays under 5 ms) and write
//!   the residual `j[i] - j[i-1]`: 1 bit when zero, 5 bits within ±4 ms. Prometheus gets
//!   its 1 bit per timestamp by moving scrape timestamps by up to 2 ms
//!   (`--scrape.timestamp-tolerance`); we store them exactly.
//! - **Values.** node_exporter's values are mostly integers (bytes, packets) or decimals
//!   (CPU ticks / 100, milliseconds / 1000, microseconds / 10^6) stored as `f64`. XORing
//!   their bits flips many mantissa bits for a small change (a CPU counter in hundredths
//!   costs ~50 bits a sample). So a value that is `m / 10^s` exactly, `s <= 6`, with the
//!   same `s` as the previous value is written as the delta-of-delta of `m`, sign and
//!   magnitude in a window of significant bits (like Gorilla's XOR window, so multiples of
//!   a page size cost no bits for their trailing zeros). Anything else (NaN, infinities,
//!   `-0.0`, noisy floats, a change of scale) falls back to Gorilla's XOR. An unchanged
//!   value is 1 bit in either mode.
//!
//! Exactness: the decimal path is taken only when `(m as f64) / 10^s` reproduces the
//! value's bits, and the decoder computes the same IEEE operations, so every bit pattern
//! round-trips. Decoding garbage gives a [`ChunkError`] or wrong numbers (the chunk's
//! checksum catches those first), never a panic: decoded arithmetic wraps.

use super::bitstream::{BitReader, BitWriter, ChunkError};

/// Timestamp residual buckets: (prefix, prefix bits, payload bits). A zero residual is the
/// single bit `0`; anything beyond the last bucket is `111111` and 64 bits.
const TS_BUCKETS: [(u64, u32, u32); 5] = [
    (0b10, 2, 3),
    (0b110, 3, 6),
    (0b1110, 4, 10),
    (0b11110, 5, 16),
    (0b111110, 6, 24),
];

/// The predicted next delta: the previous one rounded to 10 ms.
#[inline]
fn predict(delta: i64) -> i64 {
    delta.wrapping_add(5).div_euclid(10).wrapping_mul(10)
}

fn sign_extend(raw: u64, bits: u32) -> i64 {
    let shift = 64 - bits;
    ((raw << shift) as i64) >> shift
}

/// Encoder state for strictly increasing millisecond timestamps (16 bytes).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TsEncoder {
    last: i64,
    delta: i64,
}

impl TsEncoder {
    /// Writes the first timestamp whole (64 bits).
    pub fn first(w: &mut BitWriter, ts: i64) -> Self {
        w.write_bits(ts as u64, 64);
        TsEncoder { last: ts, delta: 0 }
    }

    /// The last timestamp written.
    pub fn last(&self) -> i64 {
        self.last
    }

    /// Writes `ts` (which the caller guarantees is after [`TsEncoder::last`]).
    #[inline]
    pub fn encode(&mut self, w: &mut BitWriter, ts: i64) {
        let delta = ts.wrapping_sub(self.last);
        let residual = delta.wrapping_sub(predict(self.delta));
        self.last = ts;
        self.delta = delta;
        if residual == 0 {
            w.write_bit(false);
            return;
        }
        for (prefix, prefix_len, bits) in TS_BUCKETS {
            let half = 1i64 << (bits - 1);
            if (-half..half).contains(&residual) {
                w.write_bits(prefix, prefix_len);
                w.write_bits(residual as u64 & ((1u64 << bits) - 1), bits);
                return;
            }
        }
        w.write_bits(0b111111, 6);
        w.write_bits(residual as u64, 64);
    }
}

/// Decoder state mirroring [`TsEncoder`].
#[derive(Debug, Clone, Copy, Default)]
pub struct TsDecoder {
    last: i64,
    delta: i64,
}

impl TsDecoder {
    /// Reads the first timestamp.
    ///
    /// # Errors
    /// [`ChunkError::Truncated`].
    pub fn first(r: &mut BitReader<'_>) -> Result<(Self, i64), ChunkError> {
        let ts = r.read_bits(64)? as i64;
        Ok((TsDecoder { last: ts, delta: 0 }, ts))
    }

    /// Reads the next timestamp, which must be after the previous one.
    ///
    /// # Errors
    /// [`ChunkError::Truncated`], or [`ChunkError::Corrupt`] for a timestamp that does not
    /// increase.
    #[inline]
    pub fn decode(&mut self, r: &mut BitReader<'_>) -> Result<i64, ChunkError> {
        let mut residual = 0i64;
        if r.read_bit()? {
            let mut sized = false;
            for (_, _, bits) in TS_BUCKETS {
                if !r.read_bit()? {
                    residual = sign_extend(r.read_bits(bits)?, bits);
                    sized = true;
                    break;
                }
            }
            if !sized {
                residual = r.read_bits(64)? as i64;
            }
        }
        let delta = predict(self.delta).wrapping_add(residual);
        let ts = self.last.wrapping_add(delta);
        if delta <= 0 || ts <= self.last {
            return Err(ChunkError::Corrupt {
                reason: "timestamps do not increase",
            });
        }
        self.last = ts;
        self.delta = delta;
        Ok(ts)
    }
}

/// `10^s` for the decimal scales tried, all exact in `f64`.
const POW10: [f64; 7] = [1.0, 10.0, 100.0, 1e3, 1e4, 1e5, 1e6];
/// Largest decimal mantissa used: far inside `i64`, so the casts below never saturate.
const MAX_MANTISSA: f64 = 4.0e18;

/// `m` such that `(m as f64) / 10^scale` has exactly `value`'s bits, if there is one.
#[inline]
fn mantissa_at(value: f64, scale: u8) -> Option<i64> {
    let pow = POW10[usize::from(scale)];
    let scaled = (value * pow).round();
    // Also refuses NaN.
    if scaled.abs().partial_cmp(&MAX_MANTISSA) != Some(std::cmp::Ordering::Less) {
        return None;
    }
    let m = scaled as i64;
    ((m as f64 / pow).to_bits() == value.to_bits()).then_some(m)
}

/// The smallest scale at which `value` is a decimal, with its mantissa.
fn decimal_form(value: f64) -> Option<(i64, u8)> {
    (0..POW10.len() as u8).find_map(|scale| mantissa_at(value, scale).map(|m| (m, scale)))
}

/// Decimal mode: the last mantissa, its delta, the scale and the window of significant bits
/// of delta-of-delta magnitudes (`width == 0`: none yet).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Decimal {
    mantissa: i64,
    delta: i64,
    scale: u8,
    width: u8,
    shift: u8,
    /// Consecutive magnitudes that fit in 4 bits less than the window (encoder only).
    narrow_run: u8,
}

impl Decimal {
    fn start(value: f64) -> Option<Self> {
        decimal_form(value).map(|(mantissa, scale)| Decimal {
            mantissa,
            delta: 0,
            scale,
            width: 0,
            shift: 0,
            narrow_run: 0,
        })
    }

    fn value(&self) -> f64 {
        self.mantissa as f64 / POW10[usize::from(self.scale)]
    }

    /// `0`: dod is 0; `10`: sign and magnitude in the current window; `11`: a new window
    /// (6 bits width, 64 as 0; 6 bits shift), sign and magnitude.
    fn write_dod(&mut self, w: &mut BitWriter, dod: i64) {
        if dod == 0 {
            w.write_bit(false);
            return;
        }
        let magnitude = dod.unsigned_abs();
        let zeros = magnitude.trailing_zeros() as u8;
        let fits = self.width > 0
            && zeros >= self.shift
            && (magnitude >> self.shift)
                .checked_shr(u32::from(self.width))
                .unwrap_or(0)
                == 0;
        let needed = |shift: u8| 64 - (magnitude >> shift).leading_zeros() as u8;
        // A window far wider than recent magnitudes (after a spike, or the first delta)
        // is reopened narrower after a run of narrow ones: reopening costs 12 bits.
        if fits && needed(self.shift) + 4 <= self.width {
            self.narrow_run = self.narrow_run.saturating_add(1);
        } else {
            self.narrow_run = 0;
        }
        let shrink = self.narrow_run >= 3;
        if fits && !shrink {
            w.write_bits(0b10, 2);
        } else {
            self.narrow_run = 0;
            // Small trailing-zero runs are chance; keep a shift only for real multiples
            // (page sizes), and never grow it, so the window settles.
            let shift = if zeros < 4 {
                0
            } else if self.width > 0 && self.shift >= 4 {
                self.shift.min(zeros)
            } else {
                zeros
            };
            // A window that did not fit grows to the widest magnitude seen, so that
            // jittery magnitudes settle in one window instead of reopening it each time.
            self.width = if fits || shift != self.shift {
                needed(shift)
            } else {
                needed(shift).max(self.width)
            };
            self.shift = shift;
            w.write_bits(0b11, 2);
            w.write_bits(u64::from(self.width) & 63, 6);
            w.write_bits(u64::from(shift), 6);
        }
        w.write_bit(dod < 0);
        w.write_bits(magnitude >> self.shift, u32::from(self.width));
    }

    fn read_dod(&mut self, r: &mut BitReader<'_>) -> Result<i64, ChunkError> {
        if !r.read_bit()? {
            return Ok(0);
        }
        if r.read_bit()? {
            let width = match r.read_bits(6)? as u8 {
                0 => 64,
                n => n,
            };
            let shift = r.read_bits(6)? as u8;
            if width + shift > 64 {
                return Err(ChunkError::Corrupt {
                    reason: "integer window wider than 64 bits",
                });
            }
            self.width = width;
            self.shift = shift;
        } else if self.width == 0 {
            return Err(ChunkError::Corrupt {
                reason: "integer reuses a window before the first",
            });
        }
        let negative = r.read_bit()?;
        let magnitude = r.read_bits(u32::from(self.width))? << self.shift;
        let dod = magnitude as i64;
        Ok(if negative { dod.wrapping_neg() } else { dod })
    }
}

/// Encoder state for a stream of `f64` values (about 40 bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ValueEncoder {
    last: u64,
    /// Gorilla XOR window; `leading == u8::MAX` before the first.
    leading: u8,
    trailing: u8,
    decimal: Option<Decimal>,
}

impl ValueEncoder {
    /// Writes the first value whole (64 bits).
    pub fn first(w: &mut BitWriter, value: f64) -> Self {
        let bits = value.to_bits();
        w.write_bits(bits, 64);
        ValueEncoder {
            last: bits,
            leading: u8::MAX,
            trailing: 0,
            decimal: Decimal::start(value),
        }
    }

    /// Writes `value`: `0` for the previous value's bits, `10` and a delta-of-delta in
    /// decimal mode, `11` and Gorilla's XOR otherwise.
    #[inline]
    pub fn encode(&mut self, w: &mut BitWriter, value: f64) {
        let bits = value.to_bits();
        if bits == self.last {
            w.write_bit(false);
            if let Some(decimal) = &mut self.decimal {
                decimal.delta = 0;
            }
            return;
        }
        let xor = bits ^ self.last;
        self.last = bits;
        if let Some(decimal) = &mut self.decimal
            && let Some(m) = mantissa_at(value, decimal.scale)
        {
            let delta = m.wrapping_sub(decimal.mantissa);
            w.write_bits(0b10, 2);
            decimal.write_dod(w, delta.wrapping_sub(decimal.delta));
            decimal.mantissa = m;
            decimal.delta = delta;
            return;
        }
        w.write_bits(0b11, 2);
        self.write_xor(w, xor);
        self.decimal = Decimal::start(value);
    }

    /// Gorilla's XOR of a non-zero `xor`: `0` and the meaningful bits in the previous
    /// window of leading/trailing zeros, or `1`, a new window (5 bits leading, 6 bits
    /// length, 64 as 0) and the meaningful bits.
    fn write_xor(&mut self, w: &mut BitWriter, xor: u64) {
        // 5 bits hold at most 31 leading zeros.
        let leading = xor.leading_zeros().min(31) as u8;
        let trailing = xor.trailing_zeros() as u8;
        if self.leading != u8::MAX && leading >= self.leading && trailing >= self.trailing {
            let significant = 64 - u32::from(self.leading) - u32::from(self.trailing);
            w.write_bit(false);
            w.write_bits(xor >> self.trailing, significant);
            return;
        }
        self.leading = leading;
        self.trailing = trailing;
        let significant = 64 - u32::from(leading) - u32::from(trailing);
        w.write_bit(true);
        w.write_bits(u64::from(leading), 5);
        w.write_bits(u64::from(significant) & 63, 6);
        w.write_bits(xor >> trailing, significant);
    }
}

/// Decoder state mirroring [`ValueEncoder`].
#[derive(Debug, Clone, Copy)]
pub struct ValueDecoder {
    last: u64,
    leading: u8,
    trailing: u8,
    decimal: Option<Decimal>,
}

impl ValueDecoder {
    /// Reads the first value.
    ///
    /// # Errors
    /// [`ChunkError::Truncated`].
    pub fn first(r: &mut BitReader<'_>) -> Result<(Self, f64), ChunkError> {
        let bits = r.read_bits(64)?;
        let value = f64::from_bits(bits);
        let decoder = ValueDecoder {
            last: bits,
            leading: u8::MAX,
            trailing: 0,
            decimal: Decimal::start(value),
        };
        Ok((decoder, value))
    }

    /// Reads the next value.
    ///
    /// # Errors
    /// [`ChunkError::Truncated`], or [`ChunkError::Corrupt`] for codes no encoder writes.
    #[inline]
    pub fn decode(&mut self, r: &mut BitReader<'_>) -> Result<f64, ChunkError> {
        if !r.read_bit()? {
            if let Some(decimal) = &mut self.decimal {
                decimal.delta = 0;
            }
            return Ok(f64::from_bits(self.last));
        }
        if !r.read_bit()? {
            let Some(decimal) = &mut self.decimal else {
                return Err(ChunkError::Corrupt {
                    reason: "decimal value without a decimal start",
                });
            };
            let dod = decimal.read_dod(r)?;
            decimal.delta = decimal.delta.wrapping_add(dod);
            decimal.mantissa = decimal.mantissa.wrapping_add(decimal.delta);
            let value = decimal.value();
            self.last = value.to_bits();
            return Ok(value);
        }
        if r.read_bit()? {
            let leading = r.read_bits(5)? as u8;
            let significant = match r.read_bits(6)? as u8 {
                0 => 64,
                n => n,
            };
            let Some(trailing) = 64u8.checked_sub(leading + significant) else {
                return Err(ChunkError::Corrupt {
                    reason: "value window wider than 64 bits",
                });
            };
            self.leading = leading;
            self.trailing = trailing;
        } else if self.leading == u8::MAX {
            return Err(ChunkError::Corrupt {
                reason: "value reuses a window before the first",
            });
        }
        let significant = 64 - u32::from(self.leading) - u32::from(self.trailing);
        self.last ^= r.read_bits(significant)? << self.trailing;
        let value = f64::from_bits(self.last);
        self.decimal = Decimal::start(value);
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bits_for(values: &[f64]) -> usize {
        let mut w = BitWriter::default();
        let mut enc = ValueEncoder::first(&mut w, values[0]);
        let start = w.bit_len();
        for &v in &values[1..] {
            enc.encode(&mut w, v);
        }
        w.bit_len() - start
    }

    #[test]
    fn jitter_costs_few_bits() {
        let mut w = BitWriter::default();
        let mut enc = TsEncoder::first(&mut w, 1_000);
        enc.encode(&mut w, 11_001); // first delta: residual 10_001, 16-bit bucket
        let start = w.bit_len();
        enc.encode(&mut w, 21_003); // delta 10_002, predicted 10_000: 5 bits
        enc.encode(&mut w, 31_001); // delta 9_998: 5 bits
        enc.encode(&mut w, 41_001); // delta 10_000: 1 bit
        assert_eq!(w.bit_len() - start, 5 + 5 + 1);
    }

    #[test]
    fn decimals_and_page_multiples_are_cheap() {
        // CPU seconds in hundredths, growing ~10 s per 10 s: a few bits each.
        let cpu: Vec<f64> = (0..100)
            .map(|i| (1_234_567 + i * 1_000 + (i * 7) % 5) as f64 / 100.0)
            .collect();
        assert!(bits_for(&cpu) < 99 * 9, "{}", bits_for(&cpu));
        // Memory moving in 4 KiB pages: the page's 12 zero bits are not written.
        let mem: Vec<f64> = (0..100)
            .map(|i| (1_000_000 + (i * 37) % 64) as f64 * 4096.0)
            .collect();
        assert!(bits_for(&mem) < 99 * 14, "{}", bits_for(&mem));
    }

    #[test]
    fn decimal_form_is_exact() {
        assert_eq!(decimal_form(12.34), Some((1234, 2)));
        assert_eq!(decimal_form(7.0), Some((7, 0)));
        assert_eq!(decimal_form(0.000_001), Some((1, 6)));
        assert_eq!(decimal_form(-0.0), None);
        assert_eq!(decimal_form(f64::NAN), None);
        assert_eq!(decimal_form(f64::INFINITY), None);
        assert_eq!(decimal_form(0.1 + 0.2), None);
        assert_eq!(decimal_form(1e300), None);
    }
}
