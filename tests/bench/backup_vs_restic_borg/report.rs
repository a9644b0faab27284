//! The benchmark's output: the fairness line, the table of every figure, the reference lines,
//! and one ratio line per target of the issue, Muster against the better of restic and borg
//! (the faster, or the thriftier), with MET or NOT MET.

use super::dataset::{Dataset, SEED};
use super::{Figures, NAME, Reference, Step};

/// A row of the table: its label and how a tool's cell is written.
type Row<'a> = (&'static str, &'a dyn Fn(&Figures) -> String);

/// One target of the issue.
struct Target {
    metric: &'static str,
    value: fn(&Figures) -> Option<f64>,
    bytes: bool,
    /// Muster's figure over the anchors' best must not exceed this.
    at_most: f64,
    note: &'static str,
}

const TARGETS: [Target; 6] = [
    Target {
        metric: "first_backup_seconds",
        value: |f| seconds(&f.first),
        bytes: false,
        at_most: 0.5,
        note: "",
    },
    Target {
        metric: "restore_seconds",
        // A restore that differs from its source has no time worth comparing.
        value: |f| f.verified.as_ref().ok().and(seconds(&f.restore)),
        bytes: false,
        at_most: 0.5,
        note: "the second snapshot, restore verified",
    },
    Target {
        metric: "second_backup_seconds",
        value: |f| seconds(&f.second),
        bytes: false,
        at_most: 0.3,
        note: "after make-dataset.py modify",
    },
    Target {
        metric: "second_backup_bytes_added",
        value: |f| f.bytes_added().map(|b| b as f64),
        bytes: true,
        at_most: 0.5,
        note: "repository growth on disk",
    },
    Target {
        metric: "repo_bytes",
        value: |f| f.repo.map(|u| u.allocated as f64),
        bytes: true,
        at_most: 1.0,
        note: "on disk after the first backup, caches excluded",
    },
    Target {
        metric: "peak_rss_bytes",
        value: |f| f.peak_rss().map(|b| b as f64),
        bytes: true,
        at_most: 1.0,
        note: "the largest of the tool's two backups and restore",
    },
];

/// What the comparison is and is not.
pub fn print_fairness(data: &Dataset) {
    println!(
        "{NAME} fairness: dataset {} MiB seed {SEED}: {} files, {} bytes. restic encrypts and \
         authenticates everything (it cannot be turned off); borg runs with --encryption none, \
         as Muster has no encryption yet. borg is single-threaded; restic, Muster and \
         tar|zstd -T0 may use both cores. Every tool reads the dataset from a warm page cache \
         and writes its repository, cache and restore on the same file system; the first backup \
         starts with an empty cache, the second with what the first left; each timed step \
         starts after sync, and a restore is timed to the tool's exit.",
        data.size_mib, data.files, data.bytes
    );
}

/// The table: one row per figure, one column per tool; then the reference lines, the
/// failures and the tools' own notes.
pub fn print_table(data: &Dataset, reference: &Reference, figures: &[Figures]) {
    let rows: [Row<'_>; 18] = [
        ("first_backup_seconds", &|f| secs(&f.first)),
        ("first_backup_mb_per_second", &|f| {
            mb_per_second(data.bytes, &f.first)
        }),
        ("first_backup_cpu_seconds", &|f| cpu(&f.first)),
        ("first_backup_peak_rss_bytes", &|f| rss(&f.first)),
        ("repo_bytes (st_blocks)", &|f| {
            opt(f.repo.map(|u| u.allocated))
        }),
        ("repo_file_bytes (lengths)", &|f| {
            opt(f.repo.map(|u| u.apparent))
        }),
        ("repo_files", &|f| opt(f.repo.map(|u| u.files))),
        ("cache_bytes (apart from repo)", &|f| {
            opt(f.cache.map(|u| u.allocated))
        }),
        ("second_backup_seconds", &|f| secs(&f.second)),
        ("second_backup_cpu_seconds", &|f| cpu(&f.second)),
        ("second_backup_peak_rss_bytes", &|f| rss(&f.second)),
        ("second_backup_bytes_added", &|f| opt(f.bytes_added())),
        ("repo_bytes_after_second", &|f| {
            opt(f.repo_after_second.map(|u| u.allocated))
        }),
        ("cache_bytes_after_second", &|f| {
            opt(f.cache_after_second.map(|u| u.allocated))
        }),
        ("restore_seconds", &|f| secs(&f.restore)),
        ("restore_cpu_seconds", &|f| cpu(&f.restore)),
        ("restore_peak_rss_bytes", &|f| rss(&f.restore)),
        ("restore_identical", &|f| match &f.verified {
            Ok(c) => format!("yes:{}", c.entries),
            Err(e) if e.starts_with("MISMATCH") => "MISMATCH".to_owned(),
            Err(_) => "-".to_owned(),
        }),
    ];
    println!(
        "{NAME} figures (bytes on disk are st_blocks x 512; restore_identical: entries compared)"
    );
    let header: String = figures.iter().map(|f| format!("{:>16}", f.name)).collect();
    println!("  {:<32}{header}", "figure");
    for (label, cell) in rows {
        let cells: String = figures.iter().map(|f| format!("{:>16}", cell(f))).collect();
        println!("  {label:<32}{cells}");
    }

    let mb = |seconds: f64| data.bytes as f64 / seconds / 1e6;
    println!(
        "{NAME} reference raw_read_seconds={:.2} ({:.0} MB/s; every file once, one thread, 1 MiB \
         reads, warm page cache; the first pass, which warmed it: {:.2} s)",
        reference.read_seconds,
        mb(reference.read_seconds),
        reference.read_first_seconds
    );
    match (&reference.tar_zstd, reference.tar_zstd_bytes) {
        (Ok(m), Some(bytes)) => println!(
            "{NAME} reference tar_zstd_seconds={:.2} output_bytes={bytes} ({:.0} MB/s, {:.3} of the \
             dataset; tar -cf - | zstd -T0 -3; cpu {:.2} s)",
            m.seconds,
            mb(m.seconds),
            bytes as f64 / data.bytes as f64,
            m.cpu_seconds
        ),
        (Err(e), _) => println!("{NAME} reference tar_zstd FAILED: {e}"),
        (Ok(_), None) => println!("{NAME} reference tar_zstd FAILED: no output file"),
    }

    for f in figures {
        let steps = [
            ("first backup", &f.first),
            ("second backup", &f.second),
            ("restore", &f.restore),
        ];
        if let Some(reason) = &f.unavailable {
            println!("{NAME} {} FAILED: {reason}", f.name);
        } else {
            for (step, result) in steps {
                if let Err(e) = result {
                    println!("{NAME} {} {step} FAILED: {}", f.name, first_line(e));
                }
            }
            if let Err(e) = &f.verified
                && (e.starts_with("MISMATCH") || f.restore.is_ok())
            {
                println!("{NAME} {} restore NOT IDENTICAL: {e}", f.name);
            }
        }
        for note in &f.notes {
            println!("{NAME} {} {note}", f.name);
        }
    }
}

/// One line per target.
pub fn print_ratios(figures: &[Figures], skip_muster: bool) {
    let muster = figures.iter().find(|f| f.name == "muster");
    let anchors: Vec<&Figures> = figures.iter().filter(|f| f.name != "muster").collect();
    for target in &TARGETS {
        let show = |v: Option<f64>| match v {
            Some(v) if target.bytes => format!("{v:.0}"),
            Some(v) => format!("{v:.2}"),
            None => "n/a".to_owned(),
        };
        let best = anchors
            .iter()
            .filter_map(|f| (target.value)(f).map(|v| (f.name, v)))
            .min_by(|a, b| a.1.total_cmp(&b.1));
        let anchor_cells: String = anchors
            .iter()
            .map(|f| format!(" {}={}", f.name, show((target.value)(f))))
            .collect();
        let mine = muster.and_then(|f| (target.value)(f));
        let muster_cell = match (muster, mine) {
            (None, _) if skip_muster => "skipped".to_owned(),
            (_, Some(v)) => show(Some(v)),
            _ => "failed".to_owned(),
        };
        let (ratio, verdict) = match (mine, best) {
            (Some(m), Some((_, b))) if b > 0.0 => {
                let r = m / b;
                let verdict = if r <= target.at_most {
                    "MET"
                } else {
                    "NOT MET"
                };
                (format!("{r:.3}"), verdict.to_owned())
            }
            (None, _) if skip_muster => (
                "n/a".to_owned(),
                "NOT MEASURED (MUSTER_BENCH_SKIP_MUSTER=1)".to_owned(),
            ),
            (None, _) => ("n/a".to_owned(), "NOT MEASURED (muster failed)".to_owned()),
            _ => (
                "n/a".to_owned(),
                "NOT MEASURED (no anchor figure)".to_owned(),
            ),
        };
        let note = if target.note.is_empty() {
            String::new()
        } else {
            format!("; {}", target.note)
        };
        println!(
            "{NAME} {} muster={muster_cell}{anchor_cells} ratio={ratio} (muster / {}{note}; target <= {}) {verdict}",
            target.metric,
            best.map_or("no anchor".to_owned(), |(name, _)| format!(
                "{name}, the better"
            )),
            target.at_most
        );
    }
}

fn seconds(step: &Step) -> Option<f64> {
    step.as_ref().ok().map(|m| m.seconds)
}

fn secs(step: &Step) -> String {
    cell(step, |m| format!("{:.2}", m.seconds))
}

fn cpu(step: &Step) -> String {
    cell(step, |m| format!("{:.2}", m.cpu_seconds))
}

fn rss(step: &Step) -> String {
    cell(step, |m| m.peak_rss_bytes.to_string())
}

fn mb_per_second(bytes: u64, step: &Step) -> String {
    cell(step, |m| format!("{:.1}", bytes as f64 / m.seconds / 1e6))
}

fn cell(step: &Step, show: impl Fn(&super::Measured) -> String) -> String {
    match step {
        Ok(m) => show(m),
        Err(_) => "failed".to_owned(),
    }
}

fn opt(value: Option<u64>) -> String {
    value.map_or("-".to_owned(), |v| v.to_string())
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or("")
}
