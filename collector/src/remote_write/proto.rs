//! Prometheus remote write 1.0 messages (`prometheus.WriteRequest`, proto3), written by hand
//! with `prost` derives: no `protoc`, no build script.
//!
//! The field numbers are the wire layout and follow Prometheus's `prompb/remote.proto` and
//! `prompb/types.proto` (see `research/prometheus-alerting-reference.md` §3). Field 2 of
//! `WriteRequest` is reserved upstream; exemplars and native histograms (fields 3 and 4 of
//! `TimeSeries`) are left out, which 1.0 receivers accept.

/// The request body before Snappy: every series of one batch.
#[derive(Clone, PartialEq, prost::Message)]
pub struct WriteRequest {
    /// The series, each with its full label set and its samples.
    #[prost(message, repeated, tag = "1")]
    pub timeseries: Vec<TimeSeries>,
    /// Metric metadata (type, help, unit); optional in 1.0 and not sent by Muster today.
    #[prost(message, repeated, tag = "3")]
    pub metadata: Vec<MetricMetadata>,
}

/// One series: labels sorted by name (`__name__` included), samples oldest first.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TimeSeries {
    /// Sorted by name, names unique and non-empty, values non-empty.
    #[prost(message, repeated, tag = "1")]
    pub labels: Vec<Label>,
    /// In timestamp order.
    #[prost(message, repeated, tag = "2")]
    pub samples: Vec<Sample>,
}

/// One label pair.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Label {
    /// The label name.
    #[prost(string, tag = "1")]
    pub name: String,
    /// The label value.
    #[prost(string, tag = "2")]
    pub value: String,
}

/// One sample.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Sample {
    /// The value (a stale marker is the NaN with bits `0x7ff0000000000002`).
    #[prost(double, tag = "1")]
    pub value: f64,
    /// Milliseconds since the Unix epoch.
    #[prost(int64, tag = "2")]
    pub timestamp: i64,
}

/// Metadata of one metric family.
#[derive(Clone, PartialEq, prost::Message)]
pub struct MetricMetadata {
    /// A [`MetricType`] as its number.
    #[prost(enumeration = "MetricType", tag = "1")]
    pub r#type: i32,
    /// The family's name.
    #[prost(string, tag = "2")]
    pub metric_family_name: String,
    /// Its HELP text.
    #[prost(string, tag = "4")]
    pub help: String,
    /// Its unit.
    #[prost(string, tag = "5")]
    pub unit: String,
}

/// `MetricMetadata.MetricType`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum MetricType {
    /// Unknown.
    Unknown = 0,
    /// Counter.
    Counter = 1,
    /// Gauge.
    Gauge = 2,
    /// Histogram.
    Histogram = 3,
    /// Gauge histogram.
    Gaugehistogram = 4,
    /// Summary.
    Summary = 5,
    /// Info.
    Info = 6,
    /// State set.
    Stateset = 7,
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    fn up() -> WriteRequest {
        WriteRequest {
            timeseries: vec![TimeSeries {
                labels: vec![Label {
                    name: "__name__".to_owned(),
                    value: "up".to_owned(),
                }],
                samples: vec![Sample {
                    value: 1.0,
                    timestamp: 1000,
                }],
            }],
            metadata: vec![],
        }
    }

    #[test]
    fn encodes_the_golden_bytes() {
        // Written out by hand from the proto field numbers and wire types.
        let mut golden = vec![0x0a, 30]; // WriteRequest.timeseries (1, len), 30 bytes
        golden.extend([0x0a, 14]); // TimeSeries.labels (1, len), 14 bytes
        golden.extend([0x0a, 8]); // Label.name (1, len)
        golden.extend(b"__name__");
        golden.extend([0x12, 2]); // Label.value (2, len)
        golden.extend(b"up");
        golden.extend([0x12, 12]); // TimeSeries.samples (2, len), 12 bytes
        golden.push(0x09); // Sample.value (1, 64-bit)
        golden.extend(1.0f64.to_le_bytes());
        golden.extend([0x10, 0xe8, 0x07]); // Sample.timestamp (2, varint) = 1000
        assert_eq!(up().encode_to_vec(), golden);
        assert_eq!(WriteRequest::decode(golden.as_slice()).unwrap(), up());
    }

    #[test]
    fn metadata_is_field_3() {
        let request = WriteRequest {
            timeseries: vec![],
            metadata: vec![MetricMetadata {
                r#type: MetricType::Gauge as i32,
                metric_family_name: "m".to_owned(),
                help: String::new(),
                unit: String::new(),
            }],
        };
        let bytes = request.encode_to_vec();
        // (3 << 3) | 2 = 0x1a; the inner message is type (1, varint) 2 and name (2) "m".
        assert_eq!(bytes, [0x1a, 5, 0x08, 2, 0x12, 1, b'm']);
        assert_eq!(WriteRequest::decode(bytes.as_slice()).unwrap(), request);
    }

    #[test]
    fn negative_timestamps_and_nan_round_trip() {
        let mut request = up();
        request.timeseries[0].samples = vec![
            Sample {
                value: f64::from_bits(0x7ff0_0000_0000_0002),
                timestamp: -1,
            },
            Sample {
                value: -0.5,
                timestamp: i64::MAX,
            },
        ];
        let back = WriteRequest::decode(request.encode_to_vec().as_slice()).unwrap();
        let samples = &back.timeseries[0].samples;
        assert_eq!(samples[0].value.to_bits(), 0x7ff0_0000_0000_0002);
        assert_eq!(samples[0].timestamp, -1);
        assert_eq!(samples[1].timestamp, i64::MAX);
    }
}
