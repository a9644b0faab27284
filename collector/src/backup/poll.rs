//! Recording the agents' backup runs without anyone asking: every `backup.poll_interval`,
//! the sets of each enrolled host whose agent serves backups are read and their last runs
//! go to the BackupLog ([`super::Backups::sets`]), so the history holds scheduled runs too.
//!
//! Hosts are asked a few at a time; an agent that is down or has no backups is skipped until
//! the next pass (logged at debug: the scrape loop already reports a down host).

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use tokio_util::sync::CancellationToken;

use super::{BackupError, Backups};

/// Hosts asked at once.
const CONCURRENCY: usize = 8;

/// Runs until `shutdown`, a pass every `every` (the first after one interval).
pub async fn record_runs(backups: Arc<Backups>, every: Duration, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            biased;
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(every) => {}
        }
        let hosts = backups.hosts.clone();
        let listed = match tokio::task::spawn_blocking(move || hosts.list()).await {
            Ok(Ok(listed)) => listed,
            Ok(Err(err)) => {
                tracing::warn!(error = %err, "cannot list hosts for the backup poll");
                continue;
            }
            Err(err) => {
                tracing::warn!(error = %err, "host listing task failed");
                continue;
            }
        };
        let pass = futures_util::stream::iter(listed)
            .map(|host| {
                let backups = backups.clone();
                async move {
                    let request_id = uuid::Uuid::new_v4().to_string();
                    match backups.sets(&host.id, &request_id).await {
                        Ok(_) | Err(BackupError::Unsupported { .. }) => {}
                        Err(err) => {
                            tracing::debug!(host = %host.id, error = %err, "backup poll skipped a host");
                        }
                    }
                }
            })
            .buffer_unordered(CONCURRENCY)
            .collect::<Vec<()>>();
        tokio::select! {
            biased;
            () = shutdown.cancelled() => return,
            _ = pass => {}
        }
    }
}
