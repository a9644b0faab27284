//! API tokens with roles, and one-time enrollment tokens.
//!
//! Both are stored hashed (see `muster_shared::token`): the collector can
//! check a token but never show one again. API tokens are also cached in
//! memory, so authenticating a request does no I/O; the cache is filled at
//! open and updated by `create_api`, the only way tokens are added while the
//! collector runs.
//!
//! Enrollment tokens are consumed with a compare-and-swap, so two agents
//! racing with one token get one certificate between them.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::RwLock;
use std::time::Duration;

use muster_shared::store::{Record, Store, StoreError, Tree};
use muster_shared::tls::Fingerprint;
use muster_shared::token::{ApiToken, EnrollToken, TokenError, TokenHash};
use serde::{Deserialize, Serialize};

/// What an API token may do. Ordered: each role can do what the ones below it can.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApiRole {
    /// Read everything.
    Viewer,
    /// Also run jobs: backups, restores, deploys outside production.
    Operator,
    /// Also manage tokens, silences' owners, approvals and settings.
    Admin,
}

impl fmt::Display for ApiRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Viewer => "viewer",
            Self::Operator => "operator",
            Self::Admin => "admin",
        })
    }
}

impl FromStr for ApiRole {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "viewer" => Ok(Self::Viewer),
            "operator" => Ok(Self::Operator),
            "admin" => Ok(Self::Admin),
            other => Err(format!(
                "unknown role {other:?}: use viewer, operator or admin"
            )),
        }
    }
}

/// A stored API token (the key is the token's hash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiTokenRecord {
    /// What it may do.
    pub role: ApiRole,
    /// A label given at creation, for listings and the audit log.
    pub name: String,
    /// When it was made.
    pub created_at_unix_ms: u64,
}

impl Record for ApiTokenRecord {
    const SCHEMA: u8 = 1;
}

/// A stored enrollment token (the key is the hash of its secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrollTokenRecord {
    /// The host name the certificate will carry.
    pub host: String,
    /// When it was made.
    pub created_at_unix_ms: u64,
    /// After this it is refused.
    pub expires_at_unix_ms: u64,
    /// Set when a CSR was signed with it; it is refused from then on.
    pub used_at_unix_ms: Option<u64>,
}

impl Record for EnrollTokenRecord {
    const SCHEMA: u8 = 1;
}

/// The authenticated caller of an API request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The token's role.
    pub role: ApiRole,
    /// The token's name.
    pub name: String,
    /// A short non-secret id of the token, for logs.
    pub token_id: String,
}

impl Caller {
    /// Who acts, for silences and acknowledgements: the token's name, or its id when it
    /// has none.
    pub fn author(&self) -> String {
        if self.name.trim().is_empty() {
            format!("token {}", self.token_id)
        } else {
            self.name.clone()
        }
    }
}

/// Why an enrollment token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnrollRefusal {
    /// No such token.
    #[error("enrollment token not recognised")]
    Unknown,
    /// Past its expiry.
    #[error("enrollment token expired")]
    Expired,
    /// Already consumed.
    #[error("enrollment token already used")]
    Used,
}

/// Failures of the token store.
#[derive(Debug, thiserror::Error)]
pub enum TokenStoreError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A token could not be generated.
    #[error(transparent)]
    Token(#[from] TokenError),
    /// The input was refused.
    #[error("{0}")]
    Invalid(String),
}

/// API and enrollment tokens.
#[derive(Debug)]
pub struct TokenStore {
    store: Store,
    api: Tree<[u8; 32], ApiTokenRecord>,
    enroll: Tree<[u8; 32], EnrollTokenRecord>,
    cache: RwLock<HashMap<[u8; 32], ApiTokenRecord>>,
}

impl TokenStore {
    /// Opens the trees and loads the API token cache. Blocking.
    ///
    /// # Errors
    /// A store error naming the tree.
    pub fn open(store: &Store) -> Result<Self, TokenStoreError> {
        let api = store.tree::<[u8; 32], ApiTokenRecord>("api_tokens")?;
        let enroll = store.tree::<[u8; 32], EnrollTokenRecord>("enroll_tokens")?;
        let mut cache = HashMap::new();
        for entry in api.iter() {
            let (hash, record) = entry?;
            cache.insert(hash, record);
        }
        Ok(Self {
            store: store.clone(),
            api,
            enroll,
            cache: RwLock::new(cache),
        })
    }

    /// Creates an API token and makes it durable. Blocking. The returned
    /// token is the only copy of its text.
    ///
    /// # Errors
    /// Randomness or store failures.
    pub fn create_api(
        &self,
        role: ApiRole,
        name: &str,
        now_ms: u64,
    ) -> Result<ApiToken, TokenStoreError> {
        let name = check_name(name)?;
        let token = ApiToken::generate()?;
        let record = ApiTokenRecord {
            role,
            name,
            created_at_unix_ms: now_ms,
        };
        let hash = token.hash().0;
        self.api.insert(&hash, &record)?;
        self.store.flush()?;
        self.cache
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(hash, record);
        Ok(token)
    }

    /// Checks a bearer token; no I/O.
    pub fn authenticate(&self, text: &str) -> Option<Caller> {
        let token = ApiToken::parse(text).ok()?;
        let hash = token.hash();
        let cache = self
            .cache
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        cache.get(&hash.0).map(|record| Caller {
            role: record.role,
            name: record.name.clone(),
            token_id: hash.short_id(),
        })
    }

    /// Creates a one-time enrollment token for `host`, valid for `ttl`.
    /// Blocking.
    ///
    /// # Errors
    /// An invalid host name, randomness or store failures.
    pub fn create_enroll(
        &self,
        host: &str,
        ttl: Duration,
        ca: Fingerprint,
        now_ms: u64,
    ) -> Result<EnrollToken, TokenStoreError> {
        if muster_shared::tls::Role::parse(&format!("agent:{host}")).is_err() {
            return Err(TokenStoreError::Invalid(format!(
                "invalid host name {host:?}: use letters, digits, '.', '_' and '-', at most 63 characters, starting with a letter or digit"
            )));
        }
        if ttl.is_zero() {
            return Err(TokenStoreError::Invalid(
                "ttl must be above zero".to_owned(),
            ));
        }
        let token = EnrollToken::generate(ca)?;
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
        let record = EnrollTokenRecord {
            host: host.to_owned(),
            created_at_unix_ms: now_ms,
            expires_at_unix_ms: now_ms.saturating_add(ttl_ms),
            used_at_unix_ms: None,
        };
        self.enroll.insert(&token.hash().0, &record)?;
        self.store.flush()?;
        Ok(token)
    }

    /// Checks an enrollment token without consuming it. Blocking.
    ///
    /// # Errors
    /// [`EnrollRefusal`] inside `Ok(Err(..))`; store failures outside.
    pub fn check_enroll(
        &self,
        hash: &TokenHash,
        now_ms: u64,
    ) -> Result<Result<EnrollTokenRecord, EnrollRefusal>, TokenStoreError> {
        let Some(record) = self.enroll.get(&hash.0)? else {
            return Ok(Err(EnrollRefusal::Unknown));
        };
        if record.used_at_unix_ms.is_some() {
            return Ok(Err(EnrollRefusal::Used));
        }
        if now_ms >= record.expires_at_unix_ms {
            return Ok(Err(EnrollRefusal::Expired));
        }
        Ok(Ok(record))
    }

    /// Marks an enrollment token used, atomically: of two concurrent calls
    /// one wins, the other gets [`EnrollRefusal::Used`]. Does not flush; the
    /// caller flushes once with its own writes. Blocking.
    ///
    /// # Errors
    /// [`EnrollRefusal`] inside `Ok(Err(..))`; store failures outside.
    pub fn consume_enroll(
        &self,
        hash: &TokenHash,
        now_ms: u64,
    ) -> Result<Result<EnrollTokenRecord, EnrollRefusal>, TokenStoreError> {
        let record = match self.check_enroll(hash, now_ms)? {
            Ok(record) => record,
            Err(refusal) => return Ok(Err(refusal)),
        };
        let used = EnrollTokenRecord {
            used_at_unix_ms: Some(now_ms),
            ..record.clone()
        };
        match self
            .enroll
            .compare_and_swap(&hash.0, Some(&record), Some(&used))?
        {
            Ok(()) => Ok(Ok(used)),
            Err(_) => Ok(Err(EnrollRefusal::Used)),
        }
    }
}

fn check_name(name: &str) -> Result<String, TokenStoreError> {
    let name = name.trim();
    if name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(TokenStoreError::Invalid(
            "token name must be at most 100 printable characters".to_owned(),
        ));
    }
    Ok(name.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use muster_shared::store::StoreOptions;

    fn open() -> (tempfile::TempDir, TokenStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("store"), StoreOptions::collector()).unwrap();
        let tokens = TokenStore::open(&store).unwrap();
        (dir, tokens)
    }

    fn fp() -> Fingerprint {
        "ab".repeat(32).parse().unwrap()
    }

    #[test]
    fn api_tokens_authenticate_with_their_role_and_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store");
        let token = {
            let store = Store::open(&path, StoreOptions::collector()).unwrap();
            let tokens = TokenStore::open(&store).unwrap();
            let token = tokens.create_api(ApiRole::Operator, "ci", 1).unwrap();
            assert_eq!(
                tokens.authenticate(token.expose()).unwrap().role,
                ApiRole::Operator
            );
            token
        };
        let store = Store::open(&path, StoreOptions::collector()).unwrap();
        let tokens = TokenStore::open(&store).unwrap();
        let caller = tokens.authenticate(token.expose()).unwrap();
        assert_eq!(caller.role, ApiRole::Operator);
        assert_eq!(caller.name, "ci");
        assert!(
            tokens
                .authenticate(ApiToken::generate().unwrap().expose())
                .is_none()
        );
        assert!(tokens.authenticate("garbage").is_none());
    }

    #[test]
    fn enroll_token_is_consumed_once() {
        let (_dir, tokens) = open();
        let token = tokens
            .create_enroll("web1", Duration::from_secs(60), fp(), 1_000)
            .unwrap();
        let first = tokens
            .consume_enroll(&token.hash(), 2_000)
            .unwrap()
            .unwrap();
        assert_eq!(first.host, "web1");
        assert_eq!(
            tokens.consume_enroll(&token.hash(), 2_001).unwrap(),
            Err(EnrollRefusal::Used)
        );
    }

    #[test]
    fn enroll_token_expires() {
        let (_dir, tokens) = open();
        let token = tokens
            .create_enroll("web1", Duration::from_secs(1), fp(), 1_000)
            .unwrap();
        assert_eq!(
            tokens.consume_enroll(&token.hash(), 2_000).unwrap(),
            Err(EnrollRefusal::Expired)
        );
        let other = EnrollToken::generate(fp()).unwrap();
        assert_eq!(
            tokens.check_enroll(&other.hash(), 0).unwrap(),
            Err(EnrollRefusal::Unknown)
        );
    }

    #[test]
    fn bad_host_names_are_refused() {
        let (_dir, tokens) = open();
        for host in ["", "../x", "a b", &"x".repeat(64)] {
            assert!(
                tokens
                    .create_enroll(host, Duration::from_secs(60), fp(), 0)
                    .is_err(),
                "{host}"
            );
        }
    }

    #[test]
    fn roles_are_ordered_and_parse() {
        assert!(ApiRole::Admin > ApiRole::Operator && ApiRole::Operator > ApiRole::Viewer);
        assert_eq!("admin".parse::<ApiRole>(), Ok(ApiRole::Admin));
        assert!(
            "root"
                .parse::<ApiRole>()
                .unwrap_err()
                .contains("viewer, operator or admin")
        );
    }
}
