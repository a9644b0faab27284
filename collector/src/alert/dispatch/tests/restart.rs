//! Restarts: the notification log reopened from the store.

use super::Step::{Fire, Resolve, Restart, Until};
use super::*;
use crate::alert::ack::AckStore;

const ROUTE: &str = r#"
[route]
receiver = "chat"
group_by = ["alertname"]
group_wait = "30s"
group_interval = "60s"
repeat_interval = "10m"
escalate_to = "pager"
escalate_after = "300s"
"#;

#[test]
fn a_restart_neither_repeats_early_nor_forgets_a_resolution() {
    let cases: [(&str, &[Step], &[&str]); 4] = [
        (
            "no duplicate before repeat_interval",
            &[Fire(&["Disk/web1"]), Until(35), Restart, Until(700)],
            &[
                "t=30 chat {alertname=Disk} F[Disk/web1] R[]",
                "t=640 chat {alertname=Disk} F[Disk/web1] R[]",
            ],
        ),
        (
            "a new alert in the group is still news",
            &[
                Fire(&["Disk/web1"]),
                Until(35),
                Restart,
                Fire(&["Disk/web2"]),
                Until(100),
            ],
            &[
                "t=30 chat {alertname=Disk} F[Disk/web1] R[]",
                "t=40 chat {alertname=Disk} F[Disk/web1 Disk/web2] R[]",
            ],
        ),
        (
            "the resolved notice is still sent",
            &[
                Fire(&["Disk/web1"]),
                Until(35),
                Resolve(&["Disk/web1"]),
                Restart,
                Until(100),
            ],
            &[
                "t=30 chat {alertname=Disk} F[Disk/web1] R[]",
                "t=40 chat {alertname=Disk} F[] R[Disk/web1]",
            ],
        ),
        (
            "resolved and told before the restart: not told again",
            &[
                Fire(&["Disk/web1"]),
                Until(35),
                Resolve(&["Disk/web1"]),
                Until(95),
                Restart,
                Until(300),
            ],
            &[
                "t=30 chat {alertname=Disk} F[Disk/web1] R[]",
                "t=90 chat {alertname=Disk} F[] R[Disk/web1]",
            ],
        ),
    ];
    for (name, steps, expected) in cases {
        let mut kit = Kit::new(ROUTE, &[]);
        assert_eq!(kit.play(steps), expected, "{name}");
    }
}

#[test]
fn a_crash_before_the_log_commit_sends_again_and_loses_nothing() {
    let mut kit = Kit::new(ROUTE, &[]);
    kit.fire(&["Disk/web1"]);
    kit.run_until(25);
    kit.pass_uncommitted(30);
    kit.now_s = 35;
    kit.restart();
    kit.run_until(100);
    assert_eq!(
        kit.take(),
        [
            "t=30 chat {alertname=Disk} F[Disk/web1] R[]",
            "t=35 chat {alertname=Disk} F[Disk/web1] R[]",
        ]
    );
}

#[test]
fn an_escalated_alert_acknowledged_before_a_restart_still_gets_its_resolved_notice() {
    let mut kit = Kit::new(ROUTE, &[]);
    kit.fire(&["Api/web1/critical"]);
    kit.run_until(305);
    let alert = kit.alert("Api/web1/critical").clone();
    AckStore::open(kit.store())
        .unwrap()
        .acknowledge(&alert, "ana", "", None, (T0 + 310) * 1000)
        .unwrap();
    kit.now_s = 310;
    kit.restart();
    kit.run_until(395);
    kit.resolve(&["Api/web1/critical"]);
    kit.run_until(500);
    assert_eq!(
        kit.take(),
        [
            "t=30 chat {alertname=Api} F[Api/web1] R[]",
            "t=300 pager^1 {alertname=Api} F[Api/web1] R[]",
            // Both groups re-formed at the restart (310) and flush every 60 s from there.
            "t=430 chat {alertname=Api} F[] R[Api/web1]",
            "t=430 pager^1 {alertname=Api} F[] R[Api/web1]",
        ]
    );
}

#[test]
fn discarding_a_pass_whose_outbox_write_failed_sends_it_again() {
    let mut kit = Kit::new(ROUTE, &[]);
    kit.fire(&["Disk/web1", "Disk/web2"]);
    kit.run_until(35);
    kit.resolve(&["Disk/web1"]);
    kit.run_until(85);
    let alerts = [
        kit.alert("Disk/web1").clone(),
        kit.alert("Disk/web2").clone(),
    ];
    let lost = kit.dispatcher().process((T0 + 90) * 1000, &alerts).unwrap();
    assert_eq!(lost.len(), 1);
    kit.dispatcher().discard().unwrap();
    kit.now_s = 95;
    kit.run_until(95);
    assert_eq!(
        kit.take(),
        [
            "t=30 chat {alertname=Disk} F[Disk/web1 Disk/web2] R[]",
            "t=95 chat {alertname=Disk} F[Disk/web2] R[Disk/web1]",
        ]
    );
}
