//! The container sampler's metric families (cAdvisor's names, help texts and
//! units, plus Muster's `muster_container_*`) and how a [`Usage`] becomes
//! series. A table of definitions: one [`F`] variant per family.

use crate::sample::series::FamilyId;
use crate::sample::{FamilySpec, Kind, SeriesTable};

use super::usage::Usage;

/// The label a family has after the container's labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Extra {
    None,
    Interface,
    Device,
    State,
    Health,
}

/// One family of the container sampler.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(missing_docs)] // The names say it; `def` gives each one's help.
pub enum F {
    CpuUsage,
    CpuUser,
    CpuSystem,
    CfsPeriods,
    CfsThrottledPeriods,
    CfsThrottledSeconds,
    SpecCpuQuota,
    SpecCpuPeriod,
    MemoryUsage,
    MemoryWorkingSet,
    MemoryRss,
    MemoryCache,
    MemoryMappedFile,
    MemorySwap,
    SpecMemoryLimit,
    OomEvents,
    NetReceiveBytes,
    NetReceivePackets,
    NetReceiveErrors,
    NetReceiveDropped,
    NetTransmitBytes,
    NetTransmitPackets,
    NetTransmitErrors,
    NetTransmitDropped,
    FsReadBytes,
    FsWriteBytes,
    FsReads,
    FsWrites,
    Processes,
    Threads,
    ThreadsMax,
    LastSeen,
    StartTime,
    State,
    Health,
    Restarts,
}

impl F {
    /// Every family, in exposition order.
    pub const ALL: [Self; 36] = [
        Self::CpuUsage,
        Self::CpuUser,
        Self::CpuSystem,
        Self::CfsPeriods,
        Self::CfsThrottledPeriods,
        Self::CfsThrottledSeconds,
        Self::SpecCpuQuota,
        Self::SpecCpuPeriod,
        Self::MemoryUsage,
        Self::MemoryWorkingSet,
        Self::MemoryRss,
        Self::MemoryCache,
        Self::MemoryMappedFile,
        Self::MemorySwap,
        Self::SpecMemoryLimit,
        Self::OomEvents,
        Self::NetReceiveBytes,
        Self::NetReceivePackets,
        Self::NetReceiveErrors,
        Self::NetReceiveDropped,
        Self::NetTransmitBytes,
        Self::NetTransmitPackets,
        Self::NetTransmitErrors,
        Self::NetTransmitDropped,
        Self::FsReadBytes,
        Self::FsWriteBytes,
        Self::FsReads,
        Self::FsWrites,
        Self::Processes,
        Self::Threads,
        Self::ThreadsMax,
        Self::LastSeen,
        Self::StartTime,
        Self::State,
        Self::Health,
        Self::Restarts,
    ];

    /// Name, help, type and extra label (help texts are cAdvisor's).
    fn def(self) -> (&'static str, &'static str, Kind, Extra) {
        use Extra as E;
        use Kind::{Counter as C, Gauge as G};
        match self {
            Self::CpuUsage => (
                "container_cpu_usage_seconds_total",
                "Cumulative cpu time consumed in seconds.",
                C,
                E::None,
            ),
            Self::CpuUser => (
                "container_cpu_user_seconds_total",
                "Cumulative user cpu time consumed in seconds.",
                C,
                E::None,
            ),
            Self::CpuSystem => (
                "container_cpu_system_seconds_total",
                "Cumulative system cpu time consumed in seconds.",
                C,
                E::None,
            ),
            Self::CfsPeriods => (
                "container_cpu_cfs_periods_total",
                "Number of elapsed enforcement period intervals.",
                C,
                E::None,
            ),
            Self::CfsThrottledPeriods => (
                "container_cpu_cfs_throttled_periods_total",
                "Number of throttled period intervals.",
                C,
                E::None,
            ),
            Self::CfsThrottledSeconds => (
                "container_cpu_cfs_throttled_seconds_total",
                "Total time duration the container has been throttled.",
                C,
                E::None,
            ),
            Self::SpecCpuQuota => (
                "container_spec_cpu_quota",
                "CPU quota of the container (microseconds per period).",
                G,
                E::None,
            ),
            Self::SpecCpuPeriod => (
                "container_spec_cpu_period",
                "CPU period of the container (microseconds).",
                G,
                E::None,
            ),
            Self::MemoryUsage => (
                "container_memory_usage_bytes",
                "Current memory usage in bytes, including all memory regardless of when it was accessed.",
                G,
                E::None,
            ),
            Self::MemoryWorkingSet => (
                "container_memory_working_set_bytes",
                "Current working set in bytes.",
                G,
                E::None,
            ),
            Self::MemoryRss => ("container_memory_rss", "Size of RSS in bytes.", G, E::None),
            Self::MemoryCache => (
                "container_memory_cache",
                "Number of bytes of page cache memory.",
                G,
                E::None,
            ),
            Self::MemoryMappedFile => (
                "container_memory_mapped_file",
                "Size of memory mapped files in bytes.",
                G,
                E::None,
            ),
            Self::MemorySwap => (
                "container_memory_swap",
                "Container swap usage in bytes.",
                G,
                E::None,
            ),
            Self::SpecMemoryLimit => (
                "container_spec_memory_limit_bytes",
                "Memory limit for the container (0 when unlimited).",
                G,
                E::None,
            ),
            Self::OomEvents => (
                "container_oom_events_total",
                "Count of out of memory events observed for the container.",
                C,
                E::None,
            ),
            Self::NetReceiveBytes => (
                "container_network_receive_bytes_total",
                "Cumulative count of bytes received.",
                C,
                E::Interface,
            ),
            Self::NetReceivePackets => (
                "container_network_receive_packets_total",
                "Cumulative count of packets received.",
                C,
                E::Interface,
            ),
            Self::NetReceiveErrors => (
                "container_network_receive_errors_total",
                "Cumulative count of errors encountered while receiving.",
                C,
                E::Interface,
            ),
            Self::NetReceiveDropped => (
                "container_network_receive_packets_dropped_total",
                "Cumulative count of packets dropped while receiving.",
                C,
                E::Interface,
            ),
            Self::NetTransmitBytes => (
                "container_network_transmit_bytes_total",
                "Cumulative count of bytes transmitted.",
                C,
                E::Interface,
            ),
            Self::NetTransmitPackets => (
                "container_network_transmit_packets_total",
                "Cumulative count of packets transmitted.",
                C,
                E::Interface,
            ),
            Self::NetTransmitErrors => (
                "container_network_transmit_errors_total",
                "Cumulative count of errors encountered while transmitting.",
                C,
                E::Interface,
            ),
            Self::NetTransmitDropped => (
                "container_network_transmit_packets_dropped_total",
                "Cumulative count of packets dropped while transmitting.",
                C,
                E::Interface,
            ),
            Self::FsReadBytes => (
                "container_fs_reads_bytes_total",
                "Cumulative count of bytes read.",
                C,
                E::Device,
            ),
            Self::FsWriteBytes => (
                "container_fs_writes_bytes_total",
                "Cumulative count of bytes written.",
                C,
                E::Device,
            ),
            Self::FsReads => (
                "container_fs_reads_total",
                "Cumulative count of reads completed.",
                C,
                E::Device,
            ),
            Self::FsWrites => (
                "container_fs_writes_total",
                "Cumulative count of writes completed.",
                C,
                E::Device,
            ),
            Self::Processes => (
                "container_processes",
                "Number of processes running inside the container.",
                G,
                E::None,
            ),
            Self::Threads => (
                "container_threads",
                "Number of threads running inside the container.",
                G,
                E::None,
            ),
            Self::ThreadsMax => (
                "container_threads_max",
                "Maximum number of threads allowed inside the container, infinity if value is zero.",
                G,
                E::None,
            ),
            Self::LastSeen => (
                "container_last_seen",
                "Last time a container was seen by the exporter (unix seconds).",
                G,
                E::None,
            ),
            Self::StartTime => (
                "container_start_time_seconds",
                "Start time of the container since unix epoch in seconds.",
                G,
                E::None,
            ),
            Self::State => (
                "muster_container_state",
                "1 for the container's current Docker state, 0 for the others.",
                G,
                E::State,
            ),
            Self::Health => (
                "muster_container_health",
                "1 for the container's current health check status, 0 for the others.",
                G,
                E::Health,
            ),
            Self::Restarts => (
                "muster_container_restarts_total",
                "Restarts of the container by its restart policy (Docker's RestartCount).",
                C,
                E::None,
            ),
        }
    }
}

/// The families registered in a table for one pass.
#[derive(Debug)]
pub struct Families {
    ids: [FamilyId; F::ALL.len()],
    width: usize,
}

impl Families {
    /// Registers every family with the container labels `names` (`id`,
    /// `image`, `name`, `container_label_*`) plus each one's own label.
    pub fn register(out: &mut SeriesTable, names: &[&str]) -> Self {
        let mut labels: Vec<&str> = Vec::with_capacity(names.len() + 1);
        let ids = F::ALL.map(|f| {
            let (name, help, kind, extra) = f.def();
            labels.clear();
            labels.extend_from_slice(names);
            match extra {
                Extra::None => {}
                Extra::Interface => labels.push("interface"),
                Extra::Device => labels.push("device"),
                Extra::State => labels.push("state"),
                Extra::Health => labels.push("health"),
            }
            out.family(&FamilySpec {
                name,
                help,
                kind,
                labels: &labels,
            })
        });
        Self {
            ids,
            width: names.len() + 1,
        }
    }

    /// Room a label-value vector needs (container labels + one).
    pub fn width(&self) -> usize {
        self.width
    }

    fn id(&self, f: F) -> FamilyId {
        // F::ALL lists every variant in declaration order.
        self.ids[f as usize]
    }

    /// Sets a family without an extra label.
    pub fn set(&self, out: &mut SeriesTable, f: F, values: &[&str], value: f64) {
        out.set(self.id(f), values, value);
    }

    /// Sets a family with an extra label value, restoring `values` after.
    pub fn set_with<'a>(
        &self,
        out: &mut SeriesTable,
        f: F,
        values: &mut Vec<&'a str>,
        extra: &'a str,
        value: f64,
    ) {
        values.push(extra);
        out.set(self.id(f), values, value);
        values.pop();
    }

    /// Sets every series `usage` has a value for. `device_name` gives the
    /// `device` label of `MAJ:MIN`.
    pub fn emit_usage(
        &self,
        out: &mut SeriesTable,
        values: &[&str],
        usage: &Usage,
        mut device_name: impl FnMut(u32, u32) -> String,
    ) {
        let seconds = [
            (F::CpuUsage, usage.cpu_usage_seconds),
            (F::CpuUser, usage.cpu_user_seconds),
            (F::CpuSystem, usage.cpu_system_seconds),
            (F::CfsThrottledSeconds, usage.cfs_throttled_seconds),
        ];
        for (f, v) in seconds {
            if let Some(v) = v {
                self.set(out, f, values, v);
            }
        }
        let counts = [
            (F::CfsPeriods, usage.cfs_periods),
            (F::CfsThrottledPeriods, usage.cfs_throttled_periods),
            (F::SpecCpuQuota, usage.cpu_quota_us),
            (F::SpecCpuPeriod, usage.cpu_period_us),
            (F::MemoryUsage, usage.memory_usage),
            (F::MemoryWorkingSet, usage.working_set()),
            (F::MemoryRss, usage.memory_rss),
            (F::MemoryCache, usage.memory_cache),
            (F::MemoryMappedFile, usage.memory_mapped_file),
            (F::MemorySwap, usage.memory_swap),
            (F::SpecMemoryLimit, usage.memory_limit),
            (F::OomEvents, usage.oom_events),
            (F::Processes, usage.processes),
            (F::Threads, usage.threads),
            (F::ThreadsMax, usage.threads_max),
        ];
        for (f, v) in counts {
            if let Some(v) = v {
                self.set(out, f, values, v as f64);
            }
        }
        let devices: Vec<String> = usage
            .io
            .iter()
            .map(|d| device_name(d.major, d.minor))
            .collect();
        let mut row: Vec<&str> = Vec::with_capacity(values.len() + 1);
        row.extend_from_slice(values);
        for (io, device) in usage.io.iter().zip(&devices) {
            for (f, v) in [
                (F::FsReadBytes, io.read_bytes),
                (F::FsWriteBytes, io.write_bytes),
                (F::FsReads, io.reads),
                (F::FsWrites, io.writes),
            ] {
                self.set_with(out, f, &mut row, device, v as f64);
            }
        }
        for i in &usage.interfaces {
            for (f, v) in [
                (F::NetReceiveBytes, i.receive_bytes),
                (F::NetReceivePackets, i.receive_packets),
                (F::NetReceiveErrors, i.receive_errors),
                (F::NetReceiveDropped, i.receive_dropped),
                (F::NetTransmitBytes, i.transmit_bytes),
                (F::NetTransmitPackets, i.transmit_packets),
                (F::NetTransmitErrors, i.transmit_errors),
                (F::NetTransmitDropped, i.transmit_dropped),
            ] {
                self.set_with(out, f, &mut row, &i.name, v as f64);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_lists_every_family_in_declaration_order() {
        for (i, f) in F::ALL.iter().enumerate() {
            assert_eq!(*f as usize, i, "{f:?}");
        }
    }

    #[test]
    fn names_follow_the_counter_and_unit_rules() {
        let mut seen = std::collections::HashSet::new();
        for f in F::ALL {
            let (name, help, kind, _) = f.def();
            assert!(seen.insert(name), "duplicate {name}");
            assert!(!help.is_empty());
            assert_eq!(kind == Kind::Counter, name.ends_with("_total"), "{name}");
            assert!(
                name.starts_with("container_") || name.starts_with("muster_container_"),
                "{name}"
            );
        }
    }
}
