//! Host samplers: node_exporter-compatible metrics read from `/proc`, `/sys`
//! and the host's root filesystem, one module per node_exporter collector.
//!
//! This module holds only the list of host samplers and the function that
//! builds the enabled ones; each sampler's config struct lives in its module.

pub mod cpu;
pub mod diskstats;
pub mod filefd;
pub mod filesystem;
pub mod hwmon;
pub mod loadavg;
pub mod meminfo;
pub mod netdev;
pub mod os;
pub mod stat;
pub mod time;
pub mod uname;

#[cfg(test)]
mod proptests;
mod read;
#[cfg(test)]
mod testkit;

use super::Sampler;
use super::paths::SamplePaths;
use diskstats::DiskstatsConfig;
use filesystem::FilesystemConfig;
use netdev::NetdevConfig;

/// The host samplers, by node_exporter collector name.
pub const HOST_SAMPLERS: &[&str] = &[
    "cpu",
    "diskstats",
    "filefd",
    "filesystem",
    "hwmon",
    "loadavg",
    "meminfo",
    "netdev",
    "os",
    "stat",
    "time",
    "uname",
];

/// Builds the host samplers whose name `enabled` accepts, in
/// [`HOST_SAMPLERS`] order. Nothing is read and no thread is started until a
/// sampler's first pass.
pub fn samplers(
    paths: &SamplePaths,
    filesystem: &FilesystemConfig,
    diskstats: &DiskstatsConfig,
    netdev: &NetdevConfig,
    enabled: &dyn Fn(&str) -> bool,
) -> Vec<Box<dyn Sampler>> {
    let mut out: Vec<Box<dyn Sampler>> = Vec::new();
    for &name in HOST_SAMPLERS {
        if !enabled(name) {
            continue;
        }
        let sampler: Box<dyn Sampler> = match name {
            "cpu" => Box::new(cpu::CpuSampler::new(paths)),
            "diskstats" => Box::new(diskstats::DiskstatsSampler::new(paths, diskstats)),
            "filefd" => Box::new(filefd::FilefdSampler::new(paths)),
            "filesystem" => Box::new(filesystem::FilesystemSampler::new(paths, filesystem)),
            "hwmon" => Box::new(hwmon::HwmonSampler::new(paths)),
            "loadavg" => Box::new(loadavg::LoadavgSampler::new(paths)),
            "meminfo" => Box::new(meminfo::MeminfoSampler::new(paths)),
            "netdev" => Box::new(netdev::NetdevSampler::new(paths, netdev)),
            "os" => Box::new(os::OsSampler::new(paths)),
            "stat" => Box::new(stat::StatSampler::new(paths)),
            "time" => Box::new(time::TimeSampler),
            "uname" => Box::new(uname::UnameSampler),
            _ => continue,
        };
        out.push(sampler);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_name_builds_its_sampler_in_order() {
        let all = samplers(
            &SamplePaths::default(),
            &FilesystemConfig::default(),
            &DiskstatsConfig::default(),
            &NetdevConfig::default(),
            &|_| true,
        );
        let names: Vec<&str> = all.iter().map(|s| s.name()).collect();
        assert_eq!(names, HOST_SAMPLERS);
        let some = samplers(
            &SamplePaths::default(),
            &FilesystemConfig::default(),
            &DiskstatsConfig::default(),
            &NetdevConfig::default(),
            &|name| name == "cpu" || name == "uname" || name == "unknown",
        );
        let names: Vec<&str> = some.iter().map(|s| s.name()).collect();
        assert_eq!(names, ["cpu", "uname"]);
    }
}
