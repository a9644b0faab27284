//! TOML configuration loading shared by the agent and the collector.
//!
//! Owns: reading a file, deserializing it into a caller's typed struct (which
//! must carry `#[serde(deny_unknown_fields)]`), turning every parse error into
//! `file:line:col: message`, and applying `MUSTER_*` environment overrides for
//! the keys a binary declares overridable (addresses and secrets). It also
//! provides the value newtypes configs share: [`Duration`] and [`Secret`].
//!
//! Leaves out: what the keys mean and cross-field rules; each component owns
//! its struct and its `validate()`.
//!
//! Overrides are applied after the file parsed cleanly: the struct is turned
//! back into a TOML table, the named keys are replaced, and the table is
//! deserialized again, so an override is checked by the same types as the
//! file and a bad one names its variable.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why a configuration could not be loaded. Each variant names where the
/// problem is, in one line a person can act on.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{path}: cannot read config: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid TOML or does not fit the expected types/keys.
    #[error("{path}:{line}:{column}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// 1-based line of the offending token.
        line: usize,
        /// 1-based column (in characters) of the offending token.
        column: usize,
        /// What is wrong, from the TOML parser or the typed schema.
        message: String,
    },
    /// An environment override did not fit the key's type.
    #[error("environment variable {var} (overrides `{key}`): {message}")]
    Env {
        /// The variable, e.g. `MUSTER_LISTEN`.
        var: &'static str,
        /// The dotted key it overrides.
        key: &'static str,
        /// What is wrong.
        message: String,
    },
    /// The file parsed, but cross-field rules failed; every problem is listed.
    #[error("{path}: invalid config: {}", problems.join("; "))]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Each problem, naming its key.
        problems: Vec<String>,
    },
}

/// One environment variable that may replace one key of a config file.
#[derive(Debug, Clone, Copy)]
pub struct EnvOverride {
    /// The variable's name; always starts with `MUSTER_`.
    pub var: &'static str,
    /// The dotted key it replaces, e.g. `api.listen`.
    pub key: &'static str,
}

/// Reads and parses `path`, then applies the overrides found in the process
/// environment.
///
/// # Errors
/// [`ConfigError::Read`] when the file can't be read, [`ConfigError::Parse`]
/// with `file:line:col` for bad TOML, unknown keys and wrong types, and
/// [`ConfigError::Env`] for an override that does not fit its key.
pub fn load<T>(path: &Path, overrides: &[EnvOverride]) -> Result<T, ConfigError>
where
    T: DeserializeOwned + Serialize,
{
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    let parsed = parse(&text, path)?;
    apply_overrides(parsed, overrides, |var| std::env::var(var).ok())
}

/// Parses TOML text into `T`; `path` is used only in errors.
///
/// ```
/// #[derive(serde::Deserialize, Debug)]
/// #[serde(deny_unknown_fields)]
/// struct Conf { listen: String }
///
/// let err = muster_shared::config::parse::<Conf>("listen = \"a\"\nlisen = 1\n", "x.toml".as_ref())
///     .unwrap_err();
/// assert!(err.to_string().starts_with("x.toml:2:1: unknown field `lisen`"));
/// ```
///
/// # Errors
/// [`ConfigError::Parse`] naming `file:line:col`.
pub fn parse<T: DeserializeOwned>(text: &str, path: &Path) -> Result<T, ConfigError> {
    toml::from_str(text).map_err(|err| {
        let (line, column) = err
            .span()
            .map(|span| line_col(text, span.start))
            .unwrap_or((1, 1));
        ConfigError::Parse {
            path: path.to_owned(),
            line,
            column,
            message: first_line(err.message()),
        }
    })
}

/// Applies overrides to an already parsed config; `lookup` reads a variable.
///
/// # Errors
/// [`ConfigError::Env`] naming the variable whose value does not fit.
pub fn apply_overrides<T, F>(
    config: T,
    overrides: &[EnvOverride],
    lookup: F,
) -> Result<T, ConfigError>
where
    T: DeserializeOwned + Serialize,
    F: Fn(&str) -> Option<String>,
{
    let found: Vec<(EnvOverride, String)> = overrides
        .iter()
        .filter_map(|o| lookup(o.var).map(|value| (*o, value)))
        .collect();
    if found.is_empty() {
        return Ok(config);
    }
    let mut table = toml::Table::try_from(&config).map_err(|err| ConfigError::Env {
        var: found[0].0.var,
        key: found[0].0.key,
        message: format!("config cannot be re-encoded: {err}"),
    })?;
    // The file parsed, so a failure after one override is that override's.
    // A value is tried as a string first, then as a TOML literal (a port, a
    // bool), so `MUSTER_TOKEN=12345` stays a string where a string is wanted.
    let mut result = None;
    for (o, raw) in &found {
        let mut as_string = table.clone();
        set_key(&mut as_string, o.key, toml::Value::String(raw.clone()));
        match toml::Value::Table(as_string.clone()).try_into::<T>() {
            Ok(config) => {
                table = as_string;
                result = Some(config);
            }
            Err(string_err) => {
                let mut as_literal = table.clone();
                set_key(&mut as_literal, o.key, literal_value(raw));
                let config = toml::Value::Table(as_literal.clone())
                    .try_into::<T>()
                    .map_err(|_| ConfigError::Env {
                        var: o.var,
                        key: o.key,
                        message: first_line(string_err.message()),
                    })?;
                table = as_literal;
                result = Some(config);
            }
        }
    }
    Ok(result.unwrap_or(config))
}

fn literal_value(raw: &str) -> toml::Value {
    format!("v = {raw}")
        .parse::<toml::Table>()
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.to_owned()))
}

fn set_key(table: &mut toml::Table, dotted: &str, value: toml::Value) {
    let mut parts = dotted.split('.').peekable();
    let mut current = table;
    while let Some(part) = parts.next() {
        if parts.peek().is_none() {
            current.insert(part.to_owned(), value);
            return;
        }
        let entry = current
            .entry(part.to_owned())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        if !entry.is_table() {
            *entry = toml::Value::Table(toml::Table::new());
        }
        match entry {
            toml::Value::Table(t) => current = t,
            _ => return,
        }
    }
}

/// 1-based line and character column of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before.get(line_start..).map_or(0, |s| s.chars().count()) + 1;
    (line, column)
}

fn first_line(message: &str) -> String {
    message.lines().next().unwrap_or(message).trim().to_owned()
}

/// A duration written with its unit in config files: `"10s"`, `"5m"`,
/// `"1h 30m"`, `"250ms"` (humantime syntax).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Duration(pub std::time::Duration);

impl Duration {
    /// From whole seconds.
    pub const fn from_secs(secs: u64) -> Self {
        Self(std::time::Duration::from_secs(secs))
    }

    /// The std duration.
    pub const fn get(self) -> std::time::Duration {
        self.0
    }
}

impl fmt::Debug for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", humantime::format_duration(self.0))
    }
}

impl std::str::FromStr for Duration {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        humantime::parse_duration(s.trim())
            .map(Self)
            .map_err(|err| format!("invalid duration {s:?} ({err}); write it with a unit, e.g. \"10s\", \"5m\", \"1h\""))
    }
}

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl From<Duration> for std::time::Duration {
    fn from(d: Duration) -> Self {
        d.0
    }
}

/// A size written with its unit in config files: `"64MiB"`, `"512KiB"`,
/// `"1GB"`, `"4096"` (bytes). Binary (KiB, MiB, GiB, TiB) and decimal (KB,
/// MB, GB, TB) units are both accepted.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ByteSize(pub u64);

impl ByteSize {
    /// From mebibytes.
    pub const fn mib(n: u64) -> Self {
        Self(n * 1024 * 1024)
    }

    /// The size in bytes.
    pub const fn bytes(self) -> u64 {
        self.0
    }
}

impl fmt::Debug for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [(&str, u64); 4] = [
            ("TiB", 1 << 40),
            ("GiB", 1 << 30),
            ("MiB", 1 << 20),
            ("KiB", 1 << 10),
        ];
        for (unit, size) in UNITS {
            if self.0 >= size && self.0.is_multiple_of(size) {
                return write!(f, "{}{unit}", self.0 / size);
            }
        }
        write!(f, "{}B", self.0)
    }
}

impl std::str::FromStr for ByteSize {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let text = s.trim();
        let split = text
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len());
        let (number, unit) = text.split_at(split);
        let bad = || {
            format!("invalid size {s:?}; write it with a unit, e.g. \"64MiB\", \"512KiB\", \"1GB\"")
        };
        let number: u64 = number.parse().map_err(|_| bad())?;
        let factor: u64 = match unit.trim() {
            "" | "B" => 1,
            "KiB" => 1 << 10,
            "MiB" => 1 << 20,
            "GiB" => 1 << 30,
            "TiB" => 1 << 40,
            "KB" | "kB" => 1_000,
            "MB" => 1_000_000,
            "GB" => 1_000_000_000,
            "TB" => 1_000_000_000_000,
            _ => return Err(bad()),
        };
        number
            .checked_mul(factor)
            .map(Self)
            .ok_or_else(|| format!("size {s:?} is too large"))
    }
}

impl Serialize for ByteSize {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // Accept a bare integer (bytes) as well as a string with a unit.
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = ByteSize;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a size such as \"64MiB\" or a number of bytes")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<ByteSize, E> {
                v.parse().map_err(E::custom)
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<ByteSize, E> {
                u64::try_from(v)
                    .map(ByteSize)
                    .map_err(|_| E::custom("a size cannot be negative"))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<ByteSize, E> {
                Ok(ByteSize(v))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// A secret value (token, password, webhook URL). Its `Debug` and `Display`
/// print `<redacted>` so it never reaches a log line or an error.
#[derive(Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself; call only where it is used, never to log.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Reads a secret from a `*_file` key's file, trimming one trailing newline.
    ///
    /// # Errors
    /// [`ConfigError::Read`] naming the file.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Ok(Self(text.trim_end_matches(['\n', '\r']).to_owned()))
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Resolves a path from a config file relative to the file's folder, so a
/// config and its certificates can move together.
pub fn resolve_path(config_path: &Path, value: &Path) -> PathBuf {
    let joined = if value.is_absolute() {
        value.to_owned()
    } else {
        config_path
            .parent()
            .unwrap_or_else(|| Path::new("."))
            .join(value)
    };
    // `components` drops inner `.` parts: `dir/.` reads as `dir` in logs.
    joined.components().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Serialize, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Sample {
        listen: String,
        #[serde(default)]
        port: u16,
        interval: Duration,
        #[serde(default)]
        token: Option<Secret>,
        #[serde(default)]
        nested: Nested,
    }

    #[derive(Debug, Serialize, Deserialize, PartialEq, Default)]
    #[serde(deny_unknown_fields)]
    struct Nested {
        #[serde(default)]
        address: String,
    }

    fn p(text: &str) -> Result<Sample, ConfigError> {
        parse(text, Path::new("conf.toml"))
    }

    #[test]
    fn unknown_key_names_file_line_and_column() {
        let err = p("listen = \"x\"\ninterval = \"1s\"\n  bogus = 3\n").unwrap_err();
        let text = err.to_string();
        assert!(
            text.starts_with("conf.toml:3:3: unknown field `bogus`"),
            "{text}"
        );
    }

    #[test]
    fn wrong_type_names_file_line_and_column() {
        let err = p("listen = \"x\"\ninterval = \"1s\"\nport = \"eighty\"\n").unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with("conf.toml:3:8:"), "{text}");
        assert!(text.contains("u16") || text.contains("integer"), "{text}");
    }

    #[test]
    fn bad_duration_says_how_to_write_one() {
        let err = p("listen = \"x\"\ninterval = \"10\"\n").unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with("conf.toml:2:12:"), "{text}");
        assert!(text.contains("with a unit"), "{text}");
    }

    #[test]
    fn syntax_error_points_at_the_token() {
        let err = p("listen = \"x\"\ninterval = \n").unwrap_err();
        assert!(err.to_string().starts_with("conf.toml:2:"), "{err}");
    }

    #[test]
    fn missing_file_names_the_path() {
        let err = load::<Sample>(Path::new("/nonexistent/muster.toml"), &[]).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("/nonexistent/muster.toml: cannot read config")
        );
    }

    #[test]
    fn durations_parse_with_units() {
        let s = p("listen = \"x\"\ninterval = \"5m\"\n").unwrap();
        assert_eq!(s.interval.get(), std::time::Duration::from_secs(300));
        assert_eq!(s.interval.to_string(), "5m");
    }

    const OVERRIDES: &[EnvOverride] = &[
        EnvOverride {
            var: "MUSTER_LISTEN",
            key: "listen",
        },
        EnvOverride {
            var: "MUSTER_PORT",
            key: "port",
        },
        EnvOverride {
            var: "MUSTER_TOKEN",
            key: "token",
        },
        EnvOverride {
            var: "MUSTER_ADDRESS",
            key: "nested.address",
        },
    ];

    #[test]
    fn env_overrides_replace_typed_keys() {
        let base = p("listen = \"a\"\ninterval = \"1s\"\n").unwrap();
        let env = |var: &str| match var {
            "MUSTER_LISTEN" => Some("0.0.0.0:9".to_owned()),
            "MUSTER_PORT" => Some("8080".to_owned()),
            "MUSTER_TOKEN" => Some("12345".to_owned()),
            "MUSTER_ADDRESS" => Some("10.0.0.1:1".to_owned()),
            _ => None,
        };
        let s = apply_overrides(base, OVERRIDES, env).unwrap();
        assert_eq!(s.listen, "0.0.0.0:9");
        assert_eq!(s.port, 8080);
        assert_eq!(s.token.as_ref().map(Secret::expose), Some("12345"));
        assert_eq!(s.nested.address, "10.0.0.1:1");
        assert_eq!(s.interval.get(), std::time::Duration::from_secs(1));
    }

    #[test]
    fn bad_env_override_names_the_variable() {
        let base = p("listen = \"a\"\ninterval = \"1s\"\n").unwrap();
        let env = |var: &str| (var == "MUSTER_PORT").then(|| "lots".to_owned());
        let err = apply_overrides(base, OVERRIDES, env).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("environment variable MUSTER_PORT (overrides `port`)"),
            "{err}"
        );
    }

    #[test]
    fn sizes_parse_with_units_and_print_back() {
        assert_eq!("64MiB".parse::<ByteSize>(), Ok(ByteSize::mib(64)));
        assert_eq!("1GB".parse::<ByteSize>(), Ok(ByteSize(1_000_000_000)));
        assert_eq!("4096".parse::<ByteSize>(), Ok(ByteSize(4096)));
        assert_eq!(ByteSize::mib(64).to_string(), "64MiB");
        assert_eq!(ByteSize(1000).to_string(), "1000B");
        assert!(
            "64 megs"
                .parse::<ByteSize>()
                .unwrap_err()
                .contains("with a unit")
        );
        assert!("99999999999TiB".parse::<ByteSize>().is_err());
    }

    #[test]
    fn secrets_never_print() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?} {s}"), "<redacted> <redacted>");
    }

    #[test]
    fn relative_paths_follow_the_config_file() {
        let p = resolve_path(Path::new("/etc/muster/agent.toml"), Path::new("pki/ca.crt"));
        assert_eq!(p, Path::new("/etc/muster/pki/ca.crt"));
        let abs = resolve_path(Path::new("/etc/muster/agent.toml"), Path::new("/x/ca.crt"));
        assert_eq!(abs, Path::new("/x/ca.crt"));
        let here = resolve_path(Path::new("/srv/dev/collector.toml"), Path::new("."));
        assert_eq!(here, Path::new("/srv/dev"));
    }

    #[test]
    fn line_col_counts_characters() {
        assert_eq!(line_col("ab\ncdé f", 8), (2, 5));
        assert_eq!(line_col("", 0), (1, 1));
    }
}
