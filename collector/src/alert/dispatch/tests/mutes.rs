//! Muting: silences, inhibition and quiet hours, in the dispatcher.

use super::Step::{Fire, Resolve, Until};
use super::*;
use crate::alert::matcher::Matcher;
use crate::alert::quiet::QuietHours;
use crate::alert::silence::{SilenceSpec, SilenceStore};

const BY_NAME: &str = r#"
[route]
receiver = "chat"
group_by = ["alertname"]
group_wait = "30s"
group_interval = "60s"
repeat_interval = "1h"
"#;

const BY_HOST: &str = r#"
[route]
receiver = "chat"
group_by = ["host"]
group_wait = "30s"
group_interval = "60s"
repeat_interval = "1h"
"#;

const ONE_GROUP: &str = r#"
[route]
receiver = "chat"
group_wait = "30s"
group_interval = "60s"
repeat_interval = "1h"
"#;

fn silence(kit: &Kit, matchers: &str, starts_s: u64, ends_s: u64) -> String {
    let spec = SilenceSpec {
        matchers: Matcher::parse_list(matchers).unwrap(),
        starts_at_ms: Some((T0 + starts_s) * 1000),
        ends_at_ms: (T0 + ends_s) * 1000,
        created_by: "ana".to_owned(),
        comment: "maintenance".to_owned(),
    };
    SilenceStore::open(kit.store())
        .unwrap()
        .create(spec, T0 * 1000)
        .unwrap()
        .id
}

/// Name, matchers, start and end (s), expired early at (s), expected lines.
type SilenceCase = (
    &'static str,
    &'static str,
    u64,
    u64,
    Option<u64>,
    &'static [&'static str],
);

#[test]
fn silences_mute_while_active() {
    let cases: [SilenceCase; 5] = [
        (
            "silenced until it ends, then notified",
            r#"host="web1""#,
            0,
            100,
            None,
            &[
                "t=30 chat {alertname=Disk} F[Disk/web2] R[]",
                "t=150 chat {alertname=Disk} F[Disk/web1 Disk/web2] R[]",
            ],
        ),
        (
            "expired early",
            r#"host="web1""#,
            0,
            3600,
            Some(40),
            &[
                "t=30 chat {alertname=Disk} F[Disk/web2] R[]",
                "t=90 chat {alertname=Disk} F[Disk/web1 Disk/web2] R[]",
            ],
        ),
        (
            "a regex silences both",
            r#"host=~"web[0-9]""#,
            0,
            3600,
            None,
            &[],
        ),
        (
            "a regex is anchored",
            r#"host=~"eb1""#,
            0,
            3600,
            None,
            &["t=30 chat {alertname=Disk} F[Disk/web1 Disk/web2] R[]"],
        ),
        (
            "a pending silence mutes from its start",
            r#"host="web1""#,
            20,
            3600,
            None,
            &["t=30 chat {alertname=Disk} F[Disk/web2] R[]"],
        ),
    ];
    for (name, matchers, starts, ends, expire_at, expected) in cases {
        let mut kit = Kit::new(BY_NAME, &[]);
        let id = silence(&kit, matchers, starts, ends);
        kit.fire(&["Disk/web1", "Disk/web2"]);
        kit.run_until(35);
        if let Some(at) = expire_at {
            kit.run_until(at - TICK);
            SilenceStore::open(kit.store())
                .unwrap()
                .expire(&id, (T0 + at) * 1000)
                .unwrap();
        }
        kit.run_until(400);
        assert_eq!(kit.take(), expected, "{name}");
    }
}

#[test]
fn silenced_alerts_stay_listed_with_their_silences() {
    let mut kit = Kit::new(BY_NAME, &[]);
    let id = silence(&kit, r#"host="web1""#, 0, 100);
    kit.fire(&["Disk/web1", "Disk/web2"]);
    kit.run_until(0);
    let web1 = kit.alert("Disk/web1").fingerprint();
    let web2 = kit.alert("Disk/web2").fingerprint();
    let marks = kit.dispatcher().marks(web1).cloned().unwrap();
    assert_eq!(marks.silenced_by, [id]);
    assert_eq!(kit.dispatcher().marks(web2), None);
    kit.run_until(100);
    assert_eq!(kit.dispatcher().marks(web1), None);
}

#[test]
fn a_down_host_inhibits_its_other_alerts() {
    let cases: [(&str, Inhibitor, &[Step], &[&str]); 3] = [
        (
            "its host only, until it resolves",
            host_down_inhibitor(),
            &[
                Fire(&["HostDown/web1", "Disk/web1", "Disk/web2"]),
                Until(35),
                Resolve(&["HostDown/web1"]),
                Until(100),
            ],
            &[
                "t=30 chat {host=web1} F[HostDown/web1] R[]",
                "t=30 chat {host=web2} F[Disk/web2] R[]",
                "t=90 chat {host=web1} F[Disk/web1] R[HostDown/web1]",
            ],
        ),
        (
            "turned off",
            Inhibitor::new(&[], false),
            &[Fire(&["HostDown/web1", "Disk/web1"]), Until(35)],
            &["t=30 chat {host=web1} F[Disk/web1 HostDown/web1] R[]"],
        ),
        (
            "a pending HostDown inhibits nothing",
            host_down_inhibitor(),
            &[
                Step::Pend(&["HostDown/web1"]),
                Fire(&["Disk/web1"]),
                Until(35),
            ],
            &["t=30 chat {host=web1} F[Disk/web1] R[]"],
        ),
    ];
    for (name, inhibitor, steps, expected) in cases {
        let mut kit = Kit::with_inhibitor(BY_HOST, &[], inhibitor);
        assert_eq!(kit.play(steps), expected, "{name}");
    }
    let mut kit = Kit::with_inhibitor(BY_HOST, &[], host_down_inhibitor());
    kit.play(&[Fire(&["HostDown/web1", "Disk/web1"]), Until(0)]);
    let down = kit.alert("HostDown/web1").fingerprint();
    let disk = kit.alert("Disk/web1").fingerprint();
    assert_eq!(kit.dispatcher().marks(disk).unwrap().inhibited_by, [down]);
    assert_eq!(kit.dispatcher().marks(down), None);
}

fn quiet(text: &str) -> ReceiverPolicy {
    ReceiverPolicy {
        quiet_hours: Some(
            muster_shared::config::parse::<QuietHours>(text, "c.toml".as_ref()).unwrap(),
        ),
        ..ReceiverPolicy::default()
    }
}

#[test]
fn quiet_hours_hold_and_release() {
    // T0 is Monday 00:00 UTC.
    let night = "start = \"23:00\"\nend = \"00:10\"\n";
    // 00:30-01:10 at +01:00 is 23:30-00:10 UTC: the same release, through the offset.
    let east = "start = \"00:30\"\nend = \"01:10\"\nutc_offset = \"+01:00\"\n";
    let strict = "start = \"23:00\"\nend = \"00:10\"\nallow_critical = false\n";
    let later = "start = \"00:02\"\nend = \"00:10\"\n";
    let cases: [(&str, &str, &[Step], &[&str]); 6] = [
        (
            "held, then released when the window ends (past midnight)",
            night,
            &[Fire(&["Disk/web1"]), Until(700)],
            &["t=600 chat {} F[Disk/web1] R[]"],
        ),
        (
            "a fixed offset",
            east,
            &[Fire(&["Disk/web1"]), Until(700)],
            &["t=600 chat {} F[Disk/web1] R[]"],
        ),
        (
            "critical passes, the rest joins at the end",
            night,
            &[Fire(&["Disk/web1", "Api/web1/critical"]), Until(700)],
            &[
                "t=30 chat {} F[Api/web1] R[]",
                "t=600 chat {} F[Api/web1 Disk/web1] R[]",
            ],
        ),
        (
            "allow_critical = false holds critical too",
            strict,
            &[Fire(&["Disk/web1", "Api/web1/critical"]), Until(700)],
            &["t=600 chat {} F[Api/web1 Disk/web1] R[]"],
        ),
        (
            "a resolution during the window is told at its end",
            later,
            &[
                Fire(&["Disk/web1"]),
                Until(145),
                Resolve(&["Disk/web1"]),
                Until(700),
            ],
            &[
                "t=30 chat {} F[Disk/web1] R[]",
                "t=600 chat {} F[] R[Disk/web1]",
            ],
        ),
        (
            "changes during the window merge into one notice",
            later,
            &[
                Fire(&["Disk/web1", "Disk/web2"]),
                Until(145),
                Resolve(&["Disk/web1"]),
                Fire(&["Disk/web3"]),
                Until(700),
            ],
            &[
                "t=30 chat {} F[Disk/web1 Disk/web2] R[]",
                "t=600 chat {} F[Disk/web2 Disk/web3] R[Disk/web1]",
            ],
        ),
    ];
    for (name, window, steps, expected) in cases {
        let mut kit = Kit::new(ONE_GROUP, &[("chat", quiet(window))]);
        assert_eq!(kit.play(steps), expected, "{name}");
    }
}
