//! A batch of queued samples as a remote write 1.0 request body, and the headers that go
//! with it.
//!
//! The body is the protobuf [`WriteRequest`] compressed with Snappy's **block** format
//! (`snap::raw`); the framed format (`snap::read`/`snap::write`) is not what receivers
//! decode. Samples of one series are merged into one `TimeSeries`, sorted by timestamp
//! (stable, so equal timestamps keep their queue order) with only the last value of a
//! repeated timestamp kept: a receiver answers 400 to a duplicate, which would cost the
//! whole batch.

use std::collections::HashMap;

use bytes::Bytes;
use prost::Message;

use super::proto::{Label, Sample, TimeSeries, WriteRequest};
use super::queue::Chunk;
use crate::series::Labels;

/// `Content-Encoding` of every request.
pub const CONTENT_ENCODING: &str = "snappy";
/// `Content-Type` of every request.
pub const CONTENT_TYPE: &str = "application/x-protobuf";
/// The `X-Prometheus-Remote-Write-Version` header's name (header names are
/// case-insensitive; the `http` crate keeps them lowercase).
pub const VERSION_HEADER: &str = "x-prometheus-remote-write-version";
/// Its value: the 1.0 spec keeps the header at `0.1.0`.
pub const VERSION: &str = "0.1.0";

/// `User-Agent` of every request: `muster-collector/<version>`.
pub fn user_agent() -> String {
    format!("muster-collector/{}", muster_shared::version::VERSION)
}

/// Why a batch could not become a body.
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    /// Snappy refused the input (only past its 4 GiB block limit).
    #[error("snappy compression of a {bytes}-byte request failed: {source}")]
    Compress {
        /// Size of the protobuf encoding.
        bytes: usize,
        /// snap's reason.
        source: snap::Error,
    },
}

/// The request for `chunks`: one `TimeSeries` per distinct label set, in order of first
/// appearance, labels sorted by name (as [`Labels`] keeps them).
pub fn write_request(chunks: &[Chunk]) -> WriteRequest {
    let mut index: HashMap<&Labels, usize> = HashMap::new();
    let mut timeseries: Vec<TimeSeries> = Vec::new();
    for chunk in chunks {
        let at = *index.entry(&chunk.labels).or_insert_with(|| {
            timeseries.push(TimeSeries {
                labels: chunk
                    .labels
                    .iter()
                    .map(|l| Label {
                        name: l.name.clone(),
                        value: l.value.clone(),
                    })
                    .collect(),
                samples: Vec::new(),
            });
            timeseries.len() - 1
        });
        timeseries[at]
            .samples
            .extend(chunk.samples.iter().map(|s| Sample {
                value: s.value,
                timestamp: s.timestamp_ms,
            }));
    }
    for series in &mut timeseries {
        series.samples.sort_by_key(|s| s.timestamp);
        // `later` is dropped when it repeats `earlier`'s timestamp; its value is kept.
        series.samples.dedup_by(|later, earlier| {
            let same = later.timestamp == earlier.timestamp;
            if same {
                earlier.value = later.value;
            }
            same
        });
    }
    WriteRequest {
        timeseries,
        metadata: Vec::new(),
    }
}

/// The request as a body: protobuf, then Snappy block format.
///
/// # Errors
/// [`EncodeError::Compress`] only for a request past Snappy's size limit.
pub fn encode_body(request: &WriteRequest) -> Result<Bytes, EncodeError> {
    let protobuf = request.encode_to_vec();
    snap::raw::Encoder::new()
        .compress_vec(&protobuf)
        .map(Bytes::from)
        .map_err(|source| EncodeError::Compress {
            bytes: protobuf.len(),
            source,
        })
}

/// Decodes a body made by [`encode_body`] (for tests and for receivers' fakes).
///
/// # Errors
/// A description of what failed: Snappy or protobuf.
pub fn decode_body(body: &[u8]) -> Result<WriteRequest, String> {
    let protobuf = snap::raw::Decoder::new()
        .decompress_vec(body)
        .map_err(|e| format!("snappy: {e}"))?;
    WriteRequest::decode(protobuf.as_slice()).map_err(|e| format!("protobuf: {e}"))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::series;

    fn chunk(labels: &Arc<Labels>, points: &[(i64, f64)]) -> Chunk {
        Chunk {
            labels: Arc::clone(labels),
            samples: points
                .iter()
                .map(|&(timestamp_ms, value)| series::Sample {
                    timestamp_ms,
                    value,
                })
                .collect(),
        }
    }

    #[test]
    fn merges_a_series_and_sorts_its_samples() {
        let a = Arc::new(Labels::from_pairs([("job", "x"), ("__name__", "a")]));
        let b = Arc::new(Labels::from_pairs([("__name__", "b")]));
        let request = write_request(&[
            chunk(&a, &[(2, 2.0)]),
            chunk(&b, &[(1, 10.0)]),
            chunk(&a, &[(1, 1.0), (3, 3.0), (3, 3.5)]),
        ]);
        assert_eq!(request.timeseries.len(), 2);
        let first = &request.timeseries[0];
        let names: Vec<_> = first.labels.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(names, ["__name__", "job"]);
        let points: Vec<_> = first
            .samples
            .iter()
            .map(|s| (s.timestamp, s.value))
            .collect();
        assert_eq!(points, [(1, 1.0), (2, 2.0), (3, 3.5)]);
        assert_eq!(request.timeseries[1].labels[0].value, "b");
    }

    #[test]
    fn body_is_snappy_block_format_and_round_trips() {
        let a = Arc::new(Labels::from_pairs([("__name__", "a")]));
        let points: Vec<(i64, f64)> = (0..500).map(|t| (t, 1.0)).collect();
        let request = write_request(&[chunk(&a, &points)]);
        let body = encode_body(&request).unwrap();
        let protobuf_len = request.encode_to_vec().len();
        // Block format starts with the uncompressed length as a varint; the framed format
        // would start with its stream identifier chunk (0xff, "sNaPpY").
        assert_ne!(body[0], 0xff);
        assert_eq!(
            snap::raw::decompress_len(&body).unwrap(),
            protobuf_len,
            "varint length prefix"
        );
        assert!(body.len() < protobuf_len, "compressible input shrinks");
        assert_eq!(decode_body(&body).unwrap(), request);
    }

    #[test]
    fn user_agent_names_the_version() {
        assert_eq!(
            user_agent(),
            format!("muster-collector/{}", muster_shared::version::VERSION)
        );
    }
}
