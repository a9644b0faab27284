//! The series one simulated host exports: node_exporter's host families (CPU per core and
//! mode, meminfo, filesystems, disks, network devices, load, a few kernel counters) and
//! cAdvisor's container families for a dozen containers, about 500 series in all, with
//! names and labels as the agent exports them (DESIGN.md §4).
//!
//! Each host's sizes, rates and container names come from a hash of its index, so hosts
//! differ as real ones do while any run rebuilds the same fleet. The CPU series come first
//! ([`CPU_SERIES`]): the backlog rounds carry only those, so their batch dictionary is a
//! prefix of the host's. The families are in `host.rs` and `containers.rs`; this file holds
//! the builder they share.

mod containers;
mod host;

use super::values::{Quantum, Shape, mix, unit};
use muster_shared::protocol::samples::{Label, SeriesDef};

/// Cores per simulated host.
pub const CPUS: usize = 4;
/// node_exporter's CPU modes.
pub const CPU_MODES: [&str; 8] = [
    "idle", "iowait", "irq", "nice", "softirq", "steal", "system", "user",
];
/// The first series of every host are its `node_cpu_seconds_total{cpu,mode}`.
pub const CPU_SERIES: usize = CPUS * CPU_MODES.len();
/// Containers per simulated host.
pub const CONTAINERS: usize = 12;

/// A metric family: its series are `start..end` of [`HostSeries::defs`].
#[derive(Debug, Clone)]
pub struct Family {
    /// Metric name.
    pub name: &'static str,
    /// `counter` or `gauge`.
    pub kind: &'static str,
    /// First series index.
    pub start: usize,
    /// One past the last series index.
    pub end: usize,
}

/// Everything one host exports, in a stable order (batch id = index).
#[derive(Debug, Clone)]
pub struct HostSeries {
    /// The host id (`h0000`).
    pub host: String,
    /// The series, labels sorted by name (the wire's dictionary, ids = indices).
    pub defs: Vec<SeriesDef>,
    /// Each series' shape and seed.
    pub shapes: Vec<(Shape, u64)>,
    /// The families, in order, covering every series once.
    pub families: Vec<Family>,
}

/// The id of host `index`: `h` and four digits (`h0000`, `h0999`).
pub fn host_id(index: usize) -> String {
    format!("h{index:04}")
}

impl HostSeries {
    /// Builds host `index`'s series.
    pub fn new(index: usize) -> Self {
        let mut b = Builder {
            seed: mix(index as u64 ^ 0x6d75_7374_6572),
            out: HostSeries {
                host: host_id(index),
                defs: Vec::with_capacity(512),
                shapes: Vec::with_capacity(512),
                families: Vec::new(),
            },
        };
        b.cpu();
        b.host_gauges_and_counters();
        b.meminfo();
        b.filesystems();
        b.disks();
        b.netdev();
        b.containers();
        b.out
    }

    /// The value of series `i` at `round`.
    pub fn value(&self, i: usize, round: i64) -> f64 {
        let (shape, seed) = &self.shapes[i];
        shape.value(*seed, round)
    }
}

struct Builder {
    seed: u64,
    out: HostSeries,
}

const C: &str = "counter";
const G: &str = "gauge";
const PAGES: Quantum = Quantum::Times(4096.0);
const SECTORS: Quantum = Quantum::Times(512.0);
const INT: Quantum = Quantum::Times(1.0);
const HUNDREDTHS: Quantum = Quantum::Per(100.0);
const MILLIS: Quantum = Quantum::Per(1000.0);
const NANOS: Quantum = Quantum::Per(1e9);

impl Builder {
    /// A number in `[lo, hi)` fixed for this host and `tag`.
    fn pick(&self, tag: &str, lo: f64, hi: f64) -> f64 {
        let h = tag
            .bytes()
            .fold(self.seed, |acc, b| mix(acc ^ u64::from(b)));
        lo + (hi - lo) * unit(h, 0)
    }

    fn family(&mut self, name: &'static str, kind: &'static str) {
        let start = self.out.defs.len();
        self.out.families.push(Family {
            name,
            kind,
            start,
            end: start,
        });
    }

    fn series(&mut self, labels: &[(&str, &str)], shape: Shape) {
        let Some(family) = self.out.families.last_mut() else {
            return;
        };
        let mut labels: Vec<Label> = labels
            .iter()
            .map(|(n, v)| Label {
                name: (*n).to_owned(),
                value: (*v).to_owned(),
            })
            .collect();
        labels.sort();
        let id = u32::try_from(self.out.defs.len()).unwrap_or(u32::MAX);
        let seed = mix(self.seed ^ u64::from(id).wrapping_mul(0x100_0000_01b3));
        self.out.defs.push(SeriesDef {
            id,
            metric: family.name.to_owned(),
            labels,
        });
        self.out.shapes.push((shape, seed));
        family.end = self.out.defs.len();
    }

    fn uptime(&self) -> f64 {
        self.pick("uptime", 10.0 * 86_400.0, 40.0 * 86_400.0)
    }

    fn counter(&self, tag: &str, rate: f64, quantum: Quantum) -> Shape {
        let rate = rate * self.pick(tag, 0.5, 1.5);
        Shape::Counter {
            base: rate * self.uptime(),
            rate,
            quantum,
        }
    }

    fn gauge(&self, tag: &str, mean: f64, noise: f64, quantum: Quantum) -> Shape {
        Shape::Gauge {
            mean: mean * self.pick(tag, 0.6, 1.4),
            swing: 0.1,
            period: self.pick(tag, 180.0, 2_000.0),
            noise,
            quantum,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_host_has_about_500_series_cpu_first() {
        let host = HostSeries::new(0);
        assert!(
            (480..=520).contains(&host.defs.len()),
            "{}",
            host.defs.len()
        );
        assert!(
            host.defs[..CPU_SERIES]
                .iter()
                .all(|d| d.metric == "node_cpu_seconds_total")
        );
        assert_eq!(host.defs[CPU_SERIES].metric, "node_load1");
        let covered: usize = host.families.iter().map(|f| f.end - f.start).sum();
        assert_eq!(covered, host.defs.len());
        for (i, def) in host.defs.iter().enumerate() {
            assert_eq!(def.id as usize, i);
            assert!(def.labels.windows(2).all(|p| p[0].name < p[1].name));
        }
    }

    #[test]
    fn hosts_differ_and_rebuild_the_same() {
        let (a, b) = (HostSeries::new(1), HostSeries::new(2));
        assert_ne!(a.value(0, 10), b.value(0, 10));
        assert_eq!(a.value(0, 10), HostSeries::new(1).value(0, 10));
        let distinct = |h: &HostSeries| {
            h.defs
                .iter()
                .map(|d| (d.metric.clone(), d.labels.clone()))
                .collect::<std::collections::HashSet<_>>()
                .len()
        };
        assert_eq!(distinct(&a), a.defs.len(), "no two series share labels");
    }
}
