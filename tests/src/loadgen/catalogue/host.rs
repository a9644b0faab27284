//! node_exporter's host families: CPU per core and mode, load, kernel counters, meminfo,
//! filesystems, disks and network devices, with node_exporter's names, labels and units.

use super::{Builder, C, CPU_MODES, CPUS, G, HUNDREDTHS, INT, MILLIS, PAGES, SECTORS};
use crate::loadgen::values::{Quantum, Shape};

impl Builder {
    pub(super) fn cpu(&mut self) {
        let load = self.pick("load", 0.2, 1.8);
        self.family("node_cpu_seconds_total", C);
        for cpu in 0..CPUS {
            let cpu = cpu.to_string();
            for mode in CPU_MODES {
                let busy = match mode {
                    "user" => 0.10 * load,
                    "system" => 0.04 * load,
                    "iowait" => 0.015,
                    "softirq" => 0.006,
                    "steal" => 0.004,
                    "nice" => 0.001,
                    "irq" => 0.0,
                    _ => 1.0 - 0.166 * load,
                };
                let shape = if busy == 0.0 {
                    Shape::Constant(0.0)
                } else {
                    self.counter(&format!("cpu{cpu}{mode}"), busy, HUNDREDTHS)
                };
                self.series(&[("cpu", &cpu), ("mode", mode)], shape);
            }
        }
    }

    pub(super) fn host_gauges_and_counters(&mut self) {
        let load = self.pick("load", 0.2, 1.8) * CPUS as f64 * 0.2;
        for (name, mean) in [
            ("node_load1", load),
            ("node_load5", load),
            ("node_load15", load),
        ] {
            self.family(name, G);
            let noise = if name == "node_load1" { 0.5 } else { 0.1 };
            let shape = self.gauge(name, mean, noise, HUNDREDTHS);
            self.series(&[], shape);
        }
        for (name, rate) in [
            ("node_context_switches_total", 4_000.0),
            ("node_intr_total", 2_500.0),
            ("node_forks_total", 3.0),
        ] {
            self.family(name, C);
            let shape = self.counter(name, rate, INT);
            self.series(&[], shape);
        }
        for (name, mean) in [("node_procs_running", 3.0), ("node_procs_blocked", 0.3)] {
            self.family(name, G);
            let shape = self.gauge(name, mean, 1.0, INT);
            self.series(&[], shape);
        }
        self.family("node_boot_time_seconds", G);
        let boot = 1.7e9 - self.uptime().floor();
        self.series(&[], Shape::Constant(boot));
        self.family("node_filefd_allocated", G);
        let shape = self.gauge("filefd", 3_000.0, 0.01, INT);
        self.series(&[], shape);
        self.family("node_filefd_maximum", G);
        self.series(&[], Shape::Constant(9_223_372_036_854_775_807.0));
        self.family("node_uname_info", G);
        self.series(
            &[
                ("machine", "x86_64"),
                ("nodename", &self.out.host.clone()),
                ("release", "6.1.0-28-amd64"),
                ("sysname", "Linux"),
                ("version", "#1 SMP PREEMPT_DYNAMIC Debian 6.1.119-1"),
            ],
            Shape::Constant(1.0),
        );
    }

    pub(super) fn meminfo(&mut self) {
        let gib = [4.0, 8.0, 16.0, 32.0][(self.pick("memsize", 0.0, 4.0) as usize).min(3)];
        let total = gib * 1_073_741_824.0 * 0.97;
        let fixed = |f: f64| Shape::Constant((total * f / 4096.0).floor() * 4096.0);
        // (name, share of MemTotal, moving)
        let fields: [(&'static str, f64, bool); 34] = [
            ("node_memory_MemTotal_bytes", 1.0, false),
            ("node_memory_MemFree_bytes", 0.12, true),
            ("node_memory_MemAvailable_bytes", 0.55, true),
            ("node_memory_Buffers_bytes", 0.02, true),
            ("node_memory_Cached_bytes", 0.40, true),
            ("node_memory_SwapCached_bytes", 0.0, false),
            ("node_memory_Active_bytes", 0.35, true),
            ("node_memory_Inactive_bytes", 0.30, true),
            ("node_memory_Active_anon_bytes", 0.20, true),
            ("node_memory_Inactive_anon_bytes", 0.05, true),
            ("node_memory_Active_file_bytes", 0.15, true),
            ("node_memory_Inactive_file_bytes", 0.25, true),
            ("node_memory_Unevictable_bytes", 0.001, false),
            ("node_memory_Mlocked_bytes", 0.001, false),
            ("node_memory_SwapTotal_bytes", 0.0, false),
            ("node_memory_SwapFree_bytes", 0.0, false),
            ("node_memory_Dirty_bytes", 0.0005, true),
            ("node_memory_Writeback_bytes", 0.0, false),
            ("node_memory_AnonPages_bytes", 0.22, true),
            ("node_memory_Mapped_bytes", 0.05, true),
            ("node_memory_Shmem_bytes", 0.01, true),
            ("node_memory_KReclaimable_bytes", 0.04, true),
            ("node_memory_Slab_bytes", 0.06, true),
            ("node_memory_SReclaimable_bytes", 0.04, true),
            ("node_memory_SUnreclaim_bytes", 0.02, true),
            ("node_memory_KernelStack_bytes", 0.002, true),
            ("node_memory_PageTables_bytes", 0.005, true),
            ("node_memory_CommitLimit_bytes", 0.5, false),
            ("node_memory_Committed_AS_bytes", 0.45, true),
            ("node_memory_VmallocUsed_bytes", 0.003, true),
            ("node_memory_Percpu_bytes", 0.0005, false),
            ("node_memory_DirectMap4k_bytes", 0.02, false),
            ("node_memory_DirectMap2M_bytes", 0.9, false),
            ("node_memory_DirectMap1G_bytes", 0.08, false),
        ];
        for (name, share, moving) in fields {
            self.family(name, G);
            let shape = if moving {
                self.gauge(name, total * share, 0.02, PAGES)
            } else {
                fixed(share)
            };
            self.series(&[], shape);
        }
    }

    pub(super) fn filesystems(&mut self) {
        let mounts = [
            ("/dev/vda1", "ext4", "/", 100e9),
            ("/dev/vdb1", "xfs", "/var/lib/docker", 400e9),
            ("tmpfs", "tmpfs", "/run", 1.6e9),
            ("/dev/vda15", "vfat", "/boot/efi", 0.13e9),
        ];
        let families: [(&'static str, usize); 7] = [
            ("node_filesystem_avail_bytes", 0),
            ("node_filesystem_free_bytes", 1),
            ("node_filesystem_size_bytes", 2),
            ("node_filesystem_files", 3),
            ("node_filesystem_files_free", 4),
            ("node_filesystem_readonly", 5),
            ("node_filesystem_device_error", 6),
        ];
        for (name, what) in families {
            self.family(name, G);
            for (device, fstype, mountpoint, size) in mounts {
                let size = (size / 4096.0_f64).floor() * 4096.0;
                let tag = format!("{name}{mountpoint}");
                let free = size * self.pick(mountpoint, 0.2, 0.8);
                // Free space drifts down slowly as logs and images grow.
                let drift = |b: &Self| Shape::Counter {
                    base: free,
                    rate: -b.pick(&tag, 50.0, 5_000.0),
                    quantum: PAGES,
                };
                let shape = match what {
                    0 => drift(self),
                    1 => drift(self),
                    2 => Shape::Constant(size),
                    3 => Shape::Constant((size / 16_384.0).floor()),
                    4 => self.gauge(&tag, size / 20_000.0, 0.0001, INT),
                    _ => Shape::Constant(0.0),
                };
                let labels = [
                    ("device", device),
                    ("fstype", fstype),
                    ("mountpoint", mountpoint),
                ];
                self.series(&labels, shape);
            }
        }
    }

    pub(super) fn disks(&mut self) {
        let families: [(&'static str, &'static str, f64, Quantum); 17] = [
            ("node_disk_reads_completed_total", C, 20.0, INT),
            ("node_disk_reads_merged_total", C, 2.0, INT),
            ("node_disk_read_bytes_total", C, 300_000.0, SECTORS),
            ("node_disk_read_time_seconds_total", C, 0.02, MILLIS),
            ("node_disk_writes_completed_total", C, 40.0, INT),
            ("node_disk_writes_merged_total", C, 30.0, INT),
            ("node_disk_written_bytes_total", C, 800_000.0, SECTORS),
            ("node_disk_write_time_seconds_total", C, 0.05, MILLIS),
            ("node_disk_io_now", G, 0.5, INT),
            ("node_disk_io_time_seconds_total", C, 0.03, MILLIS),
            ("node_disk_io_time_weighted_seconds_total", C, 0.07, MILLIS),
            ("node_disk_discards_completed_total", C, 0.01, INT),
            ("node_disk_discards_merged_total", C, 0.0, INT),
            ("node_disk_discarded_sectors_total", C, 5.0, INT),
            ("node_disk_discard_time_seconds_total", C, 0.0001, MILLIS),
            ("node_disk_flush_requests_total", C, 1.0, INT),
            (
                "node_disk_flush_requests_time_seconds_total",
                C,
                0.001,
                MILLIS,
            ),
        ];
        for (name, kind, rate, quantum) in families {
            self.family(name, kind);
            for device in ["vda", "vdb"] {
                let tag = format!("{name}{device}");
                let shape = if kind == G {
                    self.gauge(&tag, rate, 2.0, quantum)
                } else if rate == 0.0 {
                    Shape::Constant(0.0)
                } else {
                    self.counter(&tag, rate, quantum)
                };
                self.series(&[("device", device)], shape);
            }
        }
    }

    pub(super) fn netdev(&mut self) {
        let families: [(&'static str, f64); 8] = [
            ("node_network_receive_bytes_total", 200_000.0),
            ("node_network_receive_packets_total", 300.0),
            ("node_network_receive_errs_total", 0.0),
            ("node_network_receive_drop_total", 0.001),
            ("node_network_transmit_bytes_total", 150_000.0),
            ("node_network_transmit_packets_total", 250.0),
            ("node_network_transmit_errs_total", 0.0),
            ("node_network_transmit_drop_total", 0.0),
        ];
        let devices = [("eth0", 1.0), ("docker0", 0.3), ("lo", 0.1)];
        for (name, rate) in families {
            self.family(name, C);
            for (device, share) in devices {
                let shape = if rate == 0.0 {
                    Shape::Constant(0.0)
                } else {
                    self.counter(&format!("{name}{device}"), rate * share, INT)
                };
                self.series(&[("device", device)], shape);
            }
        }
        self.family("node_network_up", G);
        for (device, _) in devices {
            self.series(&[("device", device)], Shape::Constant(1.0));
        }
    }
}
