//! Building the settings from config, reconfiguring, and the dispatcher's housekeeping.

use super::Step::{Fire, Until};
use super::*;
use crate::alert::inhibit::InhibitRuleConfig;
use crate::alert::matcher::Matcher;
use crate::alert::quiet::QuietHours;
use crate::alert::silence::{SilenceSpec, SilenceStore};

fn route_config(text: &str) -> RouteConfig {
    #[derive(serde::Deserialize)]
    struct File {
        route: RouteConfig,
    }
    muster_shared::config::parse::<File>(text, "c.toml".as_ref())
        .unwrap()
        .route
}

#[test]
fn settings_report_every_problem_of_route_rules_and_quiet_hours() {
    let route = route_config(
        "[route]\nreceiver = \"chat\"\nescalate_to = \"pager\"\nescalate_after = \"5m\"\n",
    );
    let bad_rule = InhibitRuleConfig {
        equal: vec!["host".to_owned()],
        ..InhibitRuleConfig::default()
    };
    let quiet: QuietHours =
        muster_shared::config::parse("start = \"07:00\"\nend = \"07:00\"\n", "c.toml".as_ref())
            .unwrap();
    let receivers = HashMap::from([(
        "chat".to_owned(),
        ReceiverPolicy {
            quiet_hours: Some(quiet),
            ..ReceiverPolicy::default()
        },
    )]);
    let problems =
        DispatchSettings::new(&route, &[bad_rule], true, receivers.clone(), "").unwrap_err();
    assert_eq!(
        problems,
        [
            "alerting.route.escalate_to: unknown receiver \"pager\"",
            "alerting.inhibit_rules[0].source_matchers is empty: every firing alert would inhibit",
            "receivers.chat.quiet_hours: start and end are equal (07:00)",
        ]
    );
    let fine = route_config("[route]\nreceiver = \"chat\"\n");
    let receivers = HashMap::from([("chat".to_owned(), ReceiverPolicy::default())]);
    let settings = DispatchSettings::new(&fine, &[], true, receivers, "https://m.example").unwrap();
    assert_eq!(settings.route.nodes().len(), 1);
    assert_eq!(settings.nflog_retention_ms, DEFAULT_RETENTION_MS);
}

#[test]
fn reconfiguring_keeps_what_receivers_already_heard() {
    let one = "[route]\nreceiver = \"chat\"\ngroup_interval = \"60s\"\n";
    let mut kit = Kit::new(one, &[]);
    assert_eq!(
        kit.play(&[Fire(&["Disk/web1"]), Until(35)]),
        ["t=30 chat {} F[Disk/web1] R[]"]
    );
    let mut changed = kit.settings.clone();
    changed.route =
        route("[route]\nreceiver = \"chat\"\ngroup_interval = \"60s\"\ngroup_wait = \"10s\"\n");
    kit.dispatcher().reconfigure(changed);
    assert_eq!(
        kit.play(&[Fire(&["Disk/web2"]), Until(300)]),
        ["t=40 chat {} F[Disk/web1 Disk/web2] R[]"]
    );
}

#[test]
fn the_dispatcher_removes_long_expired_silences() {
    let mut kit = Kit::new("[route]\nreceiver = \"chat\"\n", &[]);
    let silences = SilenceStore::open(kit.store()).unwrap();
    let spec = SilenceSpec {
        matchers: Matcher::parse_list("host=\"web1\"").unwrap(),
        starts_at_ms: None,
        ends_at_ms: (T0 + 60) * 1000,
        created_by: "ana".to_owned(),
        comment: "reboot".to_owned(),
    };
    let id = silences.create(spec, T0 * 1000).unwrap().id;
    kit.pass(0);
    let retention_s = crate::alert::silence::DEFAULT_RETENTION_MS / 1000;
    kit.pass(60 + retention_s - 1);
    assert!(
        silences.get(&id).unwrap().is_some(),
        "kept within the retention"
    );
    // The next collection is an hour after the last.
    kit.pass(60 + retention_s + 3_600);
    assert!(silences.get(&id).unwrap().is_none());
}
