//! From configured rule files to the [`RuleSet`] in force, and keeping it current.
//!
//! [`RuleSource`] knows where rules come from (file patterns relative to `collector.toml`,
//! built-in overrides) and [`RuleSource::load`] builds a whole new set or returns every
//! problem. [`LoadedRules`] holds the set in force and replaces it only with a set that
//! loaded cleanly: a bad file keeps the old rules, is logged once at `error` with its
//! `file:line:col`, and is reported by [`LoadedRules::last_reload`] for the API until a
//! reload succeeds.
//!
//! Reloads happen on demand ([`LoadedRules::reload`], for SIGHUP and the API) and when the
//! files change: [`LoadedRules::run`] compares the matched paths with their sizes and
//! modification times every `reload_interval`. Loading only reads files and builds values,
//! so an interrupted reload leaves the old set in force.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use serde::Serialize;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::builtin::{BuiltinOverride, builtin_rules};
use super::config::AlertingRulesConfig;
use super::file::read_rule_file;
use super::{Location, RuleError, RuleErrors, RuleSet};

/// Where rules come from: file patterns, resolved against a folder, and the overrides of
/// built-in rules.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleSource {
    base_dir: PathBuf,
    patterns: Vec<String>,
    builtin: BTreeMap<String, BuiltinOverride>,
}

/// The files a reload would read, and what each looked like: a change in any is a reason
/// to reload.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp(Vec<(PathBuf, Option<(SystemTime, u64)>)>, Vec<RuleError>);

impl RuleSource {
    /// The sources `config` names; relative patterns are taken from the folder of
    /// `config_path` (the `collector.toml` they are written in).
    pub fn new(config: &AlertingRulesConfig, config_path: &Path) -> Self {
        Self {
            base_dir: config_path
                .parent()
                .unwrap_or_else(|| Path::new("."))
                .to_owned(),
            patterns: config.rule_files.clone(),
            builtin: config.builtin.clone(),
        }
    }

    /// The rule files the patterns match now: regular files, sorted, each once.
    ///
    /// # Errors
    /// Next to the files found: each bad pattern, each plain path (no `*`, `?`, `[`) that
    /// is missing or not a file, each match that can't be read.
    pub fn files(&self) -> (Vec<PathBuf>, Vec<RuleError>) {
        let mut files = Vec::new();
        let mut errors = Vec::new();
        for pattern in &self.patterns {
            let fail = |message: String| RuleError {
                location: Location::Pattern {
                    pattern: pattern.clone(),
                },
                message,
            };
            let relative = Path::new(pattern);
            let full = if relative.is_absolute() {
                pattern.clone()
            } else {
                // The folder is taken literally, even with `[` or `*` in its name.
                let base = glob::Pattern::escape(&self.base_dir.to_string_lossy());
                format!("{base}/{pattern}")
            };
            if !pattern.contains(['*', '?', '[']) {
                let path = PathBuf::from(&full);
                match std::fs::metadata(&path) {
                    Ok(meta) if meta.is_file() => files.push(path),
                    Ok(_) => errors.push(fail(format!("{} is not a file", path.display()))),
                    Err(err) => errors.push(fail(format!("{}: {err}", path.display()))),
                }
                continue;
            }
            match glob::glob(&full) {
                Err(err) => errors.push(fail(format!("invalid pattern: {err}"))),
                Ok(paths) => {
                    for entry in paths {
                        match entry {
                            Ok(path) if path.is_file() => files.push(path),
                            Ok(_) => {}
                            Err(err) => errors.push(fail(err.to_string())),
                        }
                    }
                }
            }
        }
        files.sort();
        files.dedup();
        (files, errors)
    }

    /// Reads every rule file and builds the rule set: built-in rules first, then each
    /// file's rules in path order. Blocks on file I/O.
    ///
    /// # Errors
    /// Every problem found in every file and override, each at its `file:line:col` (or
    /// its built-in rule or pattern); nothing is half-loaded.
    pub fn load(&self) -> Result<RuleSet, RuleErrors> {
        let (files, mut errors) = self.files();
        let (mut rules, mut disabled) = match builtin_rules(&self.builtin) {
            Ok(builtin) => builtin,
            Err(builtin_errors) => {
                errors.extend(builtin_errors);
                (Vec::new(), Vec::new())
            }
        };
        for path in &files {
            match read_rule_file(path) {
                Ok(parsed) => {
                    rules.extend(parsed.rules);
                    disabled.extend(parsed.disabled);
                }
                Err(file_errors) => errors.extend(file_errors),
            }
        }
        match RuleSet::new(rules, disabled) {
            Ok(set) if errors.is_empty() => Ok(set),
            Ok(_) => Err(RuleErrors(errors)),
            Err(RuleErrors(duplicates)) => {
                errors.extend(duplicates);
                Err(RuleErrors(errors))
            }
        }
    }

    /// The built-in rules alone, as overridden (a fallback when files are bad).
    ///
    /// # Errors
    /// The overrides' problems.
    pub fn load_builtin(&self) -> Result<RuleSet, RuleErrors> {
        let (rules, disabled) = builtin_rules(&self.builtin).map_err(RuleErrors)?;
        RuleSet::new(rules, disabled)
    }

    fn stamp(&self) -> Stamp {
        let (files, errors) = self.files();
        let files = files
            .into_iter()
            .map(|path| {
                let seen = std::fs::metadata(&path)
                    .ok()
                    .and_then(|m| Some((m.modified().ok()?, m.len())));
                (path, seen)
            })
            .collect();
        Stamp(files, errors)
    }
}

/// How the last load or reload went, for the API.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReloadStatus {
    /// When it ran, ms since the Unix epoch.
    pub at_ms: u64,
    /// Whether it succeeded (the rules in force are from it).
    pub ok: bool,
    /// Every problem, one line; `None` when it succeeded.
    pub error: Option<String>,
    /// Every problem with its place; empty when it succeeded.
    pub errors: Vec<RuleError>,
    /// Rules in force after it (the old ones when it failed).
    pub rules: usize,
    /// When the rules in force were loaded, ms since the Unix epoch.
    pub loaded_at_ms: u64,
}

/// The rule set in force and how its last reload went. Shared as `Arc<LoadedRules>` by the
/// evaluator (reads [`LoadedRules::current`] each round), the reload task and the API.
#[derive(Debug)]
pub struct LoadedRules {
    source: RuleSource,
    current: watch::Sender<Arc<RuleSet>>,
    state: Mutex<ReloadState>,
}

#[derive(Debug)]
struct ReloadState {
    status: ReloadStatus,
    /// The files as they were when the rules in force (or the last failure) were read.
    stamp: Stamp,
    /// The failure last logged, so a repeated one is logged once.
    logged: Option<String>,
}

impl LoadedRules {
    /// Loads the rules the first time. Blocks on file I/O.
    ///
    /// # Errors
    /// Every problem ([`RuleSource::load`]); a server refuses to start on them, as on a
    /// bad `collector.toml`.
    pub fn open(source: RuleSource, now_ms: u64) -> Result<Self, RuleErrors> {
        let stamp = source.stamp();
        let set = source.load()?;
        tracing::info!(rules = set.len(), "alert rules loaded");
        Ok(Self::with(source, set, stamp, now_ms, None))
    }

    /// Loads the rules the first time, falling back to the built-in rules alone (or no
    /// rule at all, when the overrides are bad too) if the files have problems; those are
    /// logged and reported as the last reload's. For a server that must keep alerting on
    /// what it can. Blocks on file I/O.
    pub fn open_with_fallback(source: RuleSource, now_ms: u64) -> Self {
        let stamp = source.stamp();
        match source.load() {
            Ok(set) => Self::with(source, set, stamp, now_ms, None),
            Err(errors) => {
                tracing::error!(error = %errors, "alert rules have problems; using the built-in rules only");
                let set = source.load_builtin().unwrap_or_default();
                Self::with(source, set, stamp, now_ms, Some(errors))
            }
        }
    }

    fn with(
        source: RuleSource,
        set: RuleSet,
        stamp: Stamp,
        now_ms: u64,
        failure: Option<RuleErrors>,
    ) -> Self {
        let status = status(now_ms, failure.as_ref(), set.len(), now_ms);
        Self {
            source,
            current: watch::Sender::new(Arc::new(set)),
            state: Mutex::new(ReloadState {
                status,
                stamp,
                logged: failure.map(|e| e.to_string()),
            }),
        }
    }

    /// The rules in force.
    pub fn current(&self) -> Arc<RuleSet> {
        Arc::clone(&self.current.borrow())
    }

    /// A receiver told of every new rule set.
    pub fn subscribe(&self) -> watch::Receiver<Arc<RuleSet>> {
        self.current.subscribe()
    }

    /// How the last load or reload went.
    pub fn last_reload(&self) -> ReloadStatus {
        self.lock().status.clone()
    }

    /// Where the rules come from.
    pub fn source(&self) -> &RuleSource {
        &self.source
    }

    /// Reloads every file now (SIGHUP, the API). On success the new set is in force; on
    /// failure the old one stays, the problems are logged (once while they repeat) and
    /// kept for [`LoadedRules::last_reload`]. Blocks on file I/O.
    ///
    /// # Errors
    /// Every problem found; the rules in force did not change.
    pub fn reload(&self, now_ms: u64) -> Result<usize, RuleErrors> {
        let stamp = self.source.stamp();
        let loaded = self.source.load();
        let mut state = self.lock();
        state.stamp = stamp;
        match loaded {
            Ok(set) => {
                let rules = set.len();
                self.current.send_replace(Arc::new(set));
                state.status = status(now_ms, None, rules, now_ms);
                state.logged = None;
                tracing::info!(rules, "alert rules reloaded");
                Ok(rules)
            }
            Err(errors) => {
                let rules = self.current.borrow().len();
                let loaded_at_ms = state.status.loaded_at_ms;
                state.status = status(now_ms, Some(&errors), rules, loaded_at_ms);
                let text = errors.to_string();
                if state.logged.as_deref() != Some(text.as_str()) {
                    tracing::error!(error = %text, "alert rules not reloaded; the rules in force stay");
                    state.logged = Some(text);
                }
                Err(errors)
            }
        }
    }

    /// Reloads when a rule file appeared, disappeared or changed size or modification time
    /// since the last load; `None` when nothing changed. Blocks on file I/O.
    pub fn reload_if_changed(&self, now_ms: u64) -> Option<Result<usize, RuleErrors>> {
        let stamp = self.source.stamp();
        if self.lock().stamp == stamp {
            return None;
        }
        Some(self.reload(now_ms))
    }

    /// [`LoadedRules::reload`] off the async threads.
    ///
    /// # Errors
    /// As [`LoadedRules::reload`].
    pub async fn reload_async(self: &Arc<Self>) -> Result<usize, RuleErrors> {
        let rules = Arc::clone(self);
        match tokio::task::spawn_blocking(move || rules.reload(crate::unix_ms())).await {
            Ok(result) => result,
            Err(err) if err.is_panic() => std::panic::resume_unwind(err.into_panic()),
            // The runtime is shutting down: nothing was reloaded.
            Err(_) => Ok(self.current().len()),
        }
    }

    /// Checks the files every `interval` and reloads on a change, until `cancel`. An
    /// `interval` of zero checks never and returns at once.
    pub async fn run(self: Arc<Self>, interval: Duration, cancel: CancellationToken) {
        if interval.is_zero() {
            return;
        }
        loop {
            tokio::select! {
                biased;
                () = cancel.cancelled() => return,
                () = tokio::time::sleep(interval) => {}
            }
            let rules = Arc::clone(&self);
            let checked =
                tokio::task::spawn_blocking(move || rules.reload_if_changed(crate::unix_ms()))
                    .await;
            if let Err(err) = checked {
                tracing::warn!(error = %err, "rule file check failed");
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ReloadState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn status(
    at_ms: u64,
    failure: Option<&RuleErrors>,
    rules: usize,
    loaded_at_ms: u64,
) -> ReloadStatus {
    ReloadStatus {
        at_ms,
        ok: failure.is_none(),
        error: failure.map(ToString::to_string),
        errors: failure.map(|e| e.0.clone()).unwrap_or_default(),
        rules,
        loaded_at_ms,
    }
}

#[cfg(test)]
mod tests;
