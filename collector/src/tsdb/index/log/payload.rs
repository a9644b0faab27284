//! The payload of a series log record, before zstd: the series as columns, so that zstd
//! finds the repeats (a host's series share label names, a metric name recurs per label
//! combination, a container's `id`/`image`/`name` recur per metric). Integers are
//! unsigned LEB128 varints.
//!
//! | column       | count              | each                                            |
//! |--------------|--------------------|-------------------------------------------------|
//! | series       | 1                  | n, the series in the record (≥ 1)               |
//! | ids          | n                  | the first id, then each id minus the one before |
//! |              |                    | (≥ 1: ids ascend within a record)               |
//! | strings      | 1                  | s, the distinct label names and values          |
//! | string sizes | s                  | bytes of each string                            |
//! | string bytes | Σ sizes            | the strings' UTF-8, in first-use order          |
//! | label counts | n                  | labels of each series                           |
//! | names        | Σ counts           | string index of each label's name               |
//! | values       | Σ counts           | string index of each label's value              |
//!
//! A series' labels are in name order, as [`Labels`] keeps them. Ids are sorted before
//! encoding, so callers may hand series in any order.

use crate::series::Labels;

use super::super::SeriesId;
use super::format::{Damage, EncodeError};

/// The plain payload of `series` (the column table in the module doc).
///
/// # Errors
/// [`EncodeError::DuplicateId`].
pub(super) fn encode_payload(series: &[(SeriesId, &Labels)]) -> Result<Vec<u8>, EncodeError> {
    let mut order: Vec<&(SeriesId, &Labels)> = series.iter().collect();
    order.sort_unstable_by_key(|(id, _)| *id);
    if let Some(w) = order.windows(2).find(|w| w[0].0 == w[1].0) {
        return Err(EncodeError::DuplicateId { id: w[0].0 });
    }
    let mut strings: Vec<&str> = Vec::new();
    let mut index: hashbrown::HashMap<&str, u64> = hashbrown::HashMap::new();
    let mut names = Vec::new();
    let mut values = Vec::new();
    for (_, labels) in &order {
        for l in labels.iter() {
            for (s, column) in [
                (l.name.as_str(), &mut names),
                (l.value.as_str(), &mut values),
            ] {
                let next = strings.len() as u64;
                let at = *index.entry(s).or_insert(next);
                if at == next {
                    strings.push(s);
                }
                column.push(at);
            }
        }
    }
    let mut out = Vec::new();
    put_varint(&mut out, order.len() as u64);
    let mut previous = 0;
    for (i, (id, _)) in order.iter().enumerate() {
        let delta = if i == 0 { *id } else { id - previous };
        put_varint(&mut out, u64::from(delta));
        previous = *id;
    }
    put_varint(&mut out, strings.len() as u64);
    for s in &strings {
        put_varint(&mut out, s.len() as u64);
    }
    for s in &strings {
        out.extend_from_slice(s.as_bytes());
    }
    for (_, labels) in &order {
        put_varint(&mut out, labels.len() as u64);
    }
    for r in names.iter().chain(&values) {
        put_varint(&mut out, *r);
    }
    Ok(out)
}

fn payload_damage(reason: &'static str) -> Damage {
    Damage::Payload { reason }
}

/// Decodes a plain payload; every count is checked against the bytes left before it
/// sizes an allocation.
pub(super) fn decode_payload(plain: &[u8]) -> Result<Vec<(SeriesId, Labels)>, Damage> {
    let mut r = Reader(plain);
    let n = r.count("series count")?;
    if n == 0 {
        return Err(payload_damage("a record without series"));
    }
    let mut ids = Vec::with_capacity(n);
    let mut id: u64 = 0;
    for i in 0..n {
        let delta = r.varint("id")?;
        if i > 0 && delta == 0 {
            return Err(payload_damage("ids not ascending"));
        }
        id = id
            .checked_add(delta)
            .filter(|&id| id <= u64::from(SeriesId::MAX))
            .ok_or(payload_damage("id beyond u32"))?;
        ids.push(id as SeriesId);
    }
    let s = r.count("string count")?;
    let mut sizes = Vec::with_capacity(s);
    for _ in 0..s {
        sizes.push(r.count("string size")?);
    }
    let mut strings = Vec::with_capacity(s);
    for size in sizes {
        let bytes = r.take(size).ok_or(payload_damage("string cut off"))?;
        strings.push(std::str::from_utf8(bytes).map_err(|_| payload_damage("string not UTF-8"))?);
    }
    let mut counts = Vec::with_capacity(n);
    for _ in 0..n {
        counts.push(r.count("label count")?);
    }
    let total = counts.iter().fold(0usize, |sum, &c| sum.saturating_add(c));
    let mut column = |what| -> Result<Vec<&str>, Damage> {
        let mut out = Vec::with_capacity(total.min(r.0.len()));
        for _ in 0..total {
            let at = r.varint(what)?;
            let s = usize::try_from(at)
                .ok()
                .and_then(|at| strings.get(at))
                .ok_or(payload_damage("string index out of range"))?;
            out.push(*s);
        }
        Ok(out)
    };
    let names = column("label name")?;
    let values = column("label value")?;
    if !r.0.is_empty() {
        return Err(payload_damage("bytes after the last column"));
    }
    let mut out = Vec::with_capacity(n);
    let mut at = 0;
    for (id, count) in ids.into_iter().zip(counts) {
        let pairs = names[at..at + count].iter().zip(&values[at..at + count]);
        out.push((id, Labels::from_pairs(pairs.map(|(n, v)| (*n, *v)))));
        at += count;
    }
    Ok(out)
}

/// Appends `v` as an unsigned LEB128 varint.
fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8 & 0x7F) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// A cursor over a plain payload.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn varint(&mut self, what: &'static str) -> Result<u64, Damage> {
        let mut v: u64 = 0;
        for shift in (0..64).step_by(7) {
            let (&b, rest) = self.0.split_first().ok_or(payload_damage(what))?;
            self.0 = rest;
            v |= u64::from(b & 0x7F) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(payload_damage("varint longer than 64 bits"))
    }

    /// A count of items that each take at least one byte: never more than the bytes left.
    fn count(&mut self, what: &'static str) -> Result<usize, Damage> {
        let v = self.varint(what)?;
        usize::try_from(v)
            .ok()
            .filter(|&v| v <= self.0.len())
            .ok_or(payload_damage("count beyond the payload"))
    }

    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, rest) = self.0.split_at_checked(n)?;
        self.0 = rest;
        Some(head)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn payloads_that_lie_about_counts_fail_without_panicking() {
        let a = Labels::from_pairs([("__name__", "up"), ("host", "web1")]);
        let plain = encode_payload(&[(1, &a), (2, &a)]).unwrap();
        for cut in 0..plain.len() {
            assert!(decode_payload(&plain[..cut]).is_err(), "cut at {cut}");
        }
        let mut longer = plain.clone();
        longer.push(0);
        assert!(decode_payload(&longer).is_err());
        let mut huge = Vec::new();
        put_varint(&mut huge, u64::MAX);
        assert!(decode_payload(&huge).is_err());
    }

    proptest! {
        #[test]
        fn garbage_payloads_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode_payload(&bytes);
        }
    }
}
