use std::time::Duration;

use super::*;
use crate::probe::config::Kind;

/// A probe running `sh -c script` (no script file: writing and executing one races with
/// other tests' forks, ETXTBSY).
fn shell(script: &str, options: ExecOptions) -> ExecProber {
    let mut config = ProbeConfig::new("job", Kind::Exec, "/bin/sh");
    let mut args = vec!["-c".to_owned(), script.to_owned()];
    args.extend(options.args.iter().cloned());
    config.exec = Some(ExecOptions { args, ..options });
    ExecProber::new(&config)
}

async fn run(prober: &ExecProber) -> Outcome {
    let mut out = Outcome::default();
    prober.probe(&mut out).await;
    out
}

/// Whether process `pid` is gone (or a zombie no one reaped yet).
fn gone(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
    }
}

/// Waits up to 10 s for `pid` to be gone; fails naming it.
async fn wait_gone(pid: i32, what: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !gone(pid) {
        assert!(
            std::time::Instant::now() < deadline,
            "{what} (pid {pid}) was never killed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn exit_code_and_output_are_reported() {
    let out = run(&shell("echo hello; exit 0", ExecOptions::default())).await;
    assert_eq!(out.failure(), None);
    assert_eq!(out.value("muster_probe_exit_code"), Some(0.0));
    assert_eq!(out.facts.exit_code, Some(0));
    assert_eq!(out.facts.body.as_deref(), Some("hello\n"));

    let out = run(&shell("echo warn >&2; exit 3", ExecOptions::default())).await;
    assert_eq!(out.failure(), Some("exit code 3"));
    assert_eq!(out.value("muster_probe_exit_code"), Some(3.0));
    assert_eq!(
        out.facts.body.as_deref(),
        Some(""),
        "stderr is not the body"
    );

    let three_ok = ExecOptions {
        valid_exit_codes: vec![0, 3],
        ..ExecOptions::default()
    };
    assert_eq!(run(&shell("exit 3", three_ok)).await.failure(), None);
}

#[tokio::test]
async fn the_environment_is_only_path_and_the_configured_variables() {
    let options = ExecOptions {
        env: [("CHECK_MODE".to_owned(), Secret::new("quick"))].into(),
        ..ExecOptions::default()
    };
    let out = run(&shell(
        "echo \"$PATH|$CHECK_MODE|${HOME-unset}|$(pwd)|$1\"",
        ExecOptions {
            args: vec!["argv0".to_owned(), "first".to_owned()],
            ..options
        },
    ))
    .await;
    assert_eq!(out.failure(), None);
    assert_eq!(
        out.facts.body.as_deref(),
        Some("/usr/sbin:/usr/bin:/sbin:/bin|quick|unset|/|first\n")
    );
}

#[tokio::test]
async fn a_command_that_cannot_start_says_why() {
    let mut config = ProbeConfig::new("job", Kind::Exec, "/nonexistent/check");
    let out = run(&ExecProber::new(&config)).await;
    assert_eq!(out.failure(), Some("command not found"));
    assert_eq!(out.value("muster_probe_exit_code"), Some(-1.0));

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-executable");
    std::fs::write(&file, "#!/bin/sh\nexit 0\n").unwrap();
    config.target = file.display().to_string();
    let out = run(&ExecProber::new(&config)).await;
    assert_eq!(out.failure(), Some("permission denied"));
}

#[tokio::test]
async fn a_command_killed_by_a_signal_fails() {
    let out = run(&shell("kill -9 $$", ExecOptions::default())).await;
    assert_eq!(out.failure(), Some("killed by signal 9"));
    assert_eq!(out.value("muster_probe_exit_code"), Some(-1.0));
}

#[tokio::test]
async fn a_run_cut_short_kills_the_whole_process_group() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("child.pid");
    let script = format!(
        "sleep 300 & echo $! > {}; echo started; wait",
        pid_file.display()
    );
    let prober = shell(&script, ExecOptions::default());
    let mut out = Outcome::default();
    let pid = {
        let run = prober.probe(&mut out);
        tokio::pin!(run);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            tokio::select! {
                () = &mut run => panic!("the script waits on its child; it cannot end by itself"),
                () = tokio::time::sleep(Duration::from_millis(20)) => {}
            }
            let pid = std::fs::read_to_string(&pid_file)
                .ok()
                .and_then(|text| text.trim().parse::<i32>().ok());
            if let Some(pid) = pid {
                break pid;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the script never wrote its child's pid"
            );
        }
        // Leaving the block drops the run: cut short, as the runner's timeout does.
    };
    wait_gone(pid, "the script's background child").await;
}

#[tokio::test]
async fn what_a_finished_command_left_in_its_group_is_killed() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("child.pid");
    // The background sleep keeps stdout open: without the group kill, the run would hang.
    let script = format!("sleep 300 & echo $! > {}; exit 0", pid_file.display());
    let out = tokio::time::timeout(
        Duration::from_secs(20),
        run(&shell(&script, ExecOptions::default())),
    )
    .await
    .expect("the run ends when the command exits");
    assert_eq!(out.failure(), None);
    let pid: i32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    wait_gone(pid, "the background sleep").await;
}

#[tokio::test]
async fn output_is_bounded_and_never_blocks_the_command() {
    let out = run(&shell(
        "head -c 300000 /dev/zero | tr '\\0' x; exit 0",
        ExecOptions::default(),
    ))
    .await;
    assert_eq!(out.failure(), None);
    assert_eq!(out.facts.body.map(|b| b.len()), Some(MAX_OUTPUT_BYTES));
}

#[test]
fn options_problems_name_the_key() {
    let options = ExecOptions {
        env: [("A=B".to_owned(), Secret::new("x"))].into(),
        valid_exit_codes: Vec::new(),
        args: vec!["a\0b".to_owned()],
    };
    let mut out = Vec::new();
    options.problems("probe \"job\"", &mut out);
    assert_eq!(
        out,
        vec![
            "probe \"job\": valid_exit_codes must list at least one code",
            "probe \"job\": env: \"A=B\" is not a variable name",
            "probe \"job\": args and env values must not hold NUL characters",
        ]
    );
}
