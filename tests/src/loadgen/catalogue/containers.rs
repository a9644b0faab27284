//! cAdvisor's container families (the agent's container sampler exports the same names and
//! `id`, `image`, `name` labels) for [`CONTAINERS`] containers per host.

use super::{Builder, C, CONTAINERS, G, HUNDREDTHS, INT, NANOS, PAGES, SECTORS};
use crate::loadgen::values::{Quantum, Shape, mix};

/// A container family: name, kind, per-second rate or mean (negative: a fixed value),
/// quantum, and the label it has after the container's.
type ContainerFamily = (
    &'static str,
    &'static str,
    f64,
    Quantum,
    Option<(&'static str, &'static str)>,
);

impl Builder {
    pub(super) fn containers(&mut self) {
        const APPS: [(&str, &str); CONTAINERS] = [
            ("web", "nginx:1.27"),
            ("api", "ghcr.io/acme/api:2.14.1"),
            ("worker", "ghcr.io/acme/worker:2.14.1"),
            ("postgres", "postgres:16"),
            ("redis", "redis:7.2"),
            ("grafana", "grafana/grafana:11.2.0"),
            ("traefik", "traefik:v3.1"),
            ("cron", "ghcr.io/acme/cron:1.3.0"),
            ("minio", "minio/minio:RELEASE.2024-08-03"),
            ("mailer", "ghcr.io/acme/mailer:0.9.2"),
            ("search", "opensearchproject/opensearch:2.16.0"),
            ("backup", "restic/restic:0.17.0"),
        ];
        let containers: Vec<(String, &str, String, f64)> = APPS
            .iter()
            .enumerate()
            .map(|(i, (app, image))| {
                let hash = mix(self.seed ^ (i as u64 + 1));
                let id = format!(
                    "/docker/{:016x}{:016x}{:016x}{:016x}",
                    hash,
                    mix(hash),
                    mix(hash ^ 1),
                    mix(hash ^ 2)
                );
                let size = self.pick(app, 0.2, 3.0);
                (id, *image, format!("{app}-{}", i % 3 + 1), size)
            })
            .collect();
        // (name, kind, per-second rate or mean, quantum, extra label)
        let families: [ContainerFamily; 28] = [
            ("container_cpu_usage_seconds_total", C, 0.05, NANOS, None),
            (
                "container_cpu_user_seconds_total",
                C,
                0.035,
                HUNDREDTHS,
                None,
            ),
            (
                "container_cpu_system_seconds_total",
                C,
                0.015,
                HUNDREDTHS,
                None,
            ),
            ("container_cpu_cfs_periods_total", C, 10.0, INT, None),
            (
                "container_cpu_cfs_throttled_periods_total",
                C,
                0.05,
                INT,
                None,
            ),
            (
                "container_cpu_cfs_throttled_seconds_total",
                C,
                0.002,
                NANOS,
                None,
            ),
            ("container_spec_cpu_quota", G, -1.0, INT, None),
            ("container_spec_cpu_period", G, -100_000.0, INT, None),
            ("container_memory_usage_bytes", G, 300e6, PAGES, None),
            ("container_memory_working_set_bytes", G, 200e6, PAGES, None),
            ("container_memory_rss", G, 150e6, PAGES, None),
            ("container_memory_cache", G, 100e6, PAGES, None),
            ("container_memory_mapped_file", G, 20e6, PAGES, None),
            ("container_memory_swap", G, -0.0, INT, None),
            (
                "container_spec_memory_limit_bytes",
                G,
                -2_147_483_648.0,
                INT,
                None,
            ),
            ("container_oom_events_total", C, 0.0, INT, None),
            (
                "container_network_receive_bytes_total",
                C,
                20_000.0,
                INT,
                Some(("interface", "eth0")),
            ),
            (
                "container_network_receive_packets_total",
                C,
                30.0,
                INT,
                Some(("interface", "eth0")),
            ),
            (
                "container_network_receive_errors_total",
                C,
                0.0,
                INT,
                Some(("interface", "eth0")),
            ),
            (
                "container_network_receive_packets_dropped_total",
                C,
                0.0,
                INT,
                Some(("interface", "eth0")),
            ),
            (
                "container_network_transmit_bytes_total",
                C,
                15_000.0,
                INT,
                Some(("interface", "eth0")),
            ),
            (
                "container_network_transmit_packets_total",
                C,
                25.0,
                INT,
                Some(("interface", "eth0")),
            ),
            (
                "container_network_transmit_errors_total",
                C,
                0.0,
                INT,
                Some(("interface", "eth0")),
            ),
            (
                "container_network_transmit_packets_dropped_total",
                C,
                0.0,
                INT,
                Some(("interface", "eth0")),
            ),
            (
                "container_fs_reads_bytes_total",
                C,
                4_000.0,
                SECTORS,
                Some(("device", "/dev/vdb")),
            ),
            (
                "container_fs_writes_bytes_total",
                C,
                12_000.0,
                SECTORS,
                Some(("device", "/dev/vdb")),
            ),
            ("container_processes", G, 4.0, INT, None),
            ("container_threads", G, 20.0, INT, None),
        ];
        for (name, kind, rate, quantum, extra) in families {
            self.family(name, kind);
            for (id, image, cname, size) in &containers {
                let tag = format!("{name}{cname}");
                // A negative figure is a fixed value (limits, quotas).
                let shape = if rate <= 0.0 {
                    Shape::Constant(-rate)
                } else if kind == G {
                    self.gauge(&tag, rate * size, 0.03, quantum)
                } else {
                    self.counter(&tag, rate * size, quantum)
                };
                let mut labels = vec![
                    ("id", id.as_str()),
                    ("image", *image),
                    ("name", cname.as_str()),
                ];
                labels.extend(extra);
                self.series(&labels, shape);
            }
        }
    }
}
