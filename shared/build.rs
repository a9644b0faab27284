//! Injects the git commit into `muster_shared::version` at build time.
//!
//! `MUSTER_GIT_COMMIT` in the environment wins (release builds from a tarball);
//! otherwise `git rev-parse`; otherwise `unknown`.

use std::path::Path;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=MUSTER_GIT_COMMIT");
    let commit = std::env::var("MUSTER_GIT_COMMIT")
        .ok()
        .filter(|c| !c.trim().is_empty())
        .or_else(git_commit)
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=MUSTER_GIT_COMMIT={}", commit.trim());

    // Rebuild when HEAD moves; only name files that exist, or cargo would
    // rerun this script on every build.
    let git = Path::new("../.git");
    for file in ["HEAD", "packed-refs"] {
        let path = git.join(file);
        if path.exists() {
            println!("cargo:rerun-if-changed={}", path.display());
        }
    }
    if let Ok(head) = std::fs::read_to_string(git.join("HEAD"))
        && let Some(reference) = head.trim().strip_prefix("ref: ")
    {
        let path = git.join(reference);
        if path.exists() {
            println!("cargo:rerun-if-changed={}", path.display());
        }
    }
}

fn git_commit() -> Option<String> {
    let out = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let commit = String::from_utf8(out.stdout).ok()?;
    let dirty = Command::new("git")
        .args(["status", "--porcelain", "--untracked-files=no"])
        .output()
        .ok()
        .is_some_and(|o| o.status.success() && !o.stdout.is_empty());
    Some(if dirty {
        format!("{}-dirty", commit.trim())
    } else {
        commit.trim().to_owned()
    })
}
