//! `GET /v1/samples/urgent?after=SEQ&timeout_ms=N`: waits until the agent holds a round
//! after `SEQ` that the collector should pull at once, instead of at its next interval.
//!
//! A round is urgent when it tells something an alert may wait on: a probe whose health
//! changed. The collector keeps one such request open per agent between its regular pulls
//! (no pull permit is held while it waits), and pulls as soon as it returns a sequence, so
//! a probe failure reaches rule evaluation in milliseconds rather than up to a scrape
//! interval later; steady-state pulls stay at one per interval. An agent that does not know
//! the route answers 404, and the collector stops asking it.

use serde::{Deserialize, Serialize};

/// The longest wait an agent honours; a longer `timeout_ms` is served this long.
pub const MAX_URGENT_WAIT_MS: u64 = 60_000;

/// The query string: `?after=SEQ&timeout_ms=N`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct UrgentQuery {
    /// Wait for an urgent round with a sequence number greater than this.
    pub after: u64,
    /// How long to wait, in ms, at most [`MAX_URGENT_WAIT_MS`].
    pub timeout_ms: u64,
}

/// The answer, JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct UrgentAnswer {
    /// The newest urgent round's sequence number, or 0 when none came after `after`
    /// within the wait (or the agent is stopping).
    pub urgent_seq: u64,
}
