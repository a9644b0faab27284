//! Templates: rendering with Prometheus's functions, and load errors with columns.

use super::*;

fn render(text: &str, value: f64) -> String {
    let labels = LabelSet::from([
        ("host".to_owned(), "web1".to_owned()),
        ("free".to_owned(), "0.05".to_owned()),
    ]);
    let data = TemplateData {
        labels: &labels,
        value,
        external_url: "https://muster.example",
    };
    Template::parse(text)
        .unwrap_or_else(|e| panic!("{text}: {e}"))
        .render(&data)
}

fn error(text: &str) -> String {
    match Template::parse(text) {
        Err(e) => e.to_string(),
        Ok(t) => panic!("{text}: expected an error, parsed {t:?}"),
    }
}

#[test]
fn renders_labels_values_and_the_external_url() {
    assert_eq!(
        render("Load {{ $value }} on {{ $labels.host }}", 4.5),
        "Load 4.5 on web1"
    );
    assert_eq!(render("{{$labels.missing}}|", 0.0), "|");
    assert_eq!(render("{{ .Labels.host }} {{ .Value }}", 2.0), "web1 2");
    assert_eq!(
        render("see {{ $externalURL }}/alerts", 0.0),
        "see https://muster.example/alerts"
    );
    assert_eq!(render("plain text", 0.0), "plain text");
    assert_eq!(render("", 0.0), "");
    assert_eq!(render("{{ $value }}", 1e6), "1e+06");
}

#[test]
fn filters_format_numbers_as_prometheus_does() {
    assert_eq!(render("{{ $value | humanize }}", 1_234_567.0), "1.235M");
    assert_eq!(
        render("{{ $value | humanize1024 }}B", 1_073_741_824.0),
        "1GiB"
    );
    assert_eq!(
        render("{{ $value | humanizeDuration }}", 90_061.0),
        "1d 1h 1m 1s"
    );
    assert_eq!(render("{{ $value | humanizePercentage }}", 0.0712), "7.12%");
    assert_eq!(
        render("{{ $labels.free | humanizePercentage }}", 0.0),
        "5%",
        "a label that reads as a number is one"
    );
    assert_eq!(
        render("{{ $labels.host | humanize }}", 0.0),
        "web1",
        "a label that isn't stays as it is"
    );
    assert_eq!(
        render("{{ $value | humanizeTimestamp }}", 1_700_000_000.0),
        "2023-11-14 22:13:20 +0000 UTC"
    );
    assert_eq!(render(r#"{{ $value | printf "%.2f" }}"#, 2.0 / 3.0), "0.67");
    assert_eq!(render(r#"{{ $value | printf "%.1f%%" }}"#, 12.345), "12.3%");
    assert_eq!(render(r#"{{ $value | printf "%g" }}"#, 0.5), "0.5");
    assert_eq!(
        render(r#"{{ $labels.host | printf "host=%s" }}"#, 0.0),
        "host=web1"
    );
}

#[test]
fn trim_markers_and_literals() {
    assert_eq!(render("a  {{- $labels.host -}}  b", 0.0), "aweb1b");
    assert_eq!(render(r#"{{ "{{" }} x {{ "}}" }}"#, 0.0), "{{ x }}");
}

#[test]
fn errors_name_the_column_and_the_problem() {
    let cases = [
        (
            "on {{ $lables.host }}",
            "template column 7: unknown `$lables.host`: expected $labels.NAME, $value or $externalURL",
        ),
        (
            "{{ $value | humanise }}",
            "template column 13: unknown function `humanise`: expected humanize, humanize1024, humanizeDuration, humanizePercentage, humanizeTimestamp or printf",
        ),
        (
            "x {{ $value",
            "template column 3: `{{` is never closed by `}}`",
        ),
        (
            "{{ $value }} }}",
            "template column 14: `}}` without `{{` (write it as {{ \"}}\" }})",
        ),
        (
            "{{ }}",
            "template column 4: empty action: expected $labels.NAME, $value or $externalURL",
        ),
        (
            "{{ if $value }}",
            "template column 4: unknown `if`: expected $labels.NAME, $value or $externalURL",
        ),
        (
            "{{ $labels.9x }}",
            "template column 4: `9x` is not a valid label name",
        ),
        (
            r#"{{ $value | printf "%d" }}"#,
            "template column 20: printf verb `%d` is not supported (use %f, %.2f, %g, %.4g, %s or %v)",
        ),
        (
            r#"{{ $value | printf "%f %f" }}"#,
            "template column 20: printf takes one value: use one verb",
        ),
        (
            "{{ $value $value }}",
            "template column 11: unexpected `$` in action",
        ),
    ];
    for (text, want) in cases {
        assert_eq!(error(text), want, "{text}");
    }
}

#[test]
fn label_names_follow_prometheus() {
    assert!(is_label_name("host"));
    assert!(is_label_name("_x9"));
    assert!(!is_label_name("9x"));
    assert!(!is_label_name(""));
    assert!(!is_label_name("a-b"));
}
