//! The template language of alert labels and annotations: the part of Prometheus's Go
//! templates that alert messages use, parsed once when rules load.
//!
//! ```text
//! {{ $labels.host }}                   a label of the alert's series ("" when absent)
//! {{ $value }}                         the expression's value, as Go prints a float64
//! {{ $value | humanize }}              1.235M        (also humanize1024: 1.5Gi)
//! {{ $value | humanizeDuration }}      1d 2h 3m 4s   (the value in seconds)
//! {{ $value | humanizePercentage }}    12.34%        (the value as a ratio)
//! {{ $value | humanizeTimestamp }}     2023-11-14 22:13:20 +0000 UTC
//! {{ $value | printf "%.2f" }}         one verb: %f %.Nf %g %.Ng %s %v
//! {{ $externalURL }}                   the collector's external URL
//! {{ "{{" }}                           a string literal
//! ```
//!
//! `.Labels.NAME`, `.Value` and `.ExternalURL` are accepted for `$labels.NAME`, `$value`
//! and `$externalURL`; `{{-` and `-}}` trim the white space before and after, as in Go. A
//! number filter applied to a label parses the label as a number and leaves it as it is
//! when it isn't one.
//!
//! Leaves out everything else Go templates do (`if`, `range`, variables, `query`): anything
//! not listed is an error at load time naming its column, never a surprise at send time.
//! Rendering cannot fail.

use std::fmt;

use super::humanize;
use crate::alert::labels::LabelSet;

/// A parsed template. Rendering it is cheap and cannot fail.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    text: String,
    parts: Vec<Part>,
}

/// What a template is rendered with.
#[derive(Debug, Clone, Copy)]
pub struct TemplateData<'a> {
    /// The alert's series labels (without `__name__`).
    pub labels: &'a LabelSet,
    /// The expression's value for that series.
    pub value: f64,
    /// The collector's external URL (`$externalURL`).
    pub external_url: &'a str,
}

/// Why a template did not parse: the column (in characters, 1-based) within the
/// template's text, and what is wrong there.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("template column {column}: {message}")]
pub struct TemplateError {
    /// 1-based character column in the template text.
    pub column: usize,
    /// What is wrong.
    pub message: String,
}

#[derive(Debug, Clone, PartialEq)]
enum Part {
    Text(String),
    Action {
        operand: Operand,
        filters: Vec<Filter>,
    },
}

#[derive(Debug, Clone, PartialEq)]
enum Operand {
    Value,
    Label(String),
    ExternalUrl,
    Literal(String),
}

#[derive(Debug, Clone, PartialEq)]
enum Filter {
    Humanize,
    Humanize1024,
    HumanizeDuration,
    HumanizePercentage,
    HumanizeTimestamp,
    Printf(Printf),
}

/// `printf` with one verb, and the text around it.
#[derive(Debug, Clone, PartialEq)]
struct Printf {
    before: String,
    verb: Verb,
    after: String,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Verb {
    Fixed(usize),
    General(Option<usize>),
    Plain,
}

/// A value inside an action: numbers stay numbers until printed.
enum Datum {
    Number(f64),
    Text(String),
}

impl Template {
    /// Parses `text`.
    ///
    /// ```
    /// use muster_collector::alert::labels::LabelSet;
    /// use muster_collector::alert::rules::template::{Template, TemplateData};
    ///
    /// let t = Template::parse("load {{ $value }} on {{ $labels.host }}").unwrap();
    /// let labels = LabelSet::from([("host".to_owned(), "web1".to_owned())]);
    /// let data = TemplateData { labels: &labels, value: 4.5, external_url: "" };
    /// assert_eq!(t.render(&data), "load 4.5 on web1");
    /// assert!(Template::parse("{{ $lables.host }}").is_err());
    /// ```
    ///
    /// # Errors
    /// [`TemplateError`] at the first thing outside the language, with its column.
    pub fn parse(text: &str) -> Result<Self, TemplateError> {
        Parser::new(text).parse().map(|parts| Self {
            text: text.to_owned(),
            parts,
        })
    }

    /// The text it was parsed from.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The text with every action filled in.
    pub fn render(&self, data: &TemplateData<'_>) -> String {
        let mut out = String::with_capacity(self.text.len());
        for part in &self.parts {
            match part {
                Part::Text(text) => out.push_str(text),
                Part::Action { operand, filters } => {
                    let mut datum = match operand {
                        Operand::Value => Datum::Number(data.value),
                        Operand::Label(name) => {
                            Datum::Text(data.labels.get(name).cloned().unwrap_or_default())
                        }
                        Operand::ExternalUrl => Datum::Text(data.external_url.to_owned()),
                        Operand::Literal(text) => Datum::Text(text.clone()),
                    };
                    for filter in filters {
                        datum = Datum::Text(filter.apply(datum));
                    }
                    out.push_str(&datum.into_text());
                }
            }
        }
        out
    }
}

impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Datum {
    fn into_text(self) -> String {
        match self {
            Datum::Number(v) => humanize::go_value(v),
            Datum::Text(text) => text,
        }
    }

    /// The number it holds or reads as (Prometheus's `convertToFloat`).
    fn number(&self) -> Option<f64> {
        match self {
            Datum::Number(v) => Some(*v),
            Datum::Text(text) => text.trim().parse().ok(),
        }
    }
}

impl Filter {
    fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "humanize" => Self::Humanize,
            "humanize1024" => Self::Humanize1024,
            "humanizeDuration" => Self::HumanizeDuration,
            "humanizePercentage" => Self::HumanizePercentage,
            "humanizeTimestamp" => Self::HumanizeTimestamp,
            _ => return None,
        })
    }

    fn apply(&self, datum: Datum) -> String {
        let number: fn(f64) -> String = match self {
            Filter::Printf(printf) => return printf.apply(&datum),
            Filter::Humanize => humanize::humanize,
            Filter::Humanize1024 => humanize::humanize1024,
            Filter::HumanizeDuration => humanize::humanize_duration,
            Filter::HumanizePercentage => humanize::humanize_percentage,
            Filter::HumanizeTimestamp => humanize::humanize_timestamp,
        };
        match datum.number() {
            Some(v) => number(v),
            None => datum.into_text(),
        }
    }
}

impl Printf {
    /// Parses a format with exactly one verb (and any number of `%%`).
    fn parse(format: &str) -> Result<Self, String> {
        let mut before = String::new();
        let mut after = String::new();
        let mut verb = None;
        let mut chars = format.chars().peekable();
        while let Some(c) = chars.next() {
            let side = if verb.is_some() {
                &mut after
            } else {
                &mut before
            };
            if c != '%' {
                side.push(c);
                continue;
            }
            if chars.peek() == Some(&'%') {
                chars.next();
                side.push('%');
                continue;
            }
            if verb.is_some() {
                return Err("printf takes one value: use one verb".to_owned());
            }
            let mut precision = None;
            if chars.peek() == Some(&'.') {
                chars.next();
                let mut digits = String::new();
                while let Some(d) = chars.peek().filter(|d| d.is_ascii_digit()) {
                    digits.push(*d);
                    chars.next();
                }
                precision = Some(digits.parse::<usize>().unwrap_or(0).min(30));
            }
            verb = Some(match (chars.next(), precision) {
                (Some('f'), p) => Verb::Fixed(p.unwrap_or(6)),
                (Some('g'), p) => Verb::General(p),
                (Some('s' | 'v'), None) => Verb::Plain,
                (other, _) => {
                    return Err(format!(
                        "printf verb `%{}` is not supported (use %f, %.2f, %g, %.4g, %s or %v)",
                        other.map(String::from).unwrap_or_default()
                    ));
                }
            });
        }
        let verb = verb.ok_or("printf format has no verb (%f, %g, %s, ...)")?;
        Ok(Self {
            before,
            verb,
            after,
        })
    }

    fn apply(&self, datum: &Datum) -> String {
        let middle = match (self.verb, datum.number()) {
            (Verb::Fixed(decimals), Some(v)) => humanize::format_f(v, decimals),
            (Verb::General(precision), Some(v)) => humanize::format_g(v, precision),
            (Verb::Plain, _) | (_, None) => match datum {
                Datum::Number(v) => humanize::go_value(*v),
                Datum::Text(text) => text.clone(),
            },
        };
        format!("{}{middle}{}", self.before, self.after)
    }
}

/// A cursor over the template text, in characters, for column numbers.
struct Parser {
    chars: Vec<char>,
    pos: usize,
}

impl Parser {
    fn new(text: &str) -> Self {
        Self {
            chars: text.chars().collect(),
            pos: 0,
        }
    }

    fn error<T>(&self, at: usize, message: impl Into<String>) -> Result<T, TemplateError> {
        Err(TemplateError {
            column: at + 1,
            message: message.into(),
        })
    }

    fn starts_with(&self, at: usize, pattern: &str) -> bool {
        (at..)
            .zip(pattern.chars())
            .all(|(i, c)| self.chars.get(i) == Some(&c))
    }

    fn parse(mut self) -> Result<Vec<Part>, TemplateError> {
        let mut parts = Vec::new();
        let mut text = String::new();
        while self.pos < self.chars.len() {
            if self.starts_with(self.pos, "}}") {
                return self.error(self.pos, "`}}` without `{{` (write it as {{ \"}}\" }})");
            }
            if !self.starts_with(self.pos, "{{") {
                text.push(self.chars[self.pos]);
                self.pos += 1;
                continue;
            }
            let open = self.pos;
            self.pos += 2;
            // `{{- ` trims the white space before the action (Go needs the space after).
            if self.starts_with(self.pos, "- ") {
                self.pos += 1;
                text.truncate(text.trim_end().len());
            }
            if !text.is_empty() {
                parts.push(Part::Text(std::mem::take(&mut text)));
            }
            let (action, trim_after) = self.action(open)?;
            parts.push(action);
            if trim_after {
                while self.chars.get(self.pos).is_some_and(|c| c.is_whitespace()) {
                    self.pos += 1;
                }
            }
        }
        if !text.is_empty() {
            parts.push(Part::Text(text));
        }
        Ok(parts)
    }

    /// One action after its `{{`, up to and past its `}}`; whether it ends `-}}`.
    fn action(&mut self, open: usize) -> Result<(Part, bool), TemplateError> {
        self.skip_space();
        let operand = self.operand()?;
        let mut filters = Vec::new();
        loop {
            self.skip_space();
            if self.starts_with(self.pos, "}}") {
                self.pos += 2;
                return Ok((Part::Action { operand, filters }, false));
            }
            if self.starts_with(self.pos, "-}}") {
                self.pos += 3;
                return Ok((Part::Action { operand, filters }, true));
            }
            match self.chars.get(self.pos) {
                Some('|') => {
                    self.pos += 1;
                    self.skip_space();
                    filters.push(self.filter()?);
                }
                Some(c) => return self.error(self.pos, format!("unexpected `{c}` in action")),
                None => return self.error(open, "`{{` is never closed by `}}`"),
            }
        }
    }

    fn skip_space(&mut self) {
        while self.chars.get(self.pos).is_some_and(|c| c.is_whitespace()) {
            self.pos += 1;
        }
    }

    /// A name: letters, digits, `_`, `$` and `.` (`$labels.host`, `.Value`).
    fn word(&mut self) -> String {
        let start = self.pos;
        while self
            .chars
            .get(self.pos)
            .is_some_and(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '$' | '.'))
        {
            self.pos += 1;
        }
        self.chars[start..self.pos].iter().collect()
    }

    fn operand(&mut self) -> Result<Operand, TemplateError> {
        let start = self.pos;
        if self.chars.get(self.pos) == Some(&'"') {
            return self.string().map(Operand::Literal);
        }
        let word = self.word();
        let label = word
            .strip_prefix("$labels.")
            .or_else(|| word.strip_prefix(".Labels."));
        match (word.as_str(), label) {
            ("$value" | ".Value", _) => Ok(Operand::Value),
            ("$externalURL" | ".ExternalURL", _) => Ok(Operand::ExternalUrl),
            (_, Some(name)) if is_label_name(name) => Ok(Operand::Label(name.to_owned())),
            (_, Some(name)) => self.error(start, format!("`{name}` is not a valid label name")),
            ("", _) => self.error(
                start,
                "empty action: expected $labels.NAME, $value or $externalURL",
            ),
            (other, _) => self.error(
                start,
                format!("unknown `{other}`: expected $labels.NAME, $value or $externalURL"),
            ),
        }
    }

    fn filter(&mut self) -> Result<Filter, TemplateError> {
        let start = self.pos;
        let name = self.word();
        if name == "printf" {
            self.skip_space();
            let format_at = self.pos;
            if self.chars.get(self.pos) != Some(&'"') {
                return self.error(self.pos, "printf needs a quoted format, e.g. \"%.2f\"");
            }
            let format = self.string()?;
            return Printf::parse(&format)
                .map(Filter::Printf)
                .or_else(|message| self.error(format_at, message));
        }
        match Filter::from_name(&name) {
            Some(filter) => Ok(filter),
            None => self.error(
                start,
                format!(
                    "unknown function `{name}`: expected humanize, humanize1024, \
                     humanizeDuration, humanizePercentage, humanizeTimestamp or printf"
                ),
            ),
        }
    }

    /// A double-quoted string with Go's simple escapes (`\"`, `\\`, `\n`, `\t`).
    fn string(&mut self) -> Result<String, TemplateError> {
        let start = self.pos;
        self.pos += 1;
        let mut out = String::new();
        loop {
            match self.chars.get(self.pos) {
                None => return self.error(start, "string is never closed by `\"`"),
                Some('"') => {
                    self.pos += 1;
                    return Ok(out);
                }
                Some('\\') => {
                    let escaped = match self.chars.get(self.pos + 1) {
                        Some('"') => '"',
                        Some('\\') => '\\',
                        Some('n') => '\n',
                        Some('t') => '\t',
                        _ => return self.error(self.pos, "unknown escape in string"),
                    };
                    out.push(escaped);
                    self.pos += 2;
                }
                Some(c) => {
                    out.push(*c);
                    self.pos += 1;
                }
            }
        }
    }
}

/// `[a-zA-Z_][a-zA-Z0-9_]*`: Prometheus's label names.
pub fn is_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests;
