//! The `netdev` sampler: per-interface counters from `/proc/net/dev`.
//!
//! Owns the parser of the `/proc/net/dev` format, which the container sampler
//! also uses for `/proc/<pid>/net/dev` (a container's network namespace).
//! Leaves out node_exporter's `netclass` data (speed, MTU, operstate from
//! `/sys/class/net`), its netlink source and `node_network_up`.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::read::{as_text, read_into};
use crate::sample::filter::Filter;
use crate::sample::paths::SamplePaths;
use crate::sample::series::{FamilySpec, Kind, SeriesTable};
use crate::sample::{SampleError, Sampler};

/// Which interfaces the `netdev` sampler reports (node_exporter's
/// `--collector.netdev.device-include/-exclude`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetdevConfig {
    /// Interface names (`lo`, `eth0`, `veth1a2b`) to report; anchored
    /// regexes. Default: every interface, as node_exporter.
    #[serde(default = "default_devices")]
    pub devices: Filter,
}

impl Default for NetdevConfig {
    fn default() -> Self {
        Self {
            devices: default_devices(),
        }
    }
}

fn default_devices() -> Filter {
    Filter::default()
}

const fn counter(name: &'static str, help: &'static str) -> FamilySpec<'static> {
    FamilySpec {
        name,
        help,
        kind: Kind::Counter,
        labels: &["device"],
    }
}

/// node_exporter's families, in [`NetDevCounters`] field order.
#[rustfmt::skip]
const FAMILIES: [FamilySpec<'static>; 16] = [
    counter("node_network_receive_bytes_total", "Network device statistic receive_bytes."),
    counter("node_network_receive_packets_total", "Network device statistic receive_packets."),
    counter("node_network_receive_errs_total", "Network device statistic receive_errs."),
    counter("node_network_receive_drop_total", "Network device statistic receive_drop."),
    counter("node_network_receive_fifo_total", "Network device statistic receive_fifo."),
    counter("node_network_receive_frame_total", "Network device statistic receive_frame."),
    counter("node_network_receive_compressed_total", "Network device statistic receive_compressed."),
    counter("node_network_receive_multicast_total", "Network device statistic receive_multicast."),
    counter("node_network_transmit_bytes_total", "Network device statistic transmit_bytes."),
    counter("node_network_transmit_packets_total", "Network device statistic transmit_packets."),
    counter("node_network_transmit_errs_total", "Network device statistic transmit_errs."),
    counter("node_network_transmit_drop_total", "Network device statistic transmit_drop."),
    counter("node_network_transmit_fifo_total", "Network device statistic transmit_fifo."),
    counter("node_network_transmit_colls_total", "Network device statistic transmit_colls."),
    counter("node_network_transmit_carrier_total", "Network device statistic transmit_carrier."),
    counter("node_network_transmit_compressed_total", "Network device statistic transmit_compressed."),
];

/// Samples `/proc/net/dev`.
#[derive(Debug)]
pub struct NetdevSampler {
    path: PathBuf,
    devices: Filter,
    buf: Vec<u8>,
}

impl NetdevSampler {
    /// Reads `net/dev` under `paths.proc`, keeping the interfaces `config`
    /// allows.
    pub fn new(paths: &SamplePaths, config: &NetdevConfig) -> Self {
        Self {
            path: paths.proc_file("net/dev"),
            devices: config.devices.clone(),
            buf: Vec::new(),
        }
    }
}

impl Sampler for NetdevSampler {
    fn name(&self) -> &'static str {
        "netdev"
    }

    fn sample(&mut self, out: &mut SeriesTable) -> Result<(), SampleError> {
        read_into(&self.path, &mut self.buf)?;
        let text = as_text(&self.buf);
        let ids = FAMILIES.each_ref().map(|spec| out.family(spec));
        let devices = &self.devices;
        let malformed = parse_net_dev(&text, |device, c| {
            if !devices.allows(device) {
                return;
            }
            for (id, value) in ids.iter().zip(c.values()) {
                out.set(*id, &[device], value as f64);
            }
        });
        out.malformed(malformed);
        Ok(())
    }
}

/// Counters of one interface from /proc/net/dev.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct NetDevCounters {
    /// Bytes received.
    pub receive_bytes: u64,
    /// Packets received.
    pub receive_packets: u64,
    /// Receive errors.
    pub receive_errs: u64,
    /// Received packets dropped.
    pub receive_drop: u64,
    /// Receive FIFO overruns.
    pub receive_fifo: u64,
    /// Receive framing errors.
    pub receive_frame: u64,
    /// Compressed packets received.
    pub receive_compressed: u64,
    /// Multicast frames received.
    pub receive_multicast: u64,
    /// Bytes transmitted.
    pub transmit_bytes: u64,
    /// Packets transmitted.
    pub transmit_packets: u64,
    /// Transmit errors.
    pub transmit_errs: u64,
    /// Transmitted packets dropped.
    pub transmit_drop: u64,
    /// Transmit FIFO overruns.
    pub transmit_fifo: u64,
    /// Collisions.
    pub transmit_colls: u64,
    /// Carrier losses.
    pub transmit_carrier: u64,
    /// Compressed packets transmitted.
    pub transmit_compressed: u64,
}

impl NetDevCounters {
    /// The counters in `/proc/net/dev` column order.
    pub fn values(&self) -> [u64; FIELDS] {
        [
            self.receive_bytes,
            self.receive_packets,
            self.receive_errs,
            self.receive_drop,
            self.receive_fifo,
            self.receive_frame,
            self.receive_compressed,
            self.receive_multicast,
            self.transmit_bytes,
            self.transmit_packets,
            self.transmit_errs,
            self.transmit_drop,
            self.transmit_fifo,
            self.transmit_colls,
            self.transmit_carrier,
            self.transmit_compressed,
        ]
    }
}

/// Number of counters on an interface line.
const FIELDS: usize = 16;

/// Calls `each` for every interface line; returns the number of malformed lines skipped.
///
/// The two header lines (`|` without `:`) and blank lines are ignored. A line
/// is malformed when it has no `name:` prefix, an empty name, not exactly 16
/// counters, or a counter that is not a `u64` (including overflow); it is
/// skipped and counted. Allocates nothing.
pub fn parse_net_dev(text: &str, mut each: impl FnMut(&str, &NetDevCounters)) -> u64 {
    let mut malformed = 0;
    for line in text.lines() {
        // Header lines have `|` and no `:` (an interface name may hold `|`).
        if line.trim().is_empty() || (line.contains('|') && !line.contains(':')) {
            continue;
        }
        match parse_line(line) {
            Some((name, counters)) => each(name, &counters),
            None => malformed += 1,
        }
    }
    malformed
}

fn parse_line(line: &str) -> Option<(&str, NetDevCounters)> {
    let (name, rest) = line.split_once(':')?;
    let name = name.trim();
    if name.is_empty() {
        return None;
    }
    let mut v = [0u64; FIELDS];
    let mut fields = rest.split_ascii_whitespace();
    for slot in &mut v {
        *slot = fields.next()?.parse().ok()?;
    }
    if fields.next().is_some() {
        return None;
    }
    let [
        receive_bytes,
        receive_packets,
        receive_errs,
        receive_drop,
        receive_fifo,
        receive_frame,
        receive_compressed,
        receive_multicast,
        transmit_bytes,
        transmit_packets,
        transmit_errs,
        transmit_drop,
        transmit_fifo,
        transmit_colls,
        transmit_carrier,
        transmit_compressed,
    ] = v;
    Some((
        name,
        NetDevCounters {
            receive_bytes,
            receive_packets,
            receive_errs,
            receive_drop,
            receive_fifo,
            receive_frame,
            receive_compressed,
            receive_multicast,
            transmit_bytes,
            transmit_packets,
            transmit_errs,
            transmit_drop,
            transmit_fifo,
            transmit_colls,
            transmit_carrier,
            transmit_compressed,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample::filter::Pattern;
    use crate::sample::host::testkit::{fixture, live_names, render, round, write};

    fn collect(text: &str) -> (Vec<(String, NetDevCounters)>, u64) {
        let mut got = Vec::new();
        let malformed = parse_net_dev(text, |name, c| got.push((name.to_owned(), *c)));
        (got, malformed)
    }

    #[test]
    fn parses_every_counter_of_a_line() {
        let (got, malformed) = collect(&fixture("net_dev"));
        assert_eq!(malformed, 0);
        let names: Vec<&str> = got.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["lo", "eth0", "docker0"]);
        assert_eq!(
            got[1].1,
            NetDevCounters {
                receive_bytes: 302_141_460,
                receive_packets: 14375,
                receive_errs: 1,
                receive_drop: 2,
                receive_fifo: 3,
                receive_frame: 4,
                receive_compressed: 5,
                receive_multicast: 6,
                transmit_bytes: 916_095,
                transmit_packets: 8474,
                transmit_errs: 7,
                transmit_drop: 8,
                transmit_fifo: 9,
                transmit_colls: 10,
                transmit_carrier: 11,
                transmit_compressed: 12,
            }
        );
        assert_eq!(got[2].1.transmit_drop, 2);
    }

    #[test]
    fn malformed_lines_are_counted_and_good_ones_kept() {
        let (got, malformed) = collect(&fixture("net_dev_malformed"));
        // truncated, non-numeric, u64 overflow, no colon, empty name, 17 fields.
        assert_eq!(malformed, 6);
        let names: Vec<&str> = got.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["lo", "eth5"], "no space after the colon is fine");
        assert_eq!(got[1].1.transmit_compressed, 16);
        assert_eq!(collect("").1, 0);
    }

    #[test]
    fn fixture_sample_gives_exact_series() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "proc/net/dev", &fixture("net_dev"));
        let config = NetdevConfig {
            devices: Filter {
                include: None,
                exclude: Some(Pattern::new("docker.*").unwrap()),
            },
        };
        let mut sampler = NetdevSampler::new(&SamplePaths::under(dir.path()), &config);
        let mut table = SeriesTable::new();
        round(&mut sampler, &mut table).unwrap();
        let lines = render(&table);
        assert_eq!(
            lines.len(),
            32,
            "16 counters for lo and eth0, docker0 filtered"
        );
        for line in [
            r#"node_network_receive_bytes_total{device="eth0"} 302141460"#,
            r#"node_network_receive_packets_total{device="eth0"} 14375"#,
            r#"node_network_receive_errs_total{device="eth0"} 1"#,
            r#"node_network_receive_drop_total{device="eth0"} 2"#,
            r#"node_network_receive_fifo_total{device="eth0"} 3"#,
            r#"node_network_receive_frame_total{device="eth0"} 4"#,
            r#"node_network_receive_compressed_total{device="eth0"} 5"#,
            r#"node_network_receive_multicast_total{device="eth0"} 6"#,
            r#"node_network_transmit_bytes_total{device="eth0"} 916095"#,
            r#"node_network_transmit_packets_total{device="eth0"} 8474"#,
            r#"node_network_transmit_errs_total{device="eth0"} 7"#,
            r#"node_network_transmit_drop_total{device="eth0"} 8"#,
            r#"node_network_transmit_fifo_total{device="eth0"} 9"#,
            r#"node_network_transmit_colls_total{device="eth0"} 10"#,
            r#"node_network_transmit_carrier_total{device="eth0"} 11"#,
            r#"node_network_transmit_compressed_total{device="eth0"} 12"#,
            r#"node_network_receive_bytes_total{device="lo"} 3044986"#,
            r#"node_network_transmit_packets_total{device="lo"} 4183"#,
        ] {
            assert!(lines.iter().any(|l| l == line), "{line} in {lines:#?}");
        }
        assert!(!lines.iter().any(|l| l.contains("docker0")));
    }

    #[test]
    fn steady_state_creates_no_new_series() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "proc/net/dev", &fixture("net_dev"));
        let mut sampler =
            NetdevSampler::new(&SamplePaths::under(dir.path()), &NetdevConfig::default());
        let mut table = SeriesTable::new();
        round(&mut sampler, &mut table).unwrap();
        let (live, families, capacity) = (
            table.live_count(),
            table.families().len(),
            sampler.buf.capacity(),
        );
        round(&mut sampler, &mut table).unwrap();
        assert_eq!(table.live_count(), live);
        assert_eq!(live, 48);
        assert_eq!(table.families().len(), families);
        assert_eq!(sampler.buf.capacity(), capacity);
    }

    #[test]
    fn live_host_has_loopback() {
        let mut sampler = NetdevSampler::new(&SamplePaths::default(), &NetdevConfig::default());
        let mut table = SeriesTable::new();
        round(&mut sampler, &mut table).unwrap();
        assert_eq!(live_names(&table).len(), 16);
        assert!(table.live().any(|s| &*s.values[0] == "lo"));
        assert!(table.live().all(|s| s.values.len() == 1));
    }
}
