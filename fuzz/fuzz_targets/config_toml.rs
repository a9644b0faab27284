//! Config files: arbitrary UTF-8 through `muster_shared::config::parse` into the agent's and
//! the collector's config structs, then through their `resolve` (the collector's validates).
//!
//! Properties, beyond "never panics":
//! - a parse error is one line, `<path>:<line>:<col>: <message>`, and the position is inside
//!   the input: `line` is one of its lines (counting the empty one after a final newline) and
//!   `col` at most one past that line's last character;
//! - a collector config that parses but fails `resolve` says so in one line starting with the
//!   path;
//! - a config that parses survives what `config::apply_overrides` does to it: an environment
//!   override restating a key's current value leaves the resolved settings unchanged (the
//!   struct goes back to TOML and is parsed again, so every value must round-trip).

#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use muster_agent::config::{AgentConfig, AgentSettings};
use muster_collector::config::{CollectorConfig, CollectorSettings};
use muster_shared::config::{self, ConfigError, EnvOverride};

const AGENT_PATH: &str = "/etc/muster/agent.toml";
const COLLECTOR_PATH: &str = "conf.d/collector.toml";

fuzz_target!(|text: &str| {
    check_agent(text);
    check_collector(text);
});

fn check_agent(text: &str) {
    let path = Path::new(AGENT_PATH);
    let raw = match config::parse::<AgentConfig>(text, path) {
        Ok(raw) => raw,
        Err(err) => return check_parse_error(text, AGENT_PATH, &err),
    };
    let settings = AgentSettings::resolve(path, raw.clone());

    let listen = raw.listen.to_string();
    let restated = config::apply_overrides(raw, &[OVERRIDE_LISTEN], |_| Some(listen.clone()))
        .unwrap_or_else(|err| panic!("restating listen = {listen:?} failed: {err}"));
    assert_eq!(AgentSettings::resolve(path, restated), settings);
}

fn check_collector(text: &str) {
    let path = Path::new(COLLECTOR_PATH);
    let raw = match config::parse::<CollectorConfig>(text, path) {
        Ok(raw) => raw,
        Err(err) => return check_parse_error(text, COLLECTOR_PATH, &err),
    };
    let settings = CollectorSettings::resolve(path, raw.clone());
    if let Err(err) = &settings {
        assert!(matches!(err, ConfigError::Invalid { .. }), "{err:?}");
        let shown = err.to_string();
        assert!(shown.starts_with(&format!("{COLLECTOR_PATH}: ")), "{shown}");
        assert!(!shown.contains('\n'), "{shown:?}");
    }

    let listen = raw.api.listen.to_string();
    let restated = config::apply_overrides(raw, &[OVERRIDE_API_LISTEN], |_| Some(listen.clone()))
        .unwrap_or_else(|err| panic!("restating api.listen = {listen:?} failed: {err}"));
    let again = CollectorSettings::resolve(path, restated);
    assert_eq!(format!("{again:?}"), format!("{settings:?}"));
}

// Variable names are irrelevant here: the lookup answers every variable.
const OVERRIDE_LISTEN: EnvOverride = EnvOverride {
    var: "MUSTER_AGENT_LISTEN",
    key: "listen",
};
const OVERRIDE_API_LISTEN: EnvOverride = EnvOverride {
    var: "MUSTER_COLLECTOR_LISTEN",
    key: "api.listen",
};

fn check_parse_error(text: &str, path: &str, err: &ConfigError) {
    let ConfigError::Parse { line, column, .. } = err else {
        panic!("parse gave a non-parse error: {err:?}");
    };
    let shown = err.to_string();
    let prefix = format!("{path}:{line}:{column}: ");
    assert!(
        shown.starts_with(&prefix),
        "{shown:?} does not start with {prefix:?}"
    );
    assert!(!shown.contains('\n'), "{shown:?} is more than one line");

    // `line_col` counts '\n' only, and columns in characters, from 1.
    let lines: Vec<&str> = text.split('\n').collect();
    assert!(
        (1..=lines.len()).contains(line),
        "line {line} of a {}-line input: {shown:?}",
        lines.len()
    );
    let chars = lines[line - 1].chars().count();
    assert!(
        (1..=chars + 1).contains(column),
        "column {column} of a {chars}-character line {line}: {shown:?}"
    );
}
