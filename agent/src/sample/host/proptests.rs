//! Every `parse_*` of the host samplers, fed arbitrary text: none panics,
//! and none reports more malformed lines than the text has.

use proptest::prelude::*;

use super::{
    cpu, diskstats, filefd, filesystem::mounts, hwmon, loadavg, meminfo, netdev, os, stat,
};

/// Text shaped like kernel files: digits, separators, keys and junk.
fn procfs_text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "([a-z_()A-Z0-9:|'\"\\\\=.# \t-]{0,40}\n){0,12}",
        "((cpu[0-9x]{0,3}|intr|ctxt|btime|[a-z]{1,4}[0-9]?:?) ([0-9]{1,22} ?){0,20}\n){0,8}",
    ]
}

fn lines(text: &str) -> u64 {
    text.lines().count() as u64
}

proptest! {
    #[test]
    fn parsers_never_panic(text in procfs_text()) {
        let n = lines(&text);
        prop_assert!(cpu::parse_cpu_lines(&text, |_, s| assert!(s.present >= 4)) <= n);
        prop_assert!(stat::parse_stat(&text, |_, v| assert!(v >= 0.0)) <= n);
        prop_assert!(meminfo::parse_meminfo(&text, |f| assert!(f.value >= 0.0)) <= n);
        prop_assert!(netdev::parse_net_dev(&text, |name, _| assert!(!name.is_empty())) <= n);
        prop_assert!(diskstats::parse_diskstats(&text, |_, s| assert!(s.present <= 17)) <= n);
        prop_assert!(mounts::parse_mounts(&text, |m| assert!(!m.fs_type.is_empty())) <= n);
        prop_assert!(os::parse_os_release(&text, |k, _| assert!(!k.is_empty())) <= n);
        let _ = loadavg::parse_loadavg(&text);
        let _ = filefd::parse_file_nr(&text);
        let _ = hwmon::parse_millidegrees(&text);
        let _ = hwmon::parse_temp_file_name(&text);
        let _ = os::major_minor(&text);
        let _ = mounts::unescape(&text);
        let mut out = String::new();
        hwmon::clean_name(&text, &mut out);
        prop_assert!(!out.starts_with('_') && !out.ends_with('_'));
        meminfo::metric_name(&text, true, &mut out);
    }
}
