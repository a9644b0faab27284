//! Acknowledgements and escalation.

use super::Step::{Fire, Resolve, Until};
use super::*;
use crate::alert::ack::AckStore;

const ESCALATING: &str = r#"
[route]
receiver = "chat"
group_wait = "30s"
group_interval = "60s"
repeat_interval = "1h"
escalate_to = "pager"
escalate_after = "300s"
"#;

const REPEATING: &str = r#"
[route]
receiver = "chat"
group_wait = "30s"
group_interval = "60s"
repeat_interval = "10m"
"#;

/// What happens at one point of a case besides the script: acknowledge `spec` at `at_s`.
type AckAt = Option<(u64, &'static str)>;

fn play_with_ack(kit: &mut Kit, steps: &[Step], ack: AckAt) -> Vec<String> {
    let mut lines = Vec::new();
    for step in steps {
        if let (Some((at, spec)), Step::Until(to)) = (ack, step)
            && kit.now_s <= at
            && at <= *to
        {
            kit.run_until(at - TICK);
            let alert = kit.alert(spec).clone();
            AckStore::open(kit.store())
                .unwrap()
                .acknowledge(&alert, "ana", "looking", None, (T0 + at) * 1000)
                .unwrap();
        }
        lines.extend(kit.play(std::slice::from_ref(step)));
    }
    lines
}

#[test]
fn unacknowledged_critical_alerts_escalate_once() {
    let cases: [(&str, &[Step], AckAt, &[&str]); 5] = [
        (
            "escalates after the delay, exactly once",
            &[Fire(&["Api/web1/critical", "Disk/web1"]), Until(1200)],
            None,
            &[
                "t=30 chat {} F[Api/web1 Disk/web1] R[]",
                "t=300 pager^1 {} F[Api/web1] R[]",
            ],
        ),
        (
            "acknowledged: no escalation, and the ack shows",
            &[
                Fire(&["Api/web1/critical", "Disk/web1"]),
                Until(200),
                Fire(&["Cpu/web1"]),
                Until(1200),
            ],
            Some((100, "Api/web1/critical")),
            &[
                "t=30 chat {} F[Api/web1 Disk/web1] R[]",
                "t=210 chat {} F[Api/web1* Cpu/web1 Disk/web1] R[]",
            ],
        ),
        (
            "resolved before the delay: no escalation",
            &[
                Fire(&["Api/web1/critical"]),
                Until(195),
                Resolve(&["Api/web1/critical"]),
                Until(1200),
            ],
            None,
            &[
                "t=30 chat {} F[Api/web1] R[]",
                "t=210 chat {} F[] R[Api/web1]",
            ],
        ),
        (
            "an escalated alert's resolution reaches the pager too",
            &[
                Fire(&["Api/web1/critical"]),
                Until(395),
                Resolve(&["Api/web1/critical"]),
                Until(1200),
            ],
            None,
            &[
                "t=30 chat {} F[Api/web1] R[]",
                "t=300 pager^1 {} F[Api/web1] R[]",
                "t=420 pager^1 {} F[] R[Api/web1]",
                "t=450 chat {} F[] R[Api/web1]",
            ],
        ),
        (
            "acknowledged after escalating: the pager hears no repeat, but the end",
            &[
                Fire(&["Api/web1/critical"]),
                Until(4000),
                Resolve(&["Api/web1/critical"]),
                Until(4100),
            ],
            Some((400, "Api/web1/critical")),
            &[
                "t=30 chat {} F[Api/web1] R[]",
                "t=300 pager^1 {} F[Api/web1] R[]",
                "t=4020 pager^1 {} F[] R[Api/web1]",
                "t=4050 chat {} F[] R[Api/web1]",
            ],
        ),
    ];
    for (name, steps, ack, expected) in cases {
        let mut kit = Kit::new(ESCALATING, &[]);
        assert_eq!(play_with_ack(&mut kit, steps, ack), expected, "{name}");
    }
}

#[test]
fn escalation_wakes_the_dispatcher_on_time() {
    let mut kit = Kit::new(ESCALATING, &[]);
    kit.fire(&["Api/web1/critical"]);
    kit.pass(0);
    kit.pass(30);
    assert_eq!(kit.dispatcher().next_due_ms(), Some((T0 + 90) * 1000));
    kit.pass(90);
    kit.pass(150);
    kit.pass(210);
    kit.pass(270);
    // The group flushes at 330 next; the escalation is due at 300.
    assert_eq!(kit.dispatcher().next_due_ms(), Some((T0 + 300) * 1000));
    kit.pass(300);
    assert_eq!(
        kit.take(),
        [
            "t=30 chat {} F[Api/web1] R[]",
            "t=300 pager^1 {} F[Api/web1] R[]"
        ]
    );
}

#[test]
fn a_group_whose_firing_alerts_are_all_acknowledged_is_not_repeated() {
    let steps: &[Step] = &[Fire(&["Disk/web1"]), Until(1300)];
    let mut kit = Kit::new(REPEATING, &[]);
    assert_eq!(
        play_with_ack(&mut kit, steps, None),
        [
            "t=30 chat {} F[Disk/web1] R[]",
            "t=630 chat {} F[Disk/web1] R[]",
            "t=1230 chat {} F[Disk/web1] R[]",
        ]
    );
    let mut kit = Kit::new(REPEATING, &[]);
    assert_eq!(
        play_with_ack(&mut kit, steps, Some((100, "Disk/web1"))),
        ["t=30 chat {} F[Disk/web1] R[]"]
    );
    // An Alertmanager receiver keeps hearing of it: its alerts end when pushes stop.
    let keeps_repeating = ReceiverPolicy {
        repeat_acknowledged: true,
        ..ReceiverPolicy::default()
    };
    let mut am = Kit::new(REPEATING, &[("chat", keeps_repeating)]);
    assert_eq!(
        play_with_ack(&mut am, steps, Some((100, "Disk/web1"))),
        [
            "t=30 chat {} F[Disk/web1] R[]",
            "t=630 chat {} F[Disk/web1*] R[]",
            "t=1230 chat {} F[Disk/web1*] R[]",
        ]
    );
    let fp = kit.alert("Disk/web1").fingerprint();
    assert_eq!(
        kit.dispatcher()
            .marks(fp)
            .unwrap()
            .acknowledged_by
            .as_deref(),
        Some("ana")
    );
}
