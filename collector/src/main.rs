//! `muster-collector`: parses the command line, sets up telemetry and calls
//! the library. See `muster-collector --help`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};
use muster_collector::alert::rules::reload::RuleSource;
use muster_collector::alert_cli;
use muster_collector::api_client::ApiClient;
use muster_collector::backup_cli;
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
        /// Send every alert to this webhook (Alertmanager's webhook JSON); written into
        /// DIR/collector.toml so `serve` does the same.
        #[arg(long)]
        alert_webhook: Option<String>,
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
    /// List alerts (firing, pending, recently resolved) or search their history; `alerts ack`
    /// acknowledges one. Talks to the running collector's API.
    Alerts {
        #[command(flatten)]
        client: ClientArgs,
        /// Only these states: firing, pending, resolved (comma-separated).
        #[arg(long, conflicts_with = "history")]
        state: Option<String>,
        /// Only alerts matching these matchers, e.g. '{host="web1"}'.
        #[arg(long)]
        filter: Option<String>,
        /// Search ended episodes instead of the current alerts.
        #[arg(long)]
        history: bool,
        /// With --history: text to find in labels and annotations.
        #[arg(long, requires = "history")]
        search: Option<String>,
        /// Print the API's JSON.
        #[arg(long)]
        json: bool,
        #[command(subcommand)]
        command: Option<AlertsCommand>,
    },
    /// A host's backups: list sets and snapshots, run, restore, history. Talks to the
    /// running collector's API.
    Backup {
        #[command(flatten)]
        client: ClientArgs,
        #[command(subcommand)]
        command: backup_cli::BackupCommand,
    },
    /// Silence alerts by label matchers for a while.
    Silence {
        #[command(subcommand)]
        command: SilenceCommand,
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

/// How a CLI command reaches the running collector.
#[derive(Debug, Args)]
struct ClientArgs {
    #[command(flatten)]
    target: Target,
    /// File holding an API token (else MUSTER_TOKEN, else DATA_DIR/admin.token as dev mode
    /// writes it).
    #[arg(long)]
    api_token_file: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum AlertsCommand {
    /// Acknowledge a listed alert: it is not escalated, nor repeated while acknowledged.
    Ack {
        /// The alert's fingerprint (first column of `alerts`).
        fingerprint: String,
        /// What is being done about it.
        #[arg(long, default_value = "")]
        comment: String,
        /// Lapse after this long (e.g. 2h) instead of when the alert resolves.
        #[arg(long)]
        expires_in: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
enum SilenceCommand {
    /// Create a silence; prints its id.
    Add {
        #[command(flatten)]
        client: ClientArgs,
        /// A matcher, name="value" (=, !=, =~, !~); repeat for more.
        #[arg(long = "matcher", short = 'm', required = true)]
        matchers: Vec<String>,
        /// How long it lasts.
        #[arg(long, default_value = "2h")]
        duration: String,
        /// Why.
        #[arg(long, short = 'c')]
        comment: String,
        /// Who (default: the API token's name).
        #[arg(long)]
        author: Option<String>,
    },
    /// List silences.
    List {
        #[command(flatten)]
        client: ClientArgs,
        /// Only these states: active, pending, expired (comma-separated).
        #[arg(long)]
        state: Option<String>,
        /// Print the API's JSON.
        #[arg(long)]
        json: bool,
    },
    /// End a silence now.
    Expire {
        #[command(flatten)]
        client: ClientArgs,
        /// The silence's id.
        id: String,
    },
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
            Command::Dev {
                data_dir,
                listen,
                alert_webhook,
            } => {
                let options = muster_collector::dev::DevOptions {
                    data_dir,
                    listen,
                    log_format: cli.log_format,
                    alert_webhook,
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
            Command::Alerts {
                client,
                state,
                filter,
                history,
                search,
                json,
                command,
            } => {
                let api = api_client(&client)?;
                let text = match command {
                    Some(AlertsCommand::Ack {
                        fingerprint,
                        comment,
                        expires_in,
                    }) => {
                        alert_cli::acknowledge(&api, &fingerprint, &comment, expires_in.as_deref())
                            .await?
                    }
                    None => {
                        let request = alert_cli::AlertsRequest {
                            state,
                            filter,
                            history,
                            search,
                            json,
                        };
                        alert_cli::alerts(&api, &request).await?
                    }
                };
                println!("{text}");
                Ok(())
            }
            Command::Backup { client, command } => {
                let text = backup_cli::execute(&api_client(&client)?, command).await?;
                println!("{text}");
                Ok(())
            }
            Command::Silence { command } => {
                let text = match command {
                    SilenceCommand::Add {
                        client,
                        matchers,
                        duration,
                        comment,
                        author,
                    } => {
                        let request = alert_cli::SilenceRequest {
                            matchers,
                            duration,
                            comment,
                            author,
                        };
                        alert_cli::silence_add(&api_client(&client)?, &request).await?
                    }
                    SilenceCommand::List {
                        client,
                        state,
                        json,
                    } => {
                        alert_cli::silence_list(&api_client(&client)?, state.as_deref(), json)
                            .await?
                    }
                    SilenceCommand::Expire { client, id } => {
                        alert_cli::silence_expire(&api_client(&client)?, &id).await?
                    }
                };
                println!("{text}");
                Ok(())
            }
            Command::CheckConfig { config } => {
                let settings = CollectorSettings::load(&config)?;
                // The rule files too: `serve` refuses to start on a malformed one.
                let source = RuleSource::new(&settings.alerting.rules(), &config);
                let rules = source
                    .load()
                    .map_err(|errors| anyhow::anyhow!("alert rules: {errors}"))?;
                println!(
                    "{}: ok (listen {}, {} alert rules)",
                    config.display(),
                    settings.listen,
                    rules.len()
                );
                Ok(())
            }
            Command::AgentRun { config } => {
                let settings = muster_agent::config::AgentSettings::load(&config)?;
                with_signals(|shutdown| muster_agent::run::run(settings, shutdown, |_| {})).await
            }
        }
    })
}

/// A client for the running collector that `args` point at, with its token.
fn api_client(args: &ClientArgs) -> anyhow::Result<ApiClient> {
    let settings = commands::locate_settings(
        args.target.config.as_deref(),
        args.target.data_dir.as_deref(),
    )?;
    let token = match commands::admin_token(args.api_token_file.as_ref())? {
        Some(token) => token,
        None => {
            let dev_token = settings.data_dir.join("admin.token");
            std::fs::read_to_string(&dev_token)
                .map(|t| t.trim().to_owned())
                .with_context(|| {
                    format!(
                        "no API token: set MUSTER_TOKEN or --api-token-file ({} does not exist)",
                        dev_token.display()
                    )
                })?
        }
    };
    ApiClient::new(&settings, &token)
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
