//! The build's identity: semver from Cargo, git commit injected by `build.rs`.

/// The workspace version (semver), e.g. `0.1.0-dev`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The git commit the binary was built from (12 hex digits, `-dirty` when the
/// tree had uncommitted changes), or `unknown` outside a git checkout.
pub const GIT_COMMIT: &str = env!("MUSTER_GIT_COMMIT");

/// `VERSION (GIT_COMMIT)`, for `--version` and logs.
pub fn long_version() -> &'static str {
    // Built once; clap wants a `&'static str`.
    static LONG: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    LONG.get_or_init(|| format!("{VERSION} ({GIT_COMMIT})"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_version_names_semver_and_commit() {
        assert!(long_version().starts_with(VERSION));
        assert!(long_version().contains(GIT_COMMIT));
        assert!(!GIT_COMMIT.is_empty());
    }
}
