//! A writer SIGKILLed at random points, again and again, as a collector dies mid-flush.
//!
//! [`killed_writer_keeps_everything_its_cursor_passed`] re-executes this test binary to run
//! [`tsdb_crash_writer`] alone in a child process (a no-op unless `MUSTER_TSDB_CRASH_DIR`
//! is set). The writer opens the store, pulls from its durable cursor as the scraper does,
//! and ingests a fake agent's rounds 30 at a time, flushing after each batch and printing
//! `durable <cursor>`. The parent kills it after a random number of flushes and a random
//! moment (up to 4 ms) into the next batch, reopens the store (which
//! must succeed and leave no `.tmp` file) and checks that the cursor is at least the last
//! one printed, that every series holds exactly a prefix of what the agent sent, each
//! sample once, and that the prefix covers every round up to the cursor. At the end it
//! catches up from the cursor and compares everything.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::*;

const DIR_ENV: &str = "MUSTER_TSDB_CRASH_DIR";
const ROUNDS: usize = 12;
const AGENT_ROUNDS: usize = 8_640;
const BATCH: u64 = 30;
/// A writer left behind by a dead parent stops on its own after this long.
const WRITER_LIFETIME: Duration = Duration::from_secs(60);

fn agent() -> FakeAgent {
    FakeAgent::new(21, 40, AGENT_ROUNDS)
}

/// The child's body; a no-op unless the parent set `MUSTER_TSDB_CRASH_DIR`.
#[test]
fn tsdb_crash_writer() {
    let Some(dir) = std::env::var_os(DIR_ENV) else {
        return;
    };
    let agent = agent();
    let tsdb = open(Path::new(&dir), options());
    let mut pos = tsdb.durable_cursor("web1");
    println!("opened {pos}");
    let started = Instant::now();
    while started.elapsed() < WRITER_LIFETIME && pos < AGENT_ROUNDS as u64 {
        let upto = (pos + BATCH).min(AGENT_ROUNDS as u64);
        agent.send_until(&tsdb, "web1", pos, upto, BATCH as usize);
        pos = upto;
        tsdb.flush(agent.ts_of(pos)).unwrap();
        println!("durable {}", tsdb.durable_cursor("web1"));
    }
}

/// Checks the reopened store against the cursor the child last printed; returns the
/// store's cursor.
fn verify(dir: &Path, agent: &FakeAgent, printed: u64) -> Result<u64, String> {
    let tsdb = open(dir, options());
    let leftovers: Vec<_> = std::fs::read_dir(dir.join("tsdb/blocks"))
        .map_err(|e| e.to_string())?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| !n.ends_with(".seg"))
        .collect();
    if !leftovers.is_empty() {
        return Err(format!("left after open: {leftovers:?}"));
    }
    let cursor = tsdb.durable_cursor("web1");
    if cursor < printed {
        return Err(format!("cursor {cursor} behind the printed {printed}"));
    }
    let got = stored(&tsdb, &[]);
    let want = agent.expected("web1", AGENT_ROUNDS as u64);
    let covered = cursor as usize;
    for (labels, samples) in &want {
        let have = got.get(labels).map_or(&[][..], |s| &s[..]);
        if have.len() < covered || have != &samples[..have.len()] {
            return Err(format!(
                "{labels}: {} samples stored, not a prefix covering round {cursor}",
                have.len()
            ));
        }
    }
    Ok(cursor)
}

#[test]
fn killed_writer_keeps_everything_its_cursor_passed() {
    let dir = tempfile::tempdir().unwrap();
    let agent = agent();
    let exe = std::env::current_exe().unwrap();
    let writer = format!(
        "{}::tsdb_crash_writer",
        module_path!()
            .split_once("::")
            .map_or(module_path!(), |(_, path)| path)
    );
    let mut rng = crate::tsdb::synthetic::Rng::new(
        std::env::var("MUSTER_TSDB_CRASH_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| u64::from(std::process::id())),
    );
    let mut cursor = 0;
    for round in 0..ROUNDS {
        let mut child = Command::new(&exe)
            .args(["--exact", &writer, "--nocapture", "--test-threads=1"])
            .env(DIR_ENV, dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel::<String>();
        let reader = std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout);
            let mut line = String::new();
            while matches!(lines.read_line(&mut line), Ok(n) if n > 0) && line.ends_with('\n') {
                if tx.send(std::mem::take(&mut line)).is_err() {
                    break;
                }
            }
        });
        let mut printed = cursor;
        let (mut opened, mut flushes) = (false, 0);
        let mut take = |line: &str, opened: &mut bool, flushes: &mut u64| {
            if line.contains("opened ") {
                *opened = true;
            } else if let Some((_, n)) = line.rsplit_once("durable ")
                && let Ok(n) = n.trim().parse::<u64>()
            {
                printed = printed.max(n);
                *flushes += 1;
            }
        };
        // Kill after a random number of flushes, a random moment into the next batch: the
        // writer is too fast for a delay alone to land all over its run.
        let target = 1 + rng.below(20);
        let deadline = Instant::now() + Duration::from_secs(60);
        while !opened || flushes < target {
            let left = deadline.saturating_duration_since(Instant::now());
            let Ok(line) = rx.recv_timeout(left) else {
                break;
            };
            take(&line, &mut opened, &mut flushes);
        }
        assert!(opened, "the writer never opened the store");
        let delay = Duration::from_micros(rng.below(4000));
        std::thread::sleep(delay);
        let _ = child.kill();
        let _ = child.wait();
        let _ = reader.join();
        while let Ok(line) = rx.try_recv() {
            take(&line, &mut opened, &mut flushes);
        }
        cursor = verify(dir.path(), &agent, printed)
            .unwrap_or_else(|e| panic!("round {round} (delay {delay:?}): {e}"));
    }
    assert!(cursor > 0, "the writer never made a round durable");
    let tsdb = open(dir.path(), options());
    agent.send(&tsdb, "web1", tsdb.durable_cursor("web1"), 500);
    assert_same(
        stored(&tsdb, &[]),
        agent.expected("web1", AGENT_ROUNDS as u64),
    );
}
