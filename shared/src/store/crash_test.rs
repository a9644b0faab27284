//! Crash test of the store: a writer process SIGKILLed at random points, again and again.
//!
//! [`killed_writer_never_loses_flushed_data`] re-executes this test binary to run
//! [`crash_writer`] alone in a child process (which does nothing unless
//! `MUSTER_STORE_CRASH_DIR` is set). The writer opens the store, reads the last committed step
//! `M`, and applies steps `M+1, M+2, ...`: a batch in `values` (an insert, an overwrite, a
//! remove), an insert in `hosts` (overwrites), then the step number in `meta`; then
//! [`Store::flush`] and `flushed <n>` on stdout. Every value is derived from its key and a
//! generation (10 B to 64 KiB), so the whole content after step `M` is known.
//!
//! The parent kills the child after a random delay, then reopens the store, which must
//! succeed, and checks: the committed step is at least the last `flushed` line it read (and
//! at least what the previous reopen saw), each tree holds exactly the state after that step
//! or, for the step the kill interrupted, exactly the state after the next one (a batch is
//! whole or absent). While the writer runs, opening the store from the parent must give
//! [`StoreError::Locked`]. 60 rounds; the seed comes from `MUSTER_STORE_CRASH_SEED` if set.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::{Key, Record, Store, StoreError, StoreOptions};

const DIR_ENV: &str = "MUSTER_STORE_CRASH_DIR";
const SEED_ENV: &str = "MUSTER_STORE_CRASH_SEED";
const ITERATIONS: usize = 60;
const MAX_DELAY_MS: u64 = 300;
/// A writer left behind by a dead parent stops on its own after this long.
const WRITER_LIFETIME: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Blob {
    key: u64,
    generation: u64,
    data: Vec<u8>,
}

impl Record for Blob {
    const SCHEMA: u8 = 3;
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
struct Committed(u64);

impl Record for Committed {
    const SCHEMA: u8 = 1;
}

/// xorshift64: enough randomness for sizes, contents and delays, without a dependency.
struct XorShift(u64);

impl XorShift {
    fn new(seed: u64) -> Self {
        XorShift(seed.max(1))
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
}

/// The value for `key` at `generation`: mostly small, one in eight up to 64 KiB.
fn blob(key: u64, generation: u64) -> Blob {
    let mut rng = XorShift::new(key.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ (generation + 1));
    let r = rng.next();
    let len = if r.is_multiple_of(8) {
        10 + (r >> 3) % (64 * 1024 - 9)
    } else {
        10 + (r >> 3) % 1000
    };
    let mut data = Vec::with_capacity(len as usize);
    while data.len() < len as usize {
        data.extend_from_slice(&rng.next().to_le_bytes());
    }
    data.truncate(len as usize);
    Blob {
        key,
        generation,
        data,
    }
}

fn host_key(step: u64) -> String {
    format!("host-{:02}", step % 50)
}

/// Step `n` in `values`: insert `n`, overwrite `n - 5` with generation 1, remove `n - 20`
/// unless it is a multiple of 10 (so the tree keeps growing slowly).
fn removes_at(step: u64) -> Option<u64> {
    (step > 20 && !(step - 20).is_multiple_of(10)).then(|| step - 20)
}

fn expected_values(m: u64) -> BTreeMap<u64, Blob> {
    (1..=m)
        // Kept: not yet reached by `removes_at`, or exempt from it.
        .filter(|&k| k + 20 > m || k.is_multiple_of(10))
        .map(|k| (k, blob(k, u64::from(k + 5 <= m))))
        .collect()
}

fn expected_hosts(m: u64) -> BTreeMap<String, Blob> {
    (m.saturating_sub(49).max(1)..=m)
        .map(|n| (host_key(n), blob(n, 2)))
        .collect()
}

fn apply_step(store: &Store, n: u64) -> Result<(), StoreError> {
    let values = store.tree::<u64, Blob>("values")?;
    let hosts = store.tree::<String, Blob>("hosts")?;
    let meta = store.tree::<String, Committed>("meta")?;
    let mut batch = values.batch();
    batch.insert(&n, &blob(n, 0))?;
    if n > 5 {
        batch.insert(&(n - 5), &blob(n - 5, 1))?;
    }
    if let Some(k) = removes_at(n) {
        batch.remove(&k);
    }
    values.apply(batch)?;
    hosts.insert(&host_key(n), &blob(n, 2))?;
    meta.insert(&"committed".to_owned(), &Committed(n))?;
    Ok(())
}

fn committed(store: &Store) -> Result<u64, StoreError> {
    let meta = store.tree::<String, Committed>("meta")?;
    Ok(meta.get(&"committed".to_owned())?.map_or(0, |c| c.0))
}

/// The child's body; a no-op unless the parent set `MUSTER_STORE_CRASH_DIR`.
#[test]
fn crash_writer() {
    let Some(dir) = std::env::var_os(DIR_ENV) else {
        return;
    };
    let store = Store::open(Path::new(&dir), StoreOptions::agent()).unwrap();
    let mut n = committed(&store).unwrap();
    let mut out = std::io::stdout().lock();
    writeln!(out, "opened {n}").unwrap();
    out.flush().unwrap();
    let started = Instant::now();
    while started.elapsed() < WRITER_LIFETIME {
        n += 1;
        apply_step(&store, n).unwrap();
        store.flush().unwrap();
        writeln!(out, "flushed {n}").unwrap();
        out.flush().unwrap();
    }
}

fn read_all<K: Key + Ord, V: Record>(
    store: &Store,
    name: &'static str,
) -> Result<BTreeMap<K, V>, StoreError> {
    store.tree::<K, V>(name)?.iter().collect()
}

/// Which state in `m - 3 ..= m + 1` `actual` equals, for the failure report.
fn which_state<K: Ord, V: PartialEq>(
    actual: &BTreeMap<K, V>,
    m: u64,
    expected: impl Fn(u64) -> BTreeMap<K, V>,
) -> String {
    (m.saturating_sub(3)..=m + 1)
        .find(|&s| expected(s) == *actual)
        .map_or_else(
            || format!("no state near {m} ({} entries)", actual.len()),
            |s| format!("state {s}"),
        )
}

/// Checks the reopened store; returns the committed step, or what is wrong.
fn verify(dir: &Path, floor: u64) -> Result<u64, String> {
    let store = Store::open(dir, StoreOptions::agent()).map_err(|e| format!("reopen: {e:?}"))?;
    let m = committed(&store).map_err(|e| format!("read meta: {e:?}"))?;
    let mut problems = Vec::new();
    if m < floor {
        problems.push(format!("committed step {m} is behind flushed step {floor}"));
    }
    if m > floor + 1 {
        problems.push(format!(
            "committed step {m} is ahead of anything written ({floor} + 1)"
        ));
    }
    match read_all::<u64, Blob>(&store, "values") {
        Ok(actual) if actual == expected_values(m) || actual == expected_values(m + 1) => {}
        Ok(actual) => problems.push(format!(
            "values: expected state {m} or {}, found {}",
            m + 1,
            which_state(&actual, m, expected_values)
        )),
        Err(e) => problems.push(format!("values: {e:?}")),
    }
    match read_all::<String, Blob>(&store, "hosts") {
        Ok(actual) if actual == expected_hosts(m) || actual == expected_hosts(m + 1) => {}
        Ok(actual) => problems.push(format!(
            "hosts: expected state {m} or {}, found {}",
            m + 1,
            which_state(&actual, m, expected_hosts)
        )),
        Err(e) => problems.push(format!("hosts: {e:?}")),
    }
    if problems.is_empty() {
        Ok(m)
    } else {
        Err(problems.join("; "))
    }
}

struct Kill {
    /// The last `flushed <n>` line read before the child died.
    last_flushed: Option<u64>,
    /// Whether the child had opened the store when it was killed.
    opened: bool,
    /// Whether opening the store while the child held it gave [`StoreError::Locked`].
    locked: bool,
}

/// Runs the writer until a random delay after it opened the store (or, one round in five,
/// after it started, to also kill it during recovery), then SIGKILLs it.
fn run_and_kill(dir: &Path, round: usize, delay: Duration) -> Result<Kill, String> {
    let writer = format!(
        "{}::crash_writer",
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
        // Only whole lines: a line the kill cut short ("flushed 12" as "flushed 1") would
        // claim less than was flushed. (Pipe writes this small are atomic anyway.)
        while matches!(stdout.read_line(&mut line), Ok(n) if n > 0) && line.ends_with('\n') {
            if tx.send(std::mem::take(&mut line)).is_err() {
                break;
            }
        }
    });

    let mut kill = Kill {
        last_flushed: None,
        opened: false,
        locked: false,
    };
    // The harness prints `test <name> ... ` without a newline before the writer's first
    // line, so markers are searched, not expected at the start.
    let take = |line: &str, kill: &mut Kill| {
        if line.contains("opened ") {
            kill.opened = true;
        } else if let Some((_, n)) = line.rsplit_once("flushed ")
            && let Ok(n) = n.trim().parse()
        {
            kill.last_flushed = Some(n);
        }
    };
    if round % 5 != 4 {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !kill.opened {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => take(&line, &mut kill),
                Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    let stderr = std::fs::read_to_string(&stderr_path).unwrap_or_default();
                    return Err(format!("writer never opened the store: {stderr}"));
                }
            }
        }
    }
    if kill.opened {
        // Another process holds the store: opening it must say so, and change nothing.
        match Store::open(dir, StoreOptions::agent()) {
            Err(StoreError::Locked { path }) if path == dir => kill.locked = true,
            Err(other) => return Err(format!("open while the writer runs: {other:?}")),
            Ok(_) => return Err("open while the writer runs succeeded".to_owned()),
        }
    }
    std::thread::sleep(delay);
    if let Ok(Some(status)) = child.try_wait() {
        let stderr = std::fs::read_to_string(&stderr_path).unwrap_or_default();
        return Err(format!("writer exited by itself ({status}): {stderr}"));
    }
    // Child::kill sends SIGKILL on Unix: no destructor, no flush, no unwinding.
    child.kill().map_err(|e| format!("kill: {e}"))?;
    child.wait().map_err(|e| format!("wait: {e}"))?;
    let _ = reader.join();
    for line in rx.try_iter() {
        take(&line, &mut kill);
    }
    let _ = std::fs::remove_file(&stderr_path);
    Ok(kill)
}

#[test]
fn killed_writer_never_loses_flushed_data() {
    if std::env::var_os(DIR_ENV).is_some() {
        return; // We are the child.
    }
    let started = Instant::now();
    let seed = std::env::var(SEED_ENV)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x4d55_5354_4552_u64);
    let mut rng = XorShift::new(seed);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");

    let mut floor = 0;
    let mut failures = Vec::new();
    let mut killed_while_writing = 0;
    let mut max_step_per_round = 0;
    let mut locked_checks = 0;
    for round in 0..ITERATIONS {
        let delay = Duration::from_millis(rng.next() % (MAX_DELAY_MS + 1));
        let kill = match run_and_kill(&dir, round, delay) {
            Ok(kill) => kill,
            Err(e) => panic!("round {round}: {e} (seed {seed})"),
        };
        locked_checks += usize::from(kill.locked);
        let reported = kill.last_flushed.unwrap_or(0);
        if kill.opened && kill.last_flushed.is_some() {
            killed_while_writing += 1;
        }
        let round_floor = floor.max(reported);
        match verify(&dir, round_floor) {
            Ok(m) => {
                max_step_per_round = max_step_per_round.max(m - floor);
                floor = m;
            }
            Err(problem) if problem.starts_with("reopen") => {
                failures.push(format!("round {round} (delay {delay:?}): {problem}"));
                break; // The store is unusable; later rounds would only repeat this.
            }
            Err(problem) => {
                failures.push(format!("round {round} (delay {delay:?}): {problem}"));
                // Go on from what is there, to count how often it happens.
                floor = Store::open(&dir, StoreOptions::agent())
                    .and_then(|s| committed(&s))
                    .unwrap_or(round_floor);
            }
        }
    }
    let size = Store::open(&dir, StoreOptions::agent()).and_then(|s| s.size_on_disk());
    eprintln!(
        "store crash test: {ITERATIONS} rounds, {killed_while_writing} killed after a flush, \
         {floor} steps committed (max {max_step_per_round} per round), {locked_checks} \
         opens refused as Locked, {} failures, {:.1?}, store {size:?} bytes, seed {seed}",
        failures.len(),
        started.elapsed()
    );
    assert!(
        failures.is_empty(),
        "{} of {ITERATIONS} rounds failed (seed {seed}):\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert_eq!(locked_checks, ITERATIONS - ITERATIONS / 5);
    assert!(
        killed_while_writing >= ITERATIONS / 2,
        "only {killed_while_writing} rounds killed the writer after a flush: the test did not \
         exercise what it should"
    );
}
