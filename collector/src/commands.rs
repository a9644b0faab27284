//! One-shot CLI commands: `ca init` and `token create`.
//!
//! `token create` writes to the store directly when no collector runs. While
//! one runs, it holds the store's lock, so the command goes through the
//! running collector's API instead, with an admin token from `MUSTER_TOKEN`
//! or `--api-token-file`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use muster_shared::store::StoreError;

use crate::api::tokens::{CreatedApiToken, CreatedEnrollToken};
use crate::api_client::ApiClient;
use crate::config::{CollectorSettings, PkiPaths};
use crate::pki::{self, Pki};
use crate::tokens::{ApiRole, TokenStore};

/// Settings from `--config FILE`, or `--data-dir DIR` (its `collector.toml`
/// when there is one, else the defaults on that folder).
///
/// # Errors
/// Config errors, or neither option given.
pub fn locate_settings(
    config: Option<&Path>,
    data_dir: Option<&Path>,
) -> anyhow::Result<CollectorSettings> {
    match (config, data_dir) {
        (Some(config), _) => Ok(CollectorSettings::load(config)?),
        (None, Some(dir)) => {
            let file = dir.join("collector.toml");
            if file.exists() {
                Ok(CollectorSettings::load(&file)?)
            } else {
                let raw = muster_shared::config::parse("", &file)?;
                let mut settings = CollectorSettings::resolve(&file, raw)?;
                settings.data_dir = dir.to_owned();
                settings.pki = PkiPaths::under(dir);
                Ok(settings)
            }
        }
        (None, None) => bail!("say which collector: --config FILE or --data-dir DIR"),
    }
}

/// `ca init`: creates the fleet CA and the collector's certificate.
///
/// # Errors
/// An existing CA, or a write failure (nothing is left half-written).
pub fn ca_init(settings: &CollectorSettings, sans: &[String]) -> anyhow::Result<String> {
    let fingerprint = pki::init(&settings.pki, sans)?;
    Ok(format!(
        "created the fleet CA in {}\nCA fingerprint (sha256): {fingerprint}",
        settings
            .pki
            .ca_cert
            .parent()
            .unwrap_or_else(|| Path::new("."))
            .display()
    ))
}

/// What `token create` should make.
#[derive(Debug, Clone)]
pub enum TokenRequest {
    /// An API token.
    Api {
        /// Its role.
        role: ApiRole,
        /// Its label.
        name: String,
    },
    /// A one-time enrollment token.
    Enroll {
        /// The host it enrolls.
        host: String,
        /// How long it is valid.
        ttl: Duration,
    },
}

/// `token create`: returns the token text, to be printed once.
///
/// # Errors
/// Store, PKI or API failures, with what to do about a running collector.
pub async fn token_create(
    settings: &CollectorSettings,
    request: TokenRequest,
    api_token: Option<String>,
) -> anyhow::Result<String> {
    // Read the CA first: a command that fails must not leave a new store behind.
    let ca_fingerprint = match &request {
        TokenRequest::Enroll { .. } => Some(Pki::load(&settings.pki)?.ca_fingerprint()),
        TokenRequest::Api { .. } => None,
    };
    let store = {
        let path = settings.store_path();
        tokio::task::spawn_blocking(move || {
            muster_shared::store::Store::open(
                &path,
                muster_shared::store::StoreOptions::collector(),
            )
        })
        .await
        .context("store open task failed")?
    };
    match store {
        Ok(store) => tokio::task::spawn_blocking(move || -> anyhow::Result<String> {
            let tokens = TokenStore::open(&store)?;
            let now = crate::unix_ms();
            let text = match request {
                TokenRequest::Api { role, name } => {
                    tokens.create_api(role, &name, now)?.expose().to_owned()
                }
                TokenRequest::Enroll { host, ttl } => {
                    let ca = ca_fingerprint.context("the CA fingerprint is read above")?;
                    tokens.create_enroll(&host, ttl, ca, now)?.expose()
                }
            };
            store.flush()?;
            Ok(text)
        })
        .await
        .context("token task failed")?,
        Err(StoreError::Locked { .. }) => {
            let Some(api_token) = api_token else {
                bail!(
                    "the collector is running and holds its store; pass an admin token in MUSTER_TOKEN \
                     or --api-token-file to create this token through its API"
                );
            };
            create_through_api(settings, request, &api_token).await
        }
        Err(err) => Err(err).with_context(|| {
            format!(
                "cannot open the store in {}",
                settings.store_path().display()
            )
        }),
    }
}

async fn create_through_api(
    settings: &CollectorSettings,
    request: TokenRequest,
    api_token: &str,
) -> anyhow::Result<String> {
    let client = ApiClient::new(settings, api_token)?;
    Ok(match request {
        TokenRequest::Api { role, name } => {
            let body = serde_json::json!({ "role": role, "name": name });
            client
                .post::<_, CreatedApiToken>("/api/v1/tokens", &body)
                .await?
                .token
        }
        TokenRequest::Enroll { host, ttl } => {
            let body = serde_json::json!({
                "host": host,
                "ttl": humantime::format_duration(ttl).to_string(),
            });
            client
                .post::<_, CreatedEnrollToken>("/api/v1/enroll-tokens", &body)
                .await?
                .token
        }
    })
}

/// Reads an admin token from `MUSTER_TOKEN` or a file.
///
/// # Errors
/// The file can't be read.
pub fn admin_token(file: Option<&PathBuf>) -> anyhow::Result<Option<String>> {
    if let Some(file) = file {
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("cannot read {}", file.display()))?;
        return Ok(Some(text.trim().to_owned()));
    }
    Ok(std::env::var("MUSTER_TOKEN")
        .ok()
        .filter(|t| !t.trim().is_empty()))
}
