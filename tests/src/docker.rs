//! Test kit for tests that need the real Docker engine: find `docker` and a
//! reachable engine, build a tiny test image without any registry, start
//! labelled containers, and remove everything again (also when the test
//! fails) through a drop guard. Also a small reader of Prometheus text for
//! asserting on `/metrics`.
//!
//! The image is a `docker import` of a tarball holding Debian's
//! `busybox-static` binary (`/bin/busybox`) plus `sh` and `sleep` symlinks.
//! Without `docker`, an engine or that binary, [`DockerKit::new`] prints why
//! and returns `None` (the test skips), except under `CI=true`, where it panics.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{in_ci, require_tool, run};

/// Where Debian's `busybox-static` package installs its binary.
pub const BUSYBOX: &str = "/bin/busybox";

/// The label every test container carries, valued with the run's tag.
pub const TEST_LABEL: &str = "muster.test";

/// A reachable Docker engine and a test image, removed on drop together with
/// every container started through it.
#[derive(Debug)]
pub struct DockerKit {
    docker: PathBuf,
    /// A random tag of this run (hex), in names, the image tag and the
    /// [`TEST_LABEL`] value.
    pub tag: String,
    /// The imported image (`muster-test-busybox:<tag>`).
    pub image: String,
    containers: Vec<String>,
}

impl DockerKit {
    /// Finds `docker`, checks the engine answers, and imports the test image.
    /// `None` (after printing why) when something is missing outside CI.
    pub fn new(why: &str) -> Option<Self> {
        let docker = require_tool("docker", why)?;
        let info = run(Command::new(&docker).args(["info", "--format", "{{.ServerVersion}}"]));
        if !info.status.success() {
            skip_or_fail(&format!(
                "the Docker engine does not answer ({why}): {}",
                String::from_utf8_lossy(&info.stderr).trim()
            ));
            return None;
        }
        if !is_static_elf(Path::new(BUSYBOX)) {
            skip_or_fail(&format!(
                "{BUSYBOX} is missing or not statically linked: install Debian's busybox-static ({why})"
            ));
            return None;
        }
        let tag = random_tag();
        let image = format!("muster-test-busybox:{tag}");
        let kit = Self {
            docker,
            tag,
            image,
            containers: Vec::new(),
        };
        kit.import_image();
        Some(kit)
    }

    /// `docker import` of a tarball with busybox, `sh` and `sleep`.
    fn import_image(&self) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir_all(root.join("bin")).unwrap();
        std::fs::copy(BUSYBOX, root.join("bin/busybox")).unwrap();
        for applet in ["sh", "sleep"] {
            std::os::unix::fs::symlink("busybox", root.join("bin").join(applet)).unwrap();
        }
        let tarball = dir.path().join("image.tar");
        let out = run(Command::new("tar")
            .arg("-C")
            .arg(&root)
            .arg("-cf")
            .arg(&tarball)
            .arg("."));
        assert!(
            out.status.success(),
            "tar: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let out = self.docker(&[
            "import",
            "--change",
            r#"CMD ["/bin/sleep", "3600"]"#,
            tarball.to_str().unwrap(),
            &self.image,
        ]);
        assert!(
            out.status.success(),
            "docker import: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Runs `docker ARGS` to completion.
    pub fn docker(&self, args: &[&str]) -> std::process::Output {
        run(Command::new(&self.docker).args(args))
    }

    /// Starts `sleep 3600` detached as `muster-test-<tag>-<suffix>`, labelled
    /// [`TEST_LABEL`]`=<tag>`; returns `(full id, name)`.
    pub fn start_sleeper(&mut self, suffix: &str) -> (String, String) {
        let name = format!("muster-test-{}-{suffix}", self.tag);
        let label = format!("{TEST_LABEL}={}", self.tag);
        let out = self.docker(&[
            "run",
            "--detach",
            "--name",
            &name,
            "--label",
            &label,
            &self.image,
            "sleep",
            "3600",
        ]);
        assert!(
            out.status.success(),
            "docker run {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let id = String::from_utf8(out.stdout).unwrap().trim().to_owned();
        assert_eq!(id.len(), 64, "docker run printed a full id: {id}");
        self.containers.push(id.clone());
        (id, name)
    }

    /// Stops a container at once (`sleep` as PID 1 ignores SIGTERM).
    pub fn stop(&self, id: &str) {
        let out = self.docker(&["stop", "--time", "0", id]);
        assert!(
            out.status.success(),
            "docker stop {id}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The init PID of a running container.
    pub fn pid(&self, id: &str) -> u32 {
        let out = self.docker(&["inspect", "--format", "{{.State.Pid}}", id]);
        String::from_utf8(out.stdout)
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    }
}

impl Drop for DockerKit {
    fn drop(&mut self) {
        if !self.containers.is_empty() {
            let mut args = vec!["rm", "--force", "--volumes"];
            args.extend(self.containers.iter().map(String::as_str));
            let out = self.docker(&args);
            if !out.status.success() {
                eprintln!(
                    "cleanup: docker rm failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
        let _ = self.docker(&["rmi", "--force", &self.image]);
    }
}

/// Whether `path` is a 64-bit little-endian ELF without a program
/// interpreter (`PT_INTERP`), i.e. runs in an image with no libc.
fn is_static_elf(path: &Path) -> bool {
    let Ok(elf) = std::fs::read(path) else {
        return false;
    };
    let u16_at = |at: usize| {
        elf.get(at..at + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]) as usize)
    };
    let u64_at = |at: usize| {
        elf.get(at..at + 8)
            .map(|b| u64::from_le_bytes(b.try_into().unwrap()) as usize)
    };
    if !elf.starts_with(b"\x7fELF\x02\x01") {
        return false;
    }
    let (Some(phoff), Some(phentsize), Some(phnum)) = (u64_at(0x20), u16_at(0x36), u16_at(0x38))
    else {
        return false;
    };
    const PT_INTERP: u32 = 3;
    (0..phnum).all(|i| {
        let at = phoff + i * phentsize;
        elf.get(at..at + 4)
            .is_some_and(|b| u32::from_le_bytes(b.try_into().unwrap()) != PT_INTERP)
    })
}

fn skip_or_fail(reason: &str) {
    assert!(!in_ci(), "required in CI: {reason}");
    eprintln!("SKIPPED: {reason}");
}

fn random_tag() -> String {
    let mut bytes = [0u8; 6];
    getrandom::fill(&mut bytes).unwrap();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// One series of a Prometheus text exposition.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The metric name.
    pub name: String,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// Its value.
    pub value: f64,
}

impl Sample {
    /// A label's value, `""` when absent (as Prometheus treats it).
    pub fn label(&self, name: &str) -> &str {
        self.labels.get(name).map_or("", String::as_str)
    }
}

/// The series named `metric` in a text exposition. Panics on a line it
/// can't read: the exposition is what is under test.
pub fn samples(body: &str, metric: &str) -> Vec<Sample> {
    body.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(parse_line)
        .filter(|s| s.name == metric)
        .collect()
}

fn parse_line(line: &str) -> Sample {
    let (name, rest) = match line.find('{') {
        Some(i) => (&line[..i], &line[i + 1..]),
        None => {
            let (name, value) = line.split_once(' ').unwrap();
            return Sample {
                name: name.to_owned(),
                labels: BTreeMap::new(),
                value: value.trim().parse().unwrap(),
            };
        }
    };
    let mut labels = BTreeMap::new();
    let mut chars = rest.char_indices().peekable();
    let mut end = rest.len();
    loop {
        let start = chars.peek().map(|(i, _)| *i).unwrap();
        if rest[start..].starts_with('}') {
            end = start + 1;
            break;
        }
        let eq = rest[start..].find("=\"").unwrap() + start;
        let key = rest[start..eq].trim_start_matches(',').to_owned();
        while chars.peek().is_some_and(|(i, _)| *i <= eq + 1) {
            chars.next();
        }
        let mut value = String::new();
        while let Some((_, c)) = chars.next() {
            match c {
                '\\' => match chars.next().map(|(_, c)| c) {
                    Some('n') => value.push('\n'),
                    Some(other) => value.push(other),
                    None => break,
                },
                '"' => break,
                c => value.push(c),
            }
        }
        labels.insert(key, value);
        if chars.peek().is_some_and(|(_, c)| *c == ',') {
            chars.next();
        }
        if chars.peek().is_none() {
            break;
        }
    }
    Sample {
        name: name.to_owned(),
        labels,
        value: rest[end..].trim().parse().unwrap(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn static_and_dynamic_binaries_are_told_apart() {
        assert!(
            !is_static_elf(Path::new("/bin/sh")),
            "/bin/sh is dynamic on Debian"
        );
        assert!(!is_static_elf(Path::new("/nonexistent")));
        if Path::new(BUSYBOX).exists() {
            assert!(is_static_elf(Path::new(BUSYBOX)));
        }
    }

    #[test]
    fn reads_labels_with_escapes() {
        let body = "# HELP x y\nx{a=\"1\",b=\"q\\\"u,o}te\"} 2.5\nx 3\ny{a=\"\"} 1\n";
        let got = samples(body, "x");
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].label("a"), "1");
        assert_eq!(got[0].label("b"), "q\"u,o}te");
        assert_eq!(got[0].value, 2.5);
        assert_eq!(got[1].value, 3.0);
        assert_eq!(samples(body, "y")[0].label("a"), "");
    }
}
