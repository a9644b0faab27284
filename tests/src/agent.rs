//! An agent's folder: config, enrollment and the running process.

use super::*;

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
