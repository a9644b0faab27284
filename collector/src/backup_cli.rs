//! `muster-collector backup list|snapshots|run|restore|history`: a host's backups from a
//! shell, through a running collector ([`crate::api_client::ApiClient`]).
//!
//! Each command returns the text to print: one line per set, snapshot or entry for people,
//! or the API's JSON with `--json`. `run` and `restore` with `--wait` poll the job, report
//! each change through a callback, and fail when the job does not succeed.

use std::fmt::Write as _;
use std::time::Duration;

use anyhow::bail;
use muster_shared::protocol::backups::BackupSetStatus;
use muster_shared::protocol::jobs::{JobState, JobStatus};
use serde_json::json;

use crate::api::backups::{HistoryList, SetList, SnapshotList, StartedJob};
use crate::api_client::ApiClient;
use crate::backup::client::path_segment;
use crate::backup::log::{BackupEvent, BackupLogEntry};
use crate::hosts::rfc3339;

/// How often `--wait` asks for the job's state.
const POLL_EVERY: Duration = Duration::from_secs(1);

/// `muster-collector backup ...`.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum BackupCommand {
    /// A host's backup sets: last success, last run, size, dedup ratio, next run.
    List {
        /// The host id.
        host: String,
        /// Print the API's JSON.
        #[arg(long)]
        json: bool,
    },
    /// A backup set's snapshots, oldest first.
    Snapshots {
        /// The host id.
        host: String,
        /// The backup set.
        set: String,
        /// Print the API's JSON.
        #[arg(long)]
        json: bool,
    },
    /// Run a backup set now.
    Run {
        /// The host id.
        host: String,
        /// The backup set.
        set: String,
        /// Follow the job until it ends; exit non-zero unless it succeeds.
        #[arg(long)]
        wait: bool,
    },
    /// Restore a snapshot (or one path of it) into a folder on the host.
    Restore {
        /// The host id.
        host: String,
        /// The backup set.
        set: String,
        /// A snapshot id (8 or more hex digits) or `latest`.
        snapshot: String,
        /// Absolute folder on the host to restore into (the agent's allowlist decides).
        #[arg(long)]
        target: String,
        /// Only this path of the snapshot (`/etc/nginx`).
        #[arg(long)]
        path: Option<String>,
        /// Follow the job until it ends; exit non-zero unless it succeeds.
        #[arg(long)]
        wait: bool,
    },
    /// The BackupLog: jobs started from the collector and runs the agent reported.
    History {
        /// The host id.
        host: String,
        /// Only this set.
        #[arg(long)]
        set: Option<String>,
        /// At most this many entries.
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// Print the API's JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Runs `command`; progress lines of `--wait` go to stdout as they come.
///
/// # Errors
/// As the command's function.
pub async fn execute(client: &ApiClient, command: BackupCommand) -> anyhow::Result<String> {
    let mut print = |line: &str| println!("{line}");
    match command {
        BackupCommand::List { host, json } => list(client, &host, json).await,
        BackupCommand::Snapshots { host, set, json } => snapshots(client, &host, &set, json).await,
        BackupCommand::Run { host, set, wait } => {
            run(
                client,
                &host,
                &set,
                wait.then_some(&mut print as &mut dyn FnMut(&str)),
            )
            .await
        }
        BackupCommand::Restore {
            host,
            set,
            snapshot,
            target,
            path,
            wait,
        } => {
            let request = RestoreRequest {
                set,
                snapshot,
                target_dir: target,
                sub_path: path,
            };
            let report = wait.then_some(&mut print as &mut dyn FnMut(&str));
            restore(client, &host, &request, report).await
        }
        BackupCommand::History {
            host,
            set,
            limit,
            json,
        } => history(client, &host, set.as_deref(), limit, json).await,
    }
}

/// `backup list HOST`: each set with its last success, duration, size, dedup ratio and
/// next run.
///
/// # Errors
/// The collector can't be reached or refuses (an unknown host, an unreachable agent).
pub async fn list(client: &ApiClient, host: &str, json: bool) -> anyhow::Result<String> {
    let list: SetList = client
        .get(&format!("/api/v1/hosts/{}/backups", path_segment(host)))
        .await?;
    if json {
        return Ok(serde_json::to_string_pretty(&list)?);
    }
    if list.sets.is_empty() {
        return Ok(format!("{host} has no backup sets"));
    }
    let mut out = String::new();
    for set in &list.sets {
        let _ = writeln!(out, "{}", set_line(set));
    }
    Ok(out.trim_end().to_owned())
}

/// `backup snapshots HOST SET`, oldest first.
///
/// # Errors
/// As [`list`]; 404 for an unknown set.
pub async fn snapshots(
    client: &ApiClient,
    host: &str,
    set: &str,
    json: bool,
) -> anyhow::Result<String> {
    let list: SnapshotList = client
        .get(&format!(
            "/api/v1/hosts/{}/backups/{}/snapshots",
            path_segment(host),
            path_segment(set)
        ))
        .await?;
    if json {
        return Ok(serde_json::to_string_pretty(&list)?);
    }
    if list.snapshots.is_empty() {
        return Ok(format!("backup set {set} of {host} has no snapshots"));
    }
    let mut out = String::new();
    for s in &list.snapshots {
        let _ = writeln!(
            out,
            "{}  {}  {} files  {}  +{}  {}",
            short_id(&s.id),
            s.time,
            s.files,
            bytes(s.total_bytes),
            bytes(s.bytes_added),
            s.paths.join(" ")
        );
    }
    Ok(out.trim_end().to_owned())
}

/// What `backup restore` asks for.
#[derive(Debug, Clone)]
pub struct RestoreRequest {
    /// The backup set.
    pub set: String,
    /// A snapshot id or `latest`.
    pub snapshot: String,
    /// The folder on the host to restore into.
    pub target_dir: String,
    /// Only this path of the snapshot.
    pub sub_path: Option<String>,
}

/// `backup run HOST SET [--wait]`.
///
/// # Errors
/// As [`list`]; with `wait`, a job that ends other than succeeded.
pub async fn run(
    client: &ApiClient,
    host: &str,
    set: &str,
    wait: Option<&mut dyn FnMut(&str)>,
) -> anyhow::Result<String> {
    let started: StartedJob = client
        .post(
            &format!("/api/v1/hosts/{}/backups", path_segment(host)),
            &json!({ "set": set }),
        )
        .await?;
    finish(client, started, wait).await
}

/// `backup restore HOST SET SNAPSHOT --target DIR [--path SUB] [--wait]`.
///
/// # Errors
/// As [`run`]; 400 for a target the agent's allowlist refuses.
pub async fn restore(
    client: &ApiClient,
    host: &str,
    request: &RestoreRequest,
    wait: Option<&mut dyn FnMut(&str)>,
) -> anyhow::Result<String> {
    let started: StartedJob = client
        .post(
            &format!("/api/v1/hosts/{}/restores", path_segment(host)),
            &json!({
                "set": request.set,
                "snapshot": request.snapshot,
                "target_dir": request.target_dir,
                "sub_path": request.sub_path,
            }),
        )
        .await?;
    finish(client, started, wait).await
}

/// `backup history HOST [--set S]`, newest first.
///
/// # Errors
/// As [`list`].
pub async fn history(
    client: &ApiClient,
    host: &str,
    set: Option<&str>,
    limit: usize,
    json: bool,
) -> anyhow::Result<String> {
    let mut path = format!(
        "/api/v1/hosts/{}/backups/history?limit={limit}",
        path_segment(host)
    );
    if let Some(set) = set {
        let _ = write!(path, "&set={}", path_segment(set));
    }
    let list: HistoryList = client.get(&path).await?;
    if json {
        return Ok(serde_json::to_string_pretty(&list)?);
    }
    if list.entries.is_empty() {
        return Ok(format!("no backup history for {host}"));
    }
    let mut out = String::new();
    for entry in &list.entries {
        let _ = writeln!(out, "{}", history_line(entry));
    }
    Ok(out.trim_end().to_owned())
}

/// The started job's line, or with `wait` its progress until it ends.
async fn finish(
    client: &ApiClient,
    started: StartedJob,
    wait: Option<&mut dyn FnMut(&str)>,
) -> anyhow::Result<String> {
    let Some(report) = wait else {
        return Ok(format!("{} (poll {})", job_line(&started.job), started.url));
    };
    let mut job = started.job;
    report(&job_line(&job));
    while !job.state.is_terminal() {
        tokio::time::sleep(POLL_EVERY).await;
        let next: JobStatus = client.get(&started.url).await?;
        if (next.state, next.progress, &next.message) != (job.state, job.progress, &job.message) {
            report(&job_line(&next));
        }
        job = next;
    }
    if job.state != JobState::Succeeded {
        bail!("job {} {}: {}", job.id, state_name(job.state), job.message);
    }
    Ok(format!("job {} succeeded", job.id))
}

fn set_line(set: &BackupSetStatus) -> String {
    let last = match &set.last_run {
        Some(run) => format!(
            "last run {} {} in {:.1}s (+{})",
            rfc3339(run.started_unix_ms),
            if run.success { "ok" } else { "FAILED" },
            run.duration_seconds,
            bytes(run.bytes_added)
        ),
        None => "never run".to_owned(),
    };
    format!(
        "{}  last success {}  {}  size {}  dedup {:.2}x  {} snapshots  next {}{}",
        set.set,
        set.last_success_unix_ms
            .map_or_else(|| "never".to_owned(), rfc3339),
        last,
        bytes(set.repository_bytes),
        set.dedup_ratio,
        set.snapshots,
        set.next_run_unix_ms
            .map_or_else(|| "unscheduled".to_owned(), rfc3339),
        if set.running { "  (running)" } else { "" }
    )
}

fn history_line(entry: &BackupLogEntry) -> String {
    let when = rfc3339(entry.at_unix_ms);
    match &entry.event {
        BackupEvent::Run(run) => format!(
            "{when}  {}  run ({})  {}  {:.1}s  +{}{}",
            entry.set,
            run.trigger,
            if run.success { "ok" } else { "FAILED" },
            run.duration_seconds,
            bytes(run.bytes_added),
            if run.message.is_empty() {
                String::new()
            } else {
                format!("  {}", run.message)
            }
        ),
        BackupEvent::Job(job) => format!(
            "{when}  {}  {} job {} by {}  {}{}",
            entry.set,
            job.spec.kind(),
            job.status.id,
            job.requested_by,
            state_name(job.status.state),
            if job.status.message.is_empty() {
                String::new()
            } else {
                format!("  {}", job.status.message)
            }
        ),
    }
}

fn job_line(job: &JobStatus) -> String {
    let progress = job
        .progress
        .map(|p| format!(" {:.0}%", f64::from(p) * 100.0))
        .unwrap_or_default();
    let message = if job.message.is_empty() {
        String::new()
    } else {
        format!(": {}", job.message)
    };
    format!(
        "job {} {}{progress}{message}",
        job.id,
        state_name(job.state)
    )
}

fn state_name(state: JobState) -> &'static str {
    match state {
        JobState::Queued => "queued",
        JobState::Running => "running",
        JobState::Succeeded => "succeeded",
        JobState::Failed => "failed",
        JobState::Cancelled => "cancelled",
    }
}

fn short_id(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

/// Bytes in binary units, one decimal.
fn bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use muster_shared::protocol::backups::BackupRun;

    #[test]
    fn a_set_line_names_what_an_operator_checks() {
        let set = BackupSetStatus {
            set: "etc".to_owned(),
            schedule: Some("0 3 * * *".to_owned()),
            next_run_unix_ms: Some(1_700_000_000_000),
            running: false,
            last_run: Some(BackupRun {
                started_unix_ms: 1_699_990_000_000,
                duration_seconds: 12.34,
                success: false,
                snapshot: None,
                files: 0,
                total_bytes: 0,
                bytes_added: 0,
                errors: 1,
                message: "disk full".to_owned(),
                trigger: "schedule".to_owned(),
            }),
            last_success_unix_ms: None,
            snapshots: 3,
            repository_bytes: 3 * 1024 * 1024,
            dedup_ratio: 2.5,
        };
        let line = set_line(&set);
        for part in [
            "etc",
            "last success never",
            "FAILED in 12.3s",
            "size 3.0 MiB",
            "dedup 2.50x",
            "next 2023-11-14T22:13:20.000Z",
        ] {
            assert!(line.contains(part), "{part:?} in {line}");
        }
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1536), "1.5 KiB");
    }
}
