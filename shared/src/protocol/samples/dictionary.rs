//! Dictionary elision: the headers that name a batch's dictionary, its digest, and an
//! agent's answer (the module docs of `samples`, "Dictionary elision").

use serde::Serialize;

use super::SeriesDef;

/// `GET /v1/samples` request header: the digest of the dictionary the collector holds
/// for this host; response header (binary answers): the digest of this batch's
/// dictionary. See the module's "Dictionary elision".
pub const DICTIONARY_HEADER: &str = "x-muster-dictionary";
/// `GET /v1/samples` response header, `1` when the batch's `series` were left out
/// because its dictionary's digest equals the request's [`DICTIONARY_HEADER`].
pub const DICTIONARY_ELIDED_HEADER: &str = "x-muster-dictionary-elided";

/// The digest naming a batch dictionary: the first 128 bits of the SHA-256 of its bincode
/// encoding, as 32 lowercase hex digits. Equal dictionaries (ids, names, labels, order)
/// have equal digests; only the agent that made a digest compares it, so it may change
/// between versions.
///
/// # Errors
/// [`crate::codec::CodecError::Encode`] when the dictionary cannot be encoded.
pub fn dictionary_digest<S: Serialize>(
    series: &[SeriesDef<S>],
) -> Result<String, crate::codec::CodecError> {
    let bytes = crate::codec::encode_value(series)?;
    let digest = ring::digest::digest(&ring::digest::SHA256, &bytes);
    Ok(hex::encode(&digest.as_ref()[..16]))
}

/// What an agent says of a batch's dictionary to a collector holding the one named
/// `held`: its name, and whether to leave it out. Both ends of "Dictionary elision" in
/// one place, for the agent and for anything that plays one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DictionaryAnswer {
    /// [`dictionary_digest`] of the batch's dictionary.
    pub digest: String,
    /// Whether the batch goes without its series: they are not empty and the collector
    /// holds them under `digest`.
    pub elide: bool,
}

impl DictionaryAnswer {
    /// The answer for a batch defining `series`, asked with `held` in [`DICTIONARY_HEADER`].
    ///
    /// # Errors
    /// Those of [`dictionary_digest`].
    pub fn for_batch<S: Serialize>(
        series: &[SeriesDef<S>],
        held: Option<&str>,
    ) -> Result<Self, crate::codec::CodecError> {
        let digest = dictionary_digest(series)?;
        let elide = !series.is_empty() && held == Some(digest.as_str());
        Ok(DictionaryAnswer { digest, elide })
    }

    /// Sets [`DICTIONARY_HEADER`] and, when eliding, [`DICTIONARY_ELIDED_HEADER`].
    pub fn set_headers(&self, headers: &mut http::HeaderMap) {
        if let Ok(value) = http::HeaderValue::from_str(&self.digest) {
            headers.insert(DICTIONARY_HEADER, value);
        }
        if self.elide {
            headers.insert(
                DICTIONARY_ELIDED_HEADER,
                http::HeaderValue::from_static("1"),
            );
        }
    }
}
