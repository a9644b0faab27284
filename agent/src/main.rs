//! `muster-agent`: parses the command line, sets up telemetry and calls the
//! library. See `muster-agent --help`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use muster_agent::config::AgentSettings;
use muster_shared::telemetry::{self, LogFormat};
use tokio_util::sync::CancellationToken;

#[derive(Debug, Parser)]
#[command(name = "muster-agent", version = muster_shared::version::long_version(), about = "Muster's per-host agent")]
struct Cli {
    /// Log line format: human or json.
    #[arg(
        long,
        global = true,
        default_value = "human",
        env = "MUSTER_LOG_FORMAT"
    )]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the agent API over mutual TLS until SIGTERM or Ctrl-C.
    Run {
        /// The agent's config file.
        #[arg(long, env = "MUSTER_AGENT_CONFIG")]
        config: PathBuf,
    },
    /// Obtain this host's certificate from the collector with a one-time token.
    Enroll {
        /// The collector's API URL, e.g. https://collector.example:7070.
        #[arg(long, env = "MUSTER_COLLECTOR_URL")]
        collector: String,
        /// The token printed by `muster-collector token create --enroll`.
        #[arg(long, env = "MUSTER_ENROLL_TOKEN", hide_env_values = true)]
        token: String,
        /// The agent's config file (says where the certificate files go).
        #[arg(long, env = "MUSTER_AGENT_CONFIG")]
        config: PathBuf,
        /// Replace an existing identity.
        #[arg(long)]
        force: bool,
    },
    /// Back up, list, restore, verify and prune a local repository (no config file needed).
    Backup {
        #[command(subcommand)]
        command: muster_agent::backup_cli::BackupCommand,
    },
    /// Validate a config file; exits non-zero with the first error.
    CheckConfig {
        /// The agent's config file.
        #[arg(long, env = "MUSTER_AGENT_CONFIG")]
        config: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(err) = telemetry::init(cli.log_format, "info") {
        eprintln!("muster-agent: {err}");
        return ExitCode::from(2);
    }
    if let Command::Backup { command } = cli.command {
        // Synchronous, on its own threads: no async runtime.
        return match muster_agent::backup_cli::run(command) {
            Ok(code) => ExitCode::from(code),
            Err(err) => {
                eprintln!("muster-agent: {err:#}");
                ExitCode::FAILURE
            }
        };
    }
    match run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("muster-agent: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(command: Command) -> anyhow::Result<()> {
    muster_agent::memory::tune_allocator();
    // The agent is small: few workers, a capped blocking pool whose threads
    // outlive the sampling interval (so they are reused, not re-spawned).
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(4)
        .thread_keep_alive(std::time::Duration::from_secs(120))
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        match command {
            Command::Run { config } => {
                let settings = AgentSettings::load(&config)?;
                let shutdown = CancellationToken::new();
                let signals =
                    tokio::spawn(muster_shared::serve::cancel_on_signal(shutdown.clone()));
                let result = muster_agent::run::run(settings, shutdown.clone(), |_| {}).await;
                signals.abort();
                result
            }
            Command::Enroll {
                collector,
                token,
                config,
                force,
            } => {
                let settings = AgentSettings::load(&config)?;
                let enrolled =
                    muster_agent::enroll::enroll(&settings, &collector, &token, force).await?;
                println!(
                    "enrolled as {} (fleet CA {}); certificate in {}",
                    enrolled.host_id,
                    enrolled.ca_fingerprint,
                    settings.cert_path.display()
                );
                Ok(())
            }
            Command::Backup { .. } => unreachable!("handled before the runtime starts"),
            Command::CheckConfig { config } => {
                let settings = AgentSettings::load(&config)?;
                println!("{}: ok (listen {})", config.display(), settings.listen);
                Ok(())
            }
        }
    })
}
