use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::*;

fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_800_000_000)
}

fn facts() -> Facts {
    Facts {
        status: Some(200),
        body: Some("{\"status\":\"ok\",\"n\":42}\nsecond line".to_owned()),
        cert_expiry: Some(now() + Duration::from_secs(100 * 3600)),
        connected: Some(true),
        exit_code: Some(2),
        health: Some("healthy"),
    }
}

fn holds(text: &str, facts: &Facts) -> bool {
    let condition = Condition::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
    condition.holds(facts, Duration::from_millis(250), now())
}

#[test]
fn evaluates_every_placeholder_and_operator() {
    let f = facts();
    let table: &[(&str, bool)] = &[
        ("[STATUS] == 200", true),
        ("[STATUS] != 200", false),
        ("[STATUS] < 300", true),
        ("[STATUS] <= 199", false),
        ("[STATUS] > 199", true),
        ("[STATUS] >= 201", false),
        ("[EXIT_CODE] == 2", true),
        ("[EXIT_CODE] == 0", false),
        ("[EXIT_CODE] >= -1", true),
        ("[RESPONSE_TIME] < 300ms", true),
        ("[RESPONSE_TIME] < 250ms", false),
        ("[RESPONSE_TIME] <= 250ms", true),
        ("[RESPONSE_TIME] > 1s", false),
        ("[RESPONSE_TIME] == 250ms", true),
        ("[CERT_EXPIRY] > 72h", true),
        ("[CERT_EXPIRY] > 4d", true),
        ("[CERT_EXPIRY] > 5d", false),
        ("[CERT_EXPIRY] < 1h30m", false),
        ("[CONNECTED] == true", true),
        ("[CONNECTED] != true", false),
        ("[CONNECTED] == false", false),
        ("[BODY] contains \"ok\"", true),
        ("[BODY] contains \"OK\"", false),
        ("[BODY] contains \"\\\"n\\\":42\"", true),
        ("[BODY] contains \"42}\\nsecond\"", true),
        ("[BODY] == \"ok\"", false),
        ("[BODY] != \"ok\"", true),
        ("[BODY] matches \"\\\"n\\\":\\d+\"", true),
        ("[BODY] matches \"^second\"", false),
        ("[BODY] matches \"(?m)^second line$\"", true),
        ("[HEALTH] == \"healthy\"", true),
        ("[HEALTH] != \"healthy\"", false),
        // Spacing is free.
        ("  [STATUS]==200  ", true),
        ("[BODY]contains\"ok\"", true),
    ];
    for (text, want) in table {
        assert_eq!(holds(text, &f), *want, "{text}");
    }
}

#[test]
fn a_missing_fact_makes_any_condition_false() {
    let none = Facts::default();
    for text in [
        "[STATUS] != 200",
        "[EXIT_CODE] != 0",
        "[CERT_EXPIRY] < 1h",
        "[CONNECTED] == false",
        "[BODY] != \"x\"",
        "[HEALTH] != \"healthy\"",
    ] {
        assert!(!holds(text, &none), "{text}");
    }
    // The response time is always known.
    assert!(holds("[RESPONSE_TIME] < 1s", &none));
}

#[test]
fn an_expired_certificate_has_no_time_left() {
    let f = Facts {
        cert_expiry: Some(now() - Duration::from_secs(3600)),
        ..Facts::default()
    };
    assert!(holds("[CERT_EXPIRY] == 0s", &f));
    assert!(!holds("[CERT_EXPIRY] > 0s", &f));
}

#[test]
fn errors_name_the_problem_and_its_column() {
    let table: &[(&str, &str)] = &[
        ("", "empty condition; write e.g. `[STATUS] == 200`"),
        (
            "STATUS == 200",
            "expected a placeholder such as [STATUS] at column 1, found `STATUS`",
        ),
        (
            "[STATUS == 200",
            "placeholder at column 1 has no closing `]`",
        ),
        (
            "[STATUS_CODE] == 200",
            "unknown placeholder `[STATUS_CODE]` at column 1; expected one of [STATUS] \
             [RESPONSE_TIME] [BODY] [CERT_EXPIRY] [CONNECTED] [EXIT_CODE] [HEALTH]",
        ),
        (
            "[STATUS]",
            "missing operator at column 9; expected one of == != < <= > >= contains matches",
        ),
        (
            "[STATUS] = 200",
            "unknown operator `=` at column 10; expected one of == != < <= > >= contains matches",
        ),
        (
            "[STATUS] =< 200",
            "unknown operator `=<` at column 10; expected one of == != < <= > >= contains matches",
        ),
        (
            "[BODY] includes \"x\"",
            "unknown operator `includes` at column 8; expected one of == != < <= > >= contains matches",
        ),
        (
            "[STATUS] contains 2",
            "operator `contains` does not apply to [STATUS] at column 10; [STATUS] takes == != < <= > >=",
        ),
        (
            "[CONNECTED] < true",
            "operator `<` does not apply to [CONNECTED] at column 13; [CONNECTED] takes == !=",
        ),
        (
            "[BODY] > \"a\"",
            "operator `>` does not apply to [BODY] at column 8; [BODY] takes == != contains matches",
        ),
        (
            "[STATUS] ==",
            "missing value at column 12; expected an integer such as 200",
        ),
        (
            "[STATUS] == ok",
            "expected an integer such as 200 at column 13, found `ok`",
        ),
        (
            "[RESPONSE_TIME] < 300",
            "expected a duration such as 300ms, 5s or 72h at column 19, found `300`",
        ),
        (
            "[RESPONSE_TIME] < 3 apples",
            "expected a duration such as 300ms, 5s or 72h at column 19, found `3`",
        ),
        (
            "[CONNECTED] == yes",
            "expected true or false at column 16, found `yes`",
        ),
        (
            "[BODY] contains ok",
            "expected a double-quoted string such as \"ok\" at column 17, found `ok`",
        ),
        (
            "[BODY] contains \"ok",
            "string at column 17 has no closing `\"`",
        ),
        (
            "[BODY] contains \"ok\\",
            "string at column 17 has no closing `\"`",
        ),
        (
            "[STATUS] == 200 and more",
            "unexpected `and more` at column 17 after the value",
        ),
        (
            "[BODY] contains \"a\" \"b\"",
            "unexpected `\"b\"` at column 21 after the value",
        ),
    ];
    for (text, want) in table {
        let err = Condition::parse(text).expect_err(text);
        assert_eq!(err.problem.to_string(), *want, "{text}");
        assert_eq!(err.to_string(), format!("condition `{text}`: {want}"));
    }
}

#[test]
fn a_bad_regex_is_refused_with_its_reason() {
    let err = Condition::parse("[BODY] matches \"(unclosed\"").unwrap_err();
    let ConditionProblem::BadRegex { column, reason } = &err.problem else {
        panic!("{err}");
    };
    assert_eq!(*column, 16);
    assert!(reason.contains("unclosed group"), "{reason}");
}

#[test]
fn columns_count_characters_not_bytes() {
    let err = Condition::parse("[BODY] == \"é\" x").unwrap_err();
    assert_eq!(
        err.problem.to_string(),
        "unexpected `x` at column 15 after the value"
    );
}

#[test]
fn round_trips_through_serde_as_its_text() {
    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Doc {
        conditions: Vec<Condition>,
    }
    let doc: Doc =
        toml::from_str("conditions = ['[STATUS] == 200', '[BODY] matches \"\\d+\"']").unwrap();
    assert_eq!(doc.conditions[1].as_str(), "[BODY] matches \"\\d+\"");
    assert_eq!(doc.conditions[0].placeholder(), Placeholder::Status);
    let text = toml::to_string(&doc).unwrap();
    let again: Doc = toml::from_str(&text).unwrap();
    assert_eq!(again, doc);

    let err = toml::from_str::<Doc>("conditions = ['[STATUS] = 200']").unwrap_err();
    assert!(
        err.message()
            .starts_with("condition `[STATUS] = 200`: unknown operator `=` at column 10"),
        "{err}"
    );
}
