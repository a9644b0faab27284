//! Tests of the sample batch types and their checks.

use super::*;
use crate::codec;

fn batch() -> SampleBatch {
    SampleBatch {
        first_seq: 11,
        last_seq: 12,
        next_after: 12,
        more: true,
        gap: Some(Gap {
            first_missing: 5,
            last_missing: 10,
        }),
        series: vec![
            SeriesDef {
                id: 0,
                metric: "node_load1".to_owned(),
                labels: vec![],
            },
            SeriesDef {
                id: 1,
                metric: "node_filesystem_avail_bytes".to_owned(),
                labels: vec![
                    Label {
                        name: "device".to_owned(),
                        value: "/dev/sda1".to_owned(),
                    },
                    Label {
                        name: "mountpoint".to_owned(),
                        value: "/".to_owned(),
                    },
                ],
            },
        ],
        rounds: vec![
            Round {
                seq: 11,
                timestamp_unix_ms: 1_700_000_000_000,
                values: vec![
                    SeriesValue {
                        series: 0,
                        value: 0.5,
                    },
                    SeriesValue {
                        series: 1,
                        value: 1.0e9,
                    },
                ],
            },
            Round {
                seq: 12,
                timestamp_unix_ms: 1_700_000_010_000,
                values: vec![SeriesValue {
                    series: 0,
                    value: f64::INFINITY,
                }],
            },
        ],
    }
}

#[test]
fn well_formed_batch_validates() {
    batch().validate().unwrap();
    SampleBatch::empty(42).validate().unwrap();
}

#[test]
fn validate_names_the_broken_invariant() {
    let mut b = batch();
    b.rounds[1].seq = 11;
    b.last_seq = 11;
    assert_eq!(
        b.validate(),
        Err(BatchError::SeqOrder {
            seq: 11,
            previous: 11
        })
    );

    let mut b = batch();
    b.rounds[0].values[0].series = 7;
    assert_eq!(
        b.validate(),
        Err(BatchError::UndefinedSeries { seq: 11, id: 7 })
    );

    let mut b = batch();
    b.series[1].labels.reverse();
    assert_eq!(b.validate(), Err(BatchError::UnsortedLabels { id: 1 }));

    let mut b = batch();
    b.gap = Some(Gap {
        first_missing: 5,
        last_missing: 11,
    });
    assert!(matches!(b.validate(), Err(BatchError::BadGap { .. })));

    let mut b = batch();
    b.next_after = 3;
    assert!(matches!(b.validate(), Err(BatchError::CursorBehind { .. })));

    let mut b = batch();
    b.first_seq = 10;
    assert!(matches!(b.validate(), Err(BatchError::SeqBounds { .. })));
}

#[test]
fn sparse_ids_are_checked_like_dense_ones() {
    let mut b = batch();
    b.series[1].id = 4_000_000_000;
    b.rounds[0].values[1].series = 4_000_000_000;
    b.validate().unwrap();
    b.rounds[0].values[0].series = 4_000_000_000;
    assert_eq!(
        b.validate(),
        Err(BatchError::DuplicateValue {
            seq: 11,
            id: 4_000_000_000
        })
    );
    b.series[0].id = 4_000_000_000;
    assert_eq!(
        b.validate(),
        Err(BatchError::DuplicateSeries { id: 4_000_000_000 })
    );
}

#[test]
fn query_max_is_defaulted_and_clamped() {
    let q = |max| SamplesQuery { after: 0, max };
    assert_eq!(q(None).effective_max(), DEFAULT_MAX_ROUNDS);
    assert_eq!(q(Some(0)).effective_max(), 1);
    assert_eq!(q(Some(u32::MAX)).effective_max(), MAX_ROUNDS);
}

#[test]
fn codec_round_trip_keeps_non_finite_values() {
    let mut b = batch();
    b.rounds[1].values[0].value = f64::from_bits(0x7ff8_0000_dead_beef);
    let frame = codec::encode_frame(&b, crate::protocol::PROTOCOL_VERSION, 3).unwrap();
    let (_, back): (u16, SampleBatch) = codec::decode_frame(
        &frame,
        &codec::Limits::DEFAULT,
        crate::protocol::is_compatible,
    )
    .unwrap();
    assert_eq!(
        back.rounds[1].values[0].value.to_bits(),
        0x7ff8_0000_dead_beef
    );
    assert_eq!(back.rounds[0], b.rounds[0]);
    assert_eq!(back.series, b.series);
}

#[test]
fn borrowed_batch_decodes_in_place_from_an_owned_encoding() {
    let b = batch();
    let frame = codec::encode_frame(&b, crate::protocol::PROTOCOL_VERSION, 3).unwrap();
    let payload = codec::open_frame(
        &frame,
        &codec::Limits::DEFAULT,
        crate::protocol::is_compatible,
    )
    .unwrap();
    let view: SampleBatch<&str> = payload.decode().unwrap();
    view.validate().unwrap();
    assert_eq!(view.series[1].metric, "node_filesystem_avail_bytes");
    assert_eq!(view.series[1].labels[1].value, "/");
    assert_eq!(view.rounds, b.rounds);
    // The same bytes either way.
    assert_eq!(codec::encode_value(&view).unwrap(), payload.bytes());
    let mut broken = view.clone();
    broken.series[1].labels.reverse();
    assert_eq!(broken.validate(), Err(BatchError::UnsortedLabels { id: 1 }));
}

#[test]
fn elided_batches_are_checked_against_the_held_ids() {
    let mut b = batch();
    let defined: Vec<u32> = b.series.iter().map(|d| d.id).collect();
    assert_eq!(
        b.validate_elided(&defined),
        Err(BatchError::ElidedWithSeries { count: 2 })
    );
    b.series.clear();
    b.validate_elided(&defined).unwrap();
    assert_eq!(
        b.validate_elided(&[0]),
        Err(BatchError::UndefinedSeries { seq: 11, id: 1 })
    );
    b.rounds[1].values.push(SeriesValue {
        series: 0,
        value: 1.0,
    });
    assert_eq!(
        b.validate_elided(&defined),
        Err(BatchError::DuplicateValue { seq: 12, id: 0 })
    );
    b.rounds[1].values.pop();
    b.next_after = 1;
    assert!(matches!(
        b.validate_elided(&defined),
        Err(BatchError::CursorBehind { .. })
    ));
}

#[test]
fn dictionary_digest_names_the_content_whatever_the_string_type() {
    let b = batch();
    let digest = dictionary_digest(&b.series).unwrap();
    assert_eq!(digest.len(), 32);
    let borrowed: Vec<SeriesDef<&str>> = b
        .series
        .iter()
        .map(|d| SeriesDef {
            id: d.id,
            metric: d.metric.as_str(),
            labels: d
                .labels
                .iter()
                .map(|l| Label {
                    name: l.name.as_str(),
                    value: l.value.as_str(),
                })
                .collect(),
        })
        .collect();
    assert_eq!(dictionary_digest(&borrowed).unwrap(), digest);
    let mut other = b.series.clone();
    other[1].labels[1].value = "/home".to_owned();
    assert_ne!(dictionary_digest(&other).unwrap(), digest);
    other.swap(0, 1);
    assert_ne!(dictionary_digest(&b.series[..1]).unwrap(), digest);
}

#[test]
fn dictionary_answer_elides_only_a_held_non_empty_dictionary() {
    let b = batch();
    let digest = dictionary_digest(&b.series).unwrap();
    let fresh = DictionaryAnswer::for_batch(&b.series, None).unwrap();
    assert_eq!(
        (fresh.digest.as_str(), fresh.elide),
        (digest.as_str(), false)
    );
    let held = DictionaryAnswer::for_batch(&b.series, Some(&digest)).unwrap();
    assert!(held.elide);
    let empty: &[SeriesDef] = &[];
    let empty_digest = dictionary_digest(empty).unwrap();
    assert!(
        !DictionaryAnswer::for_batch(empty, Some(&empty_digest))
            .unwrap()
            .elide
    );

    let mut headers = http::HeaderMap::new();
    fresh.set_headers(&mut headers);
    assert_eq!(headers[DICTIONARY_HEADER], digest.as_str());
    assert!(!headers.contains_key(DICTIONARY_ELIDED_HEADER));
    held.set_headers(&mut headers);
    assert_eq!(headers[DICTIONARY_ELIDED_HEADER], "1");
}

#[test]
fn json_shape_is_readable() {
    let json = serde_json::to_value(batch()).unwrap();
    assert_eq!(
        json["gap"],
        serde_json::json!({"first_missing": 5, "last_missing": 10})
    );
    assert_eq!(
        json["series"][1]["labels"][0],
        serde_json::json!({"name": "device", "value": "/dev/sda1"})
    );
    assert_eq!(
        json["rounds"][0]["values"][0],
        serde_json::json!({"series": 0, "value": 0.5})
    );
    // JSON cannot carry infinity; serde_json writes null.
    assert_eq!(
        json["rounds"][1]["values"][0]["value"],
        serde_json::Value::Null
    );
}
