//! The routing tree: which receivers hear of an alert, and how its notifications are
//! grouped and timed (Alertmanager's `route`, research §6).
//!
//! Two stages, as every config here: [`RouteConfig`] mirrors `[alerting.route]` with its
//! nested `[[alerting.route.routes]]`; [`Route`] is the compiled tree, every node with
//! its inherited parameters resolved, and is what the dispatcher sees.
//!
//! Matching is Alertmanager's: the root matches everything; below a matching node the
//! children are tried in order, the first whose subtree matches wins unless it says
//! `continue = true`, and a node none of whose children match is itself the match. An
//! alert may so reach several nodes (with `continue`), each of which groups it for its
//! receiver. Escalation (`escalate_to`, `escalate_after`, `escalate_matchers`) is a
//! route parameter like the timings and is inherited the same way; what it does is the
//! dispatcher's (`dispatch/`). This module leaves out grouping state, timers and muting.

use std::collections::BTreeSet;

use muster_shared::config::Duration;
use serde::{Deserialize, Serialize};

use super::labels::LabelSet;
use super::matcher::{Matcher, all_match};

/// `group_by = ["..."]`: group by every label, so each alert is its own group.
pub const GROUP_BY_ALL: &str = "...";

/// One node of `[alerting.route]` as written. Unset parameters are inherited from the
/// parent; the root's defaults are Alertmanager's.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// The receiver's name. Required at the root.
    pub receiver: Option<String>,
    /// Label matchers, Alertmanager syntax (`severity="critical"`, `host=~"web.*"`); all
    /// must match. None at the root.
    #[serde(default)]
    pub matchers: Vec<Matcher>,
    /// Labels to group by; `["..."]` groups by all labels. Root default: `[]`, one group.
    pub group_by: Option<Vec<String>>,
    /// Wait before a new group's first notification. Root default `"30s"`.
    pub group_wait: Option<Duration>,
    /// Least time between two notifications of a group's changes. Root default `"5m"`.
    pub group_interval: Option<Duration>,
    /// Re-send an unchanged firing group after this long. Root default `"4h"`; at least
    /// `group_interval`.
    pub repeat_interval: Option<Duration>,
    /// Go on matching the following siblings after this node matched. Default `false`.
    #[serde(default, rename = "continue")]
    pub continue_matching: bool,
    /// The receiver that hears of an alert left firing and unacknowledged for
    /// `escalate_after`. Default: none.
    pub escalate_to: Option<String>,
    /// How long after firing an unacknowledged alert escalates. Needed with `escalate_to`.
    pub escalate_after: Option<Duration>,
    /// Which alerts escalate. Root default `["severity=\"critical\""]`.
    pub escalate_matchers: Option<Vec<Matcher>>,
    /// Child routes, tried in order.
    #[serde(default)]
    pub routes: Vec<RouteConfig>,
}

/// Parameters a node hands down to its children.
#[derive(Debug, Clone)]
struct Inherited {
    receiver: Option<String>,
    group_by: Vec<String>,
    group_wait: Duration,
    group_interval: Duration,
    repeat_interval: Duration,
    escalate_to: Option<String>,
    escalate_after: Option<Duration>,
    escalate_matchers: Vec<Matcher>,
}

impl Inherited {
    fn root_defaults() -> Self {
        Self {
            receiver: None,
            group_by: Vec::new(),
            group_wait: Duration::from_secs(30),
            group_interval: Duration::from_secs(5 * 60),
            repeat_interval: Duration::from_secs(4 * 3600),
            escalate_to: None,
            escalate_after: None,
            escalate_matchers: default_escalate_matchers(),
        }
    }

    /// `self` overridden by what `node` sets.
    fn under(&self, node: &RouteConfig) -> Self {
        Self {
            receiver: node.receiver.clone().or_else(|| self.receiver.clone()),
            group_by: node
                .group_by
                .clone()
                .unwrap_or_else(|| self.group_by.clone()),
            group_wait: node.group_wait.unwrap_or(self.group_wait),
            group_interval: node.group_interval.unwrap_or(self.group_interval),
            repeat_interval: node.repeat_interval.unwrap_or(self.repeat_interval),
            escalate_to: node
                .escalate_to
                .clone()
                .or_else(|| self.escalate_to.clone()),
            escalate_after: node.escalate_after.or(self.escalate_after),
            escalate_matchers: node
                .escalate_matchers
                .clone()
                .unwrap_or_else(|| self.escalate_matchers.clone()),
        }
    }
}

fn default_escalate_matchers() -> Vec<Matcher> {
    Matcher::parse_list("severity=\"critical\"").unwrap_or_default()
}

impl RouteConfig {
    /// Every problem in the tree, each naming its key (`alerting.route.routes[1].receiver`):
    /// receivers not in `receivers`, a missing root receiver, root matchers or `continue`,
    /// `repeat_interval` under `group_interval`, zero intervals, bad `group_by` names, and
    /// half-configured escalation. Empty when the tree compiles.
    pub fn validate(&self, receivers: &[&str]) -> Vec<String> {
        let mut problems = Vec::new();
        let key = "alerting.route";
        if self.receiver.is_none() {
            problems.push(format!("{key}.receiver is required at the root"));
        }
        if !self.matchers.is_empty() {
            problems.push(format!(
                "{key}.matchers: the root route matches every alert; put matchers on child routes"
            ));
        }
        if self.continue_matching {
            problems.push(format!("{key}.continue is not allowed at the root"));
        }
        self.collect_problems(
            key,
            &Inherited::root_defaults(),
            true,
            receivers,
            &mut problems,
        );
        problems
    }

    fn collect_problems(
        &self,
        key: &str,
        parent: &Inherited,
        root: bool,
        receivers: &[&str],
        problems: &mut Vec<String>,
    ) {
        let here = parent.under(self);
        let unknown = |name: &str| !receivers.contains(&name);
        if let Some(r) = self.receiver.as_deref().filter(|r| unknown(r)) {
            problems.push(format!("{key}.receiver: unknown receiver {r:?}"));
        }
        if let Some(r) = self.escalate_to.as_deref().filter(|r| unknown(r)) {
            problems.push(format!("{key}.escalate_to: unknown receiver {r:?}"));
        }
        let sets_timing = root || self.group_interval.is_some() || self.repeat_interval.is_some();
        if sets_timing && here.group_interval.get().is_zero() {
            problems.push(format!("{key}.group_interval must be above zero"));
        }
        if sets_timing && here.repeat_interval < here.group_interval {
            problems.push(format!(
                "{key}.repeat_interval ({}) must be at least group_interval ({})",
                here.repeat_interval, here.group_interval
            ));
        }
        if let Some(group_by) = &self.group_by {
            problems.extend(group_by_problems(key, group_by));
        }
        if root || self.escalate_to.is_some() || self.escalate_after.is_some() {
            match (&here.escalate_to, here.escalate_after) {
                (Some(_), None) => problems.push(format!("{key}.escalate_to needs escalate_after")),
                (None, Some(_)) => problems.push(format!("{key}.escalate_after needs escalate_to")),
                (Some(_), Some(after)) if after.get().is_zero() => {
                    problems.push(format!("{key}.escalate_after must be above zero"));
                }
                _ => {}
            }
        }
        let sets_receivers = root || self.escalate_to.is_some() || self.receiver.is_some();
        if sets_receivers && here.escalate_to.is_some() && here.escalate_to == here.receiver {
            problems.push(format!(
                "{key}.escalate_to is the route's own receiver; name another receiver"
            ));
        }
        for (i, child) in self.routes.iter().enumerate() {
            let child_key = format!("{key}.routes[{i}]");
            if child.matchers.is_empty() && child.continue_matching {
                problems.push(format!(
                    "{child_key} has no matchers and continue = true: it would take every alert"
                ));
            }
            child.collect_problems(&child_key, &here, false, receivers, problems);
        }
    }
}

fn group_by_problems(key: &str, group_by: &[String]) -> Vec<String> {
    let mut problems = Vec::new();
    if group_by.iter().any(|n| n == GROUP_BY_ALL) && group_by.len() > 1 {
        problems.push(format!("{key}.group_by: \"...\" must be alone"));
    }
    let mut seen = BTreeSet::new();
    for name in group_by.iter().filter(|n| *n != GROUP_BY_ALL) {
        let mut chars = name.chars();
        let valid = matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            problems.push(format!("{key}.group_by: invalid label name {name:?}"));
        }
        if !seen.insert(name) {
            problems.push(format!("{key}.group_by: {name:?} is listed twice"));
        }
    }
    problems
}

/// Which labels form a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupBy {
    /// `["..."]`: every label, one group per alert.
    All,
    /// These labels (possibly none: one group for the route).
    Labels(Vec<String>),
}

impl GroupBy {
    /// The group labels of an alert with `labels`: the listed labels it has (a missing
    /// one is left out, as Alertmanager does), or all of them.
    pub fn group_labels(&self, labels: &LabelSet) -> LabelSet {
        match self {
            GroupBy::All => labels.clone(),
            GroupBy::Labels(names) => names
                .iter()
                .filter_map(|n| labels.get_key_value(n))
                .filter(|(_, v)| !v.is_empty())
                .map(|(n, v)| (n.clone(), v.clone()))
                .collect(),
        }
    }
}

/// Escalation as a node resolved it.
#[derive(Debug, Clone, PartialEq)]
pub struct Escalation {
    /// The receiver that hears of the escalated alerts.
    pub receiver: String,
    /// Milliseconds after firing, unacknowledged, that an alert escalates.
    pub after_ms: u64,
    /// Which alerts escalate (default `severity="critical"`).
    pub matchers: Vec<Matcher>,
}

/// One node of the compiled tree, every parameter resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct RouteNode {
    /// Position in [`Route::nodes`]; stable for one compiled tree.
    pub index: usize,
    /// Alertmanager's route key: the matchers from the root down, `{}/{severity="critical"}`.
    /// The first half of every group key; stable across restarts for the same config.
    pub key: String,
    /// Its receiver.
    pub receiver: String,
    /// Its own matchers.
    pub matchers: Vec<Matcher>,
    /// How its alerts are grouped.
    pub group_by: GroupBy,
    /// Milliseconds before a new group's first notification.
    pub group_wait_ms: u64,
    /// Milliseconds between a group's flushes.
    pub group_interval_ms: u64,
    /// Milliseconds after which an unchanged firing group is notified again.
    pub repeat_interval_ms: u64,
    /// Whether matching goes on to its next siblings.
    pub continue_matching: bool,
    /// Escalation, if configured for it.
    pub escalation: Option<Escalation>,
    children: Vec<usize>,
}

/// The compiled routing tree (root first).
#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    nodes: Vec<RouteNode>,
}

/// The route config does not compile; each problem names its key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid alerting.route: {}", problems.join("; "))]
pub struct RouteError {
    /// Every problem found.
    pub problems: Vec<String>,
}

impl Route {
    /// Validates `config` against the known `receivers` and compiles it.
    ///
    /// ```
    /// use muster_collector::alert::route::{Route, RouteConfig};
    /// let config = RouteConfig { receiver: Some("chat".into()), ..Default::default() };
    /// let route = Route::compile(&config, &["chat"]).unwrap();
    /// assert_eq!(route.matching(&Default::default())[0].receiver, "chat");
    /// ```
    ///
    /// # Errors
    /// [`RouteError`] with every problem [`RouteConfig::validate`] finds.
    pub fn compile(config: &RouteConfig, receivers: &[&str]) -> Result<Route, RouteError> {
        let problems = config.validate(receivers);
        if !problems.is_empty() {
            return Err(RouteError { problems });
        }
        let mut nodes = Vec::new();
        add_node(&mut nodes, config, &Inherited::root_defaults(), None);
        Ok(Route { nodes })
    }

    /// Every node, root first, in depth-first config order.
    pub fn nodes(&self) -> &[RouteNode] {
        &self.nodes
    }

    /// The node at `index`.
    pub fn node(&self, index: usize) -> Option<&RouteNode> {
        self.nodes.get(index)
    }

    /// The nodes an alert with `labels` is routed to, in tree order; never empty (the root
    /// matches everything).
    pub fn matching(&self, labels: &LabelSet) -> Vec<&RouteNode> {
        let mut found = Vec::new();
        self.match_from(0, labels, &mut found);
        found
    }

    /// Every receiver the tree names, escalation receivers included.
    pub fn receivers(&self) -> BTreeSet<&str> {
        self.nodes
            .iter()
            .flat_map(|n| {
                std::iter::once(n.receiver.as_str())
                    .chain(n.escalation.as_ref().map(|e| e.receiver.as_str()))
            })
            .collect()
    }

    /// Appends the matches under node `index` (which must match itself) to `found`;
    /// returns whether it appended any.
    fn match_from<'a>(
        &'a self,
        index: usize,
        labels: &LabelSet,
        found: &mut Vec<&'a RouteNode>,
    ) -> bool {
        let Some(node) = self.nodes.get(index) else {
            return false;
        };
        if !all_match(&node.matchers, labels) {
            return false;
        }
        let before = found.len();
        for &child in &node.children {
            let matched = self.match_from(child, labels, found);
            let continues = self.nodes.get(child).is_some_and(|c| c.continue_matching);
            if matched && !continues {
                break;
            }
        }
        if found.len() == before {
            found.push(node);
        }
        true
    }
}

/// Adds `config` (under `parent`, whose key is given) and its subtree; returns its index.
fn add_node(
    nodes: &mut Vec<RouteNode>,
    config: &RouteConfig,
    inherited: &Inherited,
    parent_key: Option<&str>,
) -> usize {
    let here = inherited.under(config);
    let matchers_text = config
        .matchers
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let key = match parent_key {
        Some(parent) => format!("{parent}/{{{matchers_text}}}"),
        None => format!("{{{matchers_text}}}"),
    };
    let group_by = if here.group_by.iter().any(|n| n == GROUP_BY_ALL) {
        GroupBy::All
    } else {
        GroupBy::Labels(here.group_by.clone())
    };
    let ms = |d: Duration| u64::try_from(d.get().as_millis()).unwrap_or(u64::MAX);
    let escalation = match (&here.escalate_to, here.escalate_after) {
        (Some(receiver), Some(after)) => Some(Escalation {
            receiver: receiver.clone(),
            after_ms: ms(after),
            matchers: here.escalate_matchers.clone(),
        }),
        _ => None,
    };
    let index = nodes.len();
    nodes.push(RouteNode {
        index,
        key: key.clone(),
        // validate() made sure the root has a receiver, so every node inherits one.
        receiver: here.receiver.clone().unwrap_or_default(),
        matchers: config.matchers.clone(),
        group_by,
        group_wait_ms: ms(here.group_wait),
        group_interval_ms: ms(here.group_interval),
        repeat_interval_ms: ms(here.repeat_interval),
        continue_matching: config.continue_matching,
        escalation,
        children: Vec::new(),
    });
    for child in &config.routes {
        let child_index = add_node(nodes, child, &here, Some(&key));
        if let Some(node) = nodes.get_mut(index) {
            node.children.push(child_index);
        }
    }
    index
}

#[cfg(test)]
mod tests;
