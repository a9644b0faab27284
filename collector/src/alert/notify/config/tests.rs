//! Receiver config: parsing, every problem named by its key, paths resolved.

use super::*;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    receivers: Vec<ReceiverConfig>,
}

fn parse(text: &str) -> Result<Vec<ReceiverConfig>, config::ConfigError> {
    config::parse::<File>(text, Path::new("collector.toml")).map(|f| f.receivers)
}

#[test]
fn defaults() {
    let c = &parse(
        "[[receivers]]\nname = \"a\"\nkind = \"slack\"\n\
         url = \"https://hooks.slack.com/services/T/B/X\"\n",
    )
    .unwrap()[0];
    assert!(c.send_resolved);
    assert_eq!(c.max_alerts, 0);
    assert_eq!(c.timeout.get(), std::time::Duration::from_secs(10));
    assert_eq!(c.lease(), std::time::Duration::from_secs(240));
    assert!(c.problems("r").is_empty(), "{:?}", c.problems("r"));
}

#[test]
fn unknown_keys_and_kinds_name_file_line_col() {
    let err = parse("[[receivers]]\nname = \"a\"\nkind = \"slack\"\nchanel = \"#x\"\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("unknown field `chanel`"), "{err}");
    assert!(err.starts_with("collector.toml:4:"), "{err}");
    let err = parse("[[receivers]]\nname = \"a\"\nkind = \"pagerduty\"\n")
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("collector.toml:3:"), "{err}");
}

#[test]
fn every_problem_is_reported_without_secrets() {
    let configs = parse(
        r#"
[[receivers]]
name = "chat"
kind = "slack"
url = "ftp://hooks.example/services/SECRETPATH"
bot_token = "123:SECRETTOKEN"
timeout = "0s"

[[receivers]]
name = "tg"
kind = "telegram"
chat_id = "mychannel"

[[receivers]]
name = "chat"
kind = "webhook"
url = "https://hook.example/x"
url_file = "/etc/url"
bearer_token = "SECRETBEARER"
basic_auth = { username = "a:b" }

[[receivers]]
name = "am"
kind = "alertmanager"
max_alerts = 5
ca_file = "/ca.pem"
url = "http://am:9093"

[[receivers]]
name = "push"
kind = "ntfy"

[receivers.quiet_hours]
start = "22:00"
end = "22:00"
"#,
    )
    .unwrap();
    let text = problems("receivers", &configs).join("\n");
    for expected in [
        "receivers[0].url: must be http or https",
        "receivers[0].bot_token does not apply to kind \"slack\"",
        "receivers[0].timeout must be above zero",
        "receivers[1] needs exactly one of bot_token and bot_token_file",
        "receivers[1].chat_id must be a number or a channel's @username",
        "receivers[2].url and receivers[2].url_file exclude each other",
        "exclude each other",
        "exactly one of password and password_file",
        "receivers[2].basic_auth.username must not contain ':'",
        "receivers[2].name \"chat\" is used by an earlier receiver",
        "receivers[3].max_alerts must be 0",
        "receivers[3].ca_file needs an https url",
        "receivers[4].url (or url_file) is required for kind \"ntfy\"",
        "receivers[4].quiet_hours: start and end are equal",
    ] {
        assert!(text.contains(expected), "{expected} missing from:\n{text}");
    }
    for secret in ["SECRETPATH", "SECRETTOKEN", "SECRETBEARER"] {
        assert!(!text.contains(secret), "{secret} in:\n{text}");
        assert!(
            !format!("{configs:?}").contains(secret),
            "{secret} in Debug"
        );
    }
}

#[test]
fn chat_ids_are_numbers_or_channel_names() {
    let configs = parse(
        "[[receivers]]\nname = \"a\"\nkind = \"telegram\"\nbot_token = \"1:x\"\nchat_id = -100123\n\
         [[receivers]]\nname = \"b\"\nkind = \"telegram\"\nbot_token = \"1:x\"\nchat_id = \"@alerts\"\n",
    )
    .unwrap();
    assert_eq!(configs[0].chat_id, Some(ChatId::Id(-100_123)));
    assert_eq!(configs[1].chat_id, Some(ChatId::Name("@alerts".into())));
    let found = problems("receivers", &configs);
    assert!(found.is_empty(), "{found:?}");
}

#[test]
fn relative_files_resolve_against_the_config() {
    let mut c = ReceiverConfig::new("a", ReceiverKind::Telegram);
    c.bot_token_file = Some("tg-token".into());
    c.url_file = Some("/abs/url".into());
    let c = c.with_paths_resolved(Path::new("/etc/muster/collector.toml"));
    assert_eq!(c.bot_token_file.unwrap(), Path::new("/etc/muster/tg-token"));
    assert_eq!(c.url_file.unwrap(), Path::new("/abs/url"));
}
