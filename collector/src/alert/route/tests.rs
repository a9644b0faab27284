use super::*;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    route: RouteConfig,
}

const RECEIVERS: &[&str] = &["default", "ops", "db", "pager", "web"];

fn parse(text: &str) -> RouteConfig {
    muster_shared::config::parse::<File>(text, std::path::Path::new("c.toml"))
        .unwrap()
        .route
}

fn compile(text: &str) -> Route {
    Route::compile(&parse(text), RECEIVERS).unwrap()
}

fn labels(pairs: &[(&str, &str)]) -> LabelSet {
    pairs
        .iter()
        .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
        .collect()
}

/// A tree exercising every matching rule.
const TREE: &str = r#"
[route]
receiver = "default"
group_by = ["alertname"]

[[route.routes]]
matchers = ["team=\"ops\""]
receiver = "ops"
continue = true

[[route.routes]]
matchers = ["service=~\"db|cache\""]
receiver = "db"
group_wait = "10s"

[[route.routes.routes]]
matchers = ["severity=\"critical\""]
receiver = "pager"
group_by = ["..."]

[[route.routes]]
matchers = ["service=\"web\""]
receiver = "web"

[[route.routes]]
matchers = ["service=~\"web|db\""]
receiver = "ops"
"#;

/// Name, the alert's labels, the receivers it reaches.
type Case = (
    &'static str,
    &'static [(&'static str, &'static str)],
    &'static [&'static str],
);

#[test]
fn routes_like_alertmanager() {
    let route = compile(TREE);
    let cases: [Case; 7] = [
        (
            "no child matches: the root",
            &[("service", "mail")],
            &["default"],
        ),
        ("first match wins", &[("service", "web")], &["web"]),
        ("regex child, no grandchild", &[("service", "db")], &["db"]),
        (
            "nested: the deepest match",
            &[("service", "cache"), ("severity", "critical")],
            &["pager"],
        ),
        (
            "continue: the next sibling too",
            &[("team", "ops"), ("service", "web")],
            &["ops", "web"],
        ),
        ("continue with nothing after", &[("team", "ops")], &["ops"]),
        (
            "first match wins over a later regex",
            &[("service", "db"), ("severity", "warning")],
            &["db"],
        ),
    ];
    for (name, alert, expected) in cases {
        let got: Vec<&str> = route
            .matching(&labels(alert))
            .iter()
            .map(|n| n.receiver.as_str())
            .collect();
        assert_eq!(got, expected, "{name}");
    }
}

#[test]
fn children_inherit_what_they_leave_unset() {
    let route = compile(TREE);
    let nodes = route.nodes();
    let (root, db, pager) = (&nodes[0], &nodes[2], &nodes[3]);
    assert_eq!(pager.receiver, "pager");
    assert_eq!(
        (root.group_wait_ms, db.group_wait_ms, pager.group_wait_ms),
        (30_000, 10_000, 10_000)
    );
    assert_eq!(
        (pager.group_interval_ms, pager.repeat_interval_ms),
        (300_000, 4 * 3_600_000)
    );
    assert_eq!(db.group_by, GroupBy::Labels(vec!["alertname".to_owned()]));
    assert_eq!(pager.group_by, GroupBy::All);
    assert_eq!(
        pager.key,
        r#"{}/{service=~"db|cache"}/{severity="critical"}"#
    );
    assert_eq!(route.receivers().len(), 5);
}

#[test]
fn group_labels_follow_group_by() {
    let alert = labels(&[("alertname", "HostDown"), ("host", "web1"), ("team", "")]);
    let cases = [
        (GroupBy::Labels(vec![]), labels(&[])),
        (
            GroupBy::Labels(vec!["alertname".into(), "team".into(), "zone".into()]),
            labels(&[("alertname", "HostDown")]),
        ),
        (GroupBy::All, alert.clone()),
    ];
    for (group_by, expected) in cases {
        assert_eq!(group_by.group_labels(&alert), expected, "{group_by:?}");
    }
}

#[test]
fn escalation_is_inherited_with_its_default_matchers() {
    let route = compile(
        r#"
[route]
receiver = "default"
escalate_to = "pager"
escalate_after = "15m"

[[route.routes]]
matchers = ["team=\"db\""]
receiver = "db"
escalate_matchers = ["severity=~\"critical|page\""]

[[route.routes]]
matchers = ["team=\"web\""]
receiver = "web"
"#,
    );
    let nodes = route.nodes();
    let root = nodes[0].escalation.as_ref().unwrap();
    assert_eq!((root.receiver.as_str(), root.after_ms), ("pager", 900_000));
    assert_eq!(root.matchers[0].to_string(), r#"severity="critical""#);
    let db = nodes[1].escalation.as_ref().unwrap();
    assert_eq!(db.matchers[0].to_string(), r#"severity=~"critical|page""#);
    assert_eq!(nodes[2].escalation.as_ref().unwrap().receiver, "pager");
}

#[test]
fn validate_reports_every_problem() {
    let config = parse(
        r#"
[route]
matchers = ["a=\"b\""]
continue = true
group_interval = "10m"
repeat_interval = "5m"
escalate_to = "nobody"

[[route.routes]]
matchers = ["team=\"db\""]
receiver = "dba"
group_by = ["...", "host", "9x"]

[[route.routes]]
continue = true
receiver = "ops"
escalate_after = "0s"
group_interval = "0s"
"#,
    );
    let problems = config.validate(RECEIVERS);
    let expected = [
        "alerting.route.receiver is required at the root",
        "alerting.route.matchers: the root route matches every alert",
        "alerting.route.continue is not allowed at the root",
        "alerting.route.escalate_to: unknown receiver \"nobody\"",
        "alerting.route.repeat_interval (5m) must be at least group_interval (10m)",
        "alerting.route.escalate_to needs escalate_after",
        "alerting.route.routes[0].receiver: unknown receiver \"dba\"",
        "alerting.route.routes[0].group_by: \"...\" must be alone",
        "alerting.route.routes[0].group_by: invalid label name \"9x\"",
        "alerting.route.routes[1] has no matchers and continue = true",
        "alerting.route.routes[1].group_interval must be above zero",
        "alerting.route.routes[1].escalate_after must be above zero",
    ];
    for want in expected {
        assert!(
            problems.iter().any(|p| p.starts_with(want)),
            "missing {want:?} in {problems:#?}"
        );
    }
    assert_eq!(problems.len(), expected.len(), "{problems:#?}");
    let err = Route::compile(&config, RECEIVERS).unwrap_err();
    assert_eq!(err.problems, problems);
}

#[test]
fn escalating_to_the_routes_own_receiver_is_refused() {
    let config =
        parse("[route]\nreceiver = \"ops\"\nescalate_to = \"ops\"\nescalate_after = \"5m\"\n");
    let problems = config.validate(RECEIVERS);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].contains("own receiver"));
}

#[test]
fn unknown_keys_and_bad_matchers_fail_at_load() {
    for (text, expected) in [
        (
            "[route]\nreceiver = \"a\"\ngroup_wiat = \"1s\"\n",
            "unknown field `group_wiat`",
        ),
        (
            "[route]\nreceiver = \"a\"\n[[route.routes]]\nmatchers = [\"nope\"]\n",
            "invalid matcher",
        ),
        (
            "[route]\nreceiver = \"a\"\ngroup_wait = \"soon\"\n",
            "invalid duration",
        ),
    ] {
        let err = muster_shared::config::parse::<File>(text, std::path::Path::new("c.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains(expected), "{text}: {err}");
    }
}
