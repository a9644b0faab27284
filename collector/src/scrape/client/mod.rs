//! Calls to one agent over mutual TLS.
//!
//! Each host gets its own client whose TLS config accepts only a server
//! certificate naming `agent:<that host>` from the fleet CA, so an address
//! reused by another host (DHCP, a moved container) is detected, not trusted.

use std::net::SocketAddr;
use std::time::Duration;

use muster_shared::codec::{self, CodecError, FramePayload, Limits};
use muster_shared::protocol::info::AgentInfo;
use muster_shared::protocol::samples::{
    DICTIONARY_ELIDED_HEADER, DICTIONARY_HEADER, MAX_URGENT_WAIT_MS, SampleBatch,
};
use muster_shared::protocol::{BATCH_MEDIA_TYPE, PROTOCOL_VERSION, is_compatible};
use muster_shared::telemetry::REQUEST_ID_HEADER;
use muster_shared::tls::{self, PeerPolicy, TlsError};

use crate::pki::{Pki, PkiError};
use crate::tsdb::Dictionary;

pub mod json;
mod urgent;

/// Why a call to an agent failed. Messages are short: they are shown as a
/// host's `last_error`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ScrapeError {
    /// The client could not be built (local PKI problem).
    #[error("cannot build TLS client: {0}")]
    Client(String),
    /// Connection, TLS or HTTP transport failure.
    #[error("{0}")]
    Transport(String),
    /// The call did not finish in time.
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    /// The agent answered with an error status.
    #[error("agent answered HTTP {0}")]
    Status(u16),
    /// The answer did not decode.
    #[error("bad answer: {0}")]
    Decode(#[from] CodecError),
    /// The batch decoded but breaks the protocol's invariants.
    #[error("bad batch: {0}")]
    BadBatch(String),
    /// The agent reports another host id than the one enrolled here.
    #[error("agent reports host id {found:?}, expected {expected:?}")]
    HostMismatch {
        /// What we enrolled.
        expected: String,
        /// What it said.
        found: String,
    },
    /// The agent no longer holds the cursor's history: its buffer was wiped or
    /// belongs to an earlier life of the host (HTTP 409). Ask again from 0.
    #[error("the agent does not know cursor {after} (its buffer was reset)")]
    CursorAhead {
        /// The cursor sent.
        after: u64,
    },
    /// The agent speaks an incompatible protocol version.
    #[error("agent protocol version {agent} is not compatible with the collector's {ours}")]
    Protocol {
        /// The agent's version.
        agent: u16,
        /// Ours.
        ours: u16,
    },
}

/// Makes per-host clients from the collector's PKI.
#[derive(Debug, Clone)]
pub struct AgentClients {
    ca_pem: String,
    cert_pem: String,
    key_pem: String,
}

impl AgentClients {
    /// From the loaded PKI.
    ///
    /// # Errors
    /// [`PkiError`] if the collector's identity does not load.
    pub fn new(pki: &Pki) -> Result<Self, PkiError> {
        // Check once that the identity loads; clients are built per host.
        pki.identity()?;
        Ok(Self {
            ca_pem: pki.ca_pem.clone(),
            cert_pem: pki.cert_pem.clone(),
            key_pem: pki.key_pem().to_owned(),
        })
    }

    /// A client that accepts only `agent:<host>` and presents the collector's
    /// certificate.
    ///
    /// # Errors
    /// [`ScrapeError::Client`] when the TLS config can't be built.
    pub fn client_for(&self, host: &str, timeout: Duration) -> Result<AgentClient, ScrapeError> {
        let build = |timeout: Duration| -> Result<reqwest::Client, String> {
            let identity = tls::Identity::from_pem(&self.cert_pem, &self.key_pem)
                .map_err(|e: TlsError| e.to_string())?;
            let config = tls::client_config(
                &self.ca_pem,
                Some(identity),
                PeerPolicy::Agent(host.to_owned()),
            )
            .map_err(|e| e.to_string())?;
            // HTTP/1.1 with keep-alive: a host's pulls are one request at a time, so
            // HTTP/2's streams buy nothing, and its framing, flow control and connection
            // task cost CPU on every pull.
            let mut config = (*config).clone();
            config.alpn_protocols = vec![b"http/1.1".to_vec()];
            reqwest::Client::builder()
                .tls_backend_preconfigured(config)
                .http1_only()
                .timeout(timeout)
                .connect_timeout(timeout)
                .pool_max_idle_per_host(1)
                .no_proxy()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .map_err(|e| e.to_string())
        };
        Ok(AgentClient {
            host: host.to_owned(),
            http: build(timeout).map_err(ScrapeError::Client)?,
            // Its own pool: a long poll holds its connection while pulls use theirs, and
            // one shared pool keeping one idle connection would close one of the two
            // after every wake-up and handshake again. Connects only if used (agents
            // that have probes).
            urgent_http: build(timeout.saturating_add(URGENT_WAIT_MAX))
                .map_err(ScrapeError::Client)?,
            timeout,
        })
    }
}

/// A client bound to one host.
#[derive(Debug, Clone)]
pub struct AgentClient {
    host: String,
    http: reqwest::Client,
    urgent_http: reqwest::Client,
    timeout: Duration,
}

/// The longest long poll the collector keeps open (the agent's own cap).
pub const URGENT_WAIT_MAX: Duration = Duration::from_millis(MAX_URGENT_WAIT_MS);

impl AgentClient {
    /// `GET /v1/info` in the binary codec, checked against the enrolled host
    /// id and our protocol version.
    ///
    /// # Errors
    /// A [`ScrapeError`] saying what failed.
    pub async fn info(
        &self,
        address: SocketAddr,
        request_id: &str,
    ) -> Result<AgentInfo, ScrapeError> {
        let url = format!("https://{address}/v1/info");
        let (_, body) = self.get_frame(&url, request_id, None).await?;
        let (_, info): (u16, AgentInfo) =
            codec::decode_frame(&body, &Limits::DEFAULT, is_compatible)?;
        if !is_compatible(info.protocol_version) {
            return Err(ScrapeError::Protocol {
                agent: info.protocol_version,
                ours: PROTOCOL_VERSION,
            });
        }
        if info.host_id != self.host {
            return Err(ScrapeError::HostMismatch {
                expected: self.host.clone(),
                found: info.host_id,
            });
        }
        Ok(info)
    }
}

impl AgentClient {
    /// `GET url` asking for the binary codec, within the client's timeout: the
    /// body of a 2xx answer, or the error.
    async fn get_frame(
        &self,
        url: &str,
        request_id: &str,
        dictionary: Option<&str>,
    ) -> Result<(Dictionary, bytes::Bytes), ScrapeError> {
        let call = async {
            let mut request = self
                .http
                .get(url)
                .header(reqwest::header::ACCEPT, BATCH_MEDIA_TYPE)
                .header(REQUEST_ID_HEADER, request_id);
            if let Some(digest) = dictionary {
                request = request.header(DICTIONARY_HEADER, digest);
            }
            let response = request.send().await.map_err(|e| self.transport(&e))?;
            let status = response.status();
            if !status.is_success() {
                return Err(ScrapeError::Status(status.as_u16()));
            }
            let named = dictionary_of(response.headers());
            let body = response.bytes().await.map_err(|e| self.transport(&e))?;
            Ok((named, body))
        };
        tokio::time::timeout(self.timeout, call)
            .await
            .map_err(|_| ScrapeError::Timeout(self.timeout))?
    }

    /// A transport error; reqwest's own timeouts (connect, whole request) are
    /// [`ScrapeError::Timeout`] like ours, so the caller can tell them apart.
    fn transport(&self, err: &reqwest::Error) -> ScrapeError {
        if err.is_timeout() {
            ScrapeError::Timeout(self.timeout)
        } else {
            ScrapeError::Transport(error_chain(err))
        }
    }

    /// `GET /v1/samples?after=..&max=..`: the raw frame of the next batch after
    /// `after`. Decoding is left to the caller, on the blocking pool (a batch can
    /// be megabytes of zstd). `dictionary` names the dictionary the collector holds
    /// for this host, which the agent then leaves out if the batch's is the same
    /// (`protocol::samples`, "Dictionary elision").
    ///
    /// # Errors
    /// A [`ScrapeError`]; [`ScrapeError::CursorAhead`] for a 409.
    pub async fn samples_frame(
        &self,
        address: SocketAddr,
        request_id: &str,
        after: u64,
        max: u32,
        dictionary: Option<&str>,
    ) -> Result<SamplesAnswer, ScrapeError> {
        let url = format!("https://{address}/v1/samples?after={after}&max={max}");
        let (dictionary, frame) = match self.get_frame(&url, request_id, dictionary).await {
            Err(ScrapeError::Status(409)) => return Err(ScrapeError::CursorAhead { after }),
            other => other?,
        };
        Ok(SamplesAnswer { frame, dictionary })
    }
}

/// What an answer's headers say of its batch dictionary.
fn dictionary_of(headers: &reqwest::header::HeaderMap) -> Dictionary {
    // A name is held per host and sent back: a sane one only (ours are 32 hex digits).
    let named = headers
        .get(DICTIONARY_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= MAX_DICTIONARY_NAME)
        .map(str::to_owned);
    let elided = headers.contains_key(DICTIONARY_ELIDED_HEADER);
    match (named, elided) {
        (Some(digest), true) => Dictionary::Elided(digest),
        (Some(digest), false) => Dictionary::Named(digest),
        (None, _) => Dictionary::Inline,
    }
}

/// The longest dictionary name taken from an agent; a longer one is ignored (the batch
/// is then read as carrying its own dictionary, which it must).
const MAX_DICTIONARY_NAME: usize = 128;

/// A `GET /v1/samples` answer: the raw frame (decoded by the caller, off the runtime) and
/// where its series dictionary is.
#[derive(Debug)]
pub struct SamplesAnswer {
    /// The batch frame.
    pub frame: bytes::Bytes,
    /// What the agent said of the batch's dictionary.
    pub dictionary: Dictionary,
}

/// Checks a batch frame from an agent against the size limits and decompresses it;
/// [`decode_batch`] then reads the batch from the payload.
///
/// # Errors
/// [`ScrapeError::Decode`].
pub fn open_batch(frame: &[u8]) -> Result<FramePayload<'_>, ScrapeError> {
    Ok(codec::open_frame_reusing(
        frame,
        &Limits::DEFAULT,
        is_compatible,
    )?)
}

/// Decodes the batch in `payload`, its strings borrowed from it (no allocation per
/// label), and checks its invariants, those that need the dictionary only when it is in
/// the batch (an elided one is checked against the held one at ingest).
///
/// # Errors
/// [`ScrapeError::Decode`] or [`ScrapeError::BadBatch`].
pub fn decode_batch<'a>(
    payload: &'a FramePayload<'_>,
    dictionary: &Dictionary,
) -> Result<SampleBatch<&'a str>, ScrapeError> {
    let batch: SampleBatch<&str> = payload.decode()?;
    if !matches!(dictionary, Dictionary::Elided(_)) {
        batch
            .validate()
            .map_err(|e| ScrapeError::BadBatch(e.to_string()))?;
    }
    Ok(batch)
}

/// An error and its causes on one line; reqwest hides the TLS reason in the
/// chain.
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use muster_shared::protocol::samples::{Round, SeriesDef, SeriesValue};

    /// Opens and decodes `frame` as the scrape loop does; the batch owned.
    fn decode(frame: &[u8]) -> Result<SampleBatch, ScrapeError> {
        let payload = open_batch(frame)?;
        decode_batch(&payload, &Dictionary::Inline).map(|b| b.to_owned_batch())
    }

    fn batch() -> SampleBatch {
        SampleBatch {
            first_seq: 1,
            last_seq: 1,
            next_after: 1,
            more: false,
            gap: None,
            series: vec![SeriesDef {
                id: 0,
                metric: "up".to_owned(),
                labels: vec![],
            }],
            rounds: vec![Round {
                seq: 1,
                timestamp_unix_ms: 1_000,
                values: vec![SeriesValue {
                    series: 0,
                    value: 1.0,
                }],
            }],
        }
    }

    #[test]
    fn decodes_a_valid_batch() {
        let frame = codec::encode_frame(&batch(), PROTOCOL_VERSION, 3).expect("encode");
        assert_eq!(decode(&frame).expect("decode"), batch());
    }

    #[test]
    fn refuses_garbage_truncation_and_broken_invariants() {
        assert!(matches!(
            decode(b"not a frame at all"),
            Err(ScrapeError::Decode(_))
        ));
        let frame = codec::encode_frame(&batch(), PROTOCOL_VERSION, 3).expect("encode");
        for cut in [1, 8, 16, frame.len() - 1] {
            assert!(
                matches!(decode(&frame[..cut]), Err(ScrapeError::Decode(_))),
                "cut at {cut}"
            );
        }
        let mut broken = batch();
        broken.rounds[0].values[0].series = 7; // no such series in the dictionary
        let frame = codec::encode_frame(&broken, PROTOCOL_VERSION, 3).expect("encode");
        assert!(matches!(decode(&frame), Err(ScrapeError::BadBatch(_))));
    }

    /// A batch of a few series and rounds, like an agent's, with labels.
    fn larger_batch(series: u32, rounds: u64) -> SampleBatch {
        use muster_shared::protocol::samples::Label;
        SampleBatch {
            first_seq: 10,
            last_seq: 9 + rounds,
            next_after: 9 + rounds,
            more: true,
            gap: None,
            series: (0..series)
                .map(|id| SeriesDef {
                    id,
                    metric: format!("node_metric_{id}"),
                    labels: vec![Label {
                        name: "device".to_owned(),
                        value: format!("sd{id}"),
                    }],
                })
                .collect(),
            rounds: (0..rounds)
                .map(|n| Round {
                    seq: 10 + n,
                    timestamp_unix_ms: 1_700_000_000_000 + n * 1000,
                    values: (0..series)
                        .map(|id| SeriesValue {
                            series: id,
                            value: f64::from(id) * 1.5 + n as f64,
                        })
                        .collect(),
                })
                .collect(),
        }
    }

    /// Whatever `decode_batch` makes of `frame`, it does not panic, and what it
    /// accepts keeps the protocol's rules.
    fn decodes_safely(frame: &[u8]) -> Result<SampleBatch, ScrapeError> {
        let decoded = decode(frame);
        if let Ok(batch) = &decoded {
            assert_eq!(batch.validate(), Ok(()), "an accepted batch is valid");
        }
        decoded
    }

    /// Every prefix and every single-bit flip of real frames (compressed and
    /// plain): a cut frame is always refused; a flipped header field is refused;
    /// a flipped payload bit is refused or, since frames carry no checksum (TLS
    /// guards them in transit), decodes to a batch that still keeps every rule.
    #[test]
    fn every_truncation_and_bit_flip_is_refused_or_valid_never_a_panic() {
        for (batch, level) in [
            (larger_batch(6, 4), 3),
            (batch(), 3),
            (larger_batch(40, 30), 19),
        ] {
            let frame = codec::encode_frame(&batch, PROTOCOL_VERSION, level).expect("encode");
            assert_eq!(decodes_safely(&frame).expect("the frame decodes"), batch);
            for cut in 0..frame.len() {
                assert!(
                    matches!(decodes_safely(&frame[..cut]), Err(ScrapeError::Decode(_))),
                    "a frame cut at {cut} of {} is refused",
                    frame.len()
                );
            }
            let mut flipped = frame.clone();
            for byte in 0..frame.len() {
                for bit in 0..8 {
                    flipped[byte] ^= 1 << bit;
                    let decoded = decodes_safely(&flipped);
                    // Magic, version (unless flipped to one we speak), flags and
                    // lengths are all checked before anything is decoded.
                    let version = u16::from_le_bytes([flipped[4], flipped[5]]);
                    let checked = byte < codec::HEADER_LEN
                        && !((4..6).contains(&byte) && is_compatible(version));
                    if checked {
                        assert!(
                            decoded.is_err(),
                            "header byte {byte} bit {bit} flipped is refused"
                        );
                    }
                    flipped[byte] ^= 1 << bit;
                }
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn random_bytes_are_refused_or_valid(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512)) {
            let _ = decodes_safely(&bytes);
        }

        #[test]
        fn random_payloads_behind_a_valid_header_are_refused_or_valid(
            payload in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512),
            compressed in proptest::prelude::any::<bool>(),
            decoded_len in 0u32..4096,
        ) {
            let header = codec::FrameHeader {
                version: PROTOCOL_VERSION,
                flags: if compressed { codec::FLAG_ZSTD } else { 0 },
                payload_len: u32::try_from(payload.len()).expect("short"),
                decoded_len: if compressed { decoded_len } else { u32::try_from(payload.len()).expect("short") },
            };
            let mut frame = header.to_bytes().to_vec();
            frame.extend_from_slice(&payload);
            let _ = decodes_safely(&frame);
        }

        #[test]
        fn random_edits_of_a_real_frame_are_refused_or_valid(
            edits in proptest::collection::vec((proptest::prelude::any::<usize>(), proptest::prelude::any::<u8>()), 1..8),
            cut in proptest::prelude::any::<usize>(),
        ) {
            let mut frame = codec::encode_frame(&larger_batch(8, 6), PROTOCOL_VERSION, 3).expect("encode");
            for (at, value) in edits {
                let at = at % frame.len();
                frame[at] = value;
            }
            let keep = cut % (frame.len() + 1);
            let _ = decodes_safely(&frame[..keep]);
        }
    }
}
