use muster_shared::protocol::jobs::{BackupSpec, JobState};
use muster_shared::store::StoreOptions;

use super::*;

fn open(keep: usize) -> (tempfile::TempDir, BackupLog) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("s"), StoreOptions::collector()).unwrap();
    let log = BackupLog::open(&store, keep).unwrap();
    (dir, log)
}

fn run(started: u64, success: bool) -> BackupRun {
    BackupRun {
        started_unix_ms: started,
        duration_seconds: 1.5,
        success,
        snapshot: success.then(|| "ab".repeat(32)),
        files: 3,
        total_bytes: 300,
        bytes_added: 30,
        errors: 0,
        message: String::new(),
        trigger: "schedule".to_owned(),
    }
}

fn status(set: &str, last_run: Option<BackupRun>) -> BackupSetStatus {
    BackupSetStatus {
        set: set.to_owned(),
        schedule: None,
        next_run_unix_ms: None,
        running: false,
        last_success_unix_ms: None,
        last_run,
        snapshots: 1,
        repository_bytes: 10,
        dedup_ratio: 2.0,
    }
}

fn job(id: &str, created: u64, state: JobState) -> JobRecord {
    JobRecord {
        spec: JobSpec::Backup(BackupSpec {
            set: "etc".to_owned(),
        }),
        requested_by: "ops".to_owned(),
        status: JobStatus {
            id: id.to_owned(),
            idempotency_key: format!("k-{id}"),
            state,
            progress: None,
            message: String::new(),
            created_at_unix_ms: created,
            started_at_unix_ms: None,
            finished_at_unix_ms: None,
        },
    }
}

#[test]
fn a_run_seen_twice_is_recorded_once() {
    let (_dir, log) = open(10);
    let statuses = [status("etc", Some(run(1_000, true))), status("db", None)];
    assert_eq!(log.record_runs("web1", &statuses).unwrap(), 1);
    assert_eq!(log.record_runs("web1", &statuses).unwrap(), 0);
    assert_eq!(
        log.record_runs("web1", &[status("etc", Some(run(2_000, false)))])
            .unwrap(),
        1
    );
    let history = log.history("web1", Some("etc"), 100).unwrap();
    let times: Vec<u64> = history.iter().map(|e| e.at_unix_ms).collect();
    assert_eq!(times, [2_000, 1_000], "newest first");
    assert!(log.history("web2", None, 100).unwrap().is_empty());
}

#[test]
fn history_is_bounded_per_host_and_set() {
    let (_dir, log) = open(3);
    for started in 1..=10 {
        log.record_runs("web1", &[status("etc", Some(run(started * 1_000, true)))])
            .unwrap();
    }
    log.record_runs("web1", &[status("db", Some(run(500, true)))])
        .unwrap();
    let etc: Vec<u64> = log
        .history("web1", Some("etc"), 100)
        .unwrap()
        .iter()
        .map(|e| e.at_unix_ms)
        .collect();
    assert_eq!(etc, [10_000, 9_000, 8_000], "only the newest 3 are kept");
    assert_eq!(log.history("web1", Some("db"), 100).unwrap().len(), 1);
    assert_eq!(log.history("web1", None, 100).unwrap().len(), 4);
    assert_eq!(log.history("web1", None, 2).unwrap().len(), 2);
}

#[test]
fn a_job_is_updated_to_its_final_status() {
    let (_dir, log) = open(10);
    log.record_job("web1", "etc", job("j1", 5_000, JobState::Running))
        .unwrap();
    let mut done = job("j1", 5_000, JobState::Succeeded).status;
    done.finished_at_unix_ms = Some(6_000);
    assert!(log.update_job("web1", &done).unwrap());
    assert!(
        !log.update_job("web1", &job("j9", 1, JobState::Failed).status)
            .unwrap(),
        "a job the collector did not start is not recorded"
    );
    let history = log.history("web1", Some("etc"), 10).unwrap();
    assert_eq!(history.len(), 1);
    match &history[0].event {
        BackupEvent::Job(job) => {
            assert_eq!(job.status.state, JobState::Succeeded);
            assert_eq!(job.requested_by, "ops");
        }
        BackupEvent::Run(_) => panic!("expected the job"),
    }
}

#[test]
fn set_names_are_checked() {
    assert_eq!(valid_name("etc"), Ok(()));
    assert_eq!(valid_name(""), Err(NameError::Empty));
    assert!(valid_name("a/b").is_err());
    assert!(valid_name("a\0b").is_err());
    assert!(valid_name(&"x".repeat(129)).is_err());
}
