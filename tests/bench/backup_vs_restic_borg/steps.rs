//! The timed steps: the reference (reading every file, `tar | zstd`), each tool's first and
//! second backup with its repository's and cache's size after each, and its restore, checked
//! against the tree it should hold. A failing step records why in the tool's figures and the
//! run goes on with the next tool.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use super::dataset::Dataset;
use super::{Figures, NAME, Reference, Step, Tool, child, tree};

/// How long a `sync` may take.
const SYNC_LIMIT: Duration = Duration::from_secs(600);

/// Reads every file twice (the first pass warms the page cache) and times `tar | zstd`.
pub fn measure_reference(data: &Dataset, run: &Path, logs: &Path) -> Reference {
    let read = || {
        let started = Instant::now();
        let (bytes, files) = tree::read_all(&data.root).unwrap();
        assert_eq!(
            (bytes, files),
            (data.bytes, data.files),
            "the dataset holds what its summary says"
        );
        started.elapsed().as_secs_f64()
    };
    let read_first_seconds = read();
    sync(logs);
    let read_seconds = read();

    let out = run.join("data.tar.zst");
    let mut tar = Command::new("bash");
    tar.args([
        "-c",
        r#"set -o pipefail; tar -cf - -C "$1" . | zstd -T0 -3 -q -f -o "$2""#,
        "bash",
    ])
    .arg(&data.root)
    .arg(&out);
    sync(logs);
    let tar_zstd =
        child::measure("tar-zstd", &tar, logs, child::limit()).map_err(|e| format!("{e:#}"));
    let tar_zstd_bytes = std::fs::metadata(&out).ok().map(|m| m.len());
    let _ = std::fs::remove_file(&out);
    Reference {
        read_first_seconds,
        read_seconds,
        tar_zstd,
        tar_zstd_bytes,
    }
}

/// The repository's creation (not timed) and the first backup.
pub fn first_backup(tool: &dyn Tool, fig: &mut Figures, data: &Dataset, logs: &Path) {
    let dir = tool.dir();
    if let Some(init) = tool.init()
        && let Err(e) = child::measure("init", &init, &dir.logs(), child::limit())
    {
        eprintln!("{NAME}: {} FAILED: {e:#}", tool.name());
        fig.first = Err(format!("{e:#}"));
        return;
    }
    sync(logs);
    fig.first = timed_backup(tool, fig, data, "first");
    if fig.first.is_ok() {
        fig.repo = Some(tree::disk_usage(&dir.repo()).unwrap());
        fig.cache = Some(tree::disk_usage(&dir.cache()).unwrap());
    }
}

/// The second backup, after `modify`.
pub fn second_backup(tool: &dyn Tool, fig: &mut Figures, data: &Dataset, logs: &Path) {
    let dir = tool.dir();
    sync(logs);
    fig.second = timed_backup(tool, fig, data, "second");
    if fig.second.is_ok() {
        fig.repo_after_second = Some(tree::disk_usage(&dir.repo()).unwrap());
        fig.cache_after_second = Some(tree::disk_usage(&dir.cache()).unwrap());
    }
}

fn timed_backup(tool: &dyn Tool, fig: &mut Figures, data: &Dataset, label: &str) -> Step {
    let command = tool.backup(&data.root, label);
    let step = child::measure(
        &format!("{label}-backup"),
        &command,
        &tool.dir().logs(),
        child::limit(),
    )
    .map_err(|e| format!("{e:#}"));
    match &step {
        Ok(m) => {
            eprintln!(
                "{NAME}: {} {label} backup {:.2} s, peak RSS {} bytes",
                tool.name(),
                m.seconds,
                m.peak_rss_bytes
            );
            if let Some(note) = tool.backup_note(&m.stdout) {
                fig.notes.push(format!("{label} backup: {note}"));
            }
        }
        Err(e) => eprintln!("{NAME}: {} {label} backup FAILED: {e}", tool.name()),
    }
    step
}

/// A restore of the latest (second) snapshot into an empty folder, checked against `data`,
/// then removed unless `keep`.
pub fn restore(tool: &dyn Tool, fig: &mut Figures, data: &Dataset, logs: &Path, keep: bool) {
    let target = tool.dir().restore();
    std::fs::create_dir_all(&target).unwrap();
    sync(logs);
    let command = tool.restore("second", &target);
    fig.restore = child::measure("restore", &command, &tool.dir().logs(), child::limit())
        .map_err(|e| format!("{e:#}"));
    let restored = match &fig.restore {
        Ok(m) => {
            eprintln!(
                "{NAME}: {} restore {:.2} s, peak RSS {} bytes",
                tool.name(),
                m.seconds,
                m.peak_rss_bytes
            );
            restored_root(&target, &data.root)
        }
        Err(e) => {
            eprintln!("{NAME}: {} restore FAILED: {e}", tool.name());
            fig.verified = Err("no restore".to_owned());
            return;
        }
    };
    fig.verified = match restored {
        None => Err(format!(
            "no copy of the dataset found in {} (looked for {}/small)",
            target.display(),
            data.root.display()
        )),
        Some(root) => tree::compare(&data.root, &root).map_err(|differences| {
            eprintln!(
                "{NAME}: {} restore MISMATCH against {}:\n  {}",
                tool.name(),
                data.root.display(),
                differences.join("\n  ")
            );
            format!(
                "MISMATCH: {} difference(s) (at most {} listed), the first: {}",
                differences.len(),
                tree::MAX_DIFFERENCES,
                differences.first().map_or("", String::as_str)
            )
        }),
    };
    if !keep {
        // A restore is as large as the dataset; the next tool's needs the room.
        let _ = std::fs::remove_dir_all(&target);
    }
}

/// Where a restore into `target` put the dataset: restic and borg recreate its absolute path
/// under the target; Muster's contract does not say, so its folder's name and the target
/// itself are tried too.
fn restored_root(target: &Path, data: &Path) -> Option<PathBuf> {
    let relative = data.strip_prefix("/").unwrap_or(data);
    [
        Some(target.join(relative)),
        data.file_name().map(|n| target.join(n)),
        Some(target.to_path_buf()),
    ]
    .into_iter()
    .flatten()
    .find(|candidate| candidate.join("small").is_dir())
}

/// `sync`, so the next timed step does not pay for earlier writeback.
fn sync(logs: &Path) {
    child::measure("sync", &Command::new("sync"), logs, SYNC_LIMIT).unwrap();
}
