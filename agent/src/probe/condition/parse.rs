//! Parsing a condition: a small scanner that knows its character column, and the errors
//! that name it.

use std::time::Duration;

use super::{Operand, Operator, Placeholder, ValueType};

/// Why a condition does not parse: the condition's text and the problem, with its 1-based
/// column (in characters) inside the condition.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("condition `{condition}`: {problem}")]
pub struct ConditionError {
    /// The condition as written.
    pub condition: String,
    /// What is wrong, and where.
    pub problem: ConditionProblem,
}

/// What is wrong with a condition; each names its 1-based column.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConditionProblem {
    /// Nothing but spaces.
    #[error("empty condition; write e.g. `[STATUS] == 200`")]
    Empty,
    /// Something other than `[` where the placeholder should start.
    #[error("expected a placeholder such as [STATUS] at column {column}, found `{found}`")]
    ExpectedPlaceholder {
        /// Where.
        column: usize,
        /// The token found instead.
        found: String,
    },
    /// A `[` without its `]`.
    #[error("placeholder at column {column} has no closing `]`")]
    UnclosedPlaceholder {
        /// Where the placeholder starts.
        column: usize,
    },
    /// A placeholder this language does not know.
    #[error(
        "unknown placeholder `{found}` at column {column}; expected one of {}",
        placeholder_list()
    )]
    UnknownPlaceholder {
        /// Where.
        column: usize,
        /// The placeholder as written.
        found: String,
    },
    /// The condition ends after its placeholder.
    #[error("missing operator at column {column}; expected one of {}", operator_list(&Operator::ALL))]
    MissingOperator {
        /// Where the operator should be.
        column: usize,
    },
    /// An operator this language does not know.
    #[error("unknown operator `{found}` at column {column}; expected one of {}", operator_list(&Operator::ALL))]
    UnknownOperator {
        /// Where.
        column: usize,
        /// The operator as written.
        found: String,
    },
    /// An operator the placeholder's type has no meaning for (`[STATUS] contains 2`).
    #[error("operator `{operator}` does not apply to {placeholder} at column {column}; {placeholder} takes {}", operator_list(placeholder.operators()))]
    OperatorNotApplicable {
        /// Where the operator is.
        column: usize,
        /// The operator.
        operator: &'static str,
        /// The placeholder.
        placeholder: Placeholder,
    },
    /// The condition ends before its value.
    #[error("missing value at column {column}; expected {expected}")]
    MissingValue {
        /// Where the value should be.
        column: usize,
        /// What the placeholder compares with.
        expected: &'static str,
    },
    /// A value of the wrong type or form.
    #[error("expected {expected} at column {column}, found `{found}`")]
    BadValue {
        /// Where the value is.
        column: usize,
        /// What the placeholder compares with.
        expected: &'static str,
        /// The value as written.
        found: String,
    },
    /// A string without its closing quote.
    #[error("string at column {column} has no closing `\"`")]
    UnterminatedString {
        /// Where the string starts.
        column: usize,
    },
    /// The `matches` operand is not a valid regular expression.
    #[error("invalid regular expression at column {column}: {reason}")]
    BadRegex {
        /// Where the string starts.
        column: usize,
        /// The regex crate's explanation, first line.
        reason: String,
    },
    /// Text after a complete condition.
    #[error("unexpected `{found}` at column {column} after the value")]
    TrailingInput {
        /// Where.
        column: usize,
        /// The rest of the condition.
        found: String,
    },
}

fn placeholder_list() -> String {
    Placeholder::ALL
        .iter()
        .map(|p| p.as_str())
        .collect::<Vec<_>>()
        .join(" ")
}

fn operator_list(operators: &[Operator]) -> String {
    operators
        .iter()
        .map(|o| o.as_str())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Characters that make up a symbolic operator.
fn is_operator_symbol(c: char) -> bool {
    matches!(c, '=' | '!' | '<' | '>' | '~')
}

/// A cursor over the condition's text that knows its character column.
struct Scanner<'a> {
    text: &'a str,
    /// Byte offset of the next character.
    at: usize,
}

impl<'a> Scanner<'a> {
    fn skip_spaces(&mut self) {
        let rest = self.rest();
        self.at += rest.len() - rest.trim_start().len();
    }

    fn rest(&self) -> &'a str {
        self.text.get(self.at..).unwrap_or("")
    }

    /// 1-based character column of the next character.
    fn column(&self) -> usize {
        self.text.get(..self.at).map_or(0, |s| s.chars().count()) + 1
    }

    /// Takes characters while `keep` holds; returns them.
    fn take_while(&mut self, keep: impl Fn(char) -> bool) -> &'a str {
        let rest = self.rest();
        let len = rest.find(|c: char| !keep(c)).unwrap_or(rest.len());
        self.at += len;
        rest.get(..len).unwrap_or("")
    }

    /// The next whitespace-separated token, for error messages, without consuming it.
    fn peek_token(&self) -> &'a str {
        let rest = self.rest();
        rest.split_whitespace().next().unwrap_or("")
    }
}

pub(super) fn parse_parts(
    text: &str,
) -> Result<(Placeholder, Operator, Operand), ConditionProblem> {
    let mut s = Scanner { text, at: 0 };
    s.skip_spaces();
    if s.rest().is_empty() {
        return Err(ConditionProblem::Empty);
    }

    // Placeholder.
    let column = s.column();
    if !s.rest().starts_with('[') {
        return Err(ConditionProblem::ExpectedPlaceholder {
            column,
            found: s.peek_token().to_owned(),
        });
    }
    let Some(close) = s.rest().find(']') else {
        return Err(ConditionProblem::UnclosedPlaceholder { column });
    };
    let written = s.rest().get(..=close).unwrap_or("");
    let placeholder = Placeholder::ALL
        .into_iter()
        .find(|p| p.as_str() == written)
        .ok_or_else(|| ConditionProblem::UnknownPlaceholder {
            column,
            found: written.to_owned(),
        })?;
    s.at += close + 1;

    // Operator: a run of symbols, or a word.
    s.skip_spaces();
    let column = s.column();
    let token = match s.rest().chars().next() {
        None => return Err(ConditionProblem::MissingOperator { column }),
        Some(c) if is_operator_symbol(c) => s.take_while(is_operator_symbol),
        Some(c) if c.is_alphabetic() => s.take_while(char::is_alphanumeric),
        Some(_) => s.take_while(|c| !c.is_whitespace()),
    };
    let operator = Operator::parse(token).ok_or_else(|| ConditionProblem::UnknownOperator {
        column,
        found: token.to_owned(),
    })?;
    if !placeholder.operators().contains(&operator) {
        return Err(ConditionProblem::OperatorNotApplicable {
            column,
            operator: operator.as_str(),
            placeholder,
        });
    }

    // Value.
    s.skip_spaces();
    let column = s.column();
    let value_type = placeholder.value_type();
    if s.rest().is_empty() {
        return Err(ConditionProblem::MissingValue {
            column,
            expected: value_type.expected(),
        });
    }
    let operand = match value_type {
        ValueType::Text => {
            let text = parse_string(&mut s, value_type)?;
            if operator == Operator::Matches {
                Operand::Regex(regex::Regex::new(&text).map_err(|err| {
                    ConditionProblem::BadRegex {
                        column,
                        reason: err
                            .to_string()
                            .lines()
                            .last()
                            .unwrap_or("")
                            .trim()
                            .to_owned(),
                    }
                })?)
            } else {
                Operand::Text(text)
            }
        }
        other => {
            let token = s.take_while(|c| !c.is_whitespace());
            let bad = || ConditionProblem::BadValue {
                column,
                expected: other.expected(),
                found: token.to_owned(),
            };
            match other {
                ValueType::Integer => Operand::Integer(token.parse().map_err(|_| bad())?),
                ValueType::Bool => match token {
                    "true" => Operand::Bool(true),
                    "false" => Operand::Bool(false),
                    _ => return Err(bad()),
                },
                _ => Operand::Duration(parse_duration(token).ok_or_else(bad)?),
            }
        }
    };

    s.skip_spaces();
    if !s.rest().is_empty() {
        return Err(ConditionProblem::TrailingInput {
            column: s.column(),
            found: s.rest().trim_end().to_owned(),
        });
    }
    Ok((placeholder, operator, operand))
}

/// A duration with its unit (`300ms`, `72h`, `1h30m`); a bare number is refused, so `< 300`
/// can't be read as seconds by one person and milliseconds by another.
fn parse_duration(token: &str) -> Option<Duration> {
    if !token.ends_with(|c: char| c.is_alphabetic()) {
        return None;
    }
    token
        .parse::<muster_shared::config::Duration>()
        .ok()
        .map(muster_shared::config::Duration::get)
}

/// A double-quoted string: `\"`, `\\`, `\n` and `\t` are escapes; any other backslash
/// is kept with the character after it.
fn parse_string(s: &mut Scanner<'_>, value_type: ValueType) -> Result<String, ConditionProblem> {
    let column = s.column();
    if !s.rest().starts_with('"') {
        return Err(ConditionProblem::BadValue {
            column,
            expected: value_type.expected(),
            found: s.peek_token().to_owned(),
        });
    }
    s.at += 1;
    let mut out = String::new();
    loop {
        let mut chars = s.rest().chars();
        let Some(c) = chars.next() else {
            return Err(ConditionProblem::UnterminatedString { column });
        };
        s.at += c.len_utf8();
        match c {
            '"' => return Ok(out),
            '\\' => {
                let Some(next) = chars.next() else {
                    return Err(ConditionProblem::UnterminatedString { column });
                };
                s.at += next.len_utf8();
                match next {
                    '"' => out.push('"'),
                    '\\' => out.push('\\'),
                    'n' => out.push('\n'),
                    't' => out.push('\t'),
                    // Kept as written, so a regex's `\d` or `\.` needs no doubling.
                    other => {
                        out.push('\\');
                        out.push(other);
                    }
                }
            }
            c => out.push(c),
        }
    }
}
