//! Grouping and timing: group_by, group_wait, group_interval, repeat_interval, resolved
//! notices, send_resolved, pending alerts, max_alerts.

use super::Step::{Fire, Forget, Pend, Resolve, Until};
use super::*;

const BY_NAME: &str = r#"
[route]
receiver = "chat"
group_by = ["alertname"]
group_wait = "30s"
group_interval = "60s"
repeat_interval = "300s"
"#;

const BY_ALL: &str = "[route]\nreceiver = \"chat\"\ngroup_by = [\"...\"]\n";
const BY_NONE: &str = "[route]\nreceiver = \"chat\"\n";

const CONTINUE: &str = r#"
[route]
receiver = "chat"
group_by = ["alertname"]

[[route.routes]]
matchers = ["host=\"web1\""]
receiver = "ops"
continue = true

[[route.routes]]
matchers = ["alertname=\"Disk\""]
receiver = "db"
"#;

fn quiet_policy(send_resolved: bool, max_alerts: usize) -> ReceiverPolicy {
    ReceiverPolicy {
        send_resolved,
        max_alerts,
        ..ReceiverPolicy::default()
    }
}

/// Name, route, the `chat` policy, script, expected lines.
type Case = (
    &'static str,
    &'static str,
    ReceiverPolicy,
    &'static [Step],
    &'static [&'static str],
);

#[test]
fn groups_and_times_like_alertmanager() {
    let default = ReceiverPolicy::default();
    let cases: [Case; 10] = [
        (
            "group_wait, then group_interval, then repeat_interval",
            BY_NAME,
            default.clone(),
            &[
                Fire(&["Disk/web1"]),
                Until(20),
                Fire(&["Disk/web2"]),
                Until(35),
                Fire(&["Disk/web3"]),
                Until(400),
            ],
            &[
                "t=30 chat {alertname=Disk} F[Disk/web1 Disk/web2] R[]",
                "t=90 chat {alertname=Disk} F[Disk/web1 Disk/web2 Disk/web3] R[]",
                "t=390 chat {alertname=Disk} F[Disk/web1 Disk/web2 Disk/web3] R[]",
            ],
        ),
        (
            "group_by names",
            BY_NAME,
            default.clone(),
            &[Fire(&["Disk/web1", "Disk/web2", "Cpu/web1"]), Until(35)],
            &[
                "t=30 chat {alertname=Cpu} F[Cpu/web1] R[]",
                "t=30 chat {alertname=Disk} F[Disk/web1 Disk/web2] R[]",
            ],
        ),
        (
            "group_by ... is one group per alert",
            BY_ALL,
            default.clone(),
            &[Fire(&["Disk/web1", "Disk/web2", "Cpu/web1"]), Until(35)],
            &[
                "t=30 chat {alertname=Cpu,host=web1} F[Cpu/web1] R[]",
                "t=30 chat {alertname=Disk,host=web1} F[Disk/web1] R[]",
                "t=30 chat {alertname=Disk,host=web2} F[Disk/web2] R[]",
            ],
        ),
        (
            "no group_by is one group, sorted by labels",
            BY_NONE,
            default.clone(),
            &[Fire(&["Disk/web2", "Disk/web1", "Cpu/web1"]), Until(35)],
            &["t=30 chat {} F[Cpu/web1 Disk/web1 Disk/web2] R[]"],
        ),
        (
            "resolved notices on the group_interval tick, firing first",
            BY_NAME,
            default.clone(),
            &[
                Fire(&["Disk/web1", "Disk/web2"]),
                Until(35),
                Resolve(&["Disk/web1"]),
                Until(100),
                Resolve(&["Disk/web2"]),
                Until(200),
                Forget(&["Disk/web1", "Disk/web2"]),
                Until(400),
            ],
            &[
                "t=30 chat {alertname=Disk} F[Disk/web1 Disk/web2] R[]",
                "t=90 chat {alertname=Disk} F[Disk/web2] R[Disk/web1]",
                "t=150 chat {alertname=Disk} F[] R[Disk/web2]",
            ],
        ),
        (
            "send_resolved = false: no resolved notices, no repeat for a shrinking group",
            BY_NAME,
            quiet_policy(false, 0),
            &[
                Fire(&["Disk/web1", "Disk/web2"]),
                Until(35),
                Resolve(&["Disk/web1"]),
                Until(100),
                Resolve(&["Disk/web2"]),
                Until(400),
            ],
            &["t=30 chat {alertname=Disk} F[Disk/web1 Disk/web2] R[]"],
        ),
        (
            "pending alerts are never sent; once firing they are",
            BY_NAME,
            default.clone(),
            &[
                Pend(&["Disk/web1"]),
                Until(400),
                Fire(&["Disk/web1"]),
                Until(440),
            ],
            &["t=435 chat {alertname=Disk} F[Disk/web1] R[]"],
        ),
        (
            "an alert that leaves the list is resolved",
            BY_NAME,
            default.clone(),
            &[
                Fire(&["Disk/web1"]),
                Until(35),
                Forget(&["Disk/web1"]),
                Until(100),
            ],
            &[
                "t=30 chat {alertname=Disk} F[Disk/web1] R[]",
                "t=90 chat {alertname=Disk} F[] R[Disk/web1]",
            ],
        ),
        (
            "fired and resolved within group_wait: nothing to tell",
            BY_NAME,
            default.clone(),
            &[
                Fire(&["Disk/web1"]),
                Until(10),
                Resolve(&["Disk/web1"]),
                Until(400),
            ],
            &[],
        ),
        (
            "max_alerts keeps the first, counts the rest",
            BY_NONE,
            quiet_policy(true, 2),
            &[Fire(&["Disk/c", "Disk/a", "Disk/b"]), Until(35)],
            &["t=30 chat {} F[Disk/a Disk/b] R[] +1"],
        ),
    ];
    for (name, route, policy, steps, expected) in cases {
        let mut kit = Kit::new(route, &[("chat", policy)]);
        assert_eq!(kit.play(steps), expected, "{name}");
    }
}

#[test]
fn continue_groups_per_receiver() {
    let mut kit = Kit::new(CONTINUE, &[]);
    let lines = kit.play(&[Fire(&["Disk/web1", "Cpu/web1", "Disk/web2"]), Until(35)]);
    assert_eq!(
        lines,
        [
            "t=30 ops {alertname=Cpu} F[Cpu/web1] R[]",
            "t=30 ops {alertname=Disk} F[Disk/web1] R[]",
            "t=30 db {alertname=Disk} F[Disk/web1 Disk/web2] R[]",
        ]
    );
}

#[test]
fn groups_vanish_when_their_alerts_are_dealt_with() {
    let mut kit = Kit::new(BY_NAME, &[]);
    kit.play(&[Fire(&["Disk/web1"]), Until(35), Resolve(&["Disk/web1"])]);
    assert_eq!(kit.dispatcher().group_count(), 1);
    // The resolved notice goes out at 90; the evaluator still lists the alert after that,
    // and no group forms again for it.
    assert_eq!(
        kit.play(&[Until(200)]),
        ["t=90 chat {alertname=Disk} F[] R[Disk/web1]"]
    );
    assert_eq!(kit.dispatcher().group_count(), 0);
    assert_eq!(kit.dispatcher().next_due_ms(), None);
}

#[test]
fn next_due_is_the_earliest_flush() {
    let mut kit = Kit::new(BY_NAME, &[]);
    kit.fire(&["Disk/web1"]);
    kit.pass(0);
    assert_eq!(kit.dispatcher().next_due_ms(), Some((T0 + 30) * 1000));
    kit.pass(30);
    assert_eq!(kit.dispatcher().next_due_ms(), Some((T0 + 90) * 1000));
    assert_eq!(kit.take().len(), 1);
}

#[test]
fn notifications_carry_a_stable_readable_key_and_everything_to_render() {
    let route = r#"
[route]
receiver = "chat"
[[route.routes]]
matchers = ["severity=\"critical\""]
receiver = "pager"
group_by = ["alertname", "host"]
group_wait = "0s"
"#;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), StoreOptions::collector()).unwrap();
    let settings = DispatchSettings {
        route: super::route(route),
        inhibitor: Inhibitor::default(),
        receivers: HashMap::new(),
        external_url: "https://muster.example".to_owned(),
        nflog_retention_ms: DEFAULT_RETENTION_MS,
        silence_retention_ms: crate::alert::silence::DEFAULT_RETENTION_MS,
    };
    let mut dispatcher = Dispatcher::open(&store, settings).unwrap();
    let mut alert = new_alert("HostDown/web1/critical", 1_000);
    alert.state = AlertState::Firing;
    alert.fired_at_ms = Some(1_000);
    let notes = dispatcher
        .process(1_000, std::slice::from_ref(&alert))
        .unwrap();
    assert_eq!(notes.len(), 1);
    let n = &notes[0];
    assert_eq!(
        n.group_key,
        r#"{}/{severity="critical"}:{alertname="HostDown",host="web1"}"#
    );
    assert_eq!(
        (n.receiver.as_str(), n.status, n.created_at_ms),
        ("pager", NotifyStatus::Firing, 1_000)
    );
    assert_eq!(n.external_url, "https://muster.example");
    assert_eq!(n.group_labels.len(), 2);
    assert_eq!(n.alerts[0].fingerprint, alert.fingerprint());
    assert_eq!(
        n.alerts[0].annotations["summary"],
        "HostDown/web1/critical is bad"
    );
}
