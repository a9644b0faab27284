//! `backup_vs_restic_borg`: Muster's backup (`muster-agent backup`) against Debian's restic
//! 0.14 (repository v2, `--compression auto`) and borg 1.2 (`--compression zstd,3`,
//! `--encryption none`) on the seeded 1 GiB tree of `make-dataset.py`, in one run, with
//! `tar | zstd -T0 -3` and a plain read of every file as the physical reference.
//!
//! The sequence, each tool in a fresh folder of its own (repository, cache, config, logs):
//!
//! 1. The dataset, generated once into `MUSTER_BENCH_DATA` and reused (see `dataset.rs`),
//!    checked pristine.
//! 2. Reading every file twice, one thread, 1 MiB reads: the first pass warms the page
//!    cache, the second is the raw-read reference. Every tool then reads from that cache.
//! 3. `tar -cf - DATA | zstd -T0 -3`: time and output size.
//! 4. For each tool, with the dataset checked pristine: init (not timed), the first backup
//!    (time, CPU, peak RSS), the repository's size on disk and, apart, its cache's.
//! 5. `make-dataset.py modify` (about 1 % of the files changed), then for each tool the second
//!    backup, with the cache the first one left (time, CPU, peak RSS, and the bytes the
//!    repository grew by).
//! 6. For each tool, a restore of its latest snapshot (the second) into an empty folder on the
//!    same file system (time, CPU, peak RSS), compared with the modified tree it holds: paths,
//!    kinds, modes, sizes, mtimes and contents (`tree.rs`). A difference fails that tool.
//! 7. `make-dataset.py revert`, then the table and one ratio line per target of the issue,
//!    Muster against the better of restic and borg.
//!
//! Every timed step starts after `sync`, so it does not pay for the previous step's
//! writeback. Every child runs under GNU time with a time limit and is killed with its
//! descendants past it (`child.rs`). Nothing asserts on a figure; the exit status is 1 when
//! a tool failed or a restore differed.
//!
//! Run: `cargo build --release --workspace --bins && cargo bench -p muster-tests --bench
//! backup_vs_restic_borg`. Needs python3 and Debian's restic, borgbackup, zstd and time.
//! `MUSTER_BENCH_DATA` (default `target/bench-data` in the workspace) holds the dataset and
//! the run's folders; `MUSTER_BENCH_SIZE_MIB` (default 1024) sizes it;
//! `MUSTER_BENCH_SKIP_MUSTER=1` runs the anchors alone; `MUSTER_BENCH_KEEP=1` keeps the
//! run's repositories, restores and logs; `MUSTER_BENCH_LIMIT_SECONDS` (default 600) bounds
//! each step of a tool; `MUSTER_BENCH_DATASET_SCRIPT` replaces the generator (default: the
//! copy in `backup_vs_restic_borg/`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

#[path = "backup_vs_restic_borg/borg.rs"]
mod borg;
#[path = "backup_vs_restic_borg/child.rs"]
mod child;
#[path = "common/mod.rs"]
mod common;
#[path = "backup_vs_restic_borg/dataset.rs"]
mod dataset;
#[path = "backup_vs_restic_borg/muster.rs"]
mod muster;
#[path = "backup_vs_restic_borg/report.rs"]
mod report;
#[path = "backup_vs_restic_borg/restic.rs"]
mod restic;
#[path = "backup_vs_restic_borg/steps.rs"]
mod steps;
#[path = "backup_vs_restic_borg/tree.rs"]
mod tree;

use std::path::{Path, PathBuf};
use std::process::Command;

use child::Measured;
use dataset::Dataset;
use nix::fcntl::{Flock, FlockArg};
use tree::{Compared, Usage};

const NAME: &str = "backup_vs_restic_borg";
/// Below this the generator's text category is empty and `modify` fails.
const MIN_SIZE_MIB: u64 = 128;

/// One backup tool, its commands built for its own folder.
pub trait Tool {
    /// Its name in the output.
    fn name(&self) -> &'static str;
    /// Its folder of the run.
    fn dir(&self) -> &ToolDir;
    /// Why it cannot run, if it cannot; checked before anything is timed.
    fn unavailable(&self) -> Option<String>;
    /// The command printing its version.
    fn version(&self) -> Command;
    /// The command creating its repository, when that is a step of its own (not timed).
    fn init(&self) -> Option<Command> {
        None
    }
    /// A backup of `data` as snapshot (archive) `label`.
    fn backup(&self, data: &Path, label: &str) -> Command;
    /// A restore of snapshot `label`, the latest, into the empty folder `target`.
    fn restore(&self, label: &str, target: &Path) -> Command;
    /// What a backup's stdout says worth recording, if anything.
    fn backup_note(&self, _stdout: &str) -> Option<String> {
        None
    }
}

/// A tool's folder of the run: `repo/`, `cache/` (every cache it keeps, `XDG_CACHE_HOME`
/// included), `config/`, `logs/` and `restore/`.
#[derive(Debug, Clone)]
pub struct ToolDir {
    root: PathBuf,
}

impl ToolDir {
    fn new(run: &Path, name: &str) -> Self {
        let root = run.join(name);
        for sub in ["cache", "config", "logs"] {
            std::fs::create_dir_all(root.join(sub)).unwrap();
        }
        Self { root }
    }
    pub fn repo(&self) -> PathBuf {
        self.root.join("repo")
    }
    pub fn cache(&self) -> PathBuf {
        self.root.join("cache")
    }
    pub fn config(&self) -> PathBuf {
        self.root.join("config")
    }
    pub fn logs(&self) -> PathBuf {
        self.root.join("logs")
    }
    pub fn restore(&self) -> PathBuf {
        self.root.join("restore")
    }
}

/// A timed step: what it cost, or why it has no figures.
pub type Step = Result<Measured, String>;

/// One tool's figures.
#[derive(Debug)]
pub struct Figures {
    pub name: &'static str,
    pub first: Step,
    /// Repository and cache after the first backup.
    pub repo: Option<Usage>,
    pub cache: Option<Usage>,
    pub second: Step,
    pub repo_after_second: Option<Usage>,
    pub cache_after_second: Option<Usage>,
    pub restore: Step,
    pub verified: Result<Compared, String>,
    /// Why it could not run at all.
    pub unavailable: Option<String>,
    pub notes: Vec<String>,
}

impl Figures {
    fn new(name: &'static str, unavailable: Option<String>) -> Self {
        let reason = unavailable.clone().unwrap_or_else(|| "not run".to_owned());
        Self {
            name,
            first: Err(reason.clone()),
            repo: None,
            cache: None,
            second: Err(reason.clone()),
            repo_after_second: None,
            cache_after_second: None,
            restore: Err(reason.clone()),
            verified: Err(reason),
            unavailable,
            notes: Vec::new(),
        }
    }

    /// Bytes the repository grew by in the second backup.
    pub fn bytes_added(&self) -> Option<u64> {
        Some(
            self.repo_after_second?
                .allocated
                .saturating_sub(self.repo?.allocated),
        )
    }

    /// The largest peak RSS of its two backups and its restore, when all three ran.
    pub fn peak_rss(&self) -> Option<u64> {
        [&self.first, &self.second, &self.restore]
            .iter()
            .map(|s| s.as_ref().ok().map(|m| m.peak_rss_bytes))
            .collect::<Option<Vec<_>>>()
            .and_then(|v| v.into_iter().max())
    }

    /// Whether every step ran and the restore was identical.
    pub fn ok(&self) -> bool {
        self.first.is_ok() && self.second.is_ok() && self.restore.is_ok() && self.verified.is_ok()
    }
}

/// The physical reference.
#[derive(Debug)]
pub struct Reference {
    /// Seconds of the first read of every file (warming the page cache), and the second.
    pub read_first_seconds: f64,
    pub read_seconds: f64,
    /// `tar | zstd -T0 -3`.
    pub tar_zstd: Step,
    pub tar_zstd_bytes: Option<u64>,
}

fn main() {
    let skip_muster = env_flag("MUSTER_BENCH_SKIP_MUSTER");
    let keep = env_flag("MUSTER_BENCH_KEEP");
    if !skip_muster {
        common::require_release_bins(&["muster-agent"]);
    }
    for (binary, package) in [
        (child::GNU_TIME, "time"),
        ("/usr/bin/zstd", "zstd"),
        ("/usr/bin/python3", "python3"),
    ] {
        if !Path::new(binary).is_file() {
            common::give_up(&format!(
                "{binary} is missing: apt-get install -y --no-install-recommends {package}"
            ));
        }
    }
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate is in the workspace");
    let cache = std::env::var_os("MUSTER_BENCH_DATA")
        .map_or_else(|| workspace.join("target/bench-data"), PathBuf::from);
    let size_mib: u64 = std::env::var("MUSTER_BENCH_SIZE_MIB")
        .ok()
        .map(|v| v.parse().expect("MUSTER_BENCH_SIZE_MIB is a whole number"))
        .unwrap_or(1024);
    if size_mib < MIN_SIZE_MIB {
        common::give_up(&format!(
            "MUSTER_BENCH_SIZE_MIB={size_mib}: at least {MIN_SIZE_MIB} (the generator's 10,000 \
             small files take about 45 MiB, and `modify` needs every category non-empty)"
        ));
    }
    let script = std::env::var_os("MUSTER_BENCH_DATASET_SCRIPT").map_or_else(
        || {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("bench/backup_vs_restic_borg/make-dataset.py")
        },
        PathBuf::from,
    );

    println!(
        "{NAME} reproduce: cargo build --release --workspace --bins && MUSTER_BENCH_DATA={} \
         MUSTER_BENCH_SIZE_MIB={size_mib}{} cargo bench -p muster-tests --bench {NAME}",
        cache.display(),
        if skip_muster {
            " MUSTER_BENCH_SKIP_MUSTER=1"
        } else {
            ""
        }
    );
    eprintln!(
        "{NAME}: load1 at start {}, MemAvailable {}",
        common::load1(),
        mem_available()
    );

    std::fs::create_dir_all(&cache).unwrap();
    let _lock = lock_cache(&cache);
    let run_dir = tempfile::Builder::new()
        .prefix("run-")
        .tempdir_in(&cache)
        .unwrap();
    let run = run_dir.path().to_path_buf();
    // Dropping the TempDir removes the run's folder, also on a panic.
    let run_dir = if keep {
        eprintln!("{NAME}: keeping {}", run_dir.keep().display());
        None
    } else {
        Some(run_dir)
    };
    let logs = run.join("logs");

    let data = Dataset::prepare(&cache, size_mib, &script, &logs)
        .unwrap_or_else(|e| abandon(&run, keep, &format!("dataset: {e:#}")));
    data.ensure_pristine()
        .unwrap_or_else(|e| abandon(&run, keep, &format!("dataset: {e:#}")));

    let mut tools: Vec<Box<dyn Tool>> = Vec::new();
    if !skip_muster {
        tools.push(Box::new(muster::Muster::new(ToolDir::new(&run, "muster"))));
    }
    tools.push(Box::new(restic::Restic::new(ToolDir::new(&run, "restic"))));
    tools.push(Box::new(borg::Borg::new(ToolDir::new(&run, "borg"))));
    let mut figures: Vec<Figures> = Vec::new();
    for tool in &tools {
        let unavailable = tool.unavailable();
        match &unavailable {
            // The anchors are what the figures are measured against.
            Some(reason) if tool.name() != "muster" => abandon(&run, keep, reason),
            Some(reason) => eprintln!("{NAME}: {} FAILED: {reason}", tool.name()),
            None => {}
        }
        figures.push(Figures::new(tool.name(), unavailable));
    }
    let versions: Vec<String> = tools
        .iter()
        .map(|t| t.version())
        .chain([Command::new("zstd"), Command::new("tar")].map(|mut c| {
            c.arg("--version");
            c
        }))
        .map(|mut c| first_line(&muster_tests::run(&mut c)))
        .collect();
    println!("{NAME} versions: {}", versions.join("; "));
    report::print_fairness(&data);

    let reference = steps::measure_reference(&data, &run, &logs);

    for (tool, fig) in tools.iter().zip(&mut figures) {
        if fig.unavailable.is_some() {
            continue;
        }
        data.ensure_pristine()
            .unwrap_or_else(|e| abandon(&run, keep, &format!("dataset: {e:#}")));
        steps::first_backup(tool.as_ref(), fig, &data, &logs);
    }
    let modified = data
        .modify()
        .unwrap_or_else(|e| abandon(&run, keep, &format!("dataset: {e:#}")));
    println!("{NAME} modify: {modified}");
    for (tool, fig) in tools.iter().zip(&mut figures) {
        if fig.first.is_ok() {
            steps::second_backup(tool.as_ref(), fig, &data, &logs);
        } else {
            fig.second = Err("no first backup".to_owned());
        }
    }
    // Restored before the revert: the latest snapshot holds the modified tree.
    for (tool, fig) in tools.iter().zip(&mut figures) {
        if fig.second.is_ok() {
            steps::restore(tool.as_ref(), fig, &data, &logs, keep);
        } else {
            fig.restore = Err("no second backup".to_owned());
            fig.verified = Err("no second backup".to_owned());
        }
    }
    data.revert()
        .unwrap_or_else(|e| abandon(&run, keep, &format!("dataset: {e:#}")));

    report::print_table(&data, &reference, &figures);
    report::print_ratios(&figures, skip_muster);
    eprintln!("{NAME}: load1 at end {}", common::load1());
    drop(run_dir);

    let failed: Vec<String> = figures
        .iter()
        .filter(|f| !f.ok())
        .map(|f| f.name.to_owned())
        .collect();
    if !failed.is_empty() {
        eprintln!("{NAME}: FAILED: {}", failed.join(", "));
        std::process::exit(1);
    }
}

/// An exclusive lock on `cache/lock`, held until the process exits: two runs sharing a
/// dataset would modify it under each other's backups. Also names run folders that a
/// killed run left behind (they are not removed: a `MUSTER_BENCH_KEEP=1` run leaves them on
/// purpose).
fn lock_cache(cache: &Path) -> Flock<std::fs::File> {
    let path = cache.join("lock");
    let file = std::fs::File::create(&path).unwrap();
    let lock = Flock::lock(file, FlockArg::LockExclusiveNonblock).unwrap_or_else(|(_, errno)| {
        common::give_up(&format!(
            "{} is locked ({errno}): another run is using this dataset",
            path.display()
        ))
    });
    let stale: Vec<String> = std::fs::read_dir(cache)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("run-"))
        .map(|e| e.path().display().to_string())
        .collect();
    if !stale.is_empty() {
        eprintln!(
            "{NAME}: run folders of earlier runs (kept, or left by a killed run): {}",
            stale.join(" ")
        );
    }
    lock
}

/// Removes the run's folder (unless kept) and exits with `reason`: `exit` runs no
/// destructors, so the `TempDir` would stay behind.
fn abandon(run: &Path, keep: bool, reason: &str) -> ! {
    if !keep {
        let _ = std::fs::remove_dir_all(run);
    }
    common::give_up(reason)
}

fn env_flag(name: &str) -> bool {
    std::env::var(name).is_ok_and(|v| !v.is_empty() && v != "0")
}

fn first_line(out: &std::process::Output) -> String {
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    text.lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim_matches(|c: char| c == '*' || c.is_whitespace())
        .to_owned()
}

fn mem_available() -> String {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemAvailable:"))
                .map(|v| v.trim().to_owned())
        })
        .unwrap_or_default()
}
