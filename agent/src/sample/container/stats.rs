//! The fallback for containers whose cgroup files can't be read (rootless
//! Docker, no cgroup mount in the agent's container): the engine's one-shot
//! stats (`GET /containers/{id}/stats?stream=false&one-shot=true`, API ≥
//! 1.41; one read in milliseconds, research file §5), cached per container.
//!
//! The sampler runs on the blocking pool and must not wait on the network,
//! so it only asks: [`StatsCache::get_or_request`] returns the last fetched
//! [`Usage`] (if younger than [`MAX_AGE`]) and marks the container wanted;
//! the engine task ([`super::engine`]) wakes, fetches every wanted container
//! with a timeout and a small concurrency limit, and stores the answers.
//! So a container's first pass on this path has no usage series; the next
//! one has them.
//!
//! Leaves out what the stats answer does not carry reliably: the memory
//! limit (the engine reports the host's memory for "unlimited"), swap, OOM
//! kills and processes.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bollard::Docker;
use bollard::models::{ContainerBlkioStatEntry, ContainerStatsResponse};
use bollard::query_parameters::StatsOptions;
use futures_util::StreamExt;

use super::usage::{InterfaceUsage, Usage, memory_limit};

/// How old a cached answer may be and still be reported.
pub const MAX_AGE: Duration = Duration::from_secs(30);

/// Per-request timeout of a stats call.
pub const STATS_TIMEOUT: Duration = Duration::from_secs(5);

/// Cached stats answers and the containers the sampler wants refreshed.
#[derive(Debug, Default)]
pub struct StatsCache {
    state: Mutex<StatsState>,
    wake: tokio::sync::Notify,
}

#[derive(Debug, Default)]
struct StatsState {
    wanted: HashSet<String>,
    results: HashMap<String, (Instant, Usage)>,
}

impl StatsCache {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// The latest answer for `id` if fresh, after asking the engine task to
    /// refresh it. Never blocks on the network.
    pub fn get_or_request(&self, id: &str) -> Option<Usage> {
        let fresh = {
            let mut state = self.lock();
            state.wanted.insert(id.to_owned());
            state
                .results
                .get(id)
                .filter(|(at, _)| at.elapsed() <= MAX_AGE)
                .map(|(_, usage)| usage.clone())
        };
        self.wake.notify_one();
        fresh
    }

    /// Drops answers and requests for containers `keep` rejects.
    pub fn retain(&self, keep: impl Fn(&str) -> bool) {
        let mut state = self.lock();
        state.results.retain(|id, _| keep(id));
        state.wanted.retain(|id| keep(id));
    }

    /// Stores an answer.
    pub fn store(&self, id: &str, usage: Usage) {
        self.lock()
            .results
            .insert(id.to_owned(), (Instant::now(), usage));
    }

    /// Waits until the sampler asks for something, then returns the wanted
    /// ids (emptying the set).
    pub async fn wanted(&self) -> Vec<String> {
        loop {
            let ids: Vec<String> = self.lock().wanted.drain().collect();
            if !ids.is_empty() {
                return ids;
            }
            self.wake.notified().await;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, StatsState> {
        // A panic while holding the lock leaves plain data; keep using it.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Fetches one container's one-shot stats.
///
/// # Errors
/// The engine's error or a timeout, as text naming the container.
pub async fn fetch(docker: &Docker, id: &str) -> Result<Usage, String> {
    let options = StatsOptions {
        stream: false,
        one_shot: true,
    };
    let mut stream = docker.stats(id, Some(options));
    match tokio::time::timeout(STATS_TIMEOUT, stream.next()).await {
        Ok(Some(Ok(stats))) => Ok(usage_from_stats(&stats)),
        Ok(Some(Err(err))) => Err(format!("stats of container {id}: {err}")),
        Ok(None) => Err(format!("stats of container {id}: empty answer")),
        Err(_) => Err(format!(
            "stats of container {id}: no answer within {STATS_TIMEOUT:?}"
        )),
    }
}

/// Converts a stats answer (CPU in ns on both cgroup versions; memory keys
/// from v1 `total_*` or v2 `anon`/`file`).
pub fn usage_from_stats(s: &ContainerStatsResponse) -> Usage {
    let mut u = Usage::default();
    if let Some(cpu) = &s.cpu_stats {
        if let Some(usage) = &cpu.cpu_usage {
            u.cpu_usage_seconds = usage.total_usage.map(ns_to_seconds);
            u.cpu_user_seconds = usage.usage_in_usermode.map(ns_to_seconds);
            u.cpu_system_seconds = usage.usage_in_kernelmode.map(ns_to_seconds);
        }
        if let Some(t) = &cpu.throttling_data {
            u.cfs_periods = t.periods;
            u.cfs_throttled_periods = t.throttled_periods;
            u.cfs_throttled_seconds = t.throttled_time.map(ns_to_seconds);
        }
    }
    if let Some(mem) = &s.memory_stats {
        u.memory_usage = mem.usage;
        if let Some(stats) = &mem.stats {
            let v2 = stats.contains_key("anon");
            let key = |v1: &str, v2_key: &str| stats.get(if v2 { v2_key } else { v1 }).copied();
            u.memory_rss = key("total_rss", "anon");
            u.memory_cache = key("total_cache", "file");
            u.memory_mapped_file = key("total_mapped_file", "file_mapped");
            u.memory_inactive_file = key("total_inactive_file", "inactive_file");
        }
    }
    if let Some(pids) = &s.pids_stats {
        u.threads = pids.current;
        u.threads_max = pids.limit.map(|l| memory_limit(Some(l)));
    }
    if let Some(blkio) = &s.blkio_stats {
        add_blkio(&mut u, blkio.io_service_bytes_recursive.as_deref(), true);
        add_blkio(&mut u, blkio.io_serviced_recursive.as_deref(), false);
    }
    if let Some(networks) = &s.networks {
        let mut names: Vec<&String> = networks.keys().collect();
        names.sort();
        for name in names {
            let Some(n) = networks.get(name) else {
                continue;
            };
            u.interfaces.push(InterfaceUsage {
                name: name.clone(),
                receive_bytes: n.rx_bytes.unwrap_or(0),
                receive_packets: n.rx_packets.unwrap_or(0),
                receive_errors: n.rx_errors.unwrap_or(0),
                receive_dropped: n.rx_dropped.unwrap_or(0),
                transmit_bytes: n.tx_bytes.unwrap_or(0),
                transmit_packets: n.tx_packets.unwrap_or(0),
                transmit_errors: n.tx_errors.unwrap_or(0),
                transmit_dropped: n.tx_dropped.unwrap_or(0),
            });
        }
    }
    u
}

fn add_blkio(u: &mut Usage, entries: Option<&[ContainerBlkioStatEntry]>, bytes: bool) {
    for e in entries.unwrap_or_default() {
        let (Some(major), Some(minor), Some(op), Some(value)) =
            (e.major, e.minor, e.op.as_deref(), e.value)
        else {
            continue;
        };
        let (Ok(major), Ok(minor)) = (u32::try_from(major), u32::try_from(minor)) else {
            continue;
        };
        let read = op.eq_ignore_ascii_case("read");
        if !read && !op.eq_ignore_ascii_case("write") {
            continue;
        }
        u.add_io(major, minor, |d| match (bytes, read) {
            (true, true) => d.read_bytes += value,
            (true, false) => d.write_bytes += value,
            (false, true) => d.reads += value,
            (false, false) => d.writes += value,
        });
    }
}

fn ns_to_seconds(ns: u64) -> f64 {
    ns as f64 / 1e9
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample::container::usage::DeviceIo;

    #[test]
    fn v2_stats_answer_converts() {
        let raw = r#"{
            "id": "abc", "name": "/web",
            "cpu_stats": {"cpu_usage": {"total_usage": 2500000000, "usage_in_usermode": 2000000000, "usage_in_kernelmode": 500000000},
                          "throttling_data": {"periods": 10, "throttled_periods": 2, "throttled_time": 300000000}},
            "memory_stats": {"usage": 1000, "limit": 8000000000, "stats": {"anon": 600, "file": 300, "file_mapped": 50, "inactive_file": 200}},
            "pids_stats": {"current": 3, "limit": 18446744073709551615},
            "blkio_stats": {"io_service_bytes_recursive": [
                {"major": 8, "minor": 0, "op": "read", "value": 4096},
                {"major": 8, "minor": 0, "op": "write", "value": 512}]},
            "networks": {"eth1": {"rx_bytes": 7, "tx_bytes": 8}, "eth0": {"rx_bytes": 10, "rx_packets": 2, "tx_bytes": 20, "tx_packets": 3}}
        }"#;
        let stats: ContainerStatsResponse = serde_json::from_str(raw).unwrap();
        let u = usage_from_stats(&stats);
        assert_eq!(
            (
                u.cpu_usage_seconds,
                u.cpu_user_seconds,
                u.cpu_system_seconds
            ),
            (Some(2.5), Some(2.0), Some(0.5))
        );
        assert_eq!(
            (
                u.cfs_periods,
                u.cfs_throttled_periods,
                u.cfs_throttled_seconds
            ),
            (Some(10), Some(2), Some(0.3))
        );
        assert_eq!(
            (
                u.memory_usage,
                u.working_set(),
                u.memory_rss,
                u.memory_cache
            ),
            (Some(1000), Some(800), Some(600), Some(300))
        );
        assert_eq!(
            u.memory_limit, None,
            "the stats limit is not the container's"
        );
        assert_eq!((u.threads, u.threads_max), (Some(3), Some(0)));
        assert_eq!(
            u.io,
            vec![DeviceIo {
                major: 8,
                minor: 0,
                read_bytes: 4096,
                write_bytes: 512,
                reads: 0,
                writes: 0
            }]
        );
        let names: Vec<_> = u.interfaces.iter().map(|i| i.name.as_str()).collect();
        assert_eq!(names, ["eth0", "eth1"]);
        assert_eq!(
            (
                u.interfaces[0].receive_bytes,
                u.interfaces[0].transmit_packets
            ),
            (10, 3)
        );
    }

    #[test]
    fn v1_stats_answer_uses_totals() {
        let raw = r#"{"memory_stats": {"usage": 5000, "stats": {"total_rss": 100, "total_cache": 200, "total_inactive_file": 150, "total_mapped_file": 9, "rss": 1}},
                      "blkio_stats": {"io_serviced_recursive": [{"major": 254, "minor": 0, "op": "Read", "value": 4}, {"major": 254, "minor": 0, "op": "Total", "value": 4}]}}"#;
        let stats: ContainerStatsResponse = serde_json::from_str(raw).unwrap();
        let u = usage_from_stats(&stats);
        assert_eq!(
            (
                u.memory_rss,
                u.memory_cache,
                u.memory_mapped_file,
                u.working_set()
            ),
            (Some(100), Some(200), Some(9), Some(4850))
        );
        assert_eq!(
            u.io,
            vec![DeviceIo {
                major: 254,
                minor: 0,
                reads: 4,
                ..DeviceIo::default()
            }]
        );
        assert_eq!(u.cpu_usage_seconds, None);
    }

    #[test]
    fn cache_answers_only_fresh_values_and_collects_requests() {
        let cache = StatsCache::new();
        assert_eq!(cache.get_or_request("a"), None);
        cache.store(
            "a",
            Usage {
                memory_usage: Some(1),
                ..Usage::default()
            },
        );
        assert_eq!(
            cache.get_or_request("a").and_then(|u| u.memory_usage),
            Some(1)
        );
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        assert_eq!(rt.block_on(cache.wanted()), vec!["a".to_owned()]);
        cache.get_or_request("b");
        cache.retain(|id| id != "b");
        cache.retain(|id| id != "a");
        assert_eq!(cache.get_or_request("a"), None, "forgotten");
    }
}
