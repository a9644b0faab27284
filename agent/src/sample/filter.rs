//! Include/exclude filters on names (mount points, devices, interfaces), as
//! node_exporter's `--collector.<name>.<thing>-include/-exclude` flags.
//!
//! Patterns are regular expressions matched against the whole name (they are
//! anchored), checked when the config loads so a bad one fails with its
//! position.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An anchored regular expression from a config file.
#[derive(Clone)]
pub struct Pattern {
    source: String,
    regex: regex::Regex,
}

impl Pattern {
    /// Compiles `source`, anchored at both ends.
    ///
    /// # Errors
    /// The regex error, saying where the pattern is wrong.
    pub fn new(source: &str) -> Result<Self, String> {
        regex::Regex::new(&format!("^(?:{source})$"))
            .map(|regex| Self {
                source: source.to_owned(),
                regex,
            })
            .map_err(|err| format!("invalid pattern {source:?}: {err}"))
    }

    /// Whether the whole of `name` matches.
    pub fn is_match(&self, name: &str) -> bool {
        self.regex.is_match(name)
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }
}

impl fmt::Debug for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Pattern({:?})", self.source)
    }
}

impl PartialEq for Pattern {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl Serialize for Pattern {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.source)
    }
}

impl<'de> Deserialize<'de> for Pattern {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let source = String::deserialize(deserializer)?;
        Self::new(&source).map_err(serde::de::Error::custom)
    }
}

/// A name filter: with `include`, only matching names pass; then names
/// matching `exclude` are dropped.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Filter {
    /// Only names matching this pass (all when absent).
    #[serde(default)]
    pub include: Option<Pattern>,
    /// Names matching this are dropped.
    #[serde(default)]
    pub exclude: Option<Pattern>,
}

impl Filter {
    /// A filter that only excludes.
    pub fn excluding(exclude: &str) -> Result<Self, String> {
        Ok(Self {
            include: None,
            exclude: Some(Pattern::new(exclude)?),
        })
    }

    /// Whether `name` passes.
    pub fn allows(&self, name: &str) -> bool {
        self.include.as_ref().is_none_or(|p| p.is_match(name))
            && !self.exclude.as_ref().is_some_and(|p| p.is_match(name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_are_anchored() {
        let p = Pattern::new("sd[a-z]").unwrap();
        assert!(p.is_match("sda"));
        assert!(!p.is_match("sda1"));
        assert!(!p.is_match("xsda"));
    }

    #[test]
    fn include_then_exclude() {
        let f = Filter {
            include: Some(Pattern::new("eth.*|en.*").unwrap()),
            exclude: Some(Pattern::new("eth9").unwrap()),
        };
        assert!(f.allows("eth0"));
        assert!(f.allows("enp3s0"));
        assert!(!f.allows("eth9"));
        assert!(!f.allows("lo"));
        assert!(Filter::default().allows("anything"));
    }

    #[test]
    fn bad_pattern_is_refused_at_load_with_position() {
        #[derive(Debug, Deserialize)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct C {
            f: Filter,
        }
        let err = muster_shared::config::parse::<C>(
            "[f]\nexclude = \"(\"\n",
            std::path::Path::new("a.toml"),
        )
        .unwrap_err();
        assert!(
            err.to_string().starts_with("a.toml:2:11: invalid pattern"),
            "{err}"
        );
    }
}
