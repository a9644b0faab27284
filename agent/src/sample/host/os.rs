//! The `os` sampler: the distribution, from `os-release(5)` under the host's
//! root filesystem. Emits `node_os_info{id,id_like,name,pretty_name,version,
//! version_codename,version_id} 1` and `node_os_version{id,id_like,name}`
//! (the `major.minor` of `VERSION_ID`).
//!
//! Reads `/etc/os-release`, falling back to `/usr/lib/os-release`. Leaves out
//! node_exporter's rarer labels (`build_id`, `image_id`, `image_version`,
//! `variant`, `variant_id`).

use std::borrow::Cow;
use std::path::PathBuf;

use super::read::{as_text, read_into};
use crate::sample::paths::SamplePaths;
use crate::sample::series::{FamilySpec, Kind, SeriesTable};
use crate::sample::{SampleError, Sampler};

/// The `os-release` keys of `node_os_info`, in label order.
const INFO_KEYS: [(&str, &str); 7] = [
    ("ID", "id"),
    ("ID_LIKE", "id_like"),
    ("NAME", "name"),
    ("PRETTY_NAME", "pretty_name"),
    ("VERSION", "version"),
    ("VERSION_CODENAME", "version_codename"),
    ("VERSION_ID", "version_id"),
];
const VERSION_ID: usize = 6;

const INFO: FamilySpec<'static> = FamilySpec {
    name: "node_os_info",
    help: "A metric with a constant '1' value labeled by id, id_like, name, pretty_name, version, version_codename, version_id.",
    kind: Kind::Gauge,
    labels: &[
        "id",
        "id_like",
        "name",
        "pretty_name",
        "version",
        "version_codename",
        "version_id",
    ],
};
const VERSION: FamilySpec<'static> = FamilySpec {
    name: "node_os_version",
    help: "Metric containing the major.minor part of the OS version.",
    kind: Kind::Gauge,
    labels: &["id", "id_like", "name"],
};

/// Samples `os-release` under the rootfs.
#[derive(Debug)]
pub struct OsSampler {
    paths: [PathBuf; 2],
    buf: Vec<u8>,
}

impl OsSampler {
    /// Reads `etc/os-release`, else `usr/lib/os-release`, under `paths.rootfs`.
    pub fn new(paths: &SamplePaths) -> Self {
        Self {
            paths: [
                paths.rootfs_path("/etc/os-release"),
                paths.rootfs_path("/usr/lib/os-release"),
            ],
            buf: Vec::new(),
        }
    }
}

impl Sampler for OsSampler {
    fn name(&self) -> &'static str {
        "os"
    }

    /// # Errors
    /// [`SampleError::Read`] naming the fallback path when neither file
    /// can be read.
    fn sample(&mut self, out: &mut SeriesTable) -> Result<(), SampleError> {
        let [etc, usr_lib] = &self.paths;
        read_into(etc, &mut self.buf).or_else(|_| read_into(usr_lib, &mut self.buf))?;
        let text = as_text(&self.buf);
        let mut values: [Cow<'_, str>; 7] = Default::default();
        let malformed = parse_os_release(&text, |key, value| {
            if let Some(i) = INFO_KEYS.iter().position(|(k, _)| *k == key) {
                values[i] = value;
            }
        });
        out.malformed(malformed);
        let labels = values.each_ref().map(|v| v.as_ref());
        out.set_spec(&INFO, &labels, 1.0);
        if let Some(version) = major_minor(&values[VERSION_ID]) {
            out.set_spec(&VERSION, &labels[..3], version);
        }
        Ok(())
    }
}

/// The leading `major[.minor]` of a `VERSION_ID` as a number (`22.04.4`
/// gives 22.04, `12` gives 12); `None` when it does not start with a digit.
pub fn major_minor(version_id: &str) -> Option<f64> {
    let digits = |s: &str| s.bytes().take_while(u8::is_ascii_digit).count();
    let major = digits(version_id);
    if major == 0 {
        return None;
    }
    let end = match version_id[major..].strip_prefix('.') {
        Some(rest) => major + 1 + digits(rest),
        None => major,
    };
    version_id[..end].trim_end_matches('.').parse().ok()
}

/// Calls `each(key, value)` for every `KEY=value` assignment of
/// `os-release(5)` text, with shell quoting undone (`"..."` with `\`
/// escapes, `'...'` literal, or bare). Comments and blank lines are skipped;
/// returns the number of malformed lines (no `=`, an empty or non-identifier
/// key, an unterminated quote). Allocates only for a value with escapes.
pub fn parse_os_release<'a>(text: &'a str, mut each: impl FnMut(&'a str, Cow<'a, str>)) -> u64 {
    let mut malformed = 0;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        match parse_assignment(line) {
            Some((key, value)) => each(key, value),
            None => malformed += 1,
        }
    }
    malformed
}

fn parse_assignment(line: &str) -> Option<(&str, Cow<'_, str>)> {
    let (key, raw) = line.split_once('=')?;
    let valid_key = !key.is_empty() && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if !valid_key {
        return None;
    }
    let value = if let Some(inner) = raw.strip_prefix('\'') {
        Cow::Borrowed(inner.strip_suffix('\'')?)
    } else if let Some(inner) = raw.strip_prefix('"') {
        unquote_double(inner.strip_suffix('"')?)?
    } else {
        Cow::Borrowed(raw)
    };
    Some((key, value))
}

/// The inside of a double-quoted value: `\"`, `\\`, `\$` and `` \` `` are
/// escapes; an unescaped `"` means the quote ended early (malformed).
fn unquote_double(inner: &str) -> Option<Cow<'_, str>> {
    if !inner.contains(['\\', '"']) {
        return Some(Cow::Borrowed(inner));
    }
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(e @ ('"' | '\\' | '$' | '`')) => out.push(e),
                Some(other) => {
                    out.push('\\');
                    out.push(other);
                }
                None => return None,
            },
            '"' => return None,
            c => out.push(c),
        }
    }
    Some(Cow::Owned(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample::host::testkit::{fixture, live_names, render, round, write};

    fn sample(rel: &str, fixture_name: &str) -> SeriesTable {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), rel, &fixture(fixture_name));
        let mut sampler = OsSampler::new(&SamplePaths::under(dir.path()));
        let mut table = SeriesTable::new();
        round(&mut sampler, &mut table).unwrap();
        table
    }

    #[test]
    fn fixture_sample_gives_exact_series() {
        let table = sample("rootfs/etc/os-release", "os-release");
        assert_eq!(
            render(&table),
            [
                r#"node_os_info{id="debian",id_like="",name="Debian GNU/Linux",pretty_name="Debian GNU/Linux 12 (bookworm)",version="12 (bookworm)",version_codename="bookworm",version_id="12"} 1"#,
                r#"node_os_version{id="debian",id_like="",name="Debian GNU/Linux"} 12"#,
            ]
        );
        assert_eq!(table.malformed_count(), 0);
    }

    #[test]
    fn quoting_fallback_path_and_malformed_lines() {
        let table = sample("rootfs/usr/lib/os-release", "os-release-ubuntu");
        assert_eq!(
            render(&table),
            [
                r#"node_os_info{id="ubuntu",id_like="debian",name="Ubuntu",pretty_name="Ubuntu 22.04.4 LTS",version="22.04.4 LTS (Jammy "Jellyfish")",version_codename="jammy",version_id="22.04"} 1"#,
                r#"node_os_version{id="ubuntu",id_like="debian",name="Ubuntu"} 22.04"#,
            ]
        );
        // "not a key value line" and the unterminated quote.
        assert_eq!(table.malformed_count(), 2);
    }

    #[test]
    fn parsers_never_accept_garbage() {
        assert_eq!(parse_os_release("", |_, _| panic!("no lines")), 0);
        let bad = "=x\nA B=1\nX=\"a\"b\"\nY='open\nZ=\"trailing\\\"\n";
        assert_eq!(parse_os_release(bad, |k, v| panic!("{k}={v}")), 5);
        assert_eq!(major_minor("22.04.4"), Some(22.04));
        assert_eq!(major_minor("12"), Some(12.0));
        assert_eq!(major_minor("7."), Some(7.0));
        assert_eq!(major_minor("rolling"), None);
        assert_eq!(major_minor(""), None);
    }

    #[test]
    fn missing_files_fail_with_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let mut sampler = OsSampler::new(&SamplePaths::under(dir.path()));
        let err = round(&mut sampler, &mut SeriesTable::new()).unwrap_err();
        assert!(err.to_string().contains("usr/lib/os-release"), "{err}");
    }

    #[test]
    fn live_host_has_os_info() {
        let mut sampler = OsSampler::new(&SamplePaths::default());
        let mut table = SeriesTable::new();
        round(&mut sampler, &mut table).unwrap();
        assert!(live_names(&table).contains(&"node_os_info".to_owned()));
        assert!(
            table
                .live()
                .any(|s| s.values.len() == 7 && !s.values[0].is_empty())
        );
    }
}
