//! The dispatcher's test kit and its table tests. The kit plays the server: it evaluates
//! every 5 s on an explicit clock, hands the dispatcher the alerts a test has set, and
//! writes each notification as one line, `t=SECONDS RECEIVER {GROUP LABELS} F[..] R[..]`,
//! alerts named `alertname/host`, `*` after an acknowledged one, `^1` after an
//! escalation receiver, `+N` for truncated alerts.

mod escalation;
mod grouping;
mod mutes;
mod restart;
mod settings;

use std::collections::BTreeMap;

use muster_shared::store::{Store, StoreOptions};

use super::*;
use crate::alert::labels::LabelSet;
use crate::alert::model::NotifyStatus;
use crate::alert::route::RouteConfig;

/// 2023-11-13 00:00 UTC, a Monday, in seconds: the kit's time 0.
pub const T0: u64 = 1_699_833_600;

/// How often the kit evaluates, in seconds.
pub const TICK: u64 = 5;

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    route: RouteConfig,
}

/// A compiled route from `[route]` TOML, receivers `chat`, `ops`, `db`, `pager`.
pub fn route(text: &str) -> Route {
    let file: File = muster_shared::config::parse(text, "c.toml".as_ref()).unwrap();
    Route::compile(&file.route, &["chat", "ops", "db", "pager"]).unwrap()
}

/// The labels of `spec`, `alertname/host[/severity]`.
pub fn labels(spec: &str) -> LabelSet {
    let mut parts = spec.split('/');
    let mut labels = LabelSet::new();
    for name in ["alertname", "host", "severity"] {
        if let Some(value) = parts.next() {
            labels.insert(name.to_owned(), value.to_owned());
        }
    }
    labels
}

/// A dispatcher in a temp store, driven by a clock in seconds from [`T0`].
pub struct Kit {
    dir: tempfile::TempDir,
    /// The store and the dispatcher on it; `None` only inside [`Kit::restart`].
    open: Option<(Store, Dispatcher)>,
    settings: DispatchSettings,
    /// The next evaluation, seconds after T0.
    pub now_s: u64,
    alerts: BTreeMap<String, Alert>,
    lines: Vec<String>,
}

impl Kit {
    /// A kit with the route `route_toml`, the given receiver policies and no inhibition.
    pub fn new(route_toml: &str, policies: &[(&str, ReceiverPolicy)]) -> Self {
        Self::with_inhibitor(route_toml, policies, Inhibitor::new(&[], false))
    }

    /// As [`Kit::new`], with `inhibitor`.
    pub fn with_inhibitor(
        route_toml: &str,
        policies: &[(&str, ReceiverPolicy)],
        inhibitor: Inhibitor,
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), StoreOptions::collector()).unwrap();
        let settings = DispatchSettings {
            route: route(route_toml),
            inhibitor,
            receivers: policies
                .iter()
                .map(|(n, p)| ((*n).to_owned(), p.clone()))
                .collect(),
            external_url: "http://muster.example".to_owned(),
            nflog_retention_ms: DEFAULT_RETENTION_MS,
            silence_retention_ms: crate::alert::silence::DEFAULT_RETENTION_MS,
        };
        let dispatcher = Dispatcher::open(&store, settings.clone()).unwrap();
        Self {
            dir,
            open: Some((store, dispatcher)),
            settings,
            now_s: 0,
            alerts: BTreeMap::new(),
            lines: Vec::new(),
        }
    }

    /// The store, for silences and acks.
    pub fn store(&self) -> &Store {
        &self.open.as_ref().expect("open outside restart").0
    }

    /// The dispatcher.
    pub fn dispatcher(&mut self) -> &mut Dispatcher {
        &mut self.open.as_mut().expect("open outside restart").1
    }

    /// The current alert `spec`.
    pub fn alert(&self, spec: &str) -> &Alert {
        &self.alerts[spec]
    }

    /// These alerts fire from now (those already firing keep their start).
    pub fn fire(&mut self, specs: &[&str]) {
        let now = (T0 + self.now_s) * 1000;
        for spec in specs {
            let alert = self
                .alerts
                .entry((*spec).to_owned())
                .or_insert_with(|| new_alert(spec, now));
            if alert.state != AlertState::Firing {
                *alert = new_alert(spec, now);
                alert.state = AlertState::Firing;
                alert.fired_at_ms = Some(now);
            }
        }
    }

    /// These alerts are pending from now.
    pub fn pend(&mut self, specs: &[&str]) {
        let now = (T0 + self.now_s) * 1000;
        for spec in specs {
            self.alerts.insert((*spec).to_owned(), new_alert(spec, now));
        }
    }

    /// These alerts resolve now.
    pub fn resolve(&mut self, specs: &[&str]) {
        let now = (T0 + self.now_s) * 1000;
        for spec in specs {
            let alert = self.alerts.get_mut(*spec).unwrap();
            alert.state = AlertState::Resolved;
            alert.resolved_at_ms = Some(now);
        }
    }

    /// These alerts leave the evaluator's list.
    pub fn forget(&mut self, specs: &[&str]) {
        for spec in specs {
            self.alerts.remove(*spec);
        }
    }

    /// Evaluates every [`TICK`] from `now_s` up to and including `to_s`.
    pub fn run_until(&mut self, to_s: u64) {
        while self.now_s <= to_s {
            let at = self.now_s;
            self.pass(at);
            self.now_s += TICK;
        }
    }

    /// One pass at `at_s`, as the server does it: process, outbox (the lines), flush,
    /// commit.
    pub fn pass(&mut self, at_s: u64) {
        self.pass_uncommitted(at_s);
        self.open
            .as_mut()
            .expect("open outside restart")
            .1
            .commit()
            .unwrap();
    }

    /// A pass that stops after the outbox flush, before the log's commit.
    pub fn pass_uncommitted(&mut self, at_s: u64) {
        let alerts: Vec<Alert> = self.alerts.values().cloned().collect();
        let (store, dispatcher) = self.open.as_mut().expect("open outside restart");
        let notes = dispatcher.process((T0 + at_s) * 1000, &alerts).unwrap();
        self.lines.extend(notes.iter().map(|n| line(at_s, n)));
        if !notes.is_empty() {
            store.flush().unwrap();
        }
    }

    /// The lines since the last call.
    pub fn take(&mut self) -> Vec<String> {
        std::mem::take(&mut self.lines)
    }

    /// Stops the dispatcher and starts a new one on the same store directory, as a
    /// restart does. A crash after the outbox flush but before the log's commit is
    /// [`Kit::pass_uncommitted`] followed by this.
    pub fn restart(&mut self) {
        if let Some((store, _)) = self.open.take() {
            store.flush().unwrap();
        }
        let store = reopen(self.dir.path());
        let dispatcher = Dispatcher::open(&store, self.settings.clone()).unwrap();
        self.open = Some((store, dispatcher));
    }
}

/// Opens the store in `dir`, retrying `Locked` for up to 5 s: sled's `flock` belongs to
/// the open file description, and a child process forked by a concurrent test holds a
/// copy of every descriptor until it execs, so a reopen right after a drop can find the
/// store locked for a moment (as `tsdb`'s and the agent buffer's tests do).
fn reopen(dir: &std::path::Path) -> Store {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        match Store::open(dir, StoreOptions::collector()) {
            Err(muster_shared::store::StoreError::Locked { .. })
                if std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            other => break other.unwrap(),
        }
    }
}

/// One step of a scripted table case.
#[derive(Debug, Clone, Copy)]
pub enum Step {
    /// [`Kit::fire`].
    Fire(&'static [&'static str]),
    /// [`Kit::pend`].
    Pend(&'static [&'static str]),
    /// [`Kit::resolve`].
    Resolve(&'static [&'static str]),
    /// [`Kit::forget`].
    Forget(&'static [&'static str]),
    /// [`Kit::run_until`].
    Until(u64),
    /// [`Kit::restart`].
    Restart,
}

impl Kit {
    /// Plays `steps` and returns the lines they produced.
    pub fn play(&mut self, steps: &[Step]) -> Vec<String> {
        for step in steps {
            match *step {
                Step::Fire(specs) => self.fire(specs),
                Step::Pend(specs) => self.pend(specs),
                Step::Resolve(specs) => self.resolve(specs),
                Step::Forget(specs) => self.forget(specs),
                Step::Until(to_s) => self.run_until(to_s),
                Step::Restart => self.restart(),
            }
        }
        self.take()
    }
}

fn new_alert(spec: &str, now_ms: u64) -> Alert {
    Alert {
        labels: labels(spec),
        annotations: LabelSet::from([("summary".to_owned(), format!("{spec} is bad"))]),
        state: AlertState::Pending,
        active_at_ms: now_ms,
        fired_at_ms: None,
        resolved_at_ms: None,
        value: 1.0,
        last_active_ms: now_ms,
        generator_url: String::new(),
    }
}

/// One notification as a line (module docs).
pub fn line(at_s: u64, n: &Notification) -> String {
    let name = |labels: &LabelSet| {
        let mut parts = vec![labels["alertname"].as_str()];
        parts.extend(labels.get("host").map(String::as_str));
        parts.join("/")
    };
    let list = |status: NotifyStatus| {
        n.alerts
            .iter()
            .filter(|a| a.status == status)
            .map(|a| {
                format!(
                    "{}{}",
                    name(&a.labels),
                    if a.acknowledged_by.is_some() { "*" } else { "" }
                )
            })
            .collect::<Vec<_>>()
            .join(" ")
    };
    let group: Vec<String> = n
        .group_labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let mut line = format!("t={at_s} {}", n.receiver);
    if n.escalation_level > 0 {
        line.push_str(&format!("^{}", n.escalation_level));
    }
    line.push_str(&format!(
        " {{{}}} F[{}] R[{}]",
        group.join(","),
        list(NotifyStatus::Firing),
        list(NotifyStatus::Resolved)
    ));
    if n.truncated_alerts > 0 {
        line.push_str(&format!(" +{}", n.truncated_alerts));
    }
    line
}

/// The built-in host-down inhibition alone.
pub fn host_down_inhibitor() -> Inhibitor {
    Inhibitor::new(&[], true)
}
