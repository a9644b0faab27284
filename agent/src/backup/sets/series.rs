//! `muster_backup_*` series: each set's last run and repository, labelled `backup` (the
//! collector adds `host`). The built-in rules BackupOverdue and BackupFailed read them.

use std::sync::Arc;

use super::BackupSets;
use crate::sample::{FamilySpec, Kind, SampleError, Sampler, SeriesTable};

const LABELS: &[&str] = &["backup"];

/// When the last successful run finished.
pub const LAST_SUCCESS: FamilySpec<'static> = FamilySpec {
    name: "muster_backup_last_success_timestamp_seconds",
    help: "When the backup set's last successful run finished, unix seconds",
    kind: Kind::Gauge,
    labels: LABELS,
};
/// Whether the last run succeeded.
pub const LAST_RUN_SUCCESS: FamilySpec<'static> = FamilySpec {
    name: "muster_backup_last_run_success",
    help: "Whether the backup set's last run wrote a snapshot (1) or failed (0)",
    kind: Kind::Gauge,
    labels: LABELS,
};
/// How long the last run took.
pub const LAST_DURATION: FamilySpec<'static> = FamilySpec {
    name: "muster_backup_last_duration_seconds",
    help: "How long the backup set's last run took",
    kind: Kind::Gauge,
    labels: LABELS,
};
/// Bytes the last run added.
pub const LAST_BYTES_ADDED: FamilySpec<'static> = FamilySpec {
    name: "muster_backup_last_bytes_added",
    help: "Bytes the backup set's last run added to its repository (after dedup and compression)",
    kind: Kind::Gauge,
    labels: LABELS,
};
/// Bytes of the repository's packs.
pub const REPOSITORY_BYTES: FamilySpec<'static> = FamilySpec {
    name: "muster_backup_repository_bytes",
    help: "Bytes of the backup set's repository packs after its last run",
    kind: Kind::Gauge,
    labels: LABELS,
};
/// Snapshots in the repository.
pub const SNAPSHOTS: FamilySpec<'static> = FamilySpec {
    name: "muster_backup_snapshots",
    help: "Snapshots in the backup set's repository after its last run",
    kind: Kind::Gauge,
    labels: LABELS,
};
/// Whether a run is in progress.
pub const RUNNING: FamilySpec<'static> = FamilySpec {
    name: "muster_backup_running",
    help: "Whether a run of the backup set is in progress",
    kind: Kind::Gauge,
    labels: LABELS,
};

/// Reads the run book once per sampling round.
#[derive(Debug)]
pub struct BackupSampler {
    sets: Arc<BackupSets>,
}

impl BackupSampler {
    /// A sampler of `sets`.
    pub fn new(sets: Arc<BackupSets>) -> Self {
        BackupSampler { sets }
    }
}

impl Sampler for BackupSampler {
    fn name(&self) -> &'static str {
        "backup"
    }

    fn sample(&mut self, out: &mut SeriesTable) -> Result<(), SampleError> {
        for status in self.sets.statuses() {
            let l = [status.set.as_str()];
            out.set_spec(&RUNNING, &l, f64::from(u8::from(status.running)));
            if let Some(ms) = status.last_success_unix_ms {
                out.set_spec(&LAST_SUCCESS, &l, ms as f64 / 1000.0);
            }
            if let Some(run) = &status.last_run {
                out.set_spec(&LAST_RUN_SUCCESS, &l, f64::from(u8::from(run.success)));
                out.set_spec(&LAST_DURATION, &l, run.duration_seconds);
                out.set_spec(&LAST_BYTES_ADDED, &l, run.bytes_added as f64);
                out.set_spec(&REPOSITORY_BYTES, &l, status.repository_bytes as f64);
                out.set_spec(&SNAPSHOTS, &l, status.snapshots as f64);
            }
        }
        Ok(())
    }
}
