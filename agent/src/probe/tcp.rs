//! The `tcp` kind: connect to `host:port`, optionally send a line and expect an answer.
//!
//! Like blackbox_exporter's `tcp` prober reduced to one send/expect step: the run connects
//! (trying each resolved address in turn), writes `send` if set, then, with `expect`, reads
//! until the data read so far matches the pattern. It fails when the name does not resolve,
//! no address accepts, or the peer closes (or sends [`MAX_READ_BYTES`]) before the pattern
//! matched. `probe_failed_due_to_regex` is reported when `expect` is set.
//!
//! Leaves out: multi-step `query_response` scripts and STARTTLS (the `tls` kind covers a TLS
//! port's certificate).

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::config::{ProbeConfig, TextPattern, split_host_port};
use super::families::FAILED_DUE_TO_REGEX;
use super::{Outcome, ProbeError, Prober, io_reason};

/// The most read while waiting for `expect`.
pub const MAX_READ_BYTES: usize = 64 * 1024;

/// `[probe.tcp]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TcpOptions {
    /// Written once connected (TOML escapes such as `\r\n` apply). Default none.
    #[serde(default)]
    pub send: Option<String>,
    /// The run fails unless what the peer sends (after `send`) matches this regular
    /// expression (unanchored), within the timeout. Default none.
    #[serde(default)]
    pub expect: Option<TextPattern>,
}

/// A tcp probe.
#[derive(Debug)]
pub struct TcpProber {
    host: String,
    port: u16,
    send: Option<Vec<u8>>,
    expect: Option<regex::Regex>,
}

impl TcpProber {
    /// The probe of `config`.
    ///
    /// # Errors
    /// [`ProbeError::Setup`] when the target is not `host:port` (validation catches it
    /// first).
    pub fn new(config: &ProbeConfig) -> Result<Self, ProbeError> {
        let (host, port) = split_host_port(&config.target).map_err(|reason| ProbeError::Setup {
            probe: config.name.clone(),
            reason,
        })?;
        let options = config.tcp.clone().unwrap_or_default();
        Ok(Self {
            host,
            port,
            send: options.send.map(String::into_bytes),
            expect: options.expect.map(|p| p.regex().clone()),
        })
    }
}

impl Prober for TcpProber {
    async fn probe(&self, out: &mut Outcome) {
        out.facts.connected = Some(false);
        if self.expect.is_some() {
            out.set(&FAILED_DUE_TO_REGEX, 0.0);
        }
        let mut stream = match connect(&self.host, self.port).await {
            Ok(stream) => stream,
            Err(reason) => return out.fail(reason),
        };
        out.facts.connected = Some(true);
        if let Some(send) = &self.send
            && let Err(err) = stream.write_all(send).await
        {
            return out.fail(io_reason(err.kind()).unwrap_or("sending failed"));
        }
        if let Some(expect) = &self.expect {
            let mut received = Vec::new();
            let mut chunk = [0u8; 4096];
            loop {
                if expect.is_match(&String::from_utf8_lossy(&received)) {
                    break;
                }
                let n = match stream.read(&mut chunk).await {
                    Ok(n) => n,
                    Err(err) => return out.fail(io_reason(err.kind()).unwrap_or("reading failed")),
                };
                if n == 0 || received.len() >= MAX_READ_BYTES {
                    out.set(&FAILED_DUE_TO_REGEX, 1.0);
                    return out.fail("expected answer not received");
                }
                received.extend_from_slice(chunk.get(..n).unwrap_or_default());
            }
        }
        let _ = stream.shutdown().await;
    }
}

/// Resolves `host` and connects to the first address that accepts.
///
/// # Errors
/// A bounded reason: `dns lookup failed`, or why the last address refused.
pub(super) async fn connect(host: &str, port: u16) -> Result<TcpStream, &'static str> {
    let addrs: Vec<SocketAddr> = match tokio::net::lookup_host((host, port)).await {
        Ok(addrs) => addrs.collect(),
        Err(_) => return Err("dns lookup failed"),
    };
    let mut reason = "dns lookup failed";
    for addr in addrs {
        match TcpStream::connect(addr).await {
            Ok(stream) => return Ok(stream),
            Err(err) => reason = io_reason(err.kind()).unwrap_or("connection failed"),
        }
    }
    Err(reason)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::config::Kind;
    use crate::probe::testkit::{closed_port, tcp_server};

    async fn run(target: &str, options: Option<TcpOptions>) -> Outcome {
        let mut config = ProbeConfig::new("db", Kind::Tcp, target);
        config.tcp = options;
        let prober = TcpProber::new(&config).unwrap();
        let mut out = Outcome::default();
        prober.probe(&mut out).await;
        out
    }

    #[tokio::test]
    async fn a_connection_is_a_success() {
        let server = tcp_server("hello\r\n", "").await;
        let out = run(&server.addr.to_string(), None).await;
        assert_eq!(out.failure(), None);
        assert_eq!(out.facts.connected, Some(true));
        assert!(out.series().is_empty(), "{:?}", out.series());
    }

    #[tokio::test]
    async fn send_and_expect_check_the_answer() {
        let server = tcp_server("+OK ready\r\n", "echo:").await;
        let options = TcpOptions {
            send: Some("PING\r\n".to_owned()),
            expect: Some(TextPattern::new(r"echo:PING\r\n").unwrap()),
        };
        let out = run(&server.addr.to_string(), Some(options)).await;
        assert_eq!(out.failure(), None);
        assert_eq!(out.value("probe_failed_due_to_regex"), Some(0.0));

        let greeting_only = TcpOptions {
            send: None,
            expect: Some(TextPattern::new(r"^\+OK").unwrap()),
        };
        let out = run(&server.addr.to_string(), Some(greeting_only)).await;
        assert_eq!(out.failure(), None);
    }

    #[tokio::test]
    async fn an_answer_that_never_matches_fails_when_the_peer_closes() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let closer = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            s.write_all(b"-ERR nope\r\n").await.unwrap();
        });
        let options = TcpOptions {
            send: None,
            expect: Some(TextPattern::new(r"^\+OK").unwrap()),
        };
        let out = run(&addr.to_string(), Some(options)).await;
        closer.await.unwrap();
        assert_eq!(out.failure(), Some("expected answer not received"));
        assert_eq!(out.value("probe_failed_due_to_regex"), Some(1.0));
        assert_eq!(out.facts.connected, Some(true));
    }

    #[tokio::test]
    async fn a_refused_connection_or_unknown_name_fails_with_its_reason() {
        let addr = closed_port().await;
        let out = run(&addr.to_string(), None).await;
        assert_eq!(out.failure(), Some("connection refused"));
        assert_eq!(out.facts.connected, Some(false));

        let out = run("no-such-host.invalid:80", None).await;
        assert_eq!(out.failure(), Some("dns lookup failed"));
    }
}
