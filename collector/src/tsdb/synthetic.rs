//! Test data: synthetic hosts whose series behave like the agent's node_exporter-named
//! series, for the codec's bytes-per-sample figure, the store's round trips and the space
//! measurements.
//!
//! The shares below are our estimate for an agent on a 4-CPU VM with a few containers (the
//! names it emits are in `agent/src/sample`): 40% constant (sizes, limits, info metrics,
//! error counters that stay 0, `*_success`); 25% integer counters (bytes, packets,
//! operations; a third of them mostly idle); 10% decimal counters (CPU ticks / 100, disk
//! milliseconds / 1000, cgroup microseconds / 10^6); 15% integer gauges moving in 1 KiB or
//! 4 KiB units (meminfo, filesystem blocks); 5% decimal gauges (load averages, hwmon
//! millidegrees); 4% noisy floats (durations: incompressible); and `node_time_seconds`.
//! Timestamps come every 10 s, 0–1 ms late as tokio's millisecond timer wakes the agent,
//! 2–5 ms late in 8% of rounds (a loaded host) and 10–200 ms late in 2%.
//! `Kind` keeps each class apart so a test can report bytes per class.

use muster_shared::protocol::samples::{Label, Round, SampleBatch, SeriesDef, SeriesValue};

/// A deterministic SplitMix64 generator (no dependency; reproducible figures).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed`.
    pub fn new(seed: u64) -> Self {
        Rng(seed ^ 0x9e37_79b9_7f4a_7c15)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0.0..1.0`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

/// A class of series; see the module doc for the shares.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Kind {
    /// Never changes.
    Constant,
    /// Grows by about `step` in `busy` of the rounds.
    IntCounter {
        /// Typical increment.
        step: f64,
        /// Share of rounds with an increment.
        busy: f64,
    },
    /// Grows by about `step` units of `1/scale` each round (ticks / `scale`).
    DecimalCounter {
        /// Typical increment, in units.
        step: f64,
        /// Units per 1.0.
        scale: f64,
    },
    /// A random walk in multiples of `unit`.
    UnitGauge {
        /// 1024 or 4096.
        unit: f64,
    },
    /// A random walk in hundredths or thousandths.
    DecimalGauge {
        /// Units per 1.0.
        scale: f64,
    },
    /// A fresh random float every round.
    NoisyFloat {
        /// Magnitude.
        scale: f64,
    },
    /// The round's timestamp in seconds.
    TimeSeconds,
}

impl Kind {
    /// The classes in the order the shares list them, with their share in percent.
    pub const SHARES: [(&'static str, u32); 7] = [
        ("constant", 40),
        ("integer counter", 25),
        ("decimal counter", 10),
        ("integer gauge", 15),
        ("decimal gauge", 5),
        ("noisy float", 4),
        ("time seconds", 1),
    ];

    /// Index of this class in [`Kind::SHARES`].
    pub fn class(&self) -> usize {
        match self {
            Kind::Constant => 0,
            Kind::IntCounter { .. } => 1,
            Kind::DecimalCounter { .. } => 2,
            Kind::UnitGauge { .. } => 3,
            Kind::DecimalGauge { .. } => 4,
            Kind::NoisyFloat { .. } => 5,
            Kind::TimeSeconds => 6,
        }
    }
}

/// What a synthetic host looks like.
#[derive(Debug, Clone, Copy)]
pub struct HostProfile {
    /// Series per host.
    pub series: usize,
    /// Sampling interval, ms.
    pub interval_ms: i64,
    /// Timestamp of the first round, ms.
    pub start_ms: i64,
}

impl Default for HostProfile {
    fn default() -> Self {
        HostProfile {
            series: 500,
            interval_ms: 10_000,
            start_ms: 1_700_000_000_000,
        }
    }
}

/// One round of a synthetic host: a timestamp and one value per series, in series order.
#[derive(Debug, Clone)]
pub struct SyntheticRound {
    /// Milliseconds since the epoch.
    pub timestamp_ms: i64,
    /// One value per series.
    pub values: Vec<f64>,
}

/// A synthetic host: its series and their evolving values.
#[derive(Debug, Clone)]
pub struct SyntheticHost {
    rng: Rng,
    profile: HostProfile,
    kinds: Vec<Kind>,
    values: Vec<f64>,
    defs: Vec<SeriesDef>,
    round: i64,
    seq: u64,
}

impl SyntheticHost {
    /// Host number `seed` of `profile`.
    pub fn new(seed: u64, profile: HostProfile) -> Self {
        let mut rng = Rng::new(seed);
        let mut kinds = Vec::with_capacity(profile.series);
        let mut values = Vec::with_capacity(profile.series);
        let mut defs = Vec::with_capacity(profile.series);
        for i in 0..profile.series {
            let share = (i * 100 / profile.series.max(1)) as u32;
            let pick =
                |rng: &mut Rng, options: &[f64]| options[rng.below(options.len() as u64) as usize];
            let (kind, metric, start) = match share {
                0..=39 => (
                    Kind::Constant,
                    "node_filesystem_size_bytes",
                    (rng.below(1 << 20) * 4096) as f64,
                ),
                40..=64 => (
                    Kind::IntCounter {
                        step: pick(&mut rng, &[10.0, 1_000.0, 100_000.0]),
                        busy: pick(&mut rng, &[0.05, 0.5, 1.0]),
                    },
                    "node_network_receive_bytes_total",
                    rng.below(1 << 40) as f64,
                ),
                65..=74 => {
                    let scale = pick(&mut rng, &[100.0, 1_000.0, 1e6]);
                    (
                        Kind::DecimalCounter {
                            step: pick(&mut rng, &[1.0, 100.0, 1_000.0]),
                            scale,
                        },
                        "node_cpu_seconds_total",
                        rng.below(1 << 30) as f64 / scale,
                    )
                }
                75..=89 => {
                    let unit = pick(&mut rng, &[1024.0, 4096.0]);
                    (
                        Kind::UnitGauge { unit },
                        "node_memory_Active_bytes",
                        rng.below(1 << 22) as f64 * unit,
                    )
                }
                90..=94 => {
                    let scale = pick(&mut rng, &[100.0, 1_000.0]);
                    (
                        Kind::DecimalGauge { scale },
                        "node_load1",
                        rng.below(10_000) as f64 / scale,
                    )
                }
                95..=98 => (
                    Kind::NoisyFloat {
                        scale: pick(&mut rng, &[0.01, 1.0, 1e6]),
                    },
                    "node_scrape_collector_duration_seconds",
                    0.0,
                ),
                _ => (
                    Kind::TimeSeconds,
                    "node_time_seconds",
                    profile.start_ms as f64 / 1000.0,
                ),
            };
            kinds.push(kind);
            values.push(start);
            defs.push(SeriesDef {
                id: i as u32,
                metric: metric.to_owned(),
                labels: vec![
                    Label {
                        name: "device".to_owned(),
                        value: format!("dev{}", i % 7),
                    },
                    Label {
                        name: "index".to_owned(),
                        value: i.to_string(),
                    },
                ],
            });
        }
        SyntheticHost {
            rng,
            profile,
            kinds,
            values,
            defs,
            round: 0,
            seq: 0,
        }
    }

    /// Series per round.
    pub fn series_count(&self) -> usize {
        self.kinds.len()
    }

    /// The class of each series.
    pub fn kinds(&self) -> &[Kind] {
        &self.kinds
    }

    /// The next round.
    pub fn next_round(&mut self) -> SyntheticRound {
        let rng = &mut self.rng;
        // tokio's timer wakes on the next millisecond tick after the deadline, and the
        // wall clock is read right after: 0-1 ms late; 2-5 ms under load; rarely far.
        let u = rng.unit();
        let late = if u < 0.02 {
            10 + rng.below(190) as i64
        } else if u < 0.10 {
            2 + rng.below(4) as i64
        } else {
            rng.below(2) as i64
        };
        let timestamp_ms = self.profile.start_ms + self.round * self.profile.interval_ms + late;
        self.round += 1;
        for (kind, value) in self.kinds.iter().zip(self.values.iter_mut()) {
            match *kind {
                Kind::Constant => {}
                Kind::IntCounter { step, busy } => {
                    if rng.unit() < busy {
                        *value += (step * (0.5 + rng.unit())).round();
                    }
                }
                Kind::DecimalCounter { step, scale } => {
                    let ticks = (step * (0.8 + 0.4 * rng.unit())).round();
                    // node_exporter divides the tick count by the unit.
                    *value = ((*value * scale).round() + ticks) / scale;
                }
                Kind::UnitGauge { unit } => {
                    if rng.unit() < 0.5 {
                        let units = rng.below(64) as f64 - 32.0;
                        *value = (*value + units * unit).max(0.0);
                    }
                }
                Kind::DecimalGauge { scale } => {
                    let units = rng.below(21) as f64 - 10.0;
                    *value = ((*value * scale).round() + units).max(0.0) / scale;
                }
                Kind::NoisyFloat { scale } => *value = scale * rng.unit(),
                Kind::TimeSeconds => *value = timestamp_ms as f64 / 1000.0,
            }
        }
        SyntheticRound {
            timestamp_ms,
            values: self.values.clone(),
        }
    }

    /// The next `rounds` rounds as the batch an agent would send (sequence numbers go on
    /// from the previous batch).
    pub fn next_batch(&mut self, rounds: usize) -> SampleBatch {
        let mut batch = SampleBatch {
            first_seq: 0,
            last_seq: 0,
            next_after: 0,
            more: false,
            gap: None,
            series: self.defs.clone(),
            rounds: Vec::new(),
        };
        self.refill(&mut batch, rounds);
        batch
    }

    /// Replaces `batch`'s rounds with the next `rounds` rounds, keeping its dictionary
    /// (which must be this host's): what a steady-state pull looks like, without the cost
    /// of cloning the dictionary.
    pub fn refill(&mut self, batch: &mut SampleBatch, rounds: usize) {
        let rounds: Vec<Round> = (0..rounds)
            .map(|_| {
                let round = self.next_round();
                self.seq += 1;
                Round {
                    seq: self.seq,
                    timestamp_unix_ms: round.timestamp_ms as u64,
                    values: round
                        .values
                        .iter()
                        .enumerate()
                        .map(|(i, &value)| SeriesValue {
                            series: i as u32,
                            value,
                        })
                        .collect(),
                }
            })
            .collect();
        batch.first_seq = rounds.first().map_or(0, |r| r.seq);
        batch.last_seq = rounds.last().map_or(0, |r| r.seq);
        batch.next_after = self.seq;
        batch.rounds = rounds;
    }
}
