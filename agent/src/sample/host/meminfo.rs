//! The `meminfo` sampler: every `/proc/meminfo` field as
//! `node_memory_<Key>_bytes` (or `node_memory_<Key>` for unitless counts such
//! as `HugePages_Total`), as node_exporter names them.
//!
//! Names come from the data, so they are built in reused strings and the
//! table registers each family once. Leaves out node_exporter's
//! `meminfo_numa` (per-node `/sys/devices/system/node/*/meminfo`).

use std::path::PathBuf;

use super::read::{as_text, parse_u64, read_into};
use crate::sample::paths::SamplePaths;
use crate::sample::series::{FamilySpec, Kind, SeriesTable};
use crate::sample::{SampleError, Sampler};

/// One `/proc/meminfo` field.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MeminfoField<'a> {
    /// The key as written, e.g. `Active(anon)`.
    pub key: &'a str,
    /// Bytes when `is_bytes` (the kB figure × 1024), else the bare count.
    pub value: f64,
    /// Whether the line carried the `kB` unit.
    pub is_bytes: bool,
}

/// Samples `/proc/meminfo`.
#[derive(Debug)]
pub struct MeminfoSampler {
    path: PathBuf,
    buf: Vec<u8>,
    name: String,
    help: String,
}

impl MeminfoSampler {
    /// Reads `meminfo` under `paths.proc`.
    pub fn new(paths: &SamplePaths) -> Self {
        Self {
            path: paths.proc_file("meminfo"),
            buf: Vec::new(),
            name: String::new(),
            help: String::new(),
        }
    }
}

impl Sampler for MeminfoSampler {
    fn name(&self) -> &'static str {
        "meminfo"
    }

    fn sample(&mut self, out: &mut SeriesTable) -> Result<(), SampleError> {
        read_into(&self.path, &mut self.buf)?;
        let text = as_text(&self.buf);
        let (name, help) = (&mut self.name, &mut self.help);
        let malformed = parse_meminfo(&text, |field| {
            metric_name(field.key, field.is_bytes, name);
            help.clear();
            help.push_str("Memory information field ");
            help.push_str(name.trim_start_matches("node_memory_"));
            help.push('.');
            let spec = FamilySpec {
                name,
                help,
                kind: Kind::Gauge,
                labels: &[],
            };
            out.set_spec(&spec, &[], field.value);
        });
        out.malformed(malformed);
        Ok(())
    }
}

/// Writes node_exporter's name for `key` into `name`: `Active(anon)` becomes
/// `node_memory_Active_anon_bytes`; without a unit, no `_bytes`.
pub fn metric_name(key: &str, is_bytes: bool, name: &mut String) {
    name.clear();
    name.push_str("node_memory_");
    for c in key.chars() {
        match c {
            '(' => name.push('_'),
            ')' => {}
            c => name.push(c),
        }
    }
    if is_bytes {
        name.push_str("_bytes");
    }
}

/// Calls `each` for every `Key: value [kB]` line of `/proc/meminfo` text;
/// returns the number of malformed lines skipped: no `:`, a key that is empty
/// or holds characters other than ASCII letters, digits, `_` and parentheses,
/// a value that is missing or not a `u64`, a unit other than `kB`, or extra
/// fields. Allocates nothing.
pub fn parse_meminfo(text: &str, mut each: impl FnMut(MeminfoField<'_>)) -> u64 {
    let mut malformed = 0;
    for line in text.lines() {
        if line.trim().is_empty() {
            continue;
        }
        match parse_line(line) {
            Some(field) => each(field),
            None => malformed += 1,
        }
    }
    malformed
}

fn parse_line(line: &str) -> Option<MeminfoField<'_>> {
    let (key, rest) = line.split_once(':')?;
    let valid_key = !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'(' | b')'));
    if !valid_key {
        return None;
    }
    let mut fields = rest.split_ascii_whitespace();
    let value = parse_u64(fields.next()?)? as f64;
    let is_bytes = match fields.next() {
        None => false,
        Some("kB") => true,
        Some(_) => return None,
    };
    if fields.next().is_some() {
        return None;
    }
    Some(MeminfoField {
        key,
        value: if is_bytes { value * 1024.0 } else { value },
        is_bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample::host::testkit::{fixture, live_names, render, round, write};

    fn sample_fixture(name: &str) -> (MeminfoSampler, SeriesTable) {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "proc/meminfo", &fixture(name));
        let mut sampler = MeminfoSampler::new(&SamplePaths::under(dir.path()));
        let mut table = SeriesTable::new();
        round(&mut sampler, &mut table).unwrap();
        (sampler, table)
    }

    #[test]
    fn names_follow_node_exporter() {
        let mut name = String::new();
        metric_name("Active(anon)", true, &mut name);
        assert_eq!(name, "node_memory_Active_anon_bytes");
        metric_name("HugePages_Total", false, &mut name);
        assert_eq!(name, "node_memory_HugePages_Total");
        metric_name("MemTotal", true, &mut name);
        assert_eq!(name, "node_memory_MemTotal_bytes");
    }

    #[test]
    fn fixture_sample_gives_exact_series() {
        let (_, table) = sample_fixture("meminfo");
        assert_eq!(
            render(&table),
            [
                "node_memory_Active_anon_bytes 1605632",
                "node_memory_Buffers_bytes 18812928",
                "node_memory_Cached_bytes 7477600256",
                "node_memory_Committed_AS_bytes 571375616",
                "node_memory_DirectMap4k_bytes 29360128",
                "node_memory_HugePages_Free 1",
                "node_memory_HugePages_Total 2",
                "node_memory_Hugepagesize_bytes 2097152",
                "node_memory_Inactive_file_bytes 4903256064",
                "node_memory_MemAvailable_bytes 23960805376",
                "node_memory_MemFree_bytes 16488599552",
                "node_memory_MemTotal_bytes 25276510208",
                "node_memory_SwapCached_bytes 0",
                "node_memory_SwapTotal_bytes 0",
                "node_memory_VmallocTotal_bytes 35184372087808",
            ]
        );
        let help = table
            .families()
            .iter()
            .find(|f| &*f.name == "node_memory_MemTotal_bytes");
        assert_eq!(
            help.map(|f| &*f.help),
            Some("Memory information field MemTotal_bytes.")
        );
        assert!(table.families().iter().all(|f| f.kind == Kind::Gauge));
    }

    #[test]
    fn malformed_lines_are_counted_and_good_ones_kept() {
        let (_, table) = sample_fixture("meminfo_malformed");
        // no colon, non-numeric, no value, u64 overflow, MB unit, space in key, empty key.
        assert_eq!(table.malformed_count(), 7);
        assert_eq!(
            render(&table),
            [
                "node_memory_Active_anon_bytes 1605632",
                "node_memory_HugePages_Total 2",
                "node_memory_MemTotal_bytes 25276510208",
            ]
        );
        assert_eq!(parse_meminfo("", |_| panic!("no fields")), 0);
        assert_eq!(
            parse_meminfo("MemTotal: 1 kB extra\n", |_| panic!("extra field")),
            1
        );
    }

    #[test]
    fn steady_state_creates_no_new_series() {
        let (mut sampler, mut table) = sample_fixture("meminfo");
        let (live, families) = (table.live_count(), table.families().len());
        let capacities = (sampler.name.capacity(), sampler.help.capacity());
        // The fixture dir is gone; sample the same text from a new one.
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "proc/meminfo", &fixture("meminfo"));
        sampler.path = dir.path().join("proc/meminfo");
        round(&mut sampler, &mut table).unwrap();
        assert_eq!(
            (table.live_count(), table.families().len()),
            (live, families)
        );
        assert_eq!(
            (sampler.name.capacity(), sampler.help.capacity()),
            capacities
        );
    }

    #[test]
    fn live_host_has_memtotal_and_available() {
        let mut sampler = MeminfoSampler::new(&SamplePaths::default());
        let mut table = SeriesTable::new();
        round(&mut sampler, &mut table).unwrap();
        let names = live_names(&table);
        for name in [
            "node_memory_MemTotal_bytes",
            "node_memory_MemAvailable_bytes",
        ] {
            assert!(names.iter().any(|n| n == name), "{name}");
        }
        assert!(names.len() > 10);
        assert_eq!(table.malformed_count(), 0);
    }
}
