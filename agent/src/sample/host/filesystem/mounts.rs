//! The mount table (`/proc/<pid>/mounts`, fstab format): parsing, and the
//! reused list of mounts the `filesystem` sampler stats.
//!
//! Owns octal unescaping of device and mount point fields (`\040` is a
//! space) and node_exporter's de-duplication of mount points mounted twice.
//! Leaves out `mountinfo` (bind-mount roots, propagation).

use std::borrow::Cow;

/// One line of a mount table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount<'a> {
    /// What is mounted (`/dev/vda1`, `tmpfs`, `server:/export`), unescaped.
    pub device: Cow<'a, str>,
    /// Where, unescaped (`/mnt/my share`).
    pub mount_point: Cow<'a, str>,
    /// The filesystem type (`ext4`, `nfs4`).
    pub fs_type: &'a str,
    /// Whether the options hold `ro`.
    pub read_only: bool,
}

/// Calls `each` for every line of mount table text; returns the number of
/// malformed lines skipped (fewer than four fields: device, mount point,
/// type, options). Allocates only to unescape a field holding `\ooo`.
pub fn parse_mounts(text: &str, mut each: impl FnMut(&Mount<'_>)) -> u64 {
    let mut malformed = 0;
    for line in text.lines() {
        if line.trim().is_empty() {
            continue;
        }
        let mut fields = line.split_ascii_whitespace();
        let (Some(device), Some(mount_point), Some(fs_type), Some(options)) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            malformed += 1;
            continue;
        };
        each(&Mount {
            device: unescape(device),
            mount_point: unescape(mount_point),
            fs_type,
            read_only: options.split(',').any(|o| o == "ro"),
        });
    }
    malformed
}

/// Undoes the kernel's `\ooo` octal escapes (space, tab, newline, backslash
/// in `mangle()`); an invalid escape is kept as written.
pub fn unescape(field: &str) -> Cow<'_, str> {
    if !field.contains('\\') {
        return Cow::Borrowed(field);
    }
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        let octal = bytes.get(i + 1..i + 4).and_then(|d| {
            let digits = std::str::from_utf8(d).ok()?;
            digits
                .bytes()
                .all(|c| (b'0'..=b'7').contains(&c))
                .then(|| u8::from_str_radix(digits, 8).ok())?
        });
        match (b, octal) {
            (b'\\', Some(decoded)) => {
                out.push(decoded);
                i += 4;
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}

/// A mount to stat, kept between rounds so its strings are reused.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MountEntry {
    /// The device label.
    pub device: String,
    /// The fstype label.
    pub fs_type: String,
    /// The mountpoint label.
    pub mount_point: String,
    /// From the `ro` option.
    pub read_only: bool,
}

/// The mounts of one round: a list whose entries (and their strings) are
/// reused round after round.
#[derive(Debug, Default)]
pub struct MountList {
    entries: Vec<MountEntry>,
    len: usize,
}

impl MountList {
    /// Empties the list, keeping its storage.
    pub fn clear(&mut self) {
        self.len = 0;
    }

    /// Adds `mount`, or overwrites the entry with the same mount point: the
    /// later line is the mount on top, the one `statvfs` sees (node_exporter
    /// also reports a mount point once).
    pub fn push(&mut self, mount: &Mount<'_>) {
        let existing = self.entries[..self.len]
            .iter()
            .position(|e| e.mount_point == *mount.mount_point);
        let index = existing.unwrap_or(self.len);
        if index == self.entries.len() {
            self.entries.push(MountEntry::default());
        }
        if existing.is_none() {
            self.len += 1;
        }
        let entry = &mut self.entries[index];
        assign(&mut entry.device, &mount.device);
        assign(&mut entry.fs_type, mount.fs_type);
        assign(&mut entry.mount_point, &mount.mount_point);
        entry.read_only = mount.read_only;
    }

    /// The mounts of this round, in first-seen order.
    pub fn entries(&self) -> &[MountEntry] {
        &self.entries[..self.len]
    }
}

fn assign(target: &mut String, value: &str) {
    target.clear();
    target.push_str(value);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unescapes_octal_and_keeps_invalid_escapes() {
        assert_eq!(unescape("/mnt/my\\040share"), "/mnt/my share");
        assert_eq!(unescape("/a\\011b\\134c"), "/a\tb\\c");
        assert_eq!(unescape("/odd\\9x\\"), "/odd\\9x\\");
        assert_eq!(unescape("/a\\04"), "/a\\04");
        assert!(matches!(unescape("/plain"), Cow::Borrowed(_)));
    }

    #[test]
    fn parses_fields_and_read_only() {
        let mut got = Vec::new();
        let malformed = parse_mounts(
            "/dev/vdb1 /data xfs ro,relatime 0 0\nserver:/x /mnt/a\\040b nfs4 rw,roothash=1 0 0\n",
            |m| got.push(m.clone().into_owned()),
        );
        assert_eq!(malformed, 0);
        assert_eq!(
            got[0],
            (
                "/dev/vdb1".to_owned(),
                "/data".to_owned(),
                "xfs".to_owned(),
                true
            )
        );
        assert_eq!(
            got[1],
            (
                "server:/x".to_owned(),
                "/mnt/a b".to_owned(),
                "nfs4".to_owned(),
                false
            )
        );
    }

    #[test]
    fn truncated_lines_are_counted() {
        let text = "/dev/vda / ext4 rw 0 0\n/dev/vdb /b\n/dev/vdc /c ext4\n\nx\n";
        let mut mount_points = Vec::new();
        let malformed = parse_mounts(text, |m| mount_points.push(m.mount_point.to_string()));
        assert_eq!(malformed, 3);
        assert_eq!(mount_points, ["/"]);
        assert_eq!(parse_mounts("", |_| panic!("no lines")), 0);
    }

    #[test]
    fn a_mount_point_mounted_twice_is_listed_once_last_wins() {
        let mut list = MountList::default();
        let text = "/dev/a /data xfs ro 0 0\n/dev/r / ext4 rw 0 0\n/dev/b /data ext4 rw 0 0\n";
        parse_mounts(text, |m| list.push(m));
        let got: Vec<(&str, &str, bool)> = list
            .entries()
            .iter()
            .map(|e| (e.device.as_str(), e.mount_point.as_str(), e.read_only))
            .collect();
        assert_eq!(got, [("/dev/b", "/data", false), ("/dev/r", "/", false)]);
        list.clear();
        assert!(list.entries().is_empty());
        parse_mounts("/dev/r / ext4 rw 0 0\n", |m| list.push(m));
        assert_eq!(list.entries().len(), 1);
        assert_eq!(list.entries.len(), 2, "storage kept for the next round");
    }

    impl Mount<'_> {
        fn into_owned(self) -> (String, String, String, bool) {
            (
                self.device.into_owned(),
                self.mount_point.into_owned(),
                self.fs_type.to_owned(),
                self.read_only,
            )
        }
    }
}
