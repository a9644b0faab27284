//! One container's numbers from one pass, whatever their source: the cgroup
//! v2 or v1 files ([`super::cgroup_v2`], [`super::cgroup_v1`]) or the Docker
//! engine's one-shot stats ([`super::stats`]).
//!
//! Every field is optional: a file that does not exist on this kernel (no
//! swap accounting, no pids controller) leaves its field `None`, and the
//! sampler emits no series for it rather than a made-up zero. Units are
//! already converted to what the series carry (seconds, bytes, counts).

/// Block I/O of one device, as `io.stat` (v2) or `blkio.throttle.*` (v1)
/// report it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeviceIo {
    /// Device major number.
    pub major: u32,
    /// Device minor number.
    pub minor: u32,
    /// Bytes read.
    pub read_bytes: u64,
    /// Bytes written.
    pub write_bytes: u64,
    /// Read operations completed.
    pub reads: u64,
    /// Write operations completed.
    pub writes: u64,
}

/// Counters of one network interface inside the container's namespace.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InterfaceUsage {
    /// Interface name as the container sees it (`eth0`).
    pub name: String,
    /// Bytes received.
    pub receive_bytes: u64,
    /// Packets received.
    pub receive_packets: u64,
    /// Receive errors.
    pub receive_errors: u64,
    /// Received packets dropped.
    pub receive_dropped: u64,
    /// Bytes sent.
    pub transmit_bytes: u64,
    /// Packets sent.
    pub transmit_packets: u64,
    /// Transmit errors.
    pub transmit_errors: u64,
    /// Sent packets dropped.
    pub transmit_dropped: u64,
}

/// A container's usage; `None` means "not available here", never zero.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Usage {
    /// Total CPU time, seconds.
    pub cpu_usage_seconds: Option<f64>,
    /// CPU time in user mode, seconds.
    pub cpu_user_seconds: Option<f64>,
    /// CPU time in kernel mode, seconds.
    pub cpu_system_seconds: Option<f64>,
    /// CFS enforcement periods elapsed.
    pub cfs_periods: Option<u64>,
    /// CFS periods in which the container was throttled.
    pub cfs_throttled_periods: Option<u64>,
    /// Time throttled, seconds.
    pub cfs_throttled_seconds: Option<f64>,
    /// CFS quota per period, microseconds; `None` when unlimited.
    pub cpu_quota_us: Option<u64>,
    /// CFS period, microseconds.
    pub cpu_period_us: Option<u64>,
    /// Memory in use, bytes (`memory.current`, `memory.usage_in_bytes`).
    pub memory_usage: Option<u64>,
    /// Inactive file-backed memory, bytes (for the working set).
    pub memory_inactive_file: Option<u64>,
    /// Anonymous memory (RSS), bytes.
    pub memory_rss: Option<u64>,
    /// Page cache, bytes.
    pub memory_cache: Option<u64>,
    /// Memory-mapped files, bytes.
    pub memory_mapped_file: Option<u64>,
    /// Swap in use, bytes.
    pub memory_swap: Option<u64>,
    /// Memory limit, bytes; `Some(0)` when unlimited, as cAdvisor reports it.
    pub memory_limit: Option<u64>,
    /// OOM kills in the container's cgroup.
    pub oom_events: Option<u64>,
    /// Processes (lines of `cgroup.procs`).
    pub processes: Option<u64>,
    /// Tasks, i.e. threads (`pids.current`).
    pub threads: Option<u64>,
    /// Task limit (`pids.max`); `Some(0)` when unlimited, as cAdvisor.
    pub threads_max: Option<u64>,
    /// Block I/O per device.
    pub io: Vec<DeviceIo>,
    /// Network interfaces (only from the stats fallback; the cgroup path
    /// reads `/proc/<pid>/net/dev` separately).
    pub interfaces: Vec<InterfaceUsage>,
}

/// Above this a memory limit means "unlimited" (the kernel rounds
/// `i64::MAX` down to a page multiple): cAdvisor's `maxMemorySize`, 2^62.
pub const UNLIMITED_MEMORY: u64 = 1 << 62;

impl Usage {
    /// `usage − inactive_file`, floored at 0: cAdvisor's working set.
    pub fn working_set(&self) -> Option<u64> {
        let usage = self.memory_usage?;
        Some(usage.saturating_sub(self.memory_inactive_file.unwrap_or(0)))
    }

    /// Empties the value for reuse, keeping the vectors' capacity.
    pub fn clear(&mut self) {
        let mut io = std::mem::take(&mut self.io);
        let mut interfaces = std::mem::take(&mut self.interfaces);
        io.clear();
        interfaces.clear();
        *self = Self {
            io,
            interfaces,
            ..Self::default()
        };
    }

    /// Adds `value` to the device's entry, creating it when new.
    pub fn add_io(&mut self, major: u32, minor: u32, add: impl FnOnce(&mut DeviceIo)) {
        if let Some(entry) = self
            .io
            .iter_mut()
            .find(|d| d.major == major && d.minor == minor)
        {
            add(entry);
        } else {
            let mut entry = DeviceIo {
                major,
                minor,
                ..DeviceIo::default()
            };
            add(&mut entry);
            self.io.push(entry);
        }
    }
}

/// A memory limit as cAdvisor reports it: 0 when unlimited.
pub fn memory_limit(limit: Option<u64>) -> u64 {
    match limit {
        Some(v) if v <= UNLIMITED_MEMORY => v,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn working_set_is_usage_minus_inactive_file_floored_at_zero() {
        let mut u = Usage {
            memory_usage: Some(100),
            memory_inactive_file: Some(30),
            ..Usage::default()
        };
        assert_eq!(u.working_set(), Some(70));
        u.memory_inactive_file = Some(300);
        assert_eq!(u.working_set(), Some(0));
        u.memory_usage = None;
        assert_eq!(u.working_set(), None);
    }

    #[test]
    fn unlimited_memory_is_zero() {
        assert_eq!(memory_limit(None), 0);
        assert_eq!(memory_limit(Some(9_223_372_036_854_771_712)), 0);
        assert_eq!(memory_limit(Some(512 << 20)), 512 << 20);
    }

    #[test]
    fn clear_keeps_capacity() {
        let mut u = Usage::default();
        u.add_io(8, 0, |d| d.read_bytes += 5);
        u.add_io(8, 0, |d| d.write_bytes += 7);
        assert_eq!(u.io.len(), 1);
        assert_eq!((u.io[0].read_bytes, u.io[0].write_bytes), (5, 7));
        u.cpu_usage_seconds = Some(1.0);
        u.clear();
        assert!(u.io.is_empty() && u.io.capacity() >= 1);
        assert_eq!(u.cpu_usage_seconds, None);
    }
}
