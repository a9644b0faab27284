//! `muster-agent backup ...`: the repository on the command line, with no config file.
//!
//! Each command opens the repository with the lock it needs, prints a human summary (or one
//! JSON object with `--json`), shows a progress bar when stderr is a terminal and stays quiet
//! otherwise. Exit status: 0 done, 1 failed, 3 done but some entries could not be read or
//! written (as restic does).

mod progress;

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};

use crate::backup::archiver::{self, BackupRequest};
use crate::backup::catalog::Catalog;
use crate::backup::crypto::MasterKey;
use crate::backup::repo::config::InitOptions;
use crate::backup::repo::lock::LockMode;
use crate::backup::repo::{RepoError, Repository};
use crate::backup::restorer::{self, RestoreRequest};
use crate::backup::retention::{self, CalendarDuration, GroupBy, RetentionPolicy, SnapshotMeta};
use crate::backup::{checker, prune, snapshot, tarball};

use self::progress::Bar;

/// Exit status when the command finished but skipped entries.
pub const EXIT_PARTIAL: u8 = 3;

/// Where the repository and its catalog are.
#[derive(Debug, Args)]
pub struct RepoArgs {
    /// The repository folder.
    #[arg(long, env = "MUSTER_BACKUP_REPO")]
    pub repo: PathBuf,
    /// Folder for the local catalog (files cache, snapshot statistics) [default:
    /// $XDG_CACHE_HOME/muster/backup or ~/.cache/muster/backup].
    #[arg(long, env = "MUSTER_BACKUP_CACHE")]
    pub cache_dir: Option<PathBuf>,
    /// The key file of an encrypted repository. When a command creates the repository
    /// (`run`, `import`) and this file does not exist, a new key is written to it (mode 0600)
    /// and the repository is encrypted. Keep a copy elsewhere: without it the data is lost.
    #[arg(long, env = "MUSTER_BACKUP_KEY_FILE")]
    pub key_file: Option<PathBuf>,
    /// Seconds to wait for another process's lock on the repository.
    #[arg(long, default_value_t = 0)]
    pub lock_wait: u64,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// The backup commands.
#[derive(Debug, Subcommand)]
pub enum BackupCommand {
    /// Back up files and folders (the repository is created if missing).
    Run {
        #[command(flatten)]
        repo: RepoArgs,
        /// Leave out entries matching this glob (a name at any depth, or a path with `/`).
        #[arg(long = "exclude", value_name = "GLOB")]
        excludes: Vec<String>,
        /// Tag the snapshot.
        #[arg(long = "tag")]
        tags: Vec<String>,
        /// Worker threads (0: one per core).
        #[arg(long, default_value_t = 0)]
        threads: usize,
        /// zstd level of a repository created by this run.
        #[arg(long, default_value_t = crate::backup::repo::config::DEFAULT_COMPRESSION)]
        compression: i32,
        /// Chunk sizes MIN:AVG:MAX in bytes of a repository created by this run (default
        /// 16384:65536:262144; docs/backup.md has the measurements behind it).
        #[arg(long, value_name = "MIN:AVG:MAX", value_parser = parse_chunk_sizes)]
        chunk_sizes: Option<(u32, u32, u32)>,
        /// Files and folders to back up.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// List snapshots, oldest first.
    List {
        #[command(flatten)]
        repo: RepoArgs,
    },
    /// Restore a snapshot (or a path in it) into a folder.
    Restore {
        #[command(flatten)]
        repo: RepoArgs,
        /// `latest`, a snapshot id, or an id prefix.
        snapshot: String,
        /// The folder to restore into; `/` puts files back where they were.
        #[arg(long)]
        target: PathBuf,
        /// Restore only this path of the snapshot (absolute, as backed up).
        #[arg(long)]
        path: Option<PathBuf>,
        /// Worker threads (0: one per core).
        #[arg(long, default_value_t = 0)]
        threads: usize,
    },
    /// Check the repository; with --read-data, re-read and re-hash every byte.
    Verify {
        #[command(flatten)]
        repo: RepoArgs,
        /// Read every pack and check every blob's hash.
        #[arg(long)]
        read_data: bool,
        /// Reader threads for --read-data (0: one per core).
        #[arg(long, default_value_t = 0)]
        threads: usize,
    },
    /// Remove snapshots by retention rules (restic's semantics); --prune frees their space.
    Forget {
        #[command(flatten)]
        repo: RepoArgs,
        #[command(flatten)]
        keep: KeepArgs,
        /// Also prune afterwards.
        #[arg(long)]
        prune: bool,
        /// Say what would be removed, remove nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Write a snapshot as a standard .tar.zst (`tar --zstd -xf FILE` reads it).
    Export {
        #[command(flatten)]
        repo: RepoArgs,
        /// `latest`, a snapshot id, or an id prefix.
        snapshot: String,
        /// The archive to write (`-` for standard output).
        file: PathBuf,
        /// zstd level of the archive.
        #[arg(long, default_value_t = 3)]
        level: i32,
    },
    /// Read a .tar.zst into a new snapshot (entries that would escape are refused).
    Import {
        #[command(flatten)]
        repo: RepoArgs,
        /// The archive to read (`-` for standard input).
        file: PathBuf,
    },
    /// Free the space of data no snapshot needs.
    Prune {
        #[command(flatten)]
        repo: RepoArgs,
        /// Say what would be freed, change nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

/// Retention rules, as restic's `forget` takes them.
#[derive(Debug, Args)]
pub struct KeepArgs {
    /// Keep the last N snapshots (N or "unlimited").
    #[arg(long, value_name = "N", value_parser = parse_count)]
    pub keep_last: Option<u32>,
    /// Keep the newest snapshot of each of the last N hours with snapshots.
    #[arg(long, value_name = "N", value_parser = parse_count)]
    pub keep_hourly: Option<u32>,
    /// ... of each of the last N days.
    #[arg(long, value_name = "N", value_parser = parse_count)]
    pub keep_daily: Option<u32>,
    /// ... of each of the last N weeks (Monday to Sunday).
    #[arg(long, value_name = "N", value_parser = parse_count)]
    pub keep_weekly: Option<u32>,
    /// ... of each of the last N months.
    #[arg(long, value_name = "N", value_parser = parse_count)]
    pub keep_monthly: Option<u32>,
    /// ... of each of the last N years.
    #[arg(long, value_name = "N", value_parser = parse_count)]
    pub keep_yearly: Option<u32>,
    /// Keep every snapshot within this span of the latest one (e.g. 1y2m3d4h).
    #[arg(long, value_name = "SPAN")]
    pub keep_within: Option<CalendarDuration>,
    /// Keep snapshots carrying all of these tags (comma-separated; repeatable).
    #[arg(long = "keep-tag", value_name = "TAGS")]
    pub keep_tags: Vec<String>,
    /// Apply the rules per group: any of host, paths, tags, or "" for one group.
    #[arg(long, default_value = "host,paths")]
    pub group_by: GroupBy,
}

fn parse_chunk_sizes(s: &str) -> Result<(u32, u32, u32), String> {
    let parts: Vec<u32> = s
        .split(':')
        .map(|p| p.trim().parse::<u32>().map_err(|e| format!("{p:?}: {e}")))
        .collect::<Result<_, _>>()?;
    match parts.as_slice() {
        [min, avg, max] => Ok((*min, *avg, *max)),
        _ => Err("expected MIN:AVG:MAX".into()),
    }
}

fn parse_count(s: &str) -> Result<u32, String> {
    retention::parse_count(s).map_err(|e| e.to_string())
}

/// Runs a backup command; returns the exit status.
pub fn run(command: BackupCommand) -> anyhow::Result<u8> {
    let cancel = AtomicBool::new(false);
    match command {
        BackupCommand::Run {
            repo,
            excludes,
            tags,
            threads,
            compression,
            chunk_sizes,
            paths,
        } => {
            let mut r = open_or_init(&repo, compression, chunk_sizes)?;
            let catalog = open_catalog(&repo, &r)?;
            let request = BackupRequest {
                sources: paths,
                excludes,
                tags,
                threads,
                streams: Vec::new(),
            };
            let bar = Bar::new("backup", repo.json);
            let out = archiver::run(&mut r, &catalog, &request, &bar, &cancel)
                .context("backup failed")?;
            bar.finish();
            let s = &out.snapshot.summary;
            if repo.json {
                println!(
                    "{}",
                    serde_json::json!({
                        "snapshot": out.id,
                        "time": out.snapshot.time.to_rfc3339(),
                        "files": s.files,
                        "dirs": s.dirs,
                        "files_read": s.files_read,
                        "files_unchanged": s.files_unchanged,
                        "total_bytes": s.total_bytes,
                        "bytes_read": s.bytes_read,
                        "blobs_added": s.blobs_added,
                        "raw_bytes_added": s.raw_bytes_added,
                        "bytes_added": s.bytes_added,
                        "errors": s.errors,
                        "duration_seconds": s.duration_seconds,
                    })
                );
            } else {
                println!(
                    "snapshot {} saved: {} files, {} folders ({} read, {} unchanged); {} read, \
                     {} new ({} stored) in {:.1} s",
                    &out.id[..8],
                    s.files,
                    s.dirs,
                    s.files_read,
                    s.files_unchanged,
                    progress::bytes(s.bytes_read),
                    progress::bytes(s.raw_bytes_added),
                    progress::bytes(s.bytes_added),
                    s.duration_seconds
                );
            }
            Ok(partial(s.errors, "entries could not be read"))
        }
        BackupCommand::List { repo } => {
            let r = open(&repo, LockMode::Shared, "list")?;
            let all = snapshot::list(&r)?;
            if repo.json {
                let items: Vec<_> = all
                    .iter()
                    .map(|e| {
                        serde_json::json!({
                            "id": e.id,
                            "short_id": &e.id[..8],
                            "time": e.snapshot.time.to_rfc3339(),
                            "host": e.snapshot.host,
                            "paths": e.snapshot.paths,
                            "tags": e.snapshot.tags,
                            "summary": e.snapshot.summary,
                        })
                    })
                    .collect();
                println!("{}", serde_json::Value::Array(items));
            } else {
                println!(
                    "{:<8}  {:<25}  {:<16}  {:>10}  paths",
                    "id", "time", "host", "size"
                );
                for e in &all {
                    let s = &e.snapshot;
                    println!(
                        "{:<8}  {:<25}  {:<16}  {:>10}  {}",
                        &e.id[..8],
                        s.time.format("%Y-%m-%d %H:%M:%S %:z"),
                        s.host,
                        progress::bytes(s.summary.total_bytes),
                        s.paths.join(" ")
                    );
                }
                println!("{} snapshots", all.len());
            }
            Ok(0)
        }
        BackupCommand::Restore {
            repo,
            snapshot: reference,
            target,
            path,
            threads,
        } => {
            let r = open(&repo, LockMode::Shared, "restore")?;
            let entry = snapshot::resolve(&r, &reference)?;
            let request = RestoreRequest {
                target: target.clone(),
                include: path,
                threads,
            };
            let bar = Bar::new("restore", repo.json);
            let summary = restorer::run(&r, &entry.snapshot, &request, &bar, &cancel)
                .with_context(|| format!("restore of {} failed", &entry.id[..8]))?;
            bar.finish();
            if repo.json {
                println!(
                    "{}",
                    serde_json::json!({"snapshot": entry.id, "target": target, "summary": summary})
                );
            } else {
                println!(
                    "restored snapshot {} to {}: {} files, {} folders, {} other entries, {}",
                    &entry.id[..8],
                    target.display(),
                    summary.files,
                    summary.dirs,
                    summary.others,
                    progress::bytes(summary.bytes)
                );
            }
            Ok(partial(summary.errors, "entries could not be restored"))
        }
        BackupCommand::Verify {
            repo,
            read_data,
            threads,
        } => {
            let r = open(&repo, LockMode::Shared, "verify")?;
            let threads = match threads {
                0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
                n => n,
            };
            let bar = Bar::new("verify", repo.json);
            let report = checker::verify(&r, read_data, threads, &bar)?;
            bar.finish();
            if repo.json {
                println!("{}", serde_json::to_string(&report)?);
            } else {
                for p in &report.problems {
                    println!("{p}");
                }
                println!(
                    "{} snapshots, {} packs, {} trees checked{}: {}",
                    report.snapshots,
                    report.packs,
                    report.trees,
                    if read_data {
                        format!(", {} read", progress::bytes(report.bytes_read))
                    } else {
                        String::new()
                    },
                    if report.is_ok() {
                        "no problems".to_string()
                    } else {
                        format!("{} problems", report.problems.len())
                    }
                );
            }
            if report.is_ok() {
                Ok(0)
            } else {
                bail!("the repository has {} problems", report.problems.len())
            }
        }
        BackupCommand::Forget {
            repo,
            keep,
            prune: then_prune,
            dry_run,
        } => forget(&repo, keep, then_prune, dry_run),
        BackupCommand::Export {
            repo,
            snapshot: reference,
            file,
            level,
        } => {
            let r = open(&repo, LockMode::Shared, "export")?;
            let entry = snapshot::resolve(&r, &reference)?;
            let bar = Bar::new("export", repo.json);
            let summary = if file.as_os_str() == "-" {
                tarball::export(&r, &entry.snapshot, std::io::stdout().lock(), level, &bar)?
            } else {
                // Written beside the target and renamed: a failed export leaves no torso.
                let tmp = file.with_extension("partial");
                let out = std::fs::File::create(&tmp)
                    .with_context(|| format!("cannot create {}", tmp.display()))?;
                let summary = tarball::export(
                    &r,
                    &entry.snapshot,
                    std::io::BufWriter::new(out),
                    level,
                    &bar,
                )
                .inspect_err(|_| {
                    let _ = std::fs::remove_file(&tmp);
                })?;
                std::fs::rename(&tmp, &file)
                    .with_context(|| format!("cannot write {}", file.display()))?;
                summary
            };
            bar.finish();
            if repo.json {
                println!(
                    "{}",
                    serde_json::json!({"snapshot": entry.id, "summary": summary})
                );
            } else if file.as_os_str() != "-" {
                println!(
                    "exported snapshot {} to {}: {} entries, {}",
                    &entry.id[..8],
                    file.display(),
                    summary.entries,
                    progress::bytes(summary.bytes)
                );
            }
            Ok(0)
        }
        BackupCommand::Import { repo, file } => {
            let mut r = open_or_init(
                &repo,
                crate::backup::repo::config::DEFAULT_COMPRESSION,
                None,
            )?;
            let catalog = open_catalog(&repo, &r)?;
            let bar = Bar::new("import", repo.json);
            let name = file.display().to_string();
            let out = if file.as_os_str() == "-" {
                tarball::import(
                    &mut r,
                    &catalog,
                    std::io::stdin().lock(),
                    &name,
                    &bar,
                    &cancel,
                )?
            } else {
                let input = std::fs::File::open(&file)
                    .with_context(|| format!("cannot open {}", file.display()))?;
                tarball::import(
                    &mut r,
                    &catalog,
                    std::io::BufReader::new(input),
                    &name,
                    &bar,
                    &cancel,
                )?
            };
            bar.finish();
            if repo.json {
                println!("{}", serde_json::json!({"snapshot": out.id}));
            } else {
                println!("imported {} as snapshot {}", name, &out.id[..8]);
            }
            Ok(0)
        }
        BackupCommand::Prune { repo, dry_run } => {
            let mut r = open(&repo, LockMode::Exclusive, "prune")?;
            let report = prune::prune(&mut r, dry_run)?;
            print_prune(&repo, &report, dry_run)?;
            Ok(0)
        }
    }
}

fn print_prune(args: &RepoArgs, report: &prune::PruneReport, dry_run: bool) -> anyhow::Result<()> {
    if args.json {
        println!("{}", serde_json::to_string(report)?);
    } else {
        println!(
            "{}{} blobs in use, {} unused; {} packs deleted, {} repacked; {} of packs removed, \
             {} rewritten",
            if dry_run { "would prune: " } else { "" },
            report.blobs_used,
            report.blobs_unused,
            report.packs_deleted,
            report.packs_repacked,
            progress::bytes(report.bytes_freed),
            progress::bytes(report.bytes_repacked)
        );
    }
    Ok(())
}

fn forget(args: &RepoArgs, keep: KeepArgs, then_prune: bool, dry_run: bool) -> anyhow::Result<u8> {
    let policy = RetentionPolicy {
        keep_last: keep.keep_last,
        keep_hourly: keep.keep_hourly,
        keep_daily: keep.keep_daily,
        keep_weekly: keep.keep_weekly,
        keep_monthly: keep.keep_monthly,
        keep_yearly: keep.keep_yearly,
        keep_within: keep.keep_within,
        keep_tags: keep.keep_tags,
        ..RetentionPolicy::default()
    };
    policy.validate()?;
    if policy.is_empty() {
        bail!("no --keep-* rule given: refusing to forget every snapshot");
    }
    let mut r = open(args, LockMode::Exclusive, "forget")?;
    let all = snapshot::list(&r)?;
    let metas: Vec<SnapshotMeta> = all
        .iter()
        .map(snapshot::SnapshotEntry::retention_meta)
        .collect();
    let groups = retention::apply(&policy, &metas, keep.group_by);
    if let Some(g) = groups.iter().find(|g| g.removes_all()) {
        bail!(
            "the rules would remove every snapshot of group {}: refusing",
            g.key
        );
    }
    let mut removed = Vec::new();
    for g in &groups {
        if !args.json {
            println!("{}", g.key);
        }
        for d in &g.decisions {
            if !args.json {
                let verdict = if d.keep { "keep  " } else { "remove" };
                println!("  {verdict} {}  {}", &d.id[..8], d.reasons.join(", "));
            }
            if !d.keep {
                removed.push(d.id.clone());
            }
        }
    }
    if !dry_run {
        for id in &removed {
            snapshot::remove(&r, id)?;
        }
        if let Ok(catalog) = open_catalog(args, &r) {
            catalog.sync_snapshots(&snapshot::list(&r)?)?;
        }
    }
    if args.json {
        println!(
            "{}",
            serde_json::json!({"removed": removed, "dry_run": dry_run})
        );
    } else {
        println!(
            "{} {} snapshots",
            if dry_run { "would remove" } else { "removed" },
            removed.len()
        );
    }
    if then_prune {
        let report = prune::prune(&mut r, dry_run)?;
        print_prune(args, &report, dry_run)?;
    }
    Ok(0)
}

fn partial(errors: u64, what: &str) -> u8 {
    if errors == 0 {
        0
    } else {
        eprintln!("muster-agent: {errors} {what} (named in the log above)");
        EXIT_PARTIAL
    }
}

fn key(args: &RepoArgs, create: bool) -> anyhow::Result<Option<MasterKey>> {
    Ok(args
        .key_file
        .as_deref()
        .map(|p| MasterKey::load(p, create))
        .transpose()?)
}

fn open(args: &RepoArgs, mode: LockMode, what: &str) -> anyhow::Result<Repository> {
    let key = key(args, false)?;
    let wait = Duration::from_secs(args.lock_wait);
    let r = Repository::open_keyed(&args.repo, mode, wait, what, key.as_ref())?;
    log_report(&r);
    Ok(r)
}

fn open_or_init(
    args: &RepoArgs,
    compression: i32,
    chunk_sizes: Option<(u32, u32, u32)>,
) -> anyhow::Result<Repository> {
    let wait = Duration::from_secs(args.lock_wait);
    let existing = if args.repo.join("config").exists() {
        key(args, false)?
    } else {
        None
    };
    match Repository::open_keyed(
        &args.repo,
        LockMode::Exclusive,
        wait,
        "backup",
        existing.as_ref(),
    ) {
        Ok(r) => {
            log_report(&r);
            Ok(r)
        }
        Err(RepoError::NotARepository { .. }) => {
            let options = InitOptions {
                compression,
                chunk_sizes,
                key: key(args, true)?,
                ..InitOptions::default()
            };
            let r = Repository::init(&args.repo, options).with_context(|| {
                format!("cannot create a repository in {}", args.repo.display())
            })?;
            tracing::info!(repo = %args.repo.display(), id = %r.config().id, "created repository");
            Ok(r)
        }
        Err(e) => Err(e.into()),
    }
}

fn log_report(r: &Repository) {
    let rep = r.open_report();
    if rep.unindexed_packs > 0 || rep.missing_packs > 0 || rep.removed_temporaries > 0 {
        tracing::info!(
            unindexed_packs = rep.unindexed_packs,
            missing_packs = rep.missing_packs,
            removed_temporaries = rep.removed_temporaries,
            "repaired what an interrupted run left"
        );
    }
}

/// The catalog folder: `--cache-dir`, else the XDG cache folder.
pub fn cache_dir(args: &RepoArgs) -> anyhow::Result<PathBuf> {
    if let Some(dir) = &args.cache_dir {
        return Ok(dir.clone());
    }
    let base = match std::env::var_os("XDG_CACHE_HOME").filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => match std::env::var_os("HOME").filter(|v| !v.is_empty()) {
            Some(home) => Path::new(&home).join(".cache"),
            None => bail!("no cache folder: set --cache-dir, XDG_CACHE_HOME or HOME"),
        },
    };
    Ok(base.join("muster").join("backup"))
}

fn open_catalog(args: &RepoArgs, r: &Repository) -> anyhow::Result<Catalog> {
    let dir = cache_dir(args)?;
    Ok(Catalog::open(&dir, &r.config().id)?)
}
