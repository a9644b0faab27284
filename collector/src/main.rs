//! `muster-collector`: parses the command line, sets up telemetry and calls
//! the library. See `muster-collector --help`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};
use muster_collector::commands::{self, TokenRequest};
use muster_collector::config::CollectorSettings;
use muster_collector::tokens::ApiRole;
use muster_shared::telemetry::{self, LogFormat};
use tokio_util::sync::CancellationToken;

#[derive(Debug, Parser)]
#[command(name = "muster-collector", version = muster_shared::version::long_version(), about = "Muster's collector")]
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
    /// Run the collector until SIGTERM or Ctrl-C.
    Serve {
        /// The collector's config file.
        #[arg(long, env = "MUSTER_COLLECTOR_CONFIG")]
        config: PathBuf,
    },
    /// Run a collector and a local agent with generated certificates.
    Dev {
        /// Folder for everything dev mode creates.
        #[arg(long, default_value = "./muster-dev")]
        data_dir: PathBuf,
        /// API address (plain HTTP, loopback). Default: the folder's config, first 127.0.0.1:7070.
        #[arg(long)]
        listen: Option<SocketAddr>,
    },
    /// Manage the fleet's certificate authority.
    Ca {
        #[command(subcommand)]
        command: CaCommand,
    },
    /// Manage API and enrollment tokens.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Validate a config file; exits non-zero with the first error.
    CheckConfig {
        /// The collector's config file.
        #[arg(long, env = "MUSTER_COLLECTOR_CONFIG")]
        config: PathBuf,
    },
    /// Runs `muster-agent run` from this binary (used by `dev`).
    #[command(hide = true)]
    AgentRun {
        /// The agent's config file.
        #[arg(long)]
        config: PathBuf,
    },
}

#[derive(Debug, Args)]
struct Target {
    /// The collector's config file.
    #[arg(long, env = "MUSTER_COLLECTOR_CONFIG", conflicts_with = "data_dir")]
    config: Option<PathBuf>,
    /// The collector's data folder (uses its collector.toml when present).
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum CaCommand {
    /// Create the fleet CA and the collector's certificate (once).
    Init {
        #[command(flatten)]
        target: Target,
        /// Extra DNS names or IPs for the collector's certificate.
        #[arg(long = "san")]
        sans: Vec<String>,
    },
}

#[derive(Debug, Subcommand)]
enum TokenCommand {
    /// Create a token and print it once.
    Create {
        #[command(flatten)]
        target: Target,
        /// Role of an API token: viewer, operator or admin.
        #[arg(long, required_unless_present = "enroll", conflicts_with = "enroll")]
        role: Option<ApiRole>,
        /// A label for the API token.
        #[arg(long, default_value = "")]
        name: String,
        /// Make a one-time enrollment token instead.
        #[arg(long, requires = "host")]
        enroll: bool,
        /// The host the enrollment token is for.
        #[arg(long)]
        host: Option<String>,
        /// How long the enrollment token is valid.
        #[arg(long, default_value = "1h")]
        ttl: muster_shared::config::Duration,
        /// Admin token file, used when the collector is running.
        #[arg(long)]
        api_token_file: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(err) = telemetry::init(cli.log_format, "info") {
        eprintln!("muster-collector: {err}");
        return ExitCode::from(2);
    }
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("muster-collector: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        match cli.command {
            Command::Serve { config } => {
                let settings = CollectorSettings::load(&config)?;
                with_signals(|shutdown| muster_collector::server::serve(settings, shutdown, |_| {}))
                    .await
            }
            Command::Dev { data_dir, listen } => {
                let options = muster_collector::dev::DevOptions {
                    data_dir,
                    listen,
                    log_format: cli.log_format,
                };
                with_signals(|shutdown| muster_collector::dev::run(options, shutdown)).await
            }
            Command::Ca {
                command: CaCommand::Init { target, sans },
            } => {
                let settings = commands::locate_settings(
                    target.config.as_deref(),
                    target.data_dir.as_deref(),
                )?;
                println!("{}", commands::ca_init(&settings, &sans)?);
                Ok(())
            }
            Command::Token {
                command:
                    TokenCommand::Create {
                        target,
                        role,
                        name,
                        enroll,
                        host,
                        ttl,
                        api_token_file,
                    },
            } => {
                let settings = commands::locate_settings(
                    target.config.as_deref(),
                    target.data_dir.as_deref(),
                )?;
                let request = match (enroll, role, host) {
                    (true, _, Some(host)) => TokenRequest::Enroll {
                        host,
                        ttl: ttl.get(),
                    },
                    (false, Some(role), _) => TokenRequest::Api { role, name },
                    _ => bail!("say --role ROLE, or --enroll --host NAME"),
                };
                let api_token = commands::admin_token(api_token_file.as_ref())?;
                println!(
                    "{}",
                    commands::token_create(&settings, request, api_token).await?
                );
                Ok(())
            }
            Command::CheckConfig { config } => {
                let settings = CollectorSettings::load(&config)?;
                println!("{}: ok (listen {})", config.display(), settings.listen);
                Ok(())
            }
            Command::AgentRun { config } => {
                let settings = muster_agent::config::AgentSettings::load(&config)?;
                with_signals(|shutdown| muster_agent::run::run(settings, shutdown, |_| {})).await
            }
        }
    })
}

/// Runs `task` with a token cancelled on SIGTERM or Ctrl-C.
async fn with_signals<F, Fut>(task: F) -> anyhow::Result<()>
where
    F: FnOnce(CancellationToken) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let shutdown = CancellationToken::new();
    let signals = tokio::spawn(muster_shared::serve::cancel_on_signal(shutdown.clone()));
    let result = task(shutdown).await;
    signals.abort();
    result
}
