//! Local peers for the probers' tests, on 127.0.0.1 port 0: a small HTTP/1.1 server with
//! canned routes (plain or TLS) and a line-based TCP server.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// A server task, stopped when dropped.
pub struct Server {
    /// Where it listens.
    pub addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// An HTTP/1.1 server (TLS with `tls`). Routes:
/// - `/ok`: 200, `Content-Length: 9`, body `status ok`;
/// - `/fail`: 503, body `down`;
/// - `/hop/N`: 302 to `/hop/N-1`; `/hop/0`: 200 `arrived`;
/// - `/echo`: 200, body `METHOD x-probe-header-value` then a newline and the request body;
/// - `/chunked`: 200 without `Content-Length`, body `ok`;
/// - `/slow`: never answers;
/// - anything else: 404.
pub async fn http_server(tls: Option<Arc<rustls::ServerConfig>>) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                match acceptor {
                    Some(acceptor) => {
                        if let Ok(stream) = acceptor.accept(stream).await {
                            serve_http(stream).await;
                        }
                    }
                    None => serve_http(stream).await,
                }
            });
        }
    });
    Server { addr, task }
}

async fn serve_http<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S) {
    let mut buf = Vec::new();
    let head_end = loop {
        let mut chunk = [0u8; 4096];
        let Ok(n) = stream.read(&mut chunk).await else {
            return;
        };
        if n == 0 {
            return;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or_default().to_owned();
    let mut parts = request_line.split(' ');
    let method = parts.next().unwrap_or_default().to_owned();
    let path = parts.next().unwrap_or_default().to_owned();
    let header = |name: &str| {
        head.split("\r\n")
            .filter_map(|l| l.split_once(':'))
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim().to_owned())
    };
    let length: usize = header("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = buf[head_end..].to_vec();
    while body.len() < length {
        let mut chunk = [0u8; 4096];
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => body.extend_from_slice(&chunk[..n]),
        }
    }

    let response = if path == "/ok" {
        plain(200, "status ok")
    } else if path == "/fail" {
        plain(503, "down")
    } else if let Some(n) = path.strip_prefix("/hop/") {
        match n.parse::<u32>() {
            Ok(0) => plain(200, "arrived"),
            Ok(n) => format!(
                "HTTP/1.1 302 Found\r\nLocation: /hop/{}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                n - 1
            ),
            Err(_) => plain(404, "no"),
        }
    } else if path == "/echo" {
        let text = format!(
            "{method} {}\n{}",
            header("x-probe").unwrap_or_default(),
            String::from_utf8_lossy(&body)
        );
        plain(200, &text)
    } else if path == "/chunked" {
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n2\r\nok\r\n0\r\n\r\n"
            .to_owned()
    } else if path == "/slow" {
        tokio::time::sleep(std::time::Duration::from_secs(3600)).await;
        return;
    } else {
        plain(404, "no")
    };
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.shutdown().await;
}

fn plain(status: u16, body: &str) -> String {
    format!(
        "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

/// A TCP server that writes `greeting` on connect, then answers each line it reads with
/// `reply` followed by the line, until the peer closes.
pub async fn tcp_server(greeting: &'static str, reply: &'static str) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let _ = stream.write_all(greeting.as_bytes()).await;
                let mut buf = [0u8; 1024];
                let mut line = Vec::new();
                loop {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            for &b in &buf[..n] {
                                line.push(b);
                                if b == b'\n' {
                                    let mut answer = reply.as_bytes().to_vec();
                                    answer.extend_from_slice(&line);
                                    let _ = stream.write_all(&answer).await;
                                    line.clear();
                                }
                            }
                        }
                    }
                }
            });
        }
    });
    Server { addr, task }
}

/// A TLS server presenting `config`'s certificate, that closes after the handshake.
pub async fn tls_server(config: Arc<rustls::ServerConfig>) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                if let Ok(mut stream) = acceptor.accept(stream).await {
                    let _ = stream.shutdown().await;
                }
            });
        }
    });
    Server { addr, task }
}

/// An address nothing listens on (bound, then released).
pub async fn closed_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap()
}
