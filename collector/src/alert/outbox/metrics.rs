//! The outbox's metrics, registered into the collector's registry: attempts and failures
//! per receiver (Alertmanager's `notifications_total` and `notifications_failed_total`
//! under our prefix), the latency of each attempt per kind, texts cut to platform limits,
//! and the entries waiting or dead.

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry};

use crate::alert::notify::{FailureReason, ReceiverKind};

/// Every outbox metric family.
#[derive(Debug, Clone)]
pub struct OutboxMetrics {
    attempts: IntCounterVec,
    failed: IntCounterVec,
    latency: HistogramVec,
    truncations: IntCounterVec,
    entries: IntGaugeVec,
}

impl OutboxMetrics {
    /// Creates the families and registers them in `registry`.
    ///
    /// # Errors
    /// A duplicate registration (an outbox opened twice on one registry).
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let attempts = IntCounterVec::new(
            Opts::new(
                "muster_collector_notifications_total",
                "Attempts to deliver a notification, by receiver and kind.",
            ),
            &["receiver", "kind"],
        )?;
        let failed = IntCounterVec::new(
            Opts::new(
                "muster_collector_notifications_failed_total",
                "Failed attempts to deliver a notification, by receiver, kind and reason.",
            ),
            &["receiver", "kind", "reason"],
        )?;
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "muster_collector_notification_latency_seconds",
                "Time taken by one attempt to deliver a notification, failed ones included.",
            )
            .buckets(vec![0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0]),
            &["kind"],
        )?;
        let truncations = IntCounterVec::new(
            Opts::new(
                "muster_collector_notification_truncations_total",
                "Texts cut, or alerts left out, to fit a platform's message limits.",
            ),
            &["receiver", "kind"],
        )?;
        let entries = IntGaugeVec::new(
            Opts::new(
                "muster_collector_outbox_entries",
                "Notifications in the outbox, by state (pending, dead).",
            ),
            &["state"],
        )?;
        registry.register(Box::new(attempts.clone()))?;
        registry.register(Box::new(failed.clone()))?;
        registry.register(Box::new(latency.clone()))?;
        registry.register(Box::new(truncations.clone()))?;
        registry.register(Box::new(entries.clone()))?;
        for state in ["pending", "dead"] {
            entries.with_label_values(&[state]);
        }
        Ok(Self {
            attempts,
            failed,
            latency,
            truncations,
            entries,
        })
    }

    /// Creates a receiver's series at zero, so they exist before its first attempt.
    pub fn receiver(&self, receiver: &str, kind: ReceiverKind) {
        self.attempts.with_label_values(&[receiver, kind.as_str()]);
        self.truncations
            .with_label_values(&[receiver, kind.as_str()]);
        for reason in FailureReason::ALL {
            if reason != FailureReason::UnknownReceiver {
                self.failed
                    .with_label_values(&[receiver, kind.as_str(), reason.as_str()]);
            }
        }
        self.latency.with_label_values(&[kind.as_str()]);
    }

    /// Counts one attempt that took `seconds`.
    pub fn attempt(&self, receiver: &str, kind: ReceiverKind, seconds: f64) {
        self.attempts
            .with_label_values(&[receiver, kind.as_str()])
            .inc();
        self.latency
            .with_label_values(&[kind.as_str()])
            .observe(seconds);
    }

    /// Counts one failed attempt.
    pub fn failed(&self, receiver: &str, kind: &str, reason: FailureReason) {
        self.failed
            .with_label_values(&[receiver, kind, reason.as_str()])
            .inc();
    }

    /// Counts `cuts` truncations of one delivered notification.
    pub fn truncated(&self, receiver: &str, kind: ReceiverKind, cuts: u32) {
        if cuts > 0 {
            self.truncations
                .with_label_values(&[receiver, kind.as_str()])
                .inc_by(u64::from(cuts));
        }
    }

    /// Sets the entry gauge.
    pub fn entries(&self, pending: usize, dead: usize) {
        for (state, count) in [("pending", pending), ("dead", dead)] {
            self.entries
                .with_label_values(&[state])
                .set(i64::try_from(count).unwrap_or(i64::MAX));
        }
    }
}
