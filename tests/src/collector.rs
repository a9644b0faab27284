//! A collector started with `serve` in a temporary folder, and what tests ask of it.

use super::*;

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
