use super::*;

#[test]
fn backoff_grows_with_jitter_up_to_the_cap() {
    let mut b = Backoff::default();
    let first = b.next_delay();
    assert!(
        first >= BACKOFF_MIN / 2 && first <= BACKOFF_MIN,
        "{first:?}"
    );
    for _ in 0..20 {
        let d = b.next_delay();
        assert!(d <= BACKOFF_MAX, "{d:?}");
    }
    let late = b.next_delay();
    assert!(late >= BACKOFF_MAX / 2, "{late:?}");
    b.reset();
    assert!(b.next_delay() <= BACKOFF_MIN);
}

#[test]
fn failures_count_every_attempt() {
    let mut f = Failures::default();
    f.record("a");
    f.record("a");
    f.record("b");
    assert_eq!((f.attempts, f.last.as_deref()), (3, Some("b")));
    f.connected(2);
    assert_eq!(
        (f.attempts, f.last.as_deref(), f.ever_connected),
        (0, None, true)
    );
}

#[tokio::test]
async fn missing_socket_is_reported_with_its_path() {
    let err = ping(Path::new("/nonexistent/muster/docker.sock"))
        .await
        .unwrap_err();
    assert!(err.contains("/nonexistent/muster/docker.sock"), "{err}");
}

#[tokio::test]
async fn task_stops_on_shutdown_without_an_engine() {
    let shutdown = CancellationToken::new();
    let engine = Engine {
        socket: PathBuf::from("/nonexistent/muster/docker.sock"),
        inventory: Arc::default(),
        stats: Arc::default(),
        shutdown: shutdown.clone(),
    };
    let inventory = engine.inventory.clone();
    let task = tokio::spawn(engine.run());
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .unwrap()
        .unwrap();
    assert!(!inventory.read().unwrap().connected);
}

/// A fake Docker engine on a unix socket: ping, version, list, inspect of
/// one container `aaaa` whose status the test sets, and an events stream the
/// test feeds (one per connection; dropping the sender ends it).
mod fake {
    use std::sync::Mutex;

    use axum::body::Body;
    use axum::http::{StatusCode, Uri};
    use axum::response::{IntoResponse, Response};
    use bytes::Bytes;
    use tokio::sync::mpsc;

    #[derive(Debug, Default)]
    pub struct Engine {
        pub status: Mutex<Option<&'static str>>,
        pub events: Mutex<Option<mpsc::Sender<Bytes>>>,
        pub lists: Mutex<u32>,
    }

    impl Engine {
        /// Sends one event line, as the engine would.
        pub async fn event(&self, action: &str) {
            let line = format!(
                "{{\"Type\":\"container\",\"Action\":\"{action}\",\"Actor\":{{\"ID\":\"aaaa\",\"Attributes\":{{}}}},\"time\":1}}\n"
            );
            let tx = self
                .events
                .lock()
                .unwrap()
                .clone()
                .expect("an events subscriber");
            tx.send(Bytes::from(line)).await.unwrap();
        }
    }

    fn json(body: String) -> Response {
        ([("content-type", "application/json")], body).into_response()
    }

    pub async fn handle(state: std::sync::Arc<Engine>, uri: Uri) -> Response {
        // bollard prefixes every path with `/v1.NN`.
        let path = uri.path();
        let path = match path.strip_prefix("/v1.") {
            Some(rest) => rest.find('/').map_or(path, |i| &rest[i..]),
            None => path,
        };
        match path {
            "/_ping" => "OK".into_response(),
            "/version" => {
                json(r#"{"Version":"fake","ApiVersion":"1.41","MinAPIVersion":"1.12"}"#.to_owned())
            }
            "/containers/json" => {
                *state.lists.lock().unwrap() += 1;
                let listed = state.status.lock().unwrap().is_some();
                json(if listed {
                    r#"[{"Id":"aaaa"}]"#.to_owned()
                } else {
                    "[]".to_owned()
                })
            }
            "/containers/aaaa/json" => match *state.status.lock().unwrap() {
                Some(status) => json(format!(
                    r#"{{"Id":"aaaa","Name":"/web","Config":{{"Image":"web:1","Labels":{{}}}},"State":{{"Status":"{status}","Pid":{pid},"StartedAt":"2024-01-01T00:00:00Z"}},"RestartCount":0,"HostConfig":{{"NetworkMode":"bridge"}}}}"#,
                    pid = if status == "running" { 4242 } else { 0 }
                )),
                None => (
                    StatusCode::NOT_FOUND,
                    r#"{"message":"No such container: aaaa"}"#,
                )
                    .into_response(),
            },
            "/events" => {
                let (tx, rx) = mpsc::channel::<Bytes>(8);
                *state.events.lock().unwrap() = Some(tx);
                let stream = futures_util::stream::unfold(rx, |mut rx| async move {
                    rx.recv().await.map(|b| (Ok::<_, std::io::Error>(b), rx))
                });
                Body::from_stream(stream).into_response()
            }
            _ => StatusCode::NOT_FOUND.into_response(),
        }
    }
}

/// Waits (real time) until `check` holds, failing with `what`.
async fn until(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while !check() {
        assert!(
            std::time::Instant::now() < deadline,
            "never happened: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn engine_appearing_later_is_picked_up_and_followed_by_events() {
    let tmp = tempfile::tempdir().unwrap();
    let socket = tmp.path().join("docker.sock");
    let shutdown = CancellationToken::new();
    let engine = Engine {
        socket: socket.clone(),
        inventory: Arc::default(),
        stats: Arc::default(),
        shutdown: shutdown.clone(),
    };
    let inventory = engine.inventory.clone();
    let task = tokio::spawn(engine.run());
    let state = |f: &dyn Fn(&Inventory) -> bool| f(&inventory.read().unwrap());
    let web_state = || {
        inventory
            .read()
            .unwrap()
            .containers
            .get("aaaa")
            .map(|c| c.state)
    };

    // No engine yet: the task retries quietly.
    assert!(!state(&|i| i.connected));
    let fake = Arc::new(fake::Engine::default());
    *fake.status.lock().unwrap() = Some("running");
    let listener = tokio::net::UnixListener::bind(&socket).unwrap();
    let app = axum::Router::new().fallback({
        let fake = fake.clone();
        move |uri: axum::http::Uri| fake::handle(fake.clone(), uri)
    });
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    until("the engine is picked up after it appears", || {
        state(&|i| i.connected)
    })
    .await;
    assert_eq!(web_state(), Some(super::super::inventory::State::Running));
    let web = inventory.read().unwrap().containers["aaaa"].clone();
    assert_eq!(
        (web.name.as_str(), web.image.as_str(), web.pid),
        ("web", "web:1", Some(4242))
    );

    // An event makes the task inspect that container again.
    until("events subscribed", || {
        fake.events.lock().unwrap().is_some()
    })
    .await;
    *fake.status.lock().unwrap() = Some("exited");
    fake.event("die").await;
    until("die event applied", || {
        web_state() == Some(super::super::inventory::State::Exited)
    })
    .await;
    assert_eq!(inventory.read().unwrap().containers["aaaa"].pid, None);
    // health_status carries its value after a colon.
    *fake.status.lock().unwrap() = Some("running");
    fake.event("health_status: healthy").await;
    until("health_status event applied", || {
        web_state() == Some(super::super::inventory::State::Running)
    })
    .await;
    fake.event("destroy").await;
    until("destroy forgets it", || web_state().is_none()).await;

    // The stream ends (engine restart): reconnect, list again.
    let lists = *fake.lists.lock().unwrap();
    *fake.events.lock().unwrap() = None;
    until("a reconnect lists again", || {
        *fake.lists.lock().unwrap() > lists
    })
    .await;
    until("the relisted container is back", || web_state().is_some()).await;

    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .unwrap()
        .unwrap();
    server.abort();
}
