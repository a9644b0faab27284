use super::*;
use proptest::prelude::*;

fn inspect_fixture() -> ContainerInspectResponse {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("src/sample/container/testdata/inspect_running.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn inspect_answer_becomes_a_container() {
    let c = container_from_inspect(&inspect_fixture()).unwrap();
    assert_eq!(
        c.id,
        "9104b3753d55023b3778864e0fb1004a3ca22325ace4db54cbbc48843de6296d"
    );
    assert_eq!(c.name, "shop-web-1");
    assert_eq!(c.image, "shop/web:1.2");
    assert_eq!(c.compose_project.as_deref(), Some("shop"));
    assert_eq!(c.compose_service.as_deref(), Some("web"));
    assert_eq!(c.labels.get("muster.test").map(String::as_str), Some("x"));
    assert_eq!(
        (c.state, c.health, c.restart_count),
        (State::Running, Health::Healthy, 2)
    );
    assert_eq!(c.pid, Some(28893));
    assert_eq!(c.started_at, Some(1_795_307_399.527_213_6));
    assert_eq!(c.network_mode, "default");
    assert!(c.owns_network());
}

#[test]
fn exited_container_has_no_pid() {
    let mut raw = inspect_fixture();
    if let Some(s) = raw.state.as_mut() {
        s.status = Some(ContainerStateStatusEnum::EXITED);
        s.health = None;
    }
    let c = container_from_inspect(&raw).unwrap();
    assert_eq!(
        (c.state, c.health, c.pid),
        (State::Exited, Health::None, None)
    );
    raw.id = None;
    assert_eq!(container_from_inspect(&raw), None);
}

#[test]
fn host_and_shared_network_modes_do_not_own_their_network() {
    let mut c = container_from_inspect(&inspect_fixture()).unwrap();
    c.network_mode = "host".into();
    assert!(!c.owns_network());
    c.network_mode = "container:abc".into();
    assert!(!c.owns_network());
    c.network_mode = "my-net".into();
    assert!(c.owns_network());
}

#[test]
fn generation_moves_only_on_change() {
    let c = container_from_inspect(&inspect_fixture()).unwrap();
    let mut inv = Inventory::default();
    inv.replace([c.clone()]);
    assert_eq!(inv.generation, 1);
    inv.upsert(c.clone());
    assert_eq!(inv.generation, 1, "same container, no change");
    let mut renamed = c.clone();
    renamed.name = "other".into();
    inv.upsert(renamed);
    assert_eq!(inv.generation, 2);
    inv.remove("nope");
    inv.remove(&c.id);
    assert_eq!((inv.generation, inv.containers.len()), (3, 0));
    inv.set_connected(true);
    inv.set_connected(true);
    assert_eq!(inv.generation, 4);
}

#[test]
fn rfc3339_timestamps() {
    assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0.0));
    assert_eq!(parse_rfc3339("2026-11-22T00:29:59Z"), Some(1_795_307_399.0));
    assert_eq!(
        parse_rfc3339("2024-05-01T12:00:00+02:00"),
        Some(1_714_557_600.0)
    );
    assert_eq!(
        parse_rfc3339("2024-05-01T12:00:00.5-01:30"),
        Some(1_714_570_200.5)
    );
    assert_eq!(
        parse_rfc3339("0001-01-01T00:00:00Z"),
        None,
        "Go's zero time: never started"
    );
    assert_eq!(parse_rfc3339("2024-13-01T00:00:00Z"), None);
    assert_eq!(parse_rfc3339("2024-05-01 12:00:00Z"), None);
    assert_eq!(parse_rfc3339("2024-05-01T12:00:00."), None);
    assert_eq!(parse_rfc3339(""), None);
}

proptest! {
    #[test]
    fn rfc3339_never_panics(text in "\\PC{0,40}") {
        let _ = parse_rfc3339(&text);
    }

    #[test]
    fn rfc3339_matches_day_arithmetic(days in 0i64..40_000, secs in 0i64..86_400) {
        // Build the date from days since the epoch the slow way.
        let (mut y, mut d) = (1970i64, days);
        let leap = |y: i64| (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
        while d >= if leap(y) { 366 } else { 365 } {
            d -= if leap(y) { 366 } else { 365 };
            y += 1;
        }
        let lengths = [31, if leap(y) { 29 } else { 28 }, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
        let mut m = 0;
        while d >= lengths[m] {
            d -= lengths[m];
            m += 1;
        }
        let text = format!("{y:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z", m + 1, d + 1, secs / 3600, secs / 60 % 60, secs % 60);
        prop_assert_eq!(parse_rfc3339(&text), Some((days * 86_400 + secs) as f64));
    }
}
