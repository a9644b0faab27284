//! Bad configs: every binary's `check-config` (and `serve`/`run`) exits
//! non-zero with one line naming file:line:col, and writes nothing.

use muster_tests::{agent_cli, collector_cli};

fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> String {
    let path = dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_owned()
}

fn stderr_of(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn agent_config_with_unknown_key_names_file_line_col() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        &dir,
        "agent.toml",
        "listen = \"127.0.0.1:7071\"\n\n[tls]\nca = \"x\"\nbogus = 1\n",
    );
    for command in ["check-config", "run"] {
        let out = agent_cli(&[command, "--config", &path]);
        assert!(!out.status.success(), "{command} must fail");
        let stderr = stderr_of(&out);
        assert!(
            stderr.contains(&format!("{path}:5:1: unknown field `bogus`")),
            "{command}: {stderr}"
        );
    }
    assert!(!dir.path().join("data").exists(), "nothing written");
}

#[test]
fn agent_config_with_wrong_type_names_file_line_col() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(&dir, "agent.toml", "listen = 7071\n");
    let out = agent_cli(&["check-config", "--config", &path]);
    assert!(!out.status.success());
    assert!(
        stderr_of(&out).contains(&format!("{path}:1:10:")),
        "{}",
        stderr_of(&out)
    );
}

#[test]
fn collector_config_errors_name_file_line_col() {
    let dir = tempfile::tempdir().unwrap();
    let unknown = write(
        &dir,
        "a.toml",
        "[api]\nlisten = \"127.0.0.1:1\"\nlisten_tls = true\n",
    );
    let out = collector_cli(&["check-config", "--config", &unknown]);
    assert!(!out.status.success());
    assert!(
        stderr_of(&out).contains(&format!("{unknown}:3:1: unknown field `listen_tls`")),
        "{}",
        stderr_of(&out)
    );

    let wrong = write(&dir, "b.toml", "[scrape]\ninterval = 10\n");
    let out = collector_cli(&["serve", "--config", &wrong]);
    assert!(!out.status.success());
    let stderr = stderr_of(&out);
    assert!(stderr.contains(&format!("{wrong}:2:12:")), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");

    let duration = write(&dir, "c.toml", "[scrape]\ninterval = \"ten seconds\"\n");
    let out = collector_cli(&["check-config", "--config", &duration]);
    assert!(
        stderr_of(&out).contains(&format!("{duration}:2:12: invalid duration")),
        "{}",
        stderr_of(&out)
    );

    let rules = write(
        &dir,
        "d.toml",
        "[api]\nlisten = \"0.0.0.0:7070\"\ntls = false\n",
    );
    let out = collector_cli(&["check-config", "--config", &rules]);
    assert!(!out.status.success());
    assert!(stderr_of(&out).contains("api.tls = false is allowed only on a loopback address"));
    assert!(!dir.path().join("data").exists(), "nothing written");
}

#[test]
fn env_override_with_a_bad_value_names_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(&dir, "agent.toml", "");
    let out = muster_tests::run(
        std::process::Command::new(muster_tests::bin("muster-agent"))
            .args(["check-config", "--config", &path])
            .env("MUSTER_AGENT_LISTEN", "not-an-address"),
    );
    assert!(!out.status.success());
    assert!(
        stderr_of(&out).contains("MUSTER_AGENT_LISTEN"),
        "{}",
        stderr_of(&out)
    );

    let out = muster_tests::run(
        std::process::Command::new(muster_tests::bin("muster-agent"))
            .args(["check-config", "--config", &path])
            .env("MUSTER_AGENT_LISTEN", "127.0.0.1:9999"),
    );
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("127.0.0.1:9999"));
}

#[test]
fn missing_config_file_is_named() {
    let out = agent_cli(&["check-config", "--config", "/nonexistent/agent.toml"]);
    assert!(!out.status.success());
    assert!(stderr_of(&out).contains("/nonexistent/agent.toml: cannot read config"));
}

#[test]
fn both_binaries_print_semver_and_commit() {
    for out in [agent_cli(&["--version"]), collector_cli(&["--version"])] {
        assert!(out.status.success());
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains(env!("CARGO_PKG_VERSION")), "{text}");
        assert!(
            text.contains('(') && text.contains(')'),
            "names the commit: {text}"
        );
    }
}

#[test]
fn commands_that_fail_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data = data.to_str().unwrap();
    // No CA yet: an enrollment token can't be made, and no store appears.
    let out = collector_cli(&[
        "token",
        "create",
        "--data-dir",
        data,
        "--enroll",
        "--host",
        "web1",
    ]);
    assert!(!out.status.success());
    assert!(
        stderr_of(&out).contains("run `muster-collector ca init` first"),
        "{}",
        stderr_of(&out)
    );
    assert!(!dir.path().join("data").exists(), "nothing written");
    // serve without a CA says what to run and writes nothing.
    let config = write(&dir, "collector.toml", "data_dir = \"data\"\n");
    let out = collector_cli(&["serve", "--config", &config]);
    assert!(!out.status.success());
    assert!(stderr_of(&out).contains("ca init"), "{}", stderr_of(&out));
    assert!(!dir.path().join("data").exists(), "nothing written");
}

#[test]
fn alerting_config_errors_name_their_keys_and_rule_files_their_lines() {
    let dir = tempfile::tempdir().unwrap();
    let receivers = write(
        &dir,
        "alerting.toml",
        "[alerting]\nevaluation_interval = \"100ms\"\n\n\
         [[alerting.receivers]]\nname = \"chat\"\nkind = \"slack\"\n\n\
         [[alerting.receivers]]\nname = \"pager\"\nkind = \"pigeon\"\nurl = \"https://x\"\n",
    );
    let out = collector_cli(&["check-config", "--config", &receivers]);
    assert!(!out.status.success());
    let stderr = stderr_of(&out);
    assert!(
        stderr.contains(&format!("{receivers}:10:8")),
        "the unknown kind's place: {stderr}"
    );

    let route = write(
        &dir,
        "route.toml",
        "[alerting]\nevaluation_interval = \"100ms\"\n\n\
         [[alerting.receivers]]\nname = \"chat\"\nkind = \"webhook\"\n\n\
         [alerting.route]\nreceiver = \"nobody\"\nrepeat_interval = \"1s\"\n",
    );
    let out = collector_cli(&["check-config", "--config", &route]);
    assert!(!out.status.success());
    let stderr = stderr_of(&out);
    for key in [
        "alerting.evaluation_interval",
        "alerting.receivers[0]",
        "alerting.route.receiver",
    ] {
        assert!(stderr.contains(key), "names {key}: {stderr}");
    }

    let rule_file = write(
        &dir,
        "bad-rules.toml",
        "[[rule]]\nname = \"X\"\nexpr = \"up ==\"\n",
    );
    let config = write(
        &dir,
        "with-rules.toml",
        &format!("[alerting]\nrule_files = [{rule_file:?}]\n"),
    );
    let out = collector_cli(&["check-config", "--config", &config]);
    assert!(!out.status.success());
    let stderr = stderr_of(&out);
    assert!(stderr.contains(&format!("{rule_file}:3:")), "{stderr}");
    assert!(
        collector_cli(&["ca", "init", "--config", &config])
            .status
            .success()
    );
    let out = collector_cli(&["serve", "--config", &config]);
    assert!(!out.status.success(), "serve refuses a malformed rule file");
    assert!(
        stderr_of(&out).contains("bad-rules.toml"),
        "{}",
        stderr_of(&out)
    );
}

#[test]
fn probe_config_errors_name_the_probe_and_the_condition() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        &dir,
        "agent.toml",
        "[[probe]]\nname = \"api\"\nkind = \"http\"\ntarget = \"http://127.0.0.1:1/\"\n\
         conditions = [\"[STATUS] = 200\"]\n",
    );
    let out = agent_cli(&["check-config", "--config", &path]);
    assert!(!out.status.success());
    let stderr = stderr_of(&out);
    assert!(stderr.contains(&format!("{path}:5:")), "{stderr}");
    assert!(
        stderr.contains("=="),
        "says what operator is expected: {stderr}"
    );
}

#[test]
fn backup_set_errors_name_the_set_and_bad_schedules_their_position() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        &dir,
        "agent.toml",
        "[[backup]]\nname = \"etc\"\npaths = [\"relative\"]\nkeep = { keep_daily = 7 }\n\
         [[backup]]\nname = \"etc\"\n",
    );
    let out = agent_cli(&["check-config", "--config", &path]);
    assert!(!out.status.success());
    let stderr = stderr_of(&out);
    assert!(
        stderr.contains("backup \"etc\": path relative must be absolute"),
        "{stderr}"
    );
    assert!(
        stderr.contains("another backup set has the same name"),
        "{stderr}"
    );
    assert!(stderr.contains("nothing to back up"), "{stderr}");

    let path = write(
        &dir,
        "agent.toml",
        "[[backup]]\nname = \"etc\"\npaths = [\"/etc\"]\nschedule = \"0 25 * * *\"\n",
    );
    let out = agent_cli(&["check-config", "--config", &path]);
    assert!(!out.status.success());
    let stderr = stderr_of(&out);
    assert!(stderr.contains(&format!("{path}:4:")), "{stderr}");
    assert!(stderr.contains("hour"), "names the cron field: {stderr}");
}
