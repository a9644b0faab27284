//! The probe series: blackbox_exporter's names and help texts where it has the series,
//! `muster_probe_*` for Muster's own. Every family is labelled `probe` (the probe's name)
//! and `target`; the collector adds `host`. Only [`FAILURE_INFO`] has one more label, a
//! short reason from a bounded set.

use crate::sample::{FamilySpec, Kind};

/// The labels of every probe series, in order.
pub const LABELS: &[&str] = &["probe", "target"];

/// Whether the run succeeded: the prober's checks and every condition.
pub const SUCCESS: FamilySpec<'static> = FamilySpec {
    name: "probe_success",
    help: "blackbox_exporter: Displays whether or not the probe was a success",
    kind: Kind::Gauge,
    labels: LABELS,
};
/// How long the run took (the timeout when it was cut short).
pub const DURATION: FamilySpec<'static> = FamilySpec {
    name: "probe_duration_seconds",
    help: "blackbox_exporter: Returns how long the probe took to complete in seconds",
    kind: Kind::Gauge,
    labels: LABELS,
};
/// The final HTTP status; 0 when no answer came.
pub const HTTP_STATUS_CODE: FamilySpec<'static> = FamilySpec {
    name: "probe_http_status_code",
    help: "blackbox_exporter: Response HTTP status code",
    kind: Kind::Gauge,
    labels: LABELS,
};
/// The answer's `Content-Length`; -1 when it had none, 0 when no answer came.
pub const HTTP_CONTENT_LENGTH: FamilySpec<'static> = FamilySpec {
    name: "probe_http_content_length",
    help: "blackbox_exporter: Length of http content response",
    kind: Kind::Gauge,
    labels: LABELS,
};
/// Redirects followed.
pub const HTTP_REDIRECTS: FamilySpec<'static> = FamilySpec {
    name: "probe_http_redirects",
    help: "blackbox_exporter: The number of redirects",
    kind: Kind::Gauge,
    labels: LABELS,
};
/// Whether the final request went over TLS.
pub const HTTP_SSL: FamilySpec<'static> = FamilySpec {
    name: "probe_http_ssl",
    help: "blackbox_exporter: Indicates if SSL was used for the final redirect",
    kind: Kind::Gauge,
    labels: LABELS,
};
/// When the earliest certificate of the presented chain expires, unix seconds.
pub const SSL_EARLIEST_CERT_EXPIRY: FamilySpec<'static> = FamilySpec {
    name: "probe_ssl_earliest_cert_expiry",
    help: "blackbox_exporter: Returns last SSL chain expiry in unixtime",
    kind: Kind::Gauge,
    labels: LABELS,
};
/// Whether the run failed because the body (http) or the answer (tcp `expect`) did not
/// match; present only where a pattern is configured.
pub const FAILED_DUE_TO_REGEX: FamilySpec<'static> = FamilySpec {
    name: "probe_failed_due_to_regex",
    help: "blackbox_exporter: Indicates if probe failed due to regex",
    kind: Kind::Gauge,
    labels: LABELS,
};
/// The probe's state after the thresholds: 1 healthy, 0 unhealthy. The collector's
/// built-in "probe failing" rule is `muster_probe_healthy == 0`.
pub const HEALTHY: FamilySpec<'static> = FamilySpec {
    name: "muster_probe_healthy",
    help: "Whether the probe is healthy after its success and failure thresholds (1) or not (0).",
    kind: Kind::Gauge,
    labels: LABELS,
};
/// Failed runs in a row (0 after a success).
pub const CONSECUTIVE_FAILURES: FamilySpec<'static> = FamilySpec {
    name: "muster_probe_consecutive_failures",
    help: "Runs of the probe that failed in a row, up to the latest.",
    kind: Kind::Gauge,
    labels: LABELS,
};
/// The 1-based number of the first condition that did not hold; 0 when all held.
pub const FAILED_CONDITION: FamilySpec<'static> = FamilySpec {
    name: "muster_probe_failed_condition",
    help: "Number (from 1) of the first of the probe's conditions that did not hold in the latest run; 0 when all held.",
    kind: Kind::Gauge,
    labels: LABELS,
};
/// Whether the container is running (docker kind).
pub const CONTAINER_RUNNING: FamilySpec<'static> = FamilySpec {
    name: "muster_probe_container_running",
    help: "Whether the probed container is running (1) or not (0).",
    kind: Kind::Gauge,
    labels: LABELS,
};
/// The command's exit code (exec kind); -1 when it did not exit by itself.
pub const EXIT_CODE: FamilySpec<'static> = FamilySpec {
    name: "muster_probe_exit_code",
    help: "Exit code of the probe's command in the latest run; -1 when it was killed or did not start.",
    kind: Kind::Gauge,
    labels: LABELS,
};
/// 1 for the current failure's reason while the latest run failed; absent otherwise.
pub const FAILURE_INFO: FamilySpec<'static> = FamilySpec {
    name: "muster_probe_failure_info",
    help: "Why the latest run of the probe failed, as the reason label; absent while it succeeds.",
    kind: Kind::Gauge,
    labels: &["probe", "target", "reason"],
};
