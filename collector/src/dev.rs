//! `muster-collector dev`: a collector and a local agent on loopback, with
//! generated certificates and embedded storage, in one command.
//!
//! First start: everything is prepared in a temporary folder beside the target
//! (fleet CA, collector and agent certificates, an admin token, the agent
//! enrolled at a free loopback port, `collector.toml` and `agent.toml`) and
//! renamed into place at the end, so a failed start writes nothing. Later
//! starts reuse the folder as it is. `muster-collector serve --config
//! DIR/collector.toml` and `muster-agent run --config DIR/agent.toml`
//! reproduce the same setup as two processes.
//!
//! The agent runs as a child process executing exactly `muster-agent run`:
//! the `muster-agent` binary beside this one when present, otherwise this
//! binary's hidden `agent-run` subcommand (`cargo run --bin muster-collector`
//! builds only this package). The child gets SIGTERM if this process dies
//! (PR_SET_PDEATHSIG) and on shutdown; it is restarted with backoff if it
//! exits on its own.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use muster_shared::files::write_private;
use muster_shared::telemetry::LogFormat;
use muster_shared::tls::{Fingerprint, Role};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::process::{Child, Command};
use tokio_util::sync::CancellationToken;

use crate::config::{CollectorSettings, PkiPaths};
use crate::hosts::{HostRecord, HostRegistry};
use crate::pki::{self, Pki};
use crate::tokens::{ApiRole, TokenStore};

/// How long the agent gets to stop after SIGTERM before SIGKILL.
const AGENT_STOP_GRACE: Duration = Duration::from_secs(10);
/// How long the collector waits for the dev agent to listen.
const AGENT_START_WAIT: Duration = Duration::from_secs(10);
/// Lifetime of the dev agent's certificate.
const DEV_AGENT_VALIDITY: Duration = Duration::from_secs(365 * 24 * 3600);

/// Options of `muster-collector dev`.
#[derive(Debug, Clone)]
pub struct DevOptions {
    /// The dev folder (default `./muster-dev`).
    pub data_dir: PathBuf,
    /// API address; `None` keeps what the folder's config says
    /// (`127.0.0.1:7070` on first start).
    pub listen: Option<SocketAddr>,
    /// Log format handed to the agent child.
    pub log_format: LogFormat,
    /// A generic webhook that gets every alert, written into `DIR/collector.toml` (so
    /// `serve` reproduces it); replaces one an earlier `--alert-webhook` wrote.
    pub alert_webhook: Option<String>,
}

/// The files of a dev folder.
#[derive(Debug, Clone)]
pub struct DevLayout {
    /// The folder.
    pub dir: PathBuf,
}

impl DevLayout {
    /// `DIR/collector.toml`; its presence marks a prepared folder.
    pub fn collector_config(&self) -> PathBuf {
        self.dir.join("collector.toml")
    }
    /// `DIR/agent.toml`.
    pub fn agent_config(&self) -> PathBuf {
        self.dir.join("agent.toml")
    }
    /// `DIR/admin.token` (mode 0600).
    pub fn admin_token(&self) -> PathBuf {
        self.dir.join("admin.token")
    }
}

/// Runs dev mode until `shutdown` is cancelled.
///
/// # Errors
/// Preparation failures (nothing written), or the collector failing to start.
pub async fn run(options: DevOptions, shutdown: CancellationToken) -> anyhow::Result<()> {
    let dir = std::path::absolute(&options.data_dir)
        .with_context(|| format!("cannot resolve {}", options.data_dir.display()))?;
    let layout = DevLayout { dir };
    if layout.collector_config().exists() {
        tracing::info!(dir = %layout.dir.display(), "reusing dev folder");
    } else {
        let listen = options
            .listen
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 7070)));
        let dir = layout.dir.clone();
        tokio::task::spawn_blocking(move || prepare(&dir, listen))
            .await
            .context("dev preparation task failed")??;
        tracing::info!(dir = %layout.dir.display(), "dev folder created");
    }

    if let Some(url) = &options.alert_webhook {
        write_alert_webhook(&layout.collector_config(), url)?;
        tracing::info!(url = %redact_url(url), "every alert goes to the webhook");
    }
    let mut settings = CollectorSettings::load(&layout.collector_config())?;
    if let Some(listen) = options.listen {
        settings.listen = listen;
    }
    let agent = agent_command(&layout, options.log_format)?;
    let agent_addr = muster_agent::config::AgentSettings::load(&layout.agent_config())?.listen;
    let token_path = layout.admin_token();

    // Both futures run on this (the main) thread: PR_SET_PDEATHSIG fires when
    // the *thread* that spawned the child ends, and the main thread lives as
    // long as the process.
    let collector = async {
        // Start pulling once the agent listens, so the first round finds it up.
        wait_for_listener(agent_addr, &shutdown).await;
        let result = crate::server::serve(settings, shutdown.clone(), |started| {
            print_banner(&started.url, &token_path);
        })
        .await;
        shutdown.cancel();
        result
    };
    let (result, ()) = tokio::join!(collector, supervise_agent(agent, shutdown.clone()));
    result
}

/// Waits until `addr` accepts TCP connections, at most [`AGENT_START_WAIT`].
async fn wait_for_listener(addr: SocketAddr, shutdown: &CancellationToken) {
    let deadline = tokio::time::Instant::now() + AGENT_START_WAIT;
    while tokio::time::Instant::now() < deadline && !shutdown.is_cancelled() {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tracing::warn!(%addr, "the dev agent is not listening yet; starting the collector anyway");
}

fn print_banner(url: &str, token_path: &Path) {
    println!("Muster dev mode is running.");
    println!("  API:          {url}");
    println!("  admin token:  {}", token_path.display());
    println!(
        "  try:          curl -H \"Authorization: Bearer $(cat {})\" {url}/api/v1/hosts",
        token_path.display()
    );
    println!("  stop:         Ctrl-C");
}

/// Builds the dev folder in a temporary sibling and renames it into place.
fn prepare(dir: &Path, listen: SocketAddr) -> anyhow::Result<()> {
    if dir.exists() {
        let empty = std::fs::read_dir(dir)
            .with_context(|| format!("cannot read {}", dir.display()))?
            .next()
            .is_none();
        if !empty {
            bail!(
                "{} exists but holds no collector.toml; it is not a Muster dev folder (choose another --data-dir)",
                dir.display()
            );
        }
    }
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "muster-dev".to_owned());
    let staging = dir.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    let result = fill(&staging, listen).and_then(|()| {
        if dir.exists() {
            std::fs::remove_dir(dir)
                .with_context(|| format!("cannot replace empty {}", dir.display()))?;
        }
        std::fs::rename(&staging, dir)
            .with_context(|| format!("cannot move the dev folder to {}", dir.display()))
    });
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&staging);
    }
    result
}

fn fill(dir: &Path, listen: SocketAddr) -> anyhow::Result<()> {
    muster_shared::files::create_private_dir(dir)
        .with_context(|| format!("cannot create {}", dir.display()))?;
    let paths = PkiPaths::under(dir);
    pki::init(&paths, &[])?;
    let pki = Pki::load(&paths)?;

    let host = pki::local_hostname();
    let agent = pki
        .ca
        .issue(
            &Role::Agent(host.clone()),
            &["127.0.0.1".to_owned(), "localhost".to_owned()],
            DEV_AGENT_VALIDITY,
        )
        .context("cannot issue the dev agent's certificate")?;
    let pki_dir = dir.join("pki");
    write_private(&pki_dir.join("agent.key"), agent.key_pem.as_bytes())?;
    write_private(&pki_dir.join("agent.crt"), agent.cert_pem.as_bytes())?;

    let agent_port = free_loopback_port()?;
    let agent_fingerprint = muster_shared::tls::parse_certs(&agent.cert_pem)?
        .first()
        .map(|der| Fingerprint::of_der(der.as_ref()).to_string())
        .unwrap_or_default();
    {
        let store = muster_shared::store::Store::open(
            &dir.join("store"),
            muster_shared::store::StoreOptions::collector(),
        )?;
        let tokens = TokenStore::open(&store)?;
        let admin = tokens.create_api(ApiRole::Admin, "dev admin", crate::unix_ms())?;
        write_private(
            &dir.join("admin.token"),
            format!("{}\n", admin.expose()).as_bytes(),
        )?;
        let hosts = HostRegistry::open(&store)?;
        hosts.record(&HostRecord {
            id: host,
            address: SocketAddr::from(([127, 0, 0, 1], agent_port)),
            cert_fingerprint: agent_fingerprint,
            enrolled_at_unix_ms: crate::unix_ms(),
        })?;
        store.flush()?;
    }

    let agent_toml = format!(
        "# Written by `muster-collector dev`; run it alone with\n\
         # muster-agent run --config {agent}\n\
         listen = \"127.0.0.1:{agent_port}\"\n\
         data_dir = \"agent\"\n\n\
         [tls]\nca = \"pki/ca.crt\"\ncert = \"pki/agent.crt\"\nkey = \"pki/agent.key\"\n",
        agent = "agent.toml"
    );
    write_private(&dir.join("agent.toml"), agent_toml.as_bytes())?;
    let collector_toml = format!(
        "# Written by `muster-collector dev`; run it alone with\n\
         # muster-collector serve --config collector.toml\n\
         data_dir = \".\"\n\n\
         [api]\nlisten = \"{listen}\"\n# Plain HTTP: loopback only.\ntls = false\n\n\
         [scrape]\ninterval = \"10s\"\ntimeout = \"5s\"\n"
    );
    // Last: its presence marks the folder as prepared.
    write_private(&dir.join("collector.toml"), collector_toml.as_bytes())?;
    Ok(())
}

/// The lines that open and close the block `--alert-webhook` writes.
const WEBHOOK_BEGIN: &str = "# BEGIN muster-collector dev --alert-webhook";
const WEBHOOK_END: &str = "# END muster-collector dev --alert-webhook";

/// Writes (or replaces) the block sending every alert to `url` at the end of the dev
/// folder's `collector.toml`: a webhook receiver in Alertmanager's v4 shape and a route
/// with short timings, so a first alert arrives within seconds of firing.
fn write_alert_webhook(config: &Path, url: &str) -> anyhow::Result<()> {
    let parsed =
        url::Url::parse(url).with_context(|| format!("--alert-webhook {url:?} is not a URL"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        bail!(
            "--alert-webhook must be an http or https URL, not {:?}",
            parsed.scheme()
        );
    }
    let text = std::fs::read_to_string(config)
        .with_context(|| format!("cannot read {}", config.display()))?;
    let mut kept = String::with_capacity(text.len());
    let mut inside = false;
    for line in text.lines() {
        match line.trim() {
            WEBHOOK_BEGIN => inside = true,
            WEBHOOK_END => inside = false,
            _ if !inside => {
                kept.push_str(line);
                kept.push('\n');
            }
            _ => {}
        }
    }
    let block = format!(
        "{WEBHOOK_BEGIN}\n\
         # Every alert to one webhook (Alertmanager's webhook v4 JSON). Run dev again with\n\
         # another --alert-webhook to replace it, or edit [alerting] below.\n\
         [[alerting.receivers]]\n\
         name = \"dev-webhook\"\n\
         kind = \"webhook\"\n\
         url = {url:?}\n\
         \n\
         [alerting.route]\n\
         receiver = \"dev-webhook\"\n\
         group_by = [\"alertname\", \"host\"]\n\
         group_wait = \"5s\"\n\
         group_interval = \"1m\"\n\
         repeat_interval = \"4h\"\n\
         {WEBHOOK_END}\n"
    );
    let trimmed = kept.trim_end();
    let updated = format!("{trimmed}\n\n{block}");
    // The file must still load: a bad URL would otherwise stop `serve` later.
    let raw: crate::config::CollectorConfig = muster_shared::config::parse(&updated, config)?;
    CollectorSettings::resolve(config, raw)?;
    write_private(config, updated.as_bytes())?;
    Ok(())
}

/// `url` without its path and query (a webhook's secret usually lives there).
fn redact_url(url: &str) -> String {
    url::Url::parse(url).map_or_else(
        |_| "<unparsable>".to_owned(),
        |u| format!("{}://{}/…", u.scheme(), u.host_str().unwrap_or("")),
    )
}

fn free_loopback_port() -> anyhow::Result<u16> {
    let listener =
        std::net::TcpListener::bind("127.0.0.1:0").context("cannot find a free loopback port")?;
    Ok(listener.local_addr().context("no local address")?.port())
}

/// The command that runs exactly `muster-agent run --config DIR/agent.toml`.
fn agent_command(layout: &DevLayout, log_format: LogFormat) -> anyhow::Result<Command> {
    let exe = std::env::current_exe().context("cannot find this executable")?;
    let sibling = exe.with_file_name("muster-agent");
    let mut command = if sibling.is_file() {
        let mut c = Command::new(sibling);
        c.arg("run");
        c
    } else {
        let mut c = Command::new(exe);
        c.arg("agent-run");
        c
    };
    command
        .arg("--config")
        .arg(layout.agent_config())
        .env(
            "MUSTER_LOG_FORMAT",
            match log_format {
                LogFormat::Human => "human",
                LogFormat::Json => "json",
            },
        )
        // systemd readiness is the parent's to report.
        .env_remove("NOTIFY_SOCKET")
        .kill_on_drop(true);
    die_with_parent(&mut command);
    Ok(command)
}

/// Asks the kernel to SIGTERM the child when this process's spawning thread
/// ends, so the agent never outlives dev mode, even after a SIGKILL.
#[allow(unsafe_code)]
fn die_with_parent(command: &mut Command) {
    let parent = i32::try_from(std::process::id()).unwrap_or(-1);
    // SAFETY: the closure runs in the forked child before exec. It calls only
    // async-signal-safe functions (prctl, getppid) and does not allocate:
    // errors are raw OS error codes.
    unsafe {
        command.pre_exec(move || {
            nix::sys::prctl::set_pdeathsig(Some(Signal::SIGTERM))
                .map_err(|errno| std::io::Error::from_raw_os_error(errno as i32))?;
            // The parent may have died between fork and prctl.
            if nix::unistd::getppid().as_raw() != parent {
                return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
            }
            Ok(())
        });
    }
}

/// Keeps the agent child running until `shutdown`, then stops it.
async fn supervise_agent(mut command: Command, shutdown: CancellationToken) {
    let mut backoff = Duration::from_secs(1);
    loop {
        if shutdown.is_cancelled() {
            return;
        }
        let mut child = match command.spawn() {
            Ok(child) => child,
            Err(err) => {
                tracing::error!(error = %err, "cannot start the dev agent");
                return;
            }
        };
        let pid = child.id();
        tracing::info!(pid = ?pid, "dev agent started");
        let started = tokio::time::Instant::now();
        tokio::select! {
            status = child.wait() => {
                if started.elapsed() > Duration::from_secs(60) {
                    backoff = Duration::from_secs(1);
                }
                tracing::warn!(status = ?status.ok(), retry_in = ?backoff, "dev agent exited; restarting");
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(30));
            }
            () = shutdown.cancelled() => {
                stop_child(&mut child).await;
                return;
            }
        }
    }
}

/// SIGTERM, wait up to the grace period, then SIGKILL.
async fn stop_child(child: &mut Child) {
    if let Some(pid) = child.id().and_then(|id| i32::try_from(id).ok()) {
        let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
    }
    match tokio::time::timeout(AGENT_STOP_GRACE, child.wait()).await {
        Ok(status) => tracing::info!(status = ?status.ok(), "dev agent stopped"),
        Err(_) => {
            tracing::warn!("dev agent ignored SIGTERM; killing it");
            let _ = child.kill().await;
        }
    }
}
