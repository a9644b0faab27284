//! Crash test of the buffer: a writer process SIGKILLed at random points, again and again
//! (the idea of `shared::store`'s crash test, applied to appends, evictions and the
//! dictionary's collection).
//!
//! [`killed_writer_loses_no_appended_round`] re-executes this test binary to run
//! [`buffer_crash_writer`] alone in a child (a no-op unless `MUSTER_BUFFER_CRASH_DIR` is
//! set). The writer opens the buffer with a small byte bound (so every append also evicts
//! and collects series) and appends rounds whose content is a function of their sequence
//! number: 40 stable series and a "container" of 10 series that changes every 5 rounds.
//! After each `append` returns it prints `appended <seq>`.
//!
//! After each kill the parent reopens the buffer, which must succeed, and reads it all:
//! every batch validates (no round without its series); the rounds held are exactly the
//! expected content of their numbers; every number reported appended is held unless it is
//! older than the oldest held round (evicted by the bound); a gap from 1 covers exactly
//! what is not held; and numbers never go backwards (each writer starts after every number
//! reported before). 40 kills; the seed comes from `MUSTER_BUFFER_CRASH_SEED` if set.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::tests::{Named, open, read_all, series_name};
use super::{Buffer, BufferConfig};

const DIR_ENV: &str = "MUSTER_BUFFER_CRASH_DIR";
const SEED_ENV: &str = "MUSTER_BUFFER_CRASH_SEED";
const KILLS: usize = 40;
const MAX_DELAY_MS: u64 = 400;
/// A writer left behind by a dead parent stops on its own after this long.
const WRITER_LIFETIME: Duration = Duration::from_secs(60);

fn writer_config() -> BufferConfig {
    BufferConfig {
        max_age: muster_shared::config::Duration::from_secs(86_400),
        max_bytes: muster_shared::config::ByteSize(48 << 10),
    }
}

/// `(metric, labels, value)`.
type Sample = (String, Vec<(String, String)>, f64);

/// The series of round `seq`.
fn round_content(seq: u64) -> Vec<Sample> {
    let mut out: Vec<_> = (0..40u64)
        .map(|i| {
            let labels = vec![("cpu".to_owned(), i.to_string())];
            (
                "node_cpu_seconds_total".to_owned(),
                labels,
                (seq * 1_000 + i) as f64 / 8.0,
            )
        })
        .collect();
    let container = format!("c{}", seq / 5);
    out.extend((0..10u64).map(|i| {
        let labels = vec![
            ("name".to_owned(), container.clone()),
            ("nic".to_owned(), i.to_string()),
        ];
        (
            "container_network_receive_bytes_total".to_owned(),
            labels,
            (seq ^ i) as f64,
        )
    }));
    out
}

fn timestamp(seq: u64) -> u64 {
    1_700_000_000_000 + seq * 1_000
}

fn expected(seq: u64) -> Named {
    let values = round_content(seq)
        .into_iter()
        .map(|(metric, labels, value)| {
            let labels: Vec<(&str, &str)> = labels
                .iter()
                .map(|(n, v)| (n.as_str(), v.as_str()))
                .collect();
            (series_name(&metric, &labels), value.to_bits())
        })
        .collect::<BTreeMap<_, _>>();
    (seq, timestamp(seq), values)
}

fn append_next(buffer: &Buffer) -> u64 {
    let seq = buffer.stats().newest_issued + 1;
    let values: Vec<(u32, f64)> = round_content(seq)
        .iter()
        .map(|(metric, labels, value)| {
            let labels: Vec<(&str, &str)> = labels
                .iter()
                .map(|(n, v)| (n.as_str(), v.as_str()))
                .collect();
            (buffer.intern(metric, &labels), *value)
        })
        .collect();
    let appended = buffer.append(timestamp(seq), &values).unwrap();
    assert_eq!(appended, seq);
    appended
}

/// The child's body; a no-op unless the parent set `MUSTER_BUFFER_CRASH_DIR`.
#[test]
fn buffer_crash_writer() {
    let Some(dir) = std::env::var_os(DIR_ENV) else {
        return;
    };
    let (_store, buffer) = open(Path::new(&dir), &writer_config());
    let mut out = std::io::stdout().lock();
    writeln!(out, "opened {}", buffer.stats().newest_issued).unwrap();
    out.flush().unwrap();
    let started = Instant::now();
    while started.elapsed() < WRITER_LIFETIME {
        let seq = append_next(&buffer);
        writeln!(out, "appended {seq}").unwrap();
        out.flush().unwrap();
    }
}

/// Checks the reopened buffer against `reported` (the newest number reported appended
/// so far); returns the newest number it holds.
fn verify(dir: &Path, reported: u64) -> Result<u64, String> {
    let (_store, buffer) = open(dir, &writer_config());
    let stats = buffer.stats();
    let (gap, rounds) = read_all(&buffer);
    let mut problems = Vec::new();
    if stats.newest_issued < reported {
        problems.push(format!(
            "newest issued {} is behind appended {reported}",
            stats.newest_issued
        ));
    }
    let Some(first) = rounds.first().map(|r| r.0) else {
        // Killed before its first append ever committed.
        return if reported == 0 {
            Ok(0)
        } else {
            Err(format!("no rounds held ({stats:?})"))
        };
    };
    let last = rounds.last().map_or(0, |r| r.0);
    if last < reported {
        problems.push(format!(
            "appended round {reported} is gone (last held {last})"
        ));
    }
    let want_gap = (first > 1).then_some((1, first - 1));
    if gap.map(|g| (g.first_missing, g.last_missing)) != want_gap {
        problems.push(format!("gap {gap:?}, expected {want_gap:?}"));
    }
    for (i, round) in rounds.iter().enumerate() {
        if round.0 != first + i as u64 {
            problems.push(format!("round {} missing", first + i as u64));
            break;
        }
        if *round != expected(round.0) {
            problems.push(format!("round {} does not hold its values", round.0));
            break;
        }
    }
    if problems.is_empty() {
        Ok(last)
    } else {
        Err(problems.join("; "))
    }
}

/// xorshift64 for the delays.
fn next(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

struct Killed {
    /// The numbers the writer reported appended, in order.
    appended: Vec<u64>,
    /// The newest number issued when it opened the buffer.
    opened_at: Option<u64>,
}

/// Runs the writer, kills it `delay` after it opened the buffer (one round in five: after
/// it started, to also kill it during open), and collects what it reported.
fn run_and_kill(dir: &Path, round: usize, delay: Duration) -> Result<Killed, String> {
    let writer = format!(
        "{}::buffer_crash_writer",
        module_path!()
            .split_once("::")
            .map_or(module_path!(), |(_, path)| path)
    );
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let stderr_path = dir.with_extension(format!("child-{round}.stderr"));
    let stderr = std::fs::File::create(&stderr_path).map_err(|e| format!("stderr file: {e}"))?;
    let mut child = Command::new(exe)
        .args(["--exact", &writer, "--nocapture", "--test-threads=1"])
        .env(DIR_ENV, dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .map_err(|e| format!("spawn writer: {e}"))?;
    let stdout = child.stdout.take().ok_or("no stdout pipe")?;
    let (tx, rx) = mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        let mut stdout = BufReader::new(stdout);
        let mut line = String::new();
        // Whole lines only: a cut "appended 12" must not read as "appended 1".
        while matches!(stdout.read_line(&mut line), Ok(n) if n > 0) && line.ends_with('\n') {
            if tx.send(std::mem::take(&mut line)).is_err() {
                break;
            }
        }
    });
    let mut killed = Killed {
        appended: Vec::new(),
        opened_at: None,
    };
    // The harness prints `test <name> ... ` before the first line: search, don't expect.
    let take = |line: &str, killed: &mut Killed| {
        if let Some((_, n)) = line.rsplit_once("opened ") {
            killed.opened_at = n.trim().parse().ok();
        } else if let Some((_, n)) = line.rsplit_once("appended ")
            && let Ok(n) = n.trim().parse()
        {
            killed.appended.push(n);
        }
    };
    if round % 5 != 4 {
        let deadline = Instant::now() + Duration::from_secs(60);
        while killed.opened_at.is_none() {
            match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(line) => take(&line, &mut killed),
                Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    let stderr = std::fs::read_to_string(&stderr_path).unwrap_or_default();
                    return Err(format!("writer never opened the buffer: {stderr}"));
                }
            }
        }
    }
    std::thread::sleep(delay);
    if let Ok(Some(status)) = child.try_wait() {
        let stderr = std::fs::read_to_string(&stderr_path).unwrap_or_default();
        return Err(format!("writer exited by itself ({status}): {stderr}"));
    }
    // SIGKILL: no destructor, no flush.
    child.kill().map_err(|e| format!("kill: {e}"))?;
    child.wait().map_err(|e| format!("wait: {e}"))?;
    let _ = reader.join();
    for line in rx.try_iter() {
        take(&line, &mut killed);
    }
    let _ = std::fs::remove_file(&stderr_path);
    Ok(killed)
}

#[test]
fn killed_writer_loses_no_appended_round() {
    if std::env::var_os(DIR_ENV).is_some() {
        return; // We are the child.
    }
    let started = Instant::now();
    let seed = std::env::var(SEED_ENV)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x4255_4646_4552_u64);
    let mut rng = seed.max(1);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");

    let mut reported = 0; // newest number any writer reported appended
    let mut held = 0; // newest number held at the last reopen
    let mut failures = Vec::new();
    let mut killed_after_append = 0;
    for round in 0..KILLS {
        let delay = Duration::from_millis(next(&mut rng) % (MAX_DELAY_MS + 1));
        let killed = run_and_kill(&dir, round, delay)
            .unwrap_or_else(|e| panic!("kill {round}: {e} (seed {seed})"));
        if let Some(opened_at) = killed.opened_at
            && opened_at < held
        {
            failures.push(format!(
                "kill {round}: writer opened at {opened_at} < {held}"
            ));
        }
        let mut previous = reported;
        for &seq in &killed.appended {
            if seq <= previous {
                failures.push(format!("kill {round}: seq {seq} reused (after {previous})"));
            }
            previous = seq;
        }
        reported = previous;
        killed_after_append += usize::from(!killed.appended.is_empty());
        match verify(&dir, reported) {
            Ok(last) => held = last,
            Err(problem) => {
                failures.push(format!("kill {round} (delay {delay:?}): {problem}"));
                break;
            }
        }
    }
    eprintln!(
        "buffer crash test: {KILLS} kills, {killed_after_append} after an append, {reported} \
         rounds appended, {} failures, {:.1?}, seed {seed}",
        failures.len(),
        started.elapsed()
    );
    assert!(failures.is_empty(), "seed {seed}:\n{}", failures.join("\n"));
    assert!(
        killed_after_append >= KILLS / 2,
        "only {killed_after_append} kills came after an append: the test exercised too little"
    );
}
