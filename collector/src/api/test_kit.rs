//! What API tests share: a complete [`ApiState`] in a temp dir, the router over it and
//! tokens to call it with, so a handler test needs no socket and no running collector.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use muster_shared::store::{Store, StoreOptions};
use tower::ServiceExt;

use super::{ApiState, router};
use crate::audit::AuditLog;
use crate::backup::Backups;
use crate::backup::log::BackupLog;
use crate::config::PkiPaths;
use crate::hosts::HostRegistry;
use crate::metrics::Metrics;
use crate::pki::{Pki, init};
use crate::scrape::client::AgentClients;
use crate::series::SeriesSource;
use crate::store_health::StoreHealth;
use crate::tokens::{ApiRole, TokenStore};

/// A router over a fresh state, with a viewer token. Keep `_dir` alive while it's used.
pub(crate) struct TestApi {
    pub _dir: tempfile::TempDir,
    pub router: Router,
    pub viewer_token: String,
    pub operator_token: String,
    pub state: ApiState,
}

impl TestApi {
    /// State backed by a temp dir, reading series from `series`.
    pub fn new(series: Arc<dyn SeriesSource>) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let paths = PkiPaths::under(dir.path());
        init(&paths, &[]).expect("ca init");
        let store = Store::open(&dir.path().join("store"), StoreOptions::collector())
            .expect("open the store");
        let tokens = TokenStore::open(&store).expect("open tokens");
        let viewer_token = tokens
            .create_api(ApiRole::Viewer, "test", 0)
            .expect("create a viewer token")
            .expose()
            .to_owned();
        let operator_token = tokens
            .create_api(ApiRole::Operator, "ops", 0)
            .expect("create an operator token")
            .expose()
            .to_owned();
        let metrics = Metrics::new().expect("metrics");
        let pki = Arc::new(Pki::load(&paths).expect("load the PKI"));
        let hosts = Arc::new(HostRegistry::open(&store).expect("open hosts"));
        let backups = Backups::new(
            AgentClients::new(&pki).expect("agent clients"),
            hosts.clone(),
            Arc::new(BackupLog::open(&store, 10).expect("open the backup log")),
            Duration::from_secs(2),
        );
        let state = ApiState {
            backups: Arc::new(backups),
            audit: Arc::new(AuditLog::open(&store).expect("open the audit log")),
            hosts,
            pki,
            tokens: Arc::new(tokens),
            store,
            store_health: Arc::new(StoreHealth::new(metrics.store.clone())),
            alerting: None,
            metrics,
            ready: Arc::new(AtomicBool::new(true)),
            agent_cert_validity: Duration::from_secs(3600),
            series,
        };
        Self {
            _dir: dir,
            router: router(state.clone(), 1024 * 1024),
            viewer_token,
            operator_token,
            state,
        }
    }

    /// Sends `request` (adding the viewer token unless it has an Authorization header) and
    /// returns the status and the body as text.
    pub async fn send(&self, mut request: Request<Body>) -> (StatusCode, String) {
        if !request.headers().contains_key("authorization") {
            let value = format!("Bearer {}", self.viewer_token)
                .parse()
                .expect("a valid header");
            request.headers_mut().insert("authorization", value);
        }
        let response = self
            .router
            .clone()
            .oneshot(request)
            .await
            .expect("the router answers");
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .expect("read the body")
            .to_bytes();
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    /// `GET uri`.
    pub async fn get(&self, uri: &str) -> (StatusCode, String) {
        self.send(Request::get(uri).body(Body::empty()).expect("a request"))
            .await
    }

    /// `POST uri` with a JSON body, as the holder of `token`.
    pub async fn post_json(&self, uri: &str, body: &str, token: &str) -> (StatusCode, String) {
        self.send(
            Request::post(uri)
                .header("content-type", "application/json")
                .header("authorization", format!("Bearer {token}"))
                .body(Body::from(body.to_owned()))
                .expect("a request"),
        )
        .await
    }

    /// `POST uri` with a form body.
    pub async fn post_form(&self, uri: &str, form: &str) -> (StatusCode, String) {
        self.send(
            Request::post(uri)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(Body::from(form.to_owned()))
                .expect("a request"),
        )
        .await
    }
}
