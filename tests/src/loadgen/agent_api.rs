//! The agent API as the collector sees it (agent/src/api.rs, agent/src/buffer/read.rs):
//! `GET /v1/info` and `GET /v1/samples?after=SEQ&max=N`, binary frames
//! (`application/x-muster-batch`: bincode + zstd level 3, as the agent encodes them) or
//! JSON when asked, 409 for a cursor ahead of the newest round, 400 for a bad query.
//!
//! A batch carries its own series dictionary, numbered densely in order of first use, as
//! the agent's does. Here the order of first use is the host's catalogue order (the backlog
//! rounds use the CPU series, which come first), so the dictionary is always a prefix of the
//! host's definitions and is serialised straight from them ([`BatchRef`]), without copying
//! 500 label sets per answer.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use muster_shared::codec;
use muster_shared::protocol::error::ErrorBody;
use muster_shared::protocol::info::{AgentInfo, CAP_SAMPLES};
use muster_shared::protocol::samples::{
    DICTIONARY_HEADER, DictionaryAnswer, Gap, Round, SamplesQuery, SeriesDef, SeriesValue,
};
use muster_shared::protocol::{BATCH_MEDIA_TYPE, PROTOCOL_VERSION};
use serde::Serialize;

use super::{Fleet, unix_ms};

/// The agent's bound on a batch's bincode (agent/src/buffer/read.rs `MAX_BATCH_BYTES`).
const MAX_BATCH_BYTES: u64 = 12 << 20;
/// zstd level of the agent's frames (agent/src/api.rs).
const ZSTD_LEVEL: i32 = 3;

/// A [`muster_shared::protocol::samples::SampleBatch`] with a borrowed dictionary: the same
/// fields in the same order, so bincode and JSON encode it identically.
#[derive(Debug, Serialize)]
pub struct BatchRef<'a> {
    /// See `SampleBatch::first_seq`.
    pub first_seq: u64,
    /// See `SampleBatch::last_seq`.
    pub last_seq: u64,
    /// See `SampleBatch::next_after`.
    pub next_after: u64,
    /// See `SampleBatch::more`.
    pub more: bool,
    /// Always `None`: the load generator keeps every round.
    pub gap: Option<Gap>,
    /// The dictionary: a prefix of the host's series.
    pub series: &'a [SeriesDef],
    /// The rounds, oldest first.
    pub rounds: Vec<Round>,
}

/// The cursor is past the newest round (the agent's `BufferError::CursorAhead`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CursorAhead {
    /// The cursor asked for.
    pub after: u64,
    /// The newest sequence number held.
    pub newest: u64,
}

/// The batch answering `query` for `host` at `now_ms`.
///
/// # Errors
/// [`CursorAhead`] when `query.after` is past the newest round.
pub fn read_batch<'a>(
    fleet: &'a Fleet,
    host: usize,
    query: &SamplesQuery,
    now_ms: u64,
) -> Result<BatchRef<'a>, CursorAhead> {
    let after = query.after;
    let newest = fleet.newest_seq(host, now_ms);
    if after > newest {
        return Err(CursorAhead { after, newest });
    }
    let series = &fleet.hosts[host];
    let start_ms = fleet.clock.start_ms().unwrap_or(0);
    let max = u64::from(query.effective_max());
    let mut rounds = Vec::new();
    let mut bytes = 64;
    let mut used = 0;
    let mut seq = after + 1;
    while seq <= newest && (rounds.len() as u64) < max {
        let round = fleet.round(host, seq);
        let n = fleet.series_in_round(host, round);
        // The agent's upper bound of a round's bincode: 3 varints, 13 bytes per value.
        let len = 27 + 13 * n as u64;
        if !rounds.is_empty() && bytes + len > MAX_BATCH_BYTES {
            break;
        }
        bytes += len;
        used = used.max(n);
        rounds.push(Round {
            seq,
            timestamp_unix_ms: fleet.timestamp_ms(host, start_ms, round),
            values: (0..n)
                .map(|i| SeriesValue {
                    series: u32::try_from(i).unwrap_or(u32::MAX),
                    value: series.value(i, round),
                })
                .collect(),
        });
        seq += 1;
    }
    let (first_seq, last_seq) = match (rounds.first(), rounds.last()) {
        (Some(first), Some(last)) => (first.seq, last.seq),
        _ => (0, 0),
    };
    Ok(BatchRef {
        first_seq,
        last_seq,
        next_after: if last_seq > 0 { last_seq } else { after },
        more: last_seq > 0 && last_seq < newest,
        gap: None,
        series: &series.defs[..used],
        rounds,
    })
}

#[derive(Debug, Clone)]
struct HostState {
    fleet: Arc<Fleet>,
    host: usize,
}

/// The router of host `host`: `/v1/info` and `/v1/samples`. Its listener's TLS config
/// admits only the fleet's collector.
pub fn router(fleet: Arc<Fleet>, host: usize) -> Router {
    Router::new()
        .route("/v1/info", get(info))
        .route("/v1/samples", get(samples))
        .fallback(|| async { error(StatusCode::NOT_FOUND, "no such route") })
        .with_state(HostState { fleet, host })
}

async fn info(State(state): State<HostState>, headers: HeaderMap) -> Response {
    let info = AgentInfo {
        host_id: state.fleet.hosts[state.host].host.clone(),
        agent_version: format!("{}-loadgen", muster_shared::version::VERSION),
        protocol_version: PROTOCOL_VERSION,
        capabilities: vec![CAP_SAMPLES.to_owned()],
        started_at_unix_ms: state.fleet.started_at_unix_ms,
    };
    if accepts(&headers, BATCH_MEDIA_TYPE) {
        frame(&info)
    } else {
        axum::Json(info).into_response()
    }
}

async fn samples(
    State(state): State<HostState>,
    headers: HeaderMap,
    query: Result<Query<SamplesQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Ok(Query(query)) = query else {
        state.fleet.served.errors.fetch_add(1, Ordering::Relaxed);
        return error(
            StatusCode::BAD_REQUEST,
            "bad query; expected ?after=SEQ&max=N",
        );
    };
    let json = accepts(&headers, "application/json");
    let held = headers
        .get(DICTIONARY_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    // Building and compressing a batch is CPU work: off the async workers, as the agent does.
    let answer = tokio::task::spawn_blocking(move || {
        let fleet = &state.fleet;
        match read_batch(fleet, state.host, &query, unix_ms()) {
            Ok(batch) => {
                fleet.served.batches.fetch_add(1, Ordering::Relaxed);
                fleet
                    .served
                    .rounds
                    .fetch_add(batch.rounds.len() as u64, Ordering::Relaxed);
                let values: usize = batch.rounds.iter().map(|r| r.values.len()).sum();
                fleet
                    .served
                    .values
                    .fetch_add(values as u64, Ordering::Relaxed);
                if json {
                    axum::Json(&batch).into_response()
                } else {
                    batch_frame(batch, held.as_deref())
                }
            }
            Err(ahead) => {
                fleet.served.errors.fetch_add(1, Ordering::Relaxed);
                error(
                    StatusCode::CONFLICT,
                    &format!(
                        "cursor {} is ahead of the newest round {}",
                        ahead.after, ahead.newest
                    ),
                )
            }
        }
    })
    .await;
    answer.unwrap_or_else(|_| error(StatusCode::INTERNAL_SERVER_ERROR, "internal error"))
}

fn accepts(headers: &HeaderMap, media_type: &str) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains(media_type))
}

fn frame<T: Serialize>(value: &T) -> Response {
    match codec::encode_frame(value, PROTOCOL_VERSION, ZSTD_LEVEL) {
        Ok(frame) => ([(header::CONTENT_TYPE, BATCH_MEDIA_TYPE)], frame).into_response(),
        Err(_) => error(StatusCode::INTERNAL_SERVER_ERROR, "internal error"),
    }
}

/// A batch frame naming its dictionary, which is left out when the collector holds it, as
/// the agent answers (`protocol::samples`, "Dictionary elision").
fn batch_frame(mut batch: BatchRef<'_>, held: Option<&str>) -> Response {
    let Ok(answer) = DictionaryAnswer::for_batch(batch.series, held) else {
        return error(StatusCode::INTERNAL_SERVER_ERROR, "internal error");
    };
    if answer.elide {
        batch.series = &[];
    }
    let mut response = frame(&batch);
    answer.set_headers(response.headers_mut());
    response
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(ErrorBody::new(message))).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use muster_shared::protocol::samples::SampleBatch;

    fn decode(batch: &BatchRef<'_>) -> SampleBatch {
        let frame = codec::encode_frame(batch, PROTOCOL_VERSION, ZSTD_LEVEL).unwrap();
        let (_, back): (u16, SampleBatch) = codec::decode_frame(
            &frame,
            &codec::Limits::DEFAULT,
            muster_shared::protocol::is_compatible,
        )
        .unwrap();
        back.validate().unwrap();
        back
    }

    #[test]
    fn batches_decode_as_the_collector_decodes_them() {
        let fleet = Fleet::new(2, 3, 0);
        fleet.clock.start(1_000_000);
        let query = |after, max| SamplesQuery {
            after,
            max: Some(max),
        };
        // Host 0: 3 backlog rounds (CPU series only), then live rounds 0 and 1.
        let batch = read_batch(&fleet, 0, &query(0, 2), 1_010_000).unwrap();
        let back = decode(&batch);
        assert_eq!((back.first_seq, back.last_seq, back.more), (1, 2, true));
        assert_eq!(back.series.len(), super::super::catalogue::CPU_SERIES);
        assert!(back.rounds[0].timestamp_unix_ms < 1_000_000 - 20_000 + 10);

        let batch = read_batch(&fleet, 0, &query(2, 500), 1_010_000).unwrap();
        let back = decode(&batch);
        assert_eq!((back.first_seq, back.last_seq, back.more), (3, 5, false));
        assert_eq!(back.series.len(), fleet.hosts[0].defs.len());
        assert_eq!(back.rounds[2].values.len(), fleet.hosts[0].defs.len());

        // Nothing new: an empty batch keeps the cursor; past the newest: 409.
        let back = decode(&read_batch(&fleet, 0, &query(5, 500), 1_010_000).unwrap());
        assert_eq!((back.rounds.len(), back.next_after), (0, 5));
        assert_eq!(
            read_batch(&fleet, 1, &query(3, 500), 1_010_000).unwrap_err(),
            CursorAhead {
                after: 3,
                newest: 2
            }
        );
    }

    #[test]
    fn nothing_is_served_before_the_clock_starts() {
        let fleet = Fleet::new(1, 10, 0);
        let batch = read_batch(
            &fleet,
            0,
            &SamplesQuery {
                after: 0,
                max: None,
            },
            5,
        )
        .unwrap();
        assert!(batch.rounds.is_empty() && batch.series.is_empty());
    }
}
