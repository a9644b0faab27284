//! The `diskstats` sampler: per block device I/O counters from
//! `/proc/diskstats`, with node_exporter's names and units (sectors of 512
//! bytes become bytes, milliseconds become seconds).
//!
//! Discard fields (Linux 4.18+) and flush fields (5.5+) are emitted when the
//! line has them. Leaves out node_exporter's `node_disk_info`,
//! `node_disk_device_mapper_info` and ATA series (udev and sysfs lookups).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::read::{as_text, parse_u64, read_into};
use crate::sample::filter::Filter;
use crate::sample::paths::SamplePaths;
use crate::sample::series::{FamilySpec, Kind, SeriesTable};
use crate::sample::{SampleError, Sampler};

/// node_exporter's default `--collector.diskstats.device-exclude`: partitions,
/// RAM disks, loop devices and floppies.
pub const DEFAULT_DEVICE_EXCLUDE: &str = r"^(z?ram|loop|fd|(h|s|v|xv)d[a-z]|nvme\d+n\d+p)\d+$";

/// The unit of a `/proc/diskstats` field.
#[derive(Debug, Clone, Copy)]
enum Unit {
    Count,
    /// Sectors of 512 bytes, whatever the device's real sector size.
    Sectors,
    Millis,
}
use Unit::{Count, Millis, Sectors};

impl Unit {
    /// The value in base units. Dividing by 1000 is correctly rounded where
    /// multiplying by 0.001 is not (2885 ms is 2.885 s, not 2.8850000000000002).
    fn to_base(self, raw: u64) -> f64 {
        match self {
            Count => raw as f64,
            Sectors => raw as f64 * 512.0,
            Millis => raw as f64 / 1000.0,
        }
    }
}

/// Which devices the `diskstats` sampler reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiskstatsConfig {
    /// Device names (`sda`, `nvme0n1`, `dm-0`) to report; anchored regexes.
    /// Default: exclude [`DEFAULT_DEVICE_EXCLUDE`], as node_exporter; setting
    /// this table replaces that default.
    #[serde(default = "default_devices")]
    pub devices: Filter,
}

impl Default for DiskstatsConfig {
    fn default() -> Self {
        Self {
            devices: default_devices(),
        }
    }
}

fn default_devices() -> Filter {
    Filter::excluding(DEFAULT_DEVICE_EXCLUDE).expect("the default pattern is a valid regex")
}

const fn family(name: &'static str, help: &'static str, kind: Kind) -> FamilySpec<'static> {
    FamilySpec {
        name,
        help,
        kind,
        labels: &["device"],
    }
}

/// Each `/proc/diskstats` stat field (after major, minor, name), in order:
/// its family and its unit.
#[rustfmt::skip]
const FIELDS: [(FamilySpec<'static>, Unit); 17] = [
    (family("node_disk_reads_completed_total", "The total number of reads completed successfully.", Kind::Counter), Count),
    (family("node_disk_reads_merged_total", "The total number of reads merged.", Kind::Counter), Count),
    (family("node_disk_read_bytes_total", "The total number of bytes read successfully.", Kind::Counter), Sectors),
    (family("node_disk_read_time_seconds_total", "The total number of seconds spent by all reads.", Kind::Counter), Millis),
    (family("node_disk_writes_completed_total", "The total number of writes completed successfully.", Kind::Counter), Count),
    (family("node_disk_writes_merged_total", "The number of writes merged.", Kind::Counter), Count),
    (family("node_disk_written_bytes_total", "The total number of bytes written successfully.", Kind::Counter), Sectors),
    (family("node_disk_write_time_seconds_total", "This is the total number of seconds spent by all writes.", Kind::Counter), Millis),
    (family("node_disk_io_now", "The number of I/Os currently in progress.", Kind::Gauge), Count),
    (family("node_disk_io_time_seconds_total", "Total seconds spent doing I/Os.", Kind::Counter), Millis),
    (family("node_disk_io_time_weighted_seconds_total", "The weighted # of seconds spent doing I/Os.", Kind::Counter), Millis),
    (family("node_disk_discards_completed_total", "The total number of discards completed successfully.", Kind::Counter), Count),
    (family("node_disk_discards_merged_total", "The total number of discards merged.", Kind::Counter), Count),
    (family("node_disk_discarded_sectors_total", "The total number of sectors discarded successfully.", Kind::Counter), Count),
    (family("node_disk_discard_time_seconds_total", "This is the total number of seconds spent by all discards.", Kind::Counter), Millis),
    (family("node_disk_flush_requests_total", "The total number of flush requests completed successfully", Kind::Counter), Count),
    (family("node_disk_flush_requests_time_seconds_total", "This is the total number of seconds spent by all flush requests.", Kind::Counter), Millis),
];

/// The stat fields of one `/proc/diskstats` line, raw (sectors, ms).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DiskStats {
    /// Fields in kernel order (Documentation/admin-guide/iostats.rst).
    pub fields: [u64; 17],
    /// How many the line had: 11, 15 or 17.
    pub present: usize,
}

/// Samples `/proc/diskstats`.
#[derive(Debug)]
pub struct DiskstatsSampler {
    path: PathBuf,
    devices: Filter,
    buf: Vec<u8>,
}

impl DiskstatsSampler {
    /// Reads `diskstats` under `paths.proc`, keeping the devices `config`
    /// allows.
    pub fn new(paths: &SamplePaths, config: &DiskstatsConfig) -> Self {
        Self {
            path: paths.proc_file("diskstats"),
            devices: config.devices.clone(),
            buf: Vec::new(),
        }
    }
}

impl Sampler for DiskstatsSampler {
    fn name(&self) -> &'static str {
        "diskstats"
    }

    fn sample(&mut self, out: &mut SeriesTable) -> Result<(), SampleError> {
        read_into(&self.path, &mut self.buf)?;
        let text = as_text(&self.buf);
        let ids = FIELDS.each_ref().map(|(spec, _)| out.family(spec));
        let devices = &self.devices;
        let malformed = parse_diskstats(&text, |device, stats| {
            if !devices.allows(device) {
                return;
            }
            let values = ids.iter().zip(FIELDS.iter()).zip(stats.fields.iter());
            for ((id, (_, unit)), raw) in values.take(stats.present) {
                out.set(*id, &[device], unit.to_base(*raw));
            }
        });
        out.malformed(malformed);
        Ok(())
    }
}

/// Calls `each(device, stats)` for every line of `/proc/diskstats` text;
/// returns the number of malformed lines skipped: no device name, a stat
/// count other than 11, 15 or 17 and more (fields past the 17th are ignored),
/// or a field that is not a `u64`. Allocates nothing.
pub fn parse_diskstats(text: &str, mut each: impl FnMut(&str, &DiskStats)) -> u64 {
    let mut malformed = 0;
    for line in text.lines() {
        if line.trim().is_empty() {
            continue;
        }
        match parse_line(line) {
            Some((device, stats)) => each(device, &stats),
            None => malformed += 1,
        }
    }
    malformed
}

fn parse_line(line: &str) -> Option<(&str, DiskStats)> {
    let mut fields = line.split_ascii_whitespace();
    parse_u64(fields.next()?)?;
    parse_u64(fields.next()?)?;
    let device = fields.next()?;
    let mut stats = DiskStats::default();
    let mut count = 0;
    for field in fields {
        let value = parse_u64(field)?;
        if let Some(slot) = stats.fields.get_mut(count) {
            *slot = value;
        }
        count += 1;
    }
    stats.present = count.min(stats.fields.len());
    matches!(count, 11 | 15 | 17..).then_some((device, stats))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample::host::testkit::{fixture, live_names, render, round, write};

    fn sample_fixture(name: &str, config: &DiskstatsConfig) -> SeriesTable {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "proc/diskstats", &fixture(name));
        let mut sampler = DiskstatsSampler::new(&SamplePaths::under(dir.path()), config);
        let mut table = SeriesTable::new();
        round(&mut sampler, &mut table).unwrap();
        table
    }

    #[test]
    fn default_filter_drops_partitions_loop_and_ram() {
        let config = DiskstatsConfig::default();
        for keep in ["vda", "sda", "nvme0n1", "dm-0", "xvda", "md0", "mmcblk0"] {
            assert!(config.devices.allows(keep), "{keep}");
        }
        for drop in [
            "vda1",
            "sda2",
            "nvme0n1p1",
            "loop0",
            "ram0",
            "zram0",
            "fd0",
            "xvda1",
        ] {
            assert!(!config.devices.allows(drop), "{drop}");
        }
    }

    #[test]
    fn config_defaults_apply_to_an_empty_table_and_unknown_keys_fail() {
        let path = std::path::Path::new("a.toml");
        let c: DiskstatsConfig = muster_shared::config::parse("", path).unwrap();
        assert_eq!(c, DiskstatsConfig::default());
        let c: DiskstatsConfig =
            muster_shared::config::parse("[devices]\ninclude = \"sd[a-z]\"\n", path).unwrap();
        assert!(c.devices.allows("sda") && !c.devices.allows("vda") && c.devices.exclude.is_none());
        assert!(muster_shared::config::parse::<DiskstatsConfig>("device = 1\n", path).is_err());
    }

    #[test]
    fn fixture_sample_gives_exact_series() {
        let table = sample_fixture("diskstats", &DiskstatsConfig::default());
        let lines = render(&table);
        let vda: Vec<&str> = lines
            .iter()
            .filter(|l| l.contains(r#"device="vda""#))
            .map(String::as_str)
            .collect();
        assert_eq!(
            vda,
            [
                r#"node_disk_discard_time_seconds_total{device="vda"} 2.885"#,
                r#"node_disk_discarded_sectors_total{device="vda"} 9656976"#,
                r#"node_disk_discards_completed_total{device="vda"} 14527"#,
                r#"node_disk_discards_merged_total{device="vda"} 0"#,
                r#"node_disk_flush_requests_time_seconds_total{device="vda"} 0.509"#,
                r#"node_disk_flush_requests_total{device="vda"} 6194"#,
                r#"node_disk_io_now{device="vda"} 0"#,
                r#"node_disk_io_time_seconds_total{device="vda"} 45.456"#,
                r#"node_disk_io_time_weighted_seconds_total{device="vda"} 329.067"#,
                r#"node_disk_read_bytes_total{device="vda"} 4589282304"#,
                r#"node_disk_read_time_seconds_total{device="vda"} 135.932"#,
                r#"node_disk_reads_completed_total{device="vda"} 154370"#,
                r#"node_disk_reads_merged_total{device="vda"} 9966"#,
                r#"node_disk_write_time_seconds_total{device="vda"} 189.74"#,
                r#"node_disk_writes_completed_total{device="vda"} 595679"#,
                r#"node_disk_writes_merged_total{device="vda"} 66814"#,
                r#"node_disk_written_bytes_total{device="vda"} 37836361728"#,
            ]
        );
        let count = |device: &str| {
            lines
                .iter()
                .filter(|l| l.contains(&format!("device=\"{device}\"")))
                .count()
        };
        // sda is an old 11-field kernel line, nvme0n1 has discards, dm-0 all 17.
        assert_eq!(
            (count("sda"), count("nvme0n1"), count("dm-0")),
            (11, 15, 17)
        );
        assert!(
            lines.contains(&r#"node_disk_written_bytes_total{device="sda"} 2097152"#.to_owned())
        );
        assert!(lines.contains(&r#"node_disk_io_now{device="nvme0n1"} 2"#.to_owned()));
        for filtered in ["loop0", "zram0", "vda1", "nvme0n1p1"] {
            assert_eq!(count(filtered), 0, "{filtered}");
        }
        assert_eq!(lines.len(), 17 + 11 + 15 + 17);
        let io_now = table
            .families()
            .iter()
            .find(|f| &*f.name == "node_disk_io_now");
        assert_eq!(io_now.map(|f| f.kind), Some(Kind::Gauge));
    }

    #[test]
    fn malformed_lines_are_counted_and_good_ones_kept() {
        let table = sample_fixture("diskstats_malformed", &DiskstatsConfig::default());
        // truncated, non-numeric, u64 overflow, 12 fields, no device.
        assert_eq!(table.malformed_count(), 5);
        let mut devices: Vec<String> = table.live().map(|s| s.values[0].to_string()).collect();
        assert_eq!(devices.len(), 17 + 11);
        devices.sort();
        devices.dedup();
        assert_eq!(devices, ["dm-0", "vda"]);
        assert_eq!(parse_diskstats("", |_, _| panic!("no lines")), 0);
    }

    #[test]
    fn live_host_has_device_labels() {
        let mut sampler =
            DiskstatsSampler::new(&SamplePaths::default(), &DiskstatsConfig::default());
        let mut table = SeriesTable::new();
        round(&mut sampler, &mut table).unwrap();
        assert!(
            table
                .live()
                .all(|s| s.values.len() == 1 && !s.values[0].is_empty())
        );
        let names = live_names(&table);
        assert!(
            names.iter().all(|n| n.starts_with("node_disk_")),
            "{names:?}"
        );
        assert_eq!(table.malformed_count(), 0);
    }
}
