//! Alerting: rules over the store become alerts, alerts become notifications, and
//! notifications reach chat and Alertmanager even across outages.
//!
//! The flow (DESIGN.md §2, "Alerts"):
//!
//! ```text
//! rules (TOML, hot reload) ──evaluate every interval──▶ alerts (inactive → pending → firing → resolved)
//!   ──route by labels──▶ groups (group_wait / group_interval / repeat_interval)
//!   ──silences, inhibition, quiet hours, escalation──▶ notifications
//!   ──durable outbox (sled)──▶ receivers (Slack, Discord, Teams, Telegram, ntfy, webhook, Alertmanager)
//! ```
//!
//! Each stage knows the one below it only through the types in [`model`]: the evaluator
//! hands [`model::Alert`]s to the dispatcher, the dispatcher hands
//! [`model::Notification`]s to the outbox, the outbox hands them to a receiver. Matchers
//! ([`matcher`]) are shared by routes, silences and inhibition rules.
//!
//! - [`config`] — `[alerting]` in `collector.toml`: every part's keys in one table.
//! - [`history`] — alert episodes that ended, for the API's history search.
//! - [`labels`] — label sets of alerts and their Alertmanager-compatible fingerprints.
//! - [`matcher`] — Alertmanager's label matchers (`severity="critical"`, `host=~"web.*"`).
//! - [`model`] — alerts and notifications, the types every stage shares.
//! - [`rules`] — alert rules: files, built-in rules, templates, hot reload.
//! - [`eval`] — evaluating rules into alerts: the state machine and its persistence.
//! - [`route`] — the routing tree: matchers to receivers, grouping and timing parameters.
//! - [`dispatch`] — aggregation groups, their timers, muting and the notification log.
//! - [`service`] — the pipeline at run time: evaluation, dispatch and delivery rounds.
//! - [`silence`] — silences and their store.
//! - [`inhibit`] — inhibition rules, the built-in `HostDown` rule among them.
//! - [`ack`] — acknowledgements and their store.
//! - [`quiet`] — quiet hours per receiver.
//! - [`outbox`] — the durable outbox in sled: delivery with retries, backoff and dead letters.
//! - [`notify`] — receivers: Slack, Mattermost, Rocket.Chat, Discord, Teams, Telegram, ntfy,
//!   Alertmanager's webhook v4 and Alertmanager's API v2, one file each.

pub mod ack;
pub mod config;
pub mod dispatch;
pub mod eval;
pub mod history;
pub mod inhibit;
pub mod labels;
pub mod matcher;
pub mod model;
pub mod notify;
pub mod outbox;
pub mod quiet;
pub mod route;
pub mod rules;
pub mod service;
pub mod silence;
