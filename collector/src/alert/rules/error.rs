//! Where rules and their problems are, and the problems themselves: what a rule file,
//! the API and the log show when rules don't load.

use std::fmt;
use std::path::PathBuf;

use serde::Serialize;

/// The part of a [`super::RuleDef`] a problem is in, so a rule file can point at its line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Field {
    /// `name`.
    Name,
    /// `expr`.
    Expr,
    /// `op` and `threshold`.
    Threshold,
    /// One of `labels`, by name.
    Label(String),
    /// One of `annotations`, by name.
    Annotation(String),
}

/// One problem of one rule field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// Where it is.
    pub field: Field,
    /// What is wrong.
    pub message: String,
}

/// Where a rule, or a problem with one, is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Location {
    /// In a rule file.
    File {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column, in characters.
        column: usize,
    },
    /// A file as a whole (it could not be read).
    Path {
        /// The file.
        path: PathBuf,
    },
    /// A built-in rule, as overridden by `[alerting.builtin.NAME]` if it is.
    Builtin {
        /// The rule's name.
        name: String,
    },
    /// A rule file pattern of `rule_files`.
    Pattern {
        /// The pattern as configured.
        pattern: String,
    },
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::File { path, line, column } => {
                write!(f, "{}:{line}:{column}", path.display())
            }
            Location::Path { path } => write!(f, "{}", path.display()),
            Location::Builtin { name } => write!(f, "built-in rule {name}"),
            Location::Pattern { pattern } => write!(f, "rule_files pattern {pattern:?}"),
        }
    }
}

/// One problem found loading rules: where, and what.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{location}: {message}")]
pub struct RuleError {
    /// Where the problem is.
    pub location: Location,
    /// What is wrong, in one line.
    pub message: String,
}

/// Every problem found loading rules; never empty.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[serde(transparent)]
pub struct RuleErrors(pub Vec<RuleError>);

impl fmt::Display for RuleErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}
