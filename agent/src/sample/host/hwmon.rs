//! The `hwmon` sampler: temperature sensors from `/sys/class/hwmon`.
//!
//! Each `hwmonN` folder is a chip. Its `chip` label is derived as
//! node_exporter does, so it is stable across reboots: from the `device`
//! symlink's target (`platform_coretemp_0`), else the `name` file, else the
//! folder name (`hwmon3`). Sensor files are read from the folder and from its
//! `device` folder. Emits `node_hwmon_temp_{,max_,crit_}celsius{chip,sensor}`,
//! `node_hwmon_chip_names{chip,chip_name}` and
//! `node_hwmon_sensor_label{chip,label,sensor}`. Leaves out fans, voltages,
//! power, current, humidity and alarms (node_exporter's other hwmon series).

use std::io;
use std::path::{Path, PathBuf};

use super::read::{as_text, read_into};
use crate::sample::paths::SamplePaths;
use crate::sample::series::{FamilySpec, Kind, SeriesTable};
use crate::sample::{SampleError, Sampler};

const fn gauge(
    name: &'static str,
    help: &'static str,
    labels: &'static [&'static str],
) -> FamilySpec<'static> {
    FamilySpec {
        name,
        help,
        kind: Kind::Gauge,
        labels,
    }
}

const TEMP: FamilySpec<'static> = gauge(
    "node_hwmon_temp_celsius",
    "Hardware monitor for temperature (input)",
    &["chip", "sensor"],
);
const TEMP_MAX: FamilySpec<'static> = gauge(
    "node_hwmon_temp_max_celsius",
    "Hardware monitor for temperature (max)",
    &["chip", "sensor"],
);
const TEMP_CRIT: FamilySpec<'static> = gauge(
    "node_hwmon_temp_crit_celsius",
    "Hardware monitor for temperature (crit)",
    &["chip", "sensor"],
);
const CHIP_NAMES: FamilySpec<'static> = gauge(
    "node_hwmon_chip_names",
    "Annotation metric for human-readable chip names",
    &["chip", "chip_name"],
);
const SENSOR_LABEL: FamilySpec<'static> = gauge(
    "node_hwmon_sensor_label",
    "Label for given chip and sensor",
    &["chip", "label", "sensor"],
);

/// A temperature file's property: `temp<N>_<property>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TempProperty {
    /// `_input`: the reading.
    Input,
    /// `_max`: the high limit.
    Max,
    /// `_crit`: the critical limit.
    Crit,
    /// `_label`: the sensor's name from the driver (`Core 0`).
    Label,
}

/// Samples `/sys/class/hwmon`.
#[derive(Debug)]
pub struct HwmonSampler {
    class_dir: PathBuf,
    buf: Vec<u8>,
    chip_name: String,
    sensor: String,
}

impl HwmonSampler {
    /// Reads `class/hwmon` under `paths.sys`.
    pub fn new(paths: &SamplePaths) -> Self {
        Self {
            class_dir: paths.sys_file("class/hwmon"),
            buf: Vec::new(),
            chip_name: String::new(),
            sensor: String::new(),
        }
    }

    /// Reads one chip folder: its names and its temperature sensors.
    fn sample_chip(&mut self, dir: &Path, out: &mut SeriesTable) {
        let chip = hwmon_chip(dir);
        if read_into(&dir.join("name"), &mut self.buf).is_ok() {
            clean_name(&as_text(&self.buf), &mut self.chip_name);
            if !self.chip_name.is_empty() {
                out.set_spec(&CHIP_NAMES, &[&chip, &self.chip_name], 1.0);
            }
        }
        let device = dir.join("device");
        for folder in [dir, device.as_path()] {
            let Ok(entries) = std::fs::read_dir(folder) else {
                continue;
            };
            for entry in entries.flatten() {
                let file_name = entry.file_name();
                let Some((number, property)) = file_name.to_str().and_then(parse_temp_file_name)
                else {
                    continue;
                };
                // Unreadable sensor files (EIO, ENODATA from a sensor that is
                // off) are skipped silently, as node_exporter does.
                if read_into(&entry.path(), &mut self.buf).is_err() {
                    continue;
                }
                self.sensor.clear();
                self.sensor.push_str("temp");
                self.sensor.push_str(number);
                let text = as_text(&self.buf);
                let labels = [chip.as_str(), self.sensor.as_str()];
                let spec = match property {
                    TempProperty::Label => {
                        let label = text.trim_end_matches('\n');
                        out.set_spec(&SENSOR_LABEL, &[&chip, label, &self.sensor], 1.0);
                        continue;
                    }
                    TempProperty::Input => &TEMP,
                    TempProperty::Max => &TEMP_MAX,
                    TempProperty::Crit => &TEMP_CRIT,
                };
                match parse_millidegrees(&text) {
                    Some(celsius) => out.set_spec(spec, &labels, celsius),
                    None => out.malformed(1),
                }
            }
        }
    }
}

impl Sampler for HwmonSampler {
    fn name(&self) -> &'static str {
        "hwmon"
    }

    /// # Errors
    /// [`SampleError::NoData`] when the host has no hwmon chips (a VM, a
    /// container without `/sys`), [`SampleError::Read`] when the folder
    /// cannot be listed.
    fn sample(&mut self, out: &mut SeriesTable) -> Result<(), SampleError> {
        let entries = match std::fs::read_dir(&self.class_dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(SampleError::NoData(format!(
                    "no {}",
                    self.class_dir.display()
                )));
            }
            Err(e) => return Err(SampleError::read(&self.class_dir, e)),
        };
        let mut chips = 0;
        for entry in entries.flatten() {
            let dir = entry.path();
            // Entries are symlinks into /sys/devices; follow them.
            if !std::fs::metadata(&dir).is_ok_and(|m| m.is_dir()) {
                continue;
            }
            chips += 1;
            self.sample_chip(&dir, out);
        }
        if chips == 0 {
            return Err(SampleError::NoData(format!(
                "no chips in {}",
                self.class_dir.display()
            )));
        }
        Ok(())
    }
}

/// node_exporter's `hwmonName`: `<bus>_<device>` from the `device` symlink's
/// target (`/sys/devices/platform/coretemp.0` gives `platform_coretemp_0`),
/// else the cleaned `name` file, else the folder's own name (`hwmon3`).
pub fn hwmon_chip(dir: &Path) -> String {
    let mut name = String::new();
    let mut kind = String::new();
    if let Ok(device) = std::fs::canonicalize(dir.join("device")) {
        let file_name = |p: Option<&Path>| {
            p.and_then(Path::file_name)
                .map(|n| n.to_string_lossy().into_owned())
        };
        clean_name(&file_name(Some(&device)).unwrap_or_default(), &mut name);
        clean_name(&file_name(device.parent()).unwrap_or_default(), &mut kind);
        match (kind.is_empty(), name.is_empty()) {
            (false, false) => return format!("{kind}_{name}"),
            (true, false) => return name,
            _ => {}
        }
    }
    if let Ok(text) = std::fs::read_to_string(dir.join("name")) {
        clean_name(&text, &mut name);
        if !name.is_empty() {
            return name;
        }
    }
    let real = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    clean_name(
        &real
            .file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default(),
        &mut name,
    );
    name
}

/// node_exporter's `cleanMetricName`: lower case, anything but `[a-z0-9:_]`
/// becomes `_`, then `_` trimmed from both ends. Written into `out`.
pub fn clean_name(raw: &str, out: &mut String) {
    out.clear();
    for c in raw.chars().flat_map(char::to_lowercase) {
        let c = if c.is_ascii_lowercase() || c.is_ascii_digit() || c == ':' {
            c
        } else {
            '_'
        };
        if !(c == '_' && out.is_empty()) {
            out.push(c);
        }
    }
    while out.ends_with('_') {
        out.pop();
    }
}

/// Splits a sensor file name `temp<N>_<property>` into the number's digits
/// and the property; `None` for other files (`fan1_input`, `name`, `uevent`).
pub fn parse_temp_file_name(file_name: &str) -> Option<(&str, TempProperty)> {
    let rest = file_name.strip_prefix("temp")?;
    let (number, property) = rest.split_once('_')?;
    if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let property = match property {
        "input" => TempProperty::Input,
        "max" => TempProperty::Max,
        "crit" => TempProperty::Crit,
        "label" => TempProperty::Label,
        _ => return None,
    };
    Some((number, property))
}

/// A sysfs temperature (integer millidegrees Celsius, may be negative) in
/// degrees; `None` if it is not an `i64`.
pub fn parse_millidegrees(text: &str) -> Option<f64> {
    text.trim().parse::<i64>().ok().map(|m| m as f64 / 1000.0)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use super::*;
    use crate::sample::host::testkit::{render, round, write};

    /// A coretemp chip reached through a class symlink with a `device` link,
    /// an ACPI zone with only a `name`, and a bare folder with neither.
    fn fake_sysfs(root: &Path) {
        let coretemp = "sys/devices/platform/coretemp.0/hwmon/hwmon1";
        for (file, text) in [
            ("name", "coretemp\n"),
            ("temp1_input", "45000\n"),
            ("temp1_max", "84000\n"),
            ("temp1_crit", "100000\n"),
            ("temp1_label", "Package id 0\n"),
            ("temp2_input", "43500\n"),
            ("temp2_label", "Core 0\n"),
            ("temp3_input", "garbage\n"),
            ("temp4_input", "99999999999999999999999\n"),
            ("fan1_input", "1200\n"),
            ("uevent", ""),
        ] {
            write(root, &format!("{coretemp}/{file}"), text);
        }
        symlink("../../../coretemp.0", root.join(coretemp).join("device")).unwrap();
        write(
            root,
            "sys/devices/platform/coretemp.0/temp5_input",
            "30000\n",
        );
        write(
            root,
            "sys/devices/virtual/thermal/thermal_zone0/hwmon0/name",
            "acpitz\n",
        );
        write(
            root,
            "sys/devices/virtual/thermal/thermal_zone0/hwmon0/temp1_input",
            "27800\n",
        );
        write(root, "sys/class/hwmon/hwmon2/temp1_input", "-5000\n");
        write(root, "sys/class/hwmon/not-a-dir", "");
        symlink(root.join(coretemp), root.join("sys/class/hwmon/hwmon1")).unwrap();
        symlink(
            root.join("sys/devices/virtual/thermal/thermal_zone0/hwmon0"),
            root.join("sys/class/hwmon/hwmon0"),
        )
        .unwrap();
    }

    #[test]
    fn chip_names_follow_node_exporter() {
        let dir = tempfile::tempdir().unwrap();
        fake_sysfs(dir.path());
        let class = dir.path().join("sys/class/hwmon");
        assert_eq!(hwmon_chip(&class.join("hwmon1")), "platform_coretemp_0");
        assert_eq!(hwmon_chip(&class.join("hwmon0")), "acpitz");
        assert_eq!(hwmon_chip(&class.join("hwmon2")), "hwmon2");
    }

    #[test]
    fn fake_sysfs_gives_exact_series() {
        let dir = tempfile::tempdir().unwrap();
        fake_sysfs(dir.path());
        let mut sampler = HwmonSampler::new(&SamplePaths::under(dir.path()));
        let mut table = SeriesTable::new();
        round(&mut sampler, &mut table).unwrap();
        assert_eq!(
            render(&table),
            [
                r#"node_hwmon_chip_names{chip="acpitz",chip_name="acpitz"} 1"#,
                r#"node_hwmon_chip_names{chip="platform_coretemp_0",chip_name="coretemp"} 1"#,
                r#"node_hwmon_sensor_label{chip="platform_coretemp_0",label="Core 0",sensor="temp2"} 1"#,
                r#"node_hwmon_sensor_label{chip="platform_coretemp_0",label="Package id 0",sensor="temp1"} 1"#,
                r#"node_hwmon_temp_celsius{chip="acpitz",sensor="temp1"} 27.8"#,
                r#"node_hwmon_temp_celsius{chip="hwmon2",sensor="temp1"} -5"#,
                r#"node_hwmon_temp_celsius{chip="platform_coretemp_0",sensor="temp1"} 45"#,
                r#"node_hwmon_temp_celsius{chip="platform_coretemp_0",sensor="temp2"} 43.5"#,
                r#"node_hwmon_temp_celsius{chip="platform_coretemp_0",sensor="temp5"} 30"#,
                r#"node_hwmon_temp_crit_celsius{chip="platform_coretemp_0",sensor="temp1"} 100"#,
                r#"node_hwmon_temp_max_celsius{chip="platform_coretemp_0",sensor="temp1"} 84"#,
            ]
        );
        // temp3 is not a number, temp4 overflows i64.
        assert_eq!(table.malformed_count(), 2);
    }

    #[test]
    fn no_hwmon_folder_or_no_chips_is_no_data() {
        let dir = tempfile::tempdir().unwrap();
        let mut sampler = HwmonSampler::new(&SamplePaths::under(dir.path()));
        let mut table = SeriesTable::new();
        let err = round(&mut sampler, &mut table).unwrap_err();
        assert!(matches!(err, SampleError::NoData(_)), "{err}");
        std::fs::create_dir_all(dir.path().join("sys/class/hwmon")).unwrap();
        let err = round(&mut sampler, &mut table).unwrap_err();
        assert!(matches!(err, SampleError::NoData(_)), "{err}");
    }

    #[test]
    fn parsers_reject_what_is_not_a_temperature() {
        assert_eq!(
            parse_temp_file_name("temp12_input"),
            Some(("12", TempProperty::Input))
        );
        assert_eq!(
            parse_temp_file_name("temp1_crit"),
            Some(("1", TempProperty::Crit))
        );
        for name in [
            "temp_input",
            "tempx_input",
            "temp1",
            "temp1_fault",
            "fan1_input",
            "name",
            "",
        ] {
            assert_eq!(parse_temp_file_name(name), None, "{name}");
        }
        assert_eq!(parse_millidegrees("-1500\n"), Some(-1.5));
        for text in ["", "x", "1.5", "99999999999999999999"] {
            assert_eq!(parse_millidegrees(text), None, "{text}");
        }
        let mut out = String::new();
        clean_name("  Core 0 (pkg)\n", &mut out);
        assert_eq!(out, "core_0__pkg");
        clean_name("coretemp.0", &mut out);
        assert_eq!(out, "coretemp_0");
        clean_name("___", &mut out);
        assert_eq!(out, "");
    }

    #[test]
    fn live_host_has_chips_or_no_data() {
        let mut sampler = HwmonSampler::new(&SamplePaths::default());
        let mut table = SeriesTable::new();
        match round(&mut sampler, &mut table) {
            Ok(()) => assert!(table.live().all(|s| !s.values[0].is_empty())),
            Err(SampleError::NoData(_)) => assert_eq!(table.live_count(), 0),
            Err(e) => panic!("hwmon failed on this host: {e}"),
        }
    }
}
