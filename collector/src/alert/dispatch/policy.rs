//! What the dispatcher needs to know of a receiver: whether it wants resolved notices,
//! its quiet hours, and how many alerts one notification may carry. The receiver's
//! config (URL, credentials, kind) belongs to `notify/`; the server builds one
//! [`ReceiverPolicy`] per receiver from it.

use crate::alert::quiet::QuietHours;

/// One receiver's dispatch policy. A receiver the dispatcher has no policy for gets
/// [`ReceiverPolicy::default`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceiverPolicy {
    /// Notify resolved alerts (Alertmanager's `send_resolved`). Default `true`.
    pub send_resolved: bool,
    /// Hold its notifications in this window. Default none.
    pub quiet_hours: Option<QuietHours>,
    /// Most alerts in one notification, firing ones first; the rest are counted in
    /// `truncated_alerts`. 0 means no limit (the default).
    pub max_alerts: usize,
    /// Repeat a group even while every firing alert in it is acknowledged. Default
    /// `false`; on for Alertmanager receivers, whose alerts end when repeats stop.
    pub repeat_acknowledged: bool,
}

impl Default for ReceiverPolicy {
    fn default() -> Self {
        Self {
            send_resolved: true,
            quiet_hours: None,
            max_alerts: 0,
            repeat_acknowledged: false,
        }
    }
}
