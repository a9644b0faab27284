//! The HTTP(S) listener both binaries serve their axum routers on.
//!
//! Owns: accepting TCP connections, the TLS handshake (bounded by a timeout,
//! done in the connection's own task so a slow client never holds up the
//! accept loop), a cap on open connections, HTTP/1.1 and HTTP/2 through
//! hyper-util, handing each request a [`PeerInfo`] (remote address and, with
//! client certificates, the peer's role), and graceful shutdown: stop
//! accepting, let in-flight requests finish, cut what remains at a deadline.
//!
//! Leaves out: routes, auth and what a role may do (the routers decide).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

use crate::tls::{Role, peer_role};

/// Who is on the other end of a request; inserted into every request's
/// extensions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerInfo {
    /// The TCP peer address.
    pub remote: SocketAddr,
    /// The role in the client certificate, when the listener asked for one.
    pub role: Option<Role>,
}

/// Limits of one listener.
#[derive(Debug, Clone, Copy)]
pub struct ServeOptions {
    /// How long a client may take to finish the TLS handshake.
    pub handshake_timeout: Duration,
    /// Open connections at most; further ones are closed at once.
    pub max_connections: usize,
    /// How long shutdown waits for in-flight requests.
    pub drain_timeout: Duration,
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            handshake_timeout: Duration::from_secs(10),
            max_connections: 1024,
            drain_timeout: Duration::from_secs(10),
        }
    }
}

/// Serves `router` on `listener` until `shutdown` is cancelled, then drains.
///
/// With `tls`, every connection is a TLS connection configured by it (which
/// decides whether client certificates are required); without, plain HTTP.
/// Accept errors (e.g. out of file descriptors) are logged and retried after
/// a short pause; they never end the server.
pub async fn serve(
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    router: Router,
    shutdown: CancellationToken,
    options: ServeOptions,
) {
    let acceptor = tls.map(TlsAcceptor::from);
    let graceful = GracefulShutdown::new();
    let connections = TaskTracker::new();
    let slots = Arc::new(Semaphore::new(options.max_connections));
    let local = listener.local_addr().ok();

    loop {
        let accepted = tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let (tcp, remote) = match accepted {
            Ok(pair) => pair,
            Err(err) => {
                tracing::warn!(error = %err, "accept failed");
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    () = tokio::time::sleep(Duration::from_millis(100)) => continue,
                }
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::warn!(%remote, limit = options.max_connections, "connection limit reached; closing");
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let router = router.clone();
        let watcher = graceful.watcher();
        let shutdown = shutdown.clone();
        connections.spawn(async move {
            let _slot = slot;
            match acceptor {
                None => {
                    let peer = PeerInfo { remote, role: None };
                    serve_connection(TokioIo::new(tcp), router, peer, watcher).await;
                }
                Some(acceptor) => {
                    let handshake =
                        tokio::time::timeout(options.handshake_timeout, acceptor.accept(tcp));
                    let stream = tokio::select! {
                        () = shutdown.cancelled() => return,
                        result = handshake => match result {
                            Ok(Ok(stream)) => stream,
                            Ok(Err(err)) => {
                                tracing::debug!(%remote, error = %err, "tls handshake refused");
                                return;
                            }
                            Err(_) => {
                                tracing::debug!(%remote, "tls handshake timed out");
                                return;
                            }
                        },
                    };
                    let role = peer_role(stream.get_ref().1);
                    let peer = PeerInfo { remote, role };
                    serve_connection(TokioIo::new(stream), router, peer, watcher).await;
                }
            }
        });
    }

    drop(listener);
    connections.close();
    tracing::debug!(addr = ?local, open = graceful.count(), "listener stopped; draining");
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(options.drain_timeout) => {
            tracing::warn!(addr = ?local, "drain deadline passed; closing open connections");
        }
    }
}

async fn serve_connection<I>(
    io: TokioIo<I>,
    router: Router,
    peer: PeerInfo,
    watcher: hyper_util::server::graceful::Watcher,
) where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = router.map_request(move |mut request: http::Request<hyper::body::Incoming>| {
        request.extensions_mut().insert(peer.clone());
        request
    });
    let service = TowerToHyperService::new(service);
    let builder = Builder::new(TokioExecutor::new());
    let connection = builder.serve_connection_with_upgrades(io, service);
    if let Err(err) = watcher.watch(connection.into_owned()).await {
        tracing::debug!(error = %err, "connection ended with an error");
    }
}

/// Cancels `shutdown` on SIGTERM or SIGINT (Ctrl-C). A failure to install
/// the handlers is logged; the process then stops only when killed.
pub async fn cancel_on_signal(shutdown: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot install signal handlers");
        return;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received; stopping"),
        _ = int.recv() => tracing::info!("interrupt received; stopping"),
        () = shutdown.cancelled() => return,
    }
    shutdown.cancel();
}

/// The shutdown tail both binaries share: tell systemd, cancel `shutdown`
/// (so background tasks stop), and wait for `tasks` up to `deadline`,
/// logging what did not stop.
pub async fn stop_tasks(shutdown: &CancellationToken, tasks: &TaskTracker, deadline: Duration) {
    notify_stopping();
    shutdown.cancel();
    tasks.close();
    if tokio::time::timeout(deadline, tasks.wait()).await.is_err() {
        tracing::warn!(left = tasks.len(), "background tasks did not stop in time");
    }
}

/// Tells systemd (`Type=notify`) the service is ready; a no-op outside
/// systemd. A failure is logged: the service works, systemd just waits.
pub fn notify_ready() {
    if let Err(err) = sd_notify::notify(&[sd_notify::NotifyState::Ready]) {
        tracing::warn!(error = %err, "cannot notify systemd of readiness");
    }
}

/// Tells systemd the service is stopping; a no-op outside systemd.
pub fn notify_stopping() {
    if let Err(err) = sd_notify::notify(&[sd_notify::NotifyState::Stopping]) {
        tracing::debug!(error = %err, "cannot notify systemd of stopping");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::get;

    #[tokio::test]
    async fn serves_plain_http_and_passes_peer_info() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let router = Router::new().route(
            "/",
            get(
                |axum::Extension(peer): axum::Extension<PeerInfo>| async move {
                    format!("{} {:?}", peer.remote.ip(), peer.role)
                },
            ),
        );
        let shutdown = CancellationToken::new();
        let server = tokio::spawn(serve(
            listener,
            None,
            router,
            shutdown.clone(),
            ServeOptions::default(),
        ));

        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        stream
            .write_all(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut body = String::new();
        stream.read_to_string(&mut body).await.unwrap();
        assert!(body.starts_with("HTTP/1.1 200"), "{body}");
        assert!(body.ends_with("127.0.0.1 None"), "{body}");

        shutdown.cancel();
        server.await.unwrap();
        assert!(
            tokio::net::TcpStream::connect(addr).await.is_err(),
            "listener closed after shutdown"
        );
    }
}
