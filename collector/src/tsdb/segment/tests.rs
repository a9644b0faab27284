//! The segment format end to end: round trips, order, truncation and damaged bytes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use proptest::prelude::*;

use super::format::{BLOCK_ENTRIES, Damage};
use super::*;
use crate::tsdb::chunk::{self, ChunkWriter};

/// A raw chunk of `n` samples every 10 s from `from`.
fn chunk_at(from: i64, n: usize) -> (i64, i64, Vec<u8>) {
    let mut w = ChunkWriter::new();
    for i in 0..n as i64 {
        w.push(from + i * 10_000, (from / 1000 + i) as f64).unwrap();
    }
    (from, w.last_ts().unwrap(), w.finish().unwrap())
}

type Content = BTreeMap<u32, Vec<(i64, i64, Vec<u8>)>>;

/// Writes `content` as one flush segment in `dir`.
fn write(dir: &Path, content: &Content) -> PathBuf {
    let mut w = SegmentWriter::create(dir, "1.seg", Kind::Raw, Level::Flush, 0).unwrap();
    for (&series, chunks) in content {
        for (first, last, bytes) in chunks {
            w.push(series, *first, *last, bytes).unwrap();
        }
    }
    w.finish().unwrap().unwrap()
}

/// Reads back every series through the index, checking each chunk.
fn read_back(segment: &Segment) -> Result<Content, SegmentError> {
    let mut out = Content::new();
    let mut buf = Vec::new();
    for e in segment.entries() {
        let e = e?;
        segment.read_run(&e, &mut buf)?;
        let chunks = out.entry(e.series).or_default();
        for r in format::run_chunks(&buf) {
            let r = r.map_err(|source| SegmentError::Damaged {
                path: segment.path().to_owned(),
                source,
            })?;
            let bytes = buf[r].to_vec();
            let samples: Vec<_> = chunk::decode(&bytes)
                .and_then(|it| it.collect::<Result<Vec<_>, _>>())
                .map_err(|_| SegmentError::Damaged {
                    path: segment.path().to_owned(),
                    source: Damage::Layout { reason: "chunk" },
                })?;
            let (first, last) = (
                samples[0].timestamp_ms,
                samples[samples.len() - 1].timestamp_ms,
            );
            chunks.push((first, last, bytes));
        }
        if chunks.first().map(|c| c.0) != Some(e.first_ts)
            || chunks.last().map(|c| c.1) != Some(e.last_ts)
        {
            return Err(SegmentError::Damaged {
                path: segment.path().to_owned(),
                source: Damage::Layout {
                    reason: "entry times",
                },
            });
        }
    }
    Ok(out)
}

fn content_strategy() -> impl Strategy<Value = Content> {
    proptest::collection::btree_map(
        any::<u32>(),
        proptest::collection::vec((0i64..4, 1usize..40), 1..4),
        1..300,
    )
    .prop_map(|m| {
        m.into_iter()
            .map(|(series, windows)| {
                let mut at = 1_700_000_000_000;
                let chunks = windows
                    .into_iter()
                    .map(|(gap, n)| {
                        at += gap * 1_800_000;
                        let c = chunk_at(at, n);
                        at = c.1 + 10_000;
                        c
                    })
                    .collect();
                (series, chunks)
            })
            .collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn segments_round_trip_and_find_every_series(content in content_strategy()) {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), &content);
        let segment = Segment::open(&path).unwrap();
        let t = *segment.trailer();
        prop_assert_eq!(t.entries as usize, content.len());
        prop_assert_eq!(t.min_series, *content.keys().next().unwrap());
        prop_assert_eq!(t.max_series, *content.keys().next_back().unwrap());
        let samples: u64 = content.values().flatten().map(|c| format::chunk_count(&c.2)).sum();
        prop_assert_eq!(t.samples, samples);
        prop_assert_eq!(read_back(&segment).unwrap(), content.clone());
        // Lookups, in order through one cache, and of absent series.
        let mut cache = BlockCache::default();
        for (&series, chunks) in &content {
            let e = segment.find(series, &mut cache).unwrap().unwrap();
            prop_assert_eq!((e.first_ts, e.last_ts), (chunks[0].0, chunks[chunks.len() - 1].1));
            if series > 0 && !content.contains_key(&(series - 1)) {
                prop_assert!(segment.find(series - 1, &mut BlockCache::default()).unwrap().is_none());
            }
        }
    }

    #[test]
    fn writers_refuse_chunks_out_of_order(a in 0u32..5, b in 0u32..5, ta in 0i64..3, tb in 0i64..3) {
        let dir = tempfile::tempdir().unwrap();
        let mut w = SegmentWriter::create(dir.path(), "x.seg", Kind::Raw, Level::Flush, 0).unwrap();
        let (c1, c2) = (chunk_at(ta * 100_000, 3), chunk_at(tb * 100_000, 3));
        w.push(a, c1.0, c1.1, &c1.2).unwrap();
        let in_order = (b, c2.0) > (a, c1.1);
        let pushed = w.push(b, c2.0, c2.1, &c2.2);
        prop_assert_eq!(pushed.is_ok(), in_order, "{:?}", pushed);
        if in_order {
            prop_assert!(w.finish().unwrap().is_some());
        } else {
            drop(w);
        }
        // Nothing but a finished segment is ever left.
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        prop_assert!(names.iter().all(|n| n == "x.seg"), "{names:?}");
    }
}

fn small_content(series: u32) -> Content {
    (1..=series)
        .map(|s| {
            let start = 1_700_000_000_000 + i64::from(s) * 10;
            (s, vec![chunk_at(start, 5), chunk_at(start + 1_800_000, 3)])
        })
        .collect()
}

#[test]
fn a_truncated_segment_is_a_clear_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), &small_content(3));
    let bytes = std::fs::read(&path).unwrap();
    for len in 0..bytes.len() {
        std::fs::write(&path, &bytes[..len]).unwrap();
        let err = Segment::open(&path).unwrap_err();
        assert!(err.is_damage(), "cut at {len}: {err:?}");
        assert!(
            err.to_string().contains(&path.display().to_string()),
            "{err}"
        );
    }
}

#[test]
fn every_flipped_byte_is_found_on_open_or_read() {
    let dir = tempfile::tempdir().unwrap();
    // Two index blocks, so a flip in either is caught by its own fence.
    let content = small_content(BLOCK_ENTRIES as u32 + 5);
    let path = write(dir.path(), &content);
    let bytes = std::fs::read(&path).unwrap();
    for i in 0..bytes.len() {
        let mut bad = bytes.clone();
        bad[i] ^= 0x20;
        std::fs::write(&path, &bad).unwrap();
        let result = Segment::open(&path).and_then(|s| read_back(&s));
        match result {
            Err(e) => assert!(e.is_damage(), "flip at {i}: {e:?}"),
            Ok(back) => panic!("flip at {i} not found ({} series read)", back.len()),
        }
    }
}

#[test]
fn open_removes_unfinished_files_and_skips_damaged_ones() {
    let dir = tempfile::tempdir().unwrap();
    let good = write(dir.path(), &small_content(4));
    let bad = dir.path().join("00000000000000000007.seg");
    std::fs::copy(&good, &bad).unwrap();
    let mut bytes = std::fs::read(&bad).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&bad, &bytes).unwrap();
    let torn = dir.path().join("00000000000000000008.seg.tmp");
    std::fs::write(&torn, b"half a segment").unwrap();
    std::fs::write(dir.path().join("notes.txt"), b"an operator's").unwrap();

    let set = Segments::open(dir.path(), Kind::Raw).unwrap();
    assert_eq!(set.snapshot().len(), 1);
    assert_eq!(set.damaged(), 1);
    assert!(!torn.exists());
    assert!(bad.exists(), "damaged files are left for an operator");
    // Numbering goes on after the highest name, damaged ones included.
    let w = set.flush_writer().unwrap();
    assert_eq!(w.path(), dir.path().join("00000000000000000008.seg"));
    // A rollup folder does not take raw segments.
    assert_eq!(
        Segments::open(dir.path(), Kind::Rollup).unwrap().damaged(),
        2
    );
}

#[test]
fn replaced_segments_stay_readable_for_readers_holding_them() {
    let dir = tempfile::tempdir().unwrap();
    let set = Segments::open(dir.path(), Kind::Raw).unwrap();
    let content = small_content(2);
    let mut w = set.flush_writer().unwrap();
    for (&s, chunks) in &content {
        for c in chunks {
            w.push(s, c.0, c.1, &c.2).unwrap();
        }
    }
    let path = w.finish().unwrap().unwrap();
    set.replace(std::slice::from_ref(&path), &[]).unwrap();
    let held = set.snapshot();
    let old: Vec<_> = held.iter().cloned().collect();
    let freed = set.replace(&[], &old).unwrap();
    assert_eq!(freed, old[0].bytes());
    assert!(!path.exists());
    assert!(set.snapshot().is_empty());
    // The unlinked file still reads through the snapshot taken before.
    assert_eq!(read_back(&held.segments[0]).unwrap(), content);
    assert_eq!(set.last_ts(2).unwrap(), None);
}

#[test]
fn last_ts_looks_newest_first_across_segments() {
    let dir = tempfile::tempdir().unwrap();
    let set = Segments::open(dir.path(), Kind::Raw).unwrap();
    let mut paths = Vec::new();
    for window in 0..3i64 {
        let mut w = set.flush_writer().unwrap();
        // Series 1 in every window; series 2 only in the first.
        for series in [1u32, 2] {
            if series == 2 && window > 0 {
                continue;
            }
            let c = chunk_at(window * 1_800_000 + i64::from(series), 4);
            w.push(series, c.0, c.1, &c.2).unwrap();
        }
        paths.push(w.finish().unwrap().unwrap());
    }
    set.replace(&paths, &[]).unwrap();
    assert_eq!(set.last_ts(1).unwrap(), Some(2 * 1_800_000 + 1 + 30_000));
    assert_eq!(set.last_ts(2).unwrap(), Some(2 + 30_000));
    assert_eq!(set.last_ts(3).unwrap(), None);
    assert_eq!(set.max_series(), Some(2));
}
