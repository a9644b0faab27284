//! Test kit for Muster's end-to-end tests: find the built binaries, start
//! them on loopback ports in temporary folders, wait for conditions with a
//! deadline, and stop every process by its PID.
//!
//! The binaries must be built first (`cargo build --workspace --bins`, part of
//! the README's test command): a test crate cannot build another package's
//! binaries itself.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr
)]

pub mod docker;
pub mod fake_agent;
pub mod timeline;
pub mod tmpfs;
pub mod loadgen;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// How long any single wait in a test may take before it fails.
pub const WAIT: Duration = Duration::from_secs(30);

/// Path of a workspace binary (`muster-agent`, `muster-collector`).
pub fn bin(name: &str) -> PathBuf {
    // The test executable lives in target/<profile>/deps/.
    let exe = std::env::current_exe().expect("test executable path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile> folder");
    let path = profile_dir.join(name);
    assert!(
        path.is_file(),
        "{} is missing: run `cargo build --workspace --bins` before the tests",
        path.display()
    );
    path
}

/// A free TCP port on 127.0.0.1 (bound then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Runs a command to completion with a deadline, capturing its output.
pub fn run(command: &mut Command) -> Output {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let deadline = Instant::now() + WAIT;
    loop {
        if child.try_wait().expect("try_wait").is_some() {
            return child.wait_with_output().expect("output");
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("command did not finish within {WAIT:?}: {command:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Polls `check` until it returns `Some`, failing the test after [`WAIT`]
/// with a message naming what never happened.
pub fn wait_for<T>(what: &str, check: impl FnMut() -> Option<T>) -> T {
    wait_within(WAIT, what, check)
}

/// [`wait_for`] with another limit, for conditions bound to a clock the test
/// does not control (a chunk window's end).
pub fn wait_within<T>(limit: Duration, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "never happened within {limit:?}: {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A started process, stopped by PID (SIGTERM, then SIGKILL) when dropped.
#[derive(Debug)]
pub struct Proc {
    child: Child,
    /// Its stderr, in a file (read it with [`Proc::log`]).
    pub log_path: PathBuf,
    name: String,
}

impl Proc {
    /// Starts `command`, logging stderr and stdout to `log_path`.
    pub fn start(name: &str, command: &mut Command, log_path: PathBuf) -> Self {
        let log = std::fs::File::create(&log_path).unwrap();
        let child = command
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        Self {
            child,
            log_path,
            name: name.to_owned(),
        }
    }

    /// Its PID.
    pub fn pid(&self) -> i32 {
        i32::try_from(self.child.id()).unwrap()
    }

    /// What it wrote so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Whether it has exited; reaps it.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().unwrap()
    }

    /// Sends `signal` to it.
    pub fn signal(&self, signal: Signal) {
        let _ = kill(Pid::from_raw(self.pid()), signal);
    }

    /// SIGTERM, then waits for the exit (SIGKILL after [`WAIT`]).
    pub fn stop(&mut self) -> std::process::ExitStatus {
        if let Some(status) = self.exited() {
            return status;
        }
        self.signal(Signal::SIGTERM);
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = self.exited() {
                return status;
            }
            if Instant::now() > deadline {
                eprintln!("{} ignored SIGTERM; killing\n{}", self.name, self.log());
                let _ = self.child.kill();
                return self.child.wait().unwrap();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.exited().is_none() {
            self.signal(Signal::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(5);
            while self.exited().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// True when a process with this PID exists (zombies count as gone).
pub fn pid_alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

/// A blocking HTTP client for tests, trusting the fleet CA when given.
pub fn http_client(ca_pem: Option<&str>) -> reqwest::Client {
    install_crypto();
    let mut builder = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .no_proxy();
    if let Some(ca) = ca_pem {
        let config =
            muster_shared::tls::client_config(ca, None, muster_shared::tls::PeerPolicy::Collector)
                .unwrap();
        builder = builder.tls_backend_preconfigured((*config).clone());
    } else {
        let config =
            muster_shared::tls::pinned_client_config("00".repeat(32).parse().unwrap()).unwrap();
        builder = builder.tls_backend_preconfigured((*config).clone());
    }
    builder.build().unwrap()
}

fn install_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A runtime for tests that call async clients from sync test functions.
pub fn runtime() -> Arc<tokio::runtime::Runtime> {
    Arc::new(
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap(),
    )
}

/// A collector started with `serve` in a temporary folder.
#[derive(Debug)]
pub struct Collector {
    /// The temporary folder (config, logs, and the data dir unless moved).
    pub dir: tempfile::TempDir,
    /// The data dir (store and PKI).
    pub data_dir: PathBuf,
    /// How many times `serve` was started, naming each run's log.
    runs: usize,
    /// The running process.
    pub proc: Proc,
    /// API base URL.
    pub url: String,
    /// An admin token.
    pub admin_token: String,
    /// The fleet CA (PEM).
    pub ca_pem: String,
    /// A client for the API.
    pub client: reqwest::Client,
    /// Runtime driving the client.
    pub rt: Arc<tokio::runtime::Runtime>,
}

/// Options for [`Collector::start`].
#[derive(Debug, Clone)]
pub struct CollectorOptions {
    /// Serve the API over TLS.
    pub tls: bool,
    /// Scrape interval.
    pub scrape_interval: &'static str,
}

impl Default for CollectorOptions {
    fn default() -> Self {
        Self {
            tls: true,
            scrape_interval: "1s",
        }
    }
}

/// More of `collector.toml` for [`Collector::start_with`].
#[derive(Debug, Clone, Default)]
pub struct CollectorConfig {
    /// The data dir; default `data` in the collector's temporary folder.
    pub data_dir: Option<PathBuf>,
    /// TOML sections appended to the file (`[storage]`, `[maintenance]`).
    pub sections: String,
}

impl Collector {
    /// `ca init`, an admin token, then `serve`; waits until live.
    pub fn start(options: CollectorOptions) -> Self {
        Self::start_with(options, &CollectorConfig::default())
    }

    /// [`Collector::start`] with a data dir elsewhere and more config.
    pub fn start_with(options: CollectorOptions, more: &CollectorConfig) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let config = dir.path().join("collector.toml");
        let data_dir = more
            .data_dir
            .clone()
            .unwrap_or_else(|| dir.path().join("data"));
        std::fs::write(
            &config,
            format!(
                "data_dir = {:?}\n[api]\nlisten = \"127.0.0.1:{port}\"\ntls = {}\n[scrape]\ninterval = \"{}\"\ntimeout = \"{}\"\n{}",
                data_dir.to_str().unwrap(),
                options.tls,
                options.scrape_interval,
                options.scrape_interval,
                more.sections
            ),
        )
        .unwrap();
        let out = collector_cli(&["ca", "init", "--config", config.to_str().unwrap()]);
        assert!(
            out.status.success(),
            "ca init: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let out = collector_cli(&[
            "token",
            "create",
            "--config",
            config.to_str().unwrap(),
            "--role",
            "admin",
            "--name",
            "test admin",
        ]);
        assert!(
            out.status.success(),
            "token create: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let admin_token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
        let ca_pem = std::fs::read_to_string(data_dir.join("pki/ca.crt")).unwrap();

        let proc = Proc::start(
            "collector",
            Command::new(bin("muster-collector")).args([
                "serve",
                "--config",
                config.to_str().unwrap(),
            ]),
            dir.path().join("collector.log"),
        );
        let scheme = if options.tls { "https" } else { "http" };
        let url = format!("{scheme}://127.0.0.1:{port}");
        let rt = runtime();
        let client = http_client(Some(&ca_pem));
        let collector = Self {
            dir,
            data_dir,
            runs: 1,
            proc,
            url,
            admin_token,
            ca_pem,
            client,
            rt,
        };
        wait_for("collector answers /health/live", || {
            collector
                .get("/health/live", None)
                .ok()
                .filter(|(s, _)| *s == 200)
        });
        collector
    }

    /// The config file's path.
    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("collector.toml")
    }

    /// Stops the collector (SIGTERM) and starts it again on the same data.
    pub fn restart(&mut self) {
        let status = self.proc.stop();
        assert!(
            status.success(),
            "collector exits 0 on SIGTERM:\n{}",
            self.proc.log()
        );
        self.start_again();
    }

    /// SIGKILL: no shutdown, no flush; waits until it is gone.
    pub fn kill(&mut self) {
        self.proc.signal(Signal::SIGKILL);
        let pid = self.proc.pid();
        wait_for("the collector dies of SIGKILL", || {
            self.proc.exited().map(|_| ())
        });
        assert!(!pid_alive(pid), "collector {pid} is gone");
    }

    /// Starts `serve` again on the same config and data (after [`Collector::kill`]
    /// or an exit); each run logs to its own file. Waits until live.
    pub fn start_again(&mut self) {
        assert!(self.proc.exited().is_some(), "the collector still runs");
        self.runs += 1;
        let config = self.config_path();
        self.proc = Proc::start(
            "collector",
            Command::new(bin("muster-collector")).args([
                "serve",
                "--config",
                config.to_str().unwrap(),
            ]),
            self.dir.path().join(format!("collector-{}.log", self.runs)),
        );
        wait_for("restarted collector answers /health/live", || {
            self.get("/health/live", None)
                .ok()
                .filter(|(s, _)| *s == 200)
        });
    }

    /// The `/api/v1/query` answer to `promql` at `time_ms` (now without), as JSON;
    /// fails the test on any status but 200.
    pub fn query(&self, promql: &str, time_ms: Option<i64>) -> serde_json::Value {
        let mut path = format!("/api/v1/query?query={}", percent_encode(promql));
        if let Some(ms) = time_ms {
            path.push_str(&format!("&time={}.{:03}", ms / 1000, ms % 1000));
        }
        let (status, body) = self.get(&path, Some(&self.admin_token)).unwrap();
        assert_eq!(status, 200, "query {promql}: {body}");
        serde_json::from_str(&body).unwrap()
    }

    /// The value of an unlabelled metric of `/metrics` (`None` when absent).
    pub fn metric(&self, name: &str) -> Option<f64> {
        let (status, body) = self.get("/metrics", None).unwrap();
        assert_eq!(status, 200, "{body}");
        docker::samples(&body, name).first().map(|s| s.value)
    }

    /// One host of the hosts list; fails the test if it is not enrolled.
    pub fn host(&self, id: &str) -> serde_json::Value {
        self.hosts()
            .as_array()
            .unwrap()
            .iter()
            .find(|h| h["id"] == id)
            .cloned()
            .unwrap_or_else(|| panic!("{id} is enrolled"))
    }

    /// Enrolls `host` through the API as an agent would, with a fresh key,
    /// recording `listen_port` as its agent's port: the agent identity that a
    /// fake agent serves with.
    pub fn enroll_fake_host(&self, host: &str, listen_port: u16) -> FakeIdentity {
        use muster_shared::protocol::PROTOCOL_VERSION;
        use muster_shared::protocol::enroll::{EnrollRequest, EnrollResponse};
        use muster_shared::tls::{Role, generate_csr};

        let token = self.create_token(&["--enroll", "--host", host]);
        let csr = generate_csr(&Role::Agent("x".into())).unwrap();
        let body = serde_json::to_vec(&EnrollRequest {
            token,
            csr_pem: csr.csr_pem,
            listen_port,
            agent_version: "test".into(),
            protocol_version: PROTOCOL_VERSION,
        })
        .unwrap();
        let (status, text) = self
            .post("/api/v1/enroll", "application/json", body, None)
            .unwrap();
        assert_eq!(status, 200, "{text}");
        let answer: EnrollResponse = serde_json::from_str(&text).unwrap();
        FakeIdentity {
            host: answer.host_id,
            cert_pem: answer.cert_pem,
            key_pem: csr.key_pem,
            ca_pem: answer.ca_pem,
        }
    }

    /// GET `path` with an optional bearer token: (status, body).
    pub fn get(&self, path: &str, token: Option<&str>) -> Result<(u16, String), reqwest::Error> {
        self.rt.block_on(async {
            let mut request = self.client.get(format!("{}{path}", self.url));
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            let response = request.send().await?;
            let status = response.status().as_u16();
            Ok((status, response.text().await?))
        })
    }

    /// POST raw bytes to `path` with a content type and optional token.
    pub fn post(
        &self,
        path: &str,
        content_type: &str,
        body: Vec<u8>,
        token: Option<&str>,
    ) -> Result<(u16, String), reqwest::Error> {
        self.rt.block_on(async {
            let mut request = self
                .client
                .post(format!("{}{path}", self.url))
                .header("content-type", content_type)
                .body(body);
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            let response = request.send().await?;
            let status = response.status().as_u16();
            Ok((status, response.text().await?))
        })
    }

    /// Creates a token with the CLI (through the API, since the collector
    /// runs): `args` like `["--role", "viewer"]` or `["--enroll", "--host", "web1"]`.
    pub fn create_token(&self, args: &[&str]) -> String {
        let config = self.config_path();
        let mut all = vec!["token", "create", "--config", config.to_str().unwrap()];
        all.extend_from_slice(args);
        let out = run(Command::new(bin("muster-collector"))
            .args(&all)
            .env("MUSTER_TOKEN", &self.admin_token));
        assert!(
            out.status.success(),
            "token create {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    }

    /// A new agent folder with `config` appended to its config, enrolled here as
    /// `host` (not started).
    pub fn enroll_agent(&self, host: &str, config: &str) -> AgentDir {
        let token = self.create_token(&["--enroll", "--host", host]);
        let agent = AgentDir::new();
        agent.append_config(config);
        let out = agent.enroll(&self.url, &token);
        assert!(
            out.status.success(),
            "enroll {host}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        agent
    }

    /// The hosts list as JSON.
    pub fn hosts(&self) -> serde_json::Value {
        let (status, body) = self.get("/api/v1/hosts", Some(&self.admin_token)).unwrap();
        assert_eq!(status, 200, "{body}");
        serde_json::from_str(&body).unwrap()
    }
}

/// `text` as a URL query value: every byte but RFC 3986's unreserved ones escaped.
pub fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// An agent identity issued by [`Collector::enroll_fake_host`]; `Debug` leaves
/// the key out.
#[derive(Clone)]
pub struct FakeIdentity {
    /// The host id (`agent:<host>` in the certificate).
    pub host: String,
    /// The certificate.
    pub cert_pem: String,
    /// Its key.
    pub key_pem: String,
    /// The fleet CA.
    pub ca_pem: String,
}

impl std::fmt::Debug for FakeIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeIdentity")
            .field("host", &self.host)
            .field("key_pem", &"<redacted>")
            .finish_non_exhaustive()
    }
}

/// Runs `muster-collector ARGS` to completion.
pub fn collector_cli(args: &[&str]) -> Output {
    run(Command::new(bin("muster-collector")).args(args))
}

/// Runs `muster-agent ARGS` to completion.
pub fn agent_cli(args: &[&str]) -> Output {
    run(Command::new(bin("muster-agent")).args(args))
}

/// An agent folder with a config listening on a free loopback port.
#[derive(Debug)]
pub struct AgentDir {
    /// The folder.
    pub dir: tempfile::TempDir,
    /// Its listen port.
    pub port: u16,
}

impl AgentDir {
    /// Writes `agent.toml` (default TLS paths under `pki/`).
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        std::fs::write(
            dir.path().join("agent.toml"),
            format!("listen = \"127.0.0.1:{port}\"\ndata_dir = \"data\"\n"),
        )
        .unwrap();
        Self { dir, port }
    }

    /// The config file's path.
    pub fn config(&self) -> PathBuf {
        self.dir.path().join("agent.toml")
    }

    /// Appends TOML (sections such as `[sample]`) to the config.
    pub fn append_config(&self, text: &str) {
        let path = self.config();
        let mut config = std::fs::read_to_string(&path).unwrap();
        config.push('\n');
        config.push_str(text);
        std::fs::write(path, config).unwrap();
    }

    /// A client presenting the collector's certificate from `collector`'s
    /// PKI, expecting this agent as `agent:<host>`.
    pub fn collector_client(&self, collector: &Collector, host: &str) -> reqwest::Client {
        install_crypto();
        let pki = collector.data_dir.join("pki");
        let identity = muster_shared::tls::Identity::load(
            pki.join("collector.crt"),
            pki.join("collector.key"),
        )
        .unwrap();
        let config = muster_shared::tls::client_config(
            &collector.ca_pem,
            Some(identity),
            muster_shared::tls::PeerPolicy::Agent(host.to_owned()),
        )
        .unwrap();
        reqwest::Client::builder()
            .tls_backend_preconfigured((*config).clone())
            .timeout(Duration::from_secs(10))
            .no_proxy()
            .build()
            .unwrap()
    }

    /// `muster-agent enroll` against `collector_url`.
    pub fn enroll(&self, collector_url: &str, token: &str) -> Output {
        agent_cli(&[
            "enroll",
            "--collector",
            collector_url,
            "--token",
            token,
            "--config",
            self.config().to_str().unwrap(),
        ])
    }

    /// Starts `muster-agent run` and waits until it accepts connections.
    pub fn start(&self) -> Proc {
        let mut proc = Proc::start(
            "agent",
            Command::new(bin("muster-agent")).args([
                "run",
                "--config",
                self.config().to_str().unwrap(),
            ]),
            self.dir.path().join("agent.log"),
        );
        let port = self.port;
        wait_for("the agent listens", || {
            if let Some(status) = proc.exited() {
                panic!("the agent exited with {status}:\n{}", proc.log());
            }
            std::net::TcpStream::connect(("127.0.0.1", port)).ok()
        });
        proc
    }
}

impl Default for AgentDir {
    fn default() -> Self {
        Self::new()
    }
}

/// Whether tests that need an external tool must fail instead of skipping.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Finds an external tool on PATH; `None` means skip (but panics in CI).
pub fn require_tool(name: &str, why: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(name))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        assert!(
            !in_ci(),
            "{name} is required in CI ({why}) but is not installed"
        );
        eprintln!("SKIPPED: {name} is not installed ({why})");
    }
    found
}

/// Runs `promtool check metrics` on `text`: `None` when promtool is missing
/// (skip; panics in CI), else whether it passed and its report lines.
pub fn promtool_check_metrics(text: &str, why: &str) -> Option<(bool, Vec<String>)> {
    use std::io::Write;
    let promtool = require_tool("promtool", why)?;
    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let lines = report
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_owned)
        .collect();
    Some((out.status.success(), lines))
}
