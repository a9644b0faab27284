use std::path::Path;

use muster_shared::config::{self, ConfigError};

use super::*;
use crate::config::AgentConfig;

fn parse(text: &str) -> Result<Vec<ProbeConfig>, ConfigError> {
    config::parse::<AgentConfig>(text, Path::new("agent.toml")).map(|c| c.probes)
}

#[test]
fn kubernetes_defaults_apply() {
    let probes = parse(
        "[[probe]]\nname = \"api\"\nkind = \"http\"\ntarget = \"https://api.example.com/health\"\n",
    )
    .unwrap();
    let p = &probes[0];
    assert_eq!(p.kind, Kind::Http);
    assert_eq!(
        p.timing(),
        Timing {
            interval: std::time::Duration::from_secs(10),
            timeout: std::time::Duration::from_secs(1),
            initial_delay: std::time::Duration::ZERO,
            success_threshold: 1,
            failure_threshold: 3,
        }
    );
    assert!(p.conditions.is_empty() && p.http.is_none());
    assert!(problems(&probes).is_empty(), "{:?}", problems(&probes));
}

#[test]
fn every_kind_parses_with_its_options_table() {
    let text = r#"
[[probe]]
name = "api"
kind = "http"
target = "https://api.example.com/health"
interval = "30s"
timeout = "5s"
initial_delay = "1m"
success_threshold = 2
failure_threshold = 5
conditions = ['[STATUS] == 200', '[BODY] contains "ok"', '[CERT_EXPIRY] > 72h']
[probe.http]
method = "POST"
headers = { Authorization = "Bearer t0ken" }
body = '{"ping":true}'
valid_status_codes = [200, 204]
body_pattern = '"status":\s*"up"'
ca_file = "pki/internal-ca.pem"
follow_redirects = false

[[probe]]
name = "db"
kind = "tcp"
target = "db.internal:5432"
[probe.tcp]
send = "PING\r\n"
expect = "^\\+PONG"

[[probe]]
name = "backup-fresh"
kind = "exec"
target = "/usr/local/bin/check-backup"
conditions = ['[EXIT_CODE] == 0']
[probe.exec]
args = ["--max-age", "26h"]
env = { REPO = "/srv/backup" }

[[probe]]
name = "web-container"
kind = "docker"
target = "shop-web-1"
conditions = ['[HEALTH] == "healthy"']

[[probe]]
name = "mail-cert"
kind = "tls"
target = "[2001:db8::1]:465"
conditions = ['[CERT_EXPIRY] > 14d']
[probe.tls]
server_name = "mail.example.com"
"#;
    let mut probes = parse(text).unwrap();
    assert_eq!(problems(&probes), Vec::<String>::new());
    let kinds: Vec<Kind> = probes.iter().map(|p| p.kind).collect();
    assert_eq!(
        kinds,
        [Kind::Http, Kind::Tcp, Kind::Exec, Kind::Docker, Kind::Tls]
    );
    let http = probes[0].http.as_ref().unwrap();
    assert_eq!(http.headers["Authorization"].expose(), "Bearer t0ken");
    assert!(
        !format!("{:?}", probes[0]).contains("t0ken"),
        "secrets stay out of Debug"
    );
    assert_eq!(
        probes[1].tcp.as_ref().unwrap().send.as_deref(),
        Some("PING\r\n")
    );
    assert_eq!(probes[0].timing().success_threshold, 2);

    probes[0].resolve_paths(Path::new("/etc/muster/agent.toml"));
    assert_eq!(
        probes[0].http.as_ref().unwrap().ca_file.as_deref(),
        Some(Path::new("/etc/muster/pki/internal-ca.pem"))
    );
}

#[test]
fn a_bad_condition_fails_the_load_at_its_position() {
    let err = parse(
        "[[probe]]\nname = \"api\"\nkind = \"http\"\ntarget = \"http://a/\"\nconditions = ['[STATUS] == 200', '[STATUS] = 200']\n",
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "agent.toml:5:14: condition 2 `[STATUS] = 200`: unknown operator `=` at column 10; \
         expected one of == != < <= > >= contains matches"
    );
}

#[test]
fn unknown_keys_and_kinds_are_refused_at_their_position() {
    let err = parse(
        "[[probe]]\nname = \"api\"\nkind = \"http\"\ntarget = \"http://a/\"\n[probe.http]\nmethd = \"GET\"\n",
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("agent.toml:6:1: unknown field `methd`"),
        "{err}"
    );
    let err = parse("[[probe]]\nname = \"x\"\nkind = \"icmp\"\ntarget = \"a\"\n").unwrap_err();
    assert!(
        err.to_string()
            .starts_with("agent.toml:3:8: unknown variant `icmp`"),
        "{err}"
    );
    let err = parse(
        "[[probe]]\nname = \"x\"\nkind = \"tcp\"\ntarget = \"a:1\"\n[probe.tcp]\nexpect = \"(\"\n",
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("agent.toml:6:10: invalid pattern"),
        "{err}"
    );
}

#[test]
fn validation_reports_every_problem_with_its_probe() {
    let mut api = ProbeConfig::new("api", Kind::Http, "http://api/");
    api.timeout = Duration::from_secs(20);
    api.conditions = vec![
        Condition::parse("[EXIT_CODE] == 0").unwrap(),
        Condition::parse("[CERT_EXPIRY] > 72h").unwrap(),
    ];
    api.tcp = Some(TcpOptions::default());
    let duplicate = ProbeConfig::new("api", Kind::Docker, "web");
    let mut fast = ProbeConfig::new("fast", Kind::Tcp, "db");
    fast.interval = Duration(std::time::Duration::from_millis(500));
    fast.timeout = Duration(std::time::Duration::from_millis(100));
    fast.failure_threshold = 0;
    let relative = ProbeConfig::new("job", Kind::Exec, "check-backup --quick");
    let unnamed = ProbeConfig::new("", Kind::Docker, "/not a name");
    let mut slow = ProbeConfig::new("slow", Kind::Tls, "mail:99999");
    slow.interval = Duration::from_secs(600);

    assert_eq!(
        problems(&[api, duplicate, fast, relative, unnamed, slow]),
        vec![
            "probe \"api\": timeout (20s) must be above zero and at most interval (10s)",
            "probe \"api\": [probe.tcp] does not apply to a http probe",
            "probe \"api\": condition 1 `[EXIT_CODE] == 0`: [EXIT_CODE] does not apply to a http \
             probe (it offers [STATUS] [RESPONSE_TIME] [BODY] [CERT_EXPIRY] [CONNECTED])",
            "probe \"api\": condition 2 `[CERT_EXPIRY] > 72h`: [CERT_EXPIRY] needs an https:// target",
            "probe \"api\": another probe has the same name",
            "probe \"fast\": interval must be from 1s to 4m, not 500ms",
            "probe \"fast\": failure_threshold must be at least 1",
            "probe \"fast\": target \"db\": expected host:port, e.g. db.internal:5432 or [::1]:443",
            "probe \"job\": target \"check-backup --quick\" must be the command's absolute path \
             (arguments go in [probe.exec] args)",
            "probe #5: name must not be empty",
            "probe #5: target \"/not a name\" must be a container name or id ([a-zA-Z0-9][a-zA-Z0-9_.-]*)",
            "probe \"slow\": interval must be from 1s to 4m, not 10m",
            "probe \"slow\": target \"mail:99999\": port \"99999\" must be a number from 1 to 65535",
        ]
    );
}

#[test]
fn host_and_port_are_split_for_names_and_addresses() {
    assert_eq!(
        split_host_port("db.internal:5432"),
        Ok(("db.internal".to_owned(), 5432))
    );
    assert_eq!(
        split_host_port("10.0.0.1:80"),
        Ok(("10.0.0.1".to_owned(), 80))
    );
    assert_eq!(split_host_port("[::1]:443"), Ok(("::1".to_owned(), 443)));
    for bad in ["db", ":80", "::1:443", "[::1]443", "[::1", "a:0", "a:http"] {
        assert!(split_host_port(bad).is_err(), "{bad}");
    }
}
