//! The `uname` sampler: `node_uname_info{sysname,release,version,machine,nodename,domainname} 1`,
//! the kernel's identity as `uname -a` shows it.
//!
//! Kernel release, host name and machine come from `sysinfo`'s static calls
//! (the project's host-identity crate). `sysinfo` has no kernel build
//! `version`, no NIS `domainname`, and its `System::name()` is the
//! distribution ("Debian GNU/Linux"), not the kernel's `sysname` ("Linux"),
//! so those three come from `uname(2)` through `nix`. Both read the running
//! kernel, never the `/proc` or rootfs roots: a containerised agent shares
//! the host's kernel, and its UTS namespace unless run with `--uts=host`.

use crate::sample::series::{FamilySpec, Kind, SeriesTable};
use crate::sample::{SampleError, Sampler};

const INFO: FamilySpec<'static> = FamilySpec {
    name: "node_uname_info",
    help: "Labeled system information as provided by the uname system call.",
    kind: Kind::Gauge,
    labels: &[
        "sysname",
        "release",
        "version",
        "machine",
        "nodename",
        "domainname",
    ],
};

/// The six `uname` fields, in [`INFO`]'s label order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UnameFields {
    /// Kernel name, `Linux`.
    pub sysname: String,
    /// Kernel release, `6.8.0-48-generic`.
    pub release: String,
    /// Kernel build, `#49-Ubuntu SMP PREEMPT_DYNAMIC ...`.
    pub version: String,
    /// Hardware, `x86_64`.
    pub machine: String,
    /// Host name.
    pub nodename: String,
    /// NIS domain name, usually `(none)`.
    pub domainname: String,
}

/// Samples the kernel's identity.
#[derive(Debug, Default)]
pub struct UnameSampler;

impl Sampler for UnameSampler {
    fn name(&self) -> &'static str {
        "uname"
    }

    /// # Errors
    /// [`SampleError::Other`] when `uname(2)` fails.
    fn sample(&mut self, out: &mut SeriesTable) -> Result<(), SampleError> {
        let f = read_uname()?;
        out.set_spec(
            &INFO,
            &[
                &f.sysname,
                &f.release,
                &f.version,
                &f.machine,
                &f.nodename,
                &f.domainname,
            ],
            1.0,
        );
        Ok(())
    }
}

/// Reads the running kernel's identity (see the module docs for which
/// source gives which field).
///
/// # Errors
/// [`SampleError::Other`] when `uname(2)` fails.
pub fn read_uname() -> Result<UnameFields, SampleError> {
    let uts = nix::sys::utsname::uname()
        .map_err(|e| SampleError::Other(format!("uname(2) failed: {e}")))?;
    let text = |s: &std::ffi::OsStr| s.to_string_lossy().into_owned();
    Ok(UnameFields {
        sysname: text(uts.sysname()),
        release: sysinfo::System::kernel_version().unwrap_or_else(|_| text(uts.release())),
        version: text(uts.version()),
        machine: sysinfo::System::cpu_arch(),
        nodename: sysinfo::System::host_name().unwrap_or_else(|_| text(uts.nodename())),
        domainname: text(uts.domainname()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample::host::testkit::{live_names, round};

    #[test]
    fn live_host_has_one_info_series_with_every_label() {
        let mut table = SeriesTable::new();
        round(&mut UnameSampler, &mut table).unwrap();
        assert_eq!(live_names(&table), ["node_uname_info"]);
        let series: Vec<_> = table.live().collect();
        assert_eq!(series.len(), 1);
        assert_eq!(series[0].value, 1.0);
        assert_eq!(&*series[0].values[0], "Linux");
        for (label, value) in INFO.labels.iter().zip(series[0].values.iter()) {
            assert!(!value.is_empty(), "{label} is empty");
        }
    }

    #[test]
    fn sysinfo_agrees_with_uname_on_shared_fields() {
        let uts = nix::sys::utsname::uname().unwrap();
        let f = read_uname().unwrap();
        assert_eq!(f.release, uts.release().to_string_lossy());
        assert_eq!(f.machine, uts.machine().to_string_lossy());
        assert_eq!(f.nodename, uts.nodename().to_string_lossy());
    }
}
