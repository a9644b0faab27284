//! How a simulated series' value evolves: a pure function of the series' shape, its seed
//! and the round index, so any round can be produced again at any time without keeping
//! history (the 24 h backlog, the live rounds and the Prometheus backfill agree exactly).
//!
//! Values are quantised the way the real sources quantise them (CPU seconds in hundredths
//! from USER_HZ, memory in pages, disk bytes in sectors, cgroup CPU time in nanoseconds),
//! and the integer is turned into a float as parsing the source's text would, so both
//! stores see the bit patterns a real exporter produces, not synthetic smooth floats.

/// The step between two representable values of a series.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Quantum {
    /// Values are `n / d` (`d = 100`: hundredths of a second; `1e9`: nanoseconds).
    Per(f64),
    /// Values are `n * q` (`q = 4096`: pages; `512`: sectors; `1`: integers).
    Times(f64),
}

impl Quantum {
    fn steps(self, raw: f64) -> f64 {
        match self {
            Quantum::Per(d) => raw * d,
            Quantum::Times(q) => raw / q,
        }
    }

    fn value(self, steps: f64) -> f64 {
        match self {
            Quantum::Per(d) => steps / d,
            Quantum::Times(q) => steps * q,
        }
    }
}

/// How one series moves from round to round.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Shape {
    /// Never changes (sizes, limits, info series).
    Constant(f64),
    /// A counter: `base + rate` per second on average, each 10 s increment between 0.1× and
    /// 1.9× the mean, never decreasing. A tiny `rate` gives a counter that moves rarely
    /// (errors, drops).
    Counter {
        /// Value at round 0.
        base: f64,
        /// Mean increase per second.
        rate: f64,
        /// Representable step.
        quantum: Quantum,
    },
    /// A gauge: `mean` with a slow sine swing (`swing` × mean over `period` rounds) and
    /// uniform noise (`noise` × mean, peak to peak). Never below 0.
    Gauge {
        /// Centre value.
        mean: f64,
        /// Relative amplitude of the slow swing.
        swing: f64,
        /// Rounds per swing period.
        period: f64,
        /// Relative peak-to-peak noise per round.
        noise: f64,
        /// Representable step.
        quantum: Quantum,
    },
}

/// Seconds between rounds; rounds are `round * INTERVAL_S` apart.
pub const INTERVAL_S: f64 = 10.0;

impl Shape {
    /// The value at `round` (0 is the first live round; the backlog is negative) for a
    /// series seeded with `seed`.
    pub fn value(&self, seed: u64, round: i64) -> f64 {
        match *self {
            Shape::Constant(v) => v,
            Shape::Counter {
                base,
                rate,
                quantum,
            } => {
                // c(k) - c(k-1) = step * (1 + 0.9 (u_k - u_{k-1})), within [0.1, 1.9] × step:
                // monotonic with no state.
                let step = rate * INTERVAL_S;
                let raw = base + step * round as f64 + 0.9 * step * unit(seed, round);
                quantum.value(quantum.steps(raw.max(0.0)).floor())
            }
            Shape::Gauge {
                mean,
                swing,
                period,
                noise,
                quantum,
            } => {
                let phase = unit(seed, i64::MIN);
                let angle = std::f64::consts::TAU * (round as f64 / period.max(1.0) + phase);
                let raw = mean * (1.0 + swing * angle.sin() + noise * (unit(seed, round) - 0.5));
                quantum.value(quantum.steps(raw.max(0.0)).round())
            }
        }
    }
}

/// A uniform number in `[0, 1)` from `seed` and `round` (splitmix64).
pub fn unit(seed: u64, round: i64) -> f64 {
    (mix(seed ^ (round as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)) >> 11) as f64
        / (1u64 << 53) as f64
}

/// splitmix64's finaliser: a well-spread 64-bit hash of `x`.
pub fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_never_decrease_and_keep_their_quantum() {
        let shape = Shape::Counter {
            base: 1_000_000.0,
            rate: 0.7,
            quantum: Quantum::Per(100.0),
        };
        let mut previous = shape.value(7, -9000);
        for round in -8999..2000 {
            let v = shape.value(7, round);
            assert!(v >= previous, "round {round}: {v} < {previous}");
            // Hundredths, as node_exporter prints them.
            let text = format!("{v}");
            assert!(
                text.split('.').nth(1).is_none_or(|d| d.len() <= 2),
                "{text}"
            );
            previous = v;
        }
    }

    #[test]
    fn gauges_move_and_stay_on_their_quantum() {
        let shape = Shape::Gauge {
            mean: 8.0e9,
            swing: 0.1,
            period: 360.0,
            noise: 0.02,
            quantum: Quantum::Times(4096.0),
        };
        let values: Vec<f64> = (0..100).map(|r| shape.value(3, r)).collect();
        assert!(values.iter().all(|v| v % 4096.0 == 0.0));
        let distinct: std::collections::HashSet<u64> = values.iter().map(|v| v.to_bits()).collect();
        assert!(distinct.len() > 50, "a gauge jitters: {}", distinct.len());
    }

    #[test]
    fn values_are_a_function_of_round_and_seed() {
        let shape = Shape::Counter {
            base: 5.0,
            rate: 100.0,
            quantum: Quantum::Times(1.0),
        };
        assert_eq!(shape.value(1, 42), shape.value(1, 42));
        assert_ne!(shape.value(1, 42), shape.value(2, 42));
    }
}
