//! Label sets of alerts, and their fingerprints.
//!
//! An alert is identified by its labels alone (Alertmanager's model): two alerts with the
//! same labels are the same alert, whatever their annotations say. The fingerprint is
//! Alertmanager's (FNV-1a 64 over the names and values in name order, each followed by the
//! separator byte 0xff), so a fingerprint we print is the one Alertmanager shows for the
//! alerts we push to it.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// Labels or annotations by name, sorted. An empty value is the same as no label.
pub type LabelSet = BTreeMap<String, String>;

/// The label every alert carries: its rule's name.
pub const ALERTNAME: &str = "alertname";

/// The separator Prometheus and Alertmanager hash between names and values.
const SEPARATOR: u8 = 0xff;
const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// An alert's identity as 64 bits; shown, and serialized, as 16 lowercase hex digits
/// (Alertmanager's form, so API answers and stored records read the same).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct Fingerprint(pub u64);

impl From<Fingerprint> for String {
    fn from(fp: Fingerprint) -> String {
        fp.to_string()
    }
}

impl TryFrom<String> for Fingerprint {
    type Error = String;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        Fingerprint::parse(&text)
            .map_err(|_| format!("invalid fingerprint {text:?}: expected 16 hex digits"))
    }
}

impl Fingerprint {
    /// The fingerprint of `labels`; labels with empty values are left out, as absent.
    ///
    /// ```
    /// use muster_collector::alert::labels::{Fingerprint, LabelSet};
    /// let labels = LabelSet::from([("alertname".to_owned(), "HostDown".to_owned())]);
    /// assert_eq!(Fingerprint::of(&labels).to_string().len(), 16);
    /// ```
    pub fn of(labels: &LabelSet) -> Self {
        let mut hash = FNV_OFFSET;
        for (name, value) in labels.iter().filter(|(_, v)| !v.is_empty()) {
            for byte in name
                .bytes()
                .chain([SEPARATOR])
                .chain(value.bytes())
                .chain([SEPARATOR])
            {
                hash ^= u64::from(byte);
                hash = hash.wrapping_mul(FNV_PRIME);
            }
        }
        Fingerprint(hash)
    }

    /// Parses 1 to 16 hex digits.
    ///
    /// # Errors
    /// The text is not 1 to 16 hex digits (a sign is refused).
    pub fn parse(text: &str) -> Result<Self, std::num::ParseIntError> {
        // from_str_radix takes a leading '+'; a fingerprint has none.
        let digits = text.strip_prefix('+').map_or(text, |_| "x");
        u64::from_str_radix(digits, 16).map(Fingerprint)
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// The value of `name` in `labels`, `""` when absent (Alertmanager's rule for matchers
/// and inhibition's `equal`).
pub fn value_of<'a>(labels: &'a LabelSet, name: &str) -> &'a str {
    labels.get(name).map_or("", String::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(pairs: &[(&str, &str)]) -> LabelSet {
        pairs
            .iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn fingerprint_is_alertmanagers() {
        // Alertmanager: model.LabelSet{}.Fingerprint() is the FNV-1a offset basis, and a
        // set's fingerprint covers name, 0xff, value, 0xff in name order.
        assert_eq!(Fingerprint::of(&LabelSet::new()).0, FNV_OFFSET);
        let mut expected = FNV_OFFSET;
        for byte in b"alertname\xffHostDown\xffhost\xffweb1\xff" {
            expected ^= u64::from(*byte);
            expected = expected.wrapping_mul(FNV_PRIME);
        }
        let labels = set(&[("host", "web1"), ("alertname", "HostDown")]);
        assert_eq!(Fingerprint::of(&labels).0, expected);
    }

    #[test]
    fn matches_a_real_alertmanagers_fingerprint() {
        // Alertmanager 0.25 (Debian) answered GET /api/v2/alerts with this fingerprint
        // for an alert pushed with these labels.
        let labels = set(&[("alertname", "X"), ("host", "web1")]);
        assert_eq!(Fingerprint::of(&labels).to_string(), "8e22e7e0b1dd51e5");
    }

    #[test]
    fn empty_values_do_not_change_the_fingerprint() {
        let bare = set(&[("alertname", "A")]);
        let with_empty = set(&[("alertname", "A"), ("host", "")]);
        assert_eq!(Fingerprint::of(&bare), Fingerprint::of(&with_empty));
        assert_ne!(
            Fingerprint::of(&bare),
            Fingerprint::of(&set(&[("alertname", "B")]))
        );
    }

    #[test]
    fn fingerprint_prints_and_parses_as_16_hex_digits() {
        let fp = Fingerprint(0xab);
        assert_eq!(fp.to_string(), "00000000000000ab");
        assert_eq!(Fingerprint::parse(&fp.to_string()).ok(), Some(fp));
        assert!(Fingerprint::parse("xyz").is_err());
        assert!(Fingerprint::parse("+ab").is_err());
        assert_eq!(serde_json::to_string(&fp).unwrap(), r#""00000000000000ab""#);
        assert_eq!(
            serde_json::from_str::<Fingerprint>(r#""00000000000000ab""#).unwrap(),
            fp
        );
        assert!(serde_json::from_str::<Fingerprint>("171").is_err());
    }
}
