//! Block device names for `MAJ:MIN` numbers, read from
//! `/sys/dev/block/MAJ:MIN/uevent` (`DEVNAME=`) once per device and cached.
//!
//! The `device` label is `/dev/<DEVNAME>`, as cAdvisor's. A device whose
//! uevent cannot be read or has no `DEVNAME` keeps `MAJ:MIN` as its label
//! (cached too, so a missing device costs one read, not one per pass).

use std::collections::HashMap;
use std::path::PathBuf;

/// `MAJ:MIN` → `/dev/<name>`, cached for the sampler's lifetime.
#[derive(Debug)]
pub struct DeviceNames {
    sys: PathBuf,
    cache: HashMap<(u32, u32), Box<str>>,
    buf: String,
}

/// Cache size past which it is emptied, so hot-plugged devices can't grow
/// it without bound.
const MAX_CACHED: usize = 4096;

impl DeviceNames {
    /// A cache reading under `sys` (normally `/sys`).
    pub fn new(sys: PathBuf) -> Self {
        Self {
            sys,
            cache: HashMap::new(),
            buf: String::new(),
        }
    }

    /// The label for device `major:minor`.
    pub fn name(&mut self, major: u32, minor: u32) -> &str {
        if self.cache.len() >= MAX_CACHED && !self.cache.contains_key(&(major, minor)) {
            self.cache.clear();
        }
        let Self { sys, cache, buf } = self;
        cache.entry((major, minor)).or_insert_with(|| {
            let path = sys.join(format!("dev/block/{major}:{minor}/uevent"));
            let name = super::cgroup::read_into(&path, buf)
                .ok()
                .and_then(|()| parse_devname(buf));
            match name {
                Some(name) => format!("/dev/{name}").into(),
                None => format!("{major}:{minor}").into(),
            }
        })
    }
}

/// The `DEVNAME=` value of a uevent file.
pub fn parse_devname(text: &str) -> Option<&str> {
    text.lines()
        .find_map(|l| l.strip_prefix("DEVNAME="))
        .map(str::trim)
        .filter(|n| !n.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_come_from_uevent_and_fall_back_to_numbers() {
        let tmp = tempfile::tempdir().unwrap();
        let dev = tmp.path().join("dev/block/254:0");
        std::fs::create_dir_all(&dev).unwrap();
        std::fs::write(
            dev.join("uevent"),
            "MAJOR=254\nMINOR=0\nDEVNAME=vda\nDEVTYPE=disk\n",
        )
        .unwrap();
        let mut names = DeviceNames::new(tmp.path().to_owned());
        assert_eq!(names.name(254, 0), "/dev/vda");
        assert_eq!(names.name(8, 0), "8:0");
        // Cached: removing the file changes nothing.
        std::fs::remove_file(dev.join("uevent")).unwrap();
        assert_eq!(names.name(254, 0), "/dev/vda");
    }

    #[test]
    fn devname_parsing() {
        assert_eq!(parse_devname("MAJOR=8\nDEVNAME=nvme0n1\n"), Some("nvme0n1"));
        assert_eq!(parse_devname("DEVNAME=\n"), None);
        assert_eq!(parse_devname(""), None);
    }
}
