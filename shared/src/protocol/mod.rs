//! Wire types of the agent API, versioned by [`PROTOCOL_VERSION`].
//!
//! This module owns the shapes both sides exchange: what the agent says about itself
//! ([`info`]), the sample batches the collector pulls ([`samples`]), the jobs the collector
//! asks for ([`jobs`]), enrollment ([`enroll`]) and the JSON error body ([`error`]).
//! It leaves out how bytes travel: framing, compression and size limits live in
//! [`crate::codec`], routes and handlers in the binaries.
//!
//! # Two encodings, one shape
//!
//! Every type here is encoded two ways: bincode inside a [`crate::codec`] frame
//! ([`BATCH_MEDIA_TYPE`]) for the collector, and JSON for humans and curl. bincode in serde
//! mode is not self-describing, which constrains the types:
//!
//! - plain structs and externally tagged enums only: no `#[serde(tag)]`, `untagged`,
//!   `flatten`, `skip_serializing_if` or `serde_json::Value`;
//! - open-ended sets a newer peer may extend are strings, not enums (a bincode enum with an
//!   unknown variant fails the whole value), see [`info::AgentInfo::capabilities`];
//! - JSON names are snake_case.
//!
//! # Versions
//!
//! Any change to the shape of a type here (a field added, removed, reordered or retyped; a
//! variant added to an enum a peer decodes) changes the bincode encoding, so it bumps
//! [`PROTOCOL_VERSION`]. A collector talks to agents one version older and newer
//! ([`is_compatible`]): until no supported peer speaks the old version, keep its types in a
//! `v<N>` module and pick the type from the frame's version
//! ([`crate::codec::FrameHeader::parse`]).

pub mod backups;
pub mod enroll;
pub mod error;
pub mod info;
pub mod jobs;
pub mod samples;

/// The version of the agent API this build speaks; carried in every
/// [`crate::codec`] frame header and in [`info::AgentInfo::protocol_version`].
pub const PROTOCOL_VERSION: u16 = 1;

/// The media type (`Content-Type` / `Accept`) of a [`crate::codec`] frame holding a wire type.
/// Every endpoint answers JSON (`application/json`) as well.
pub const BATCH_MEDIA_TYPE: &str = "application/x-muster-batch";

/// Whether a peer speaking protocol version `peer` can talk to this build: versions one older
/// or newer than [`PROTOCOL_VERSION`] are accepted, so a fleet keeps being monitored while it
/// is upgraded one host at a time.
///
/// ```
/// use muster_shared::protocol::{PROTOCOL_VERSION, is_compatible};
/// assert!(is_compatible(PROTOCOL_VERSION));
/// assert!(is_compatible(PROTOCOL_VERSION + 1));
/// assert!(!is_compatible(PROTOCOL_VERSION + 2));
/// ```
pub fn is_compatible(peer: u16) -> bool {
    peer.abs_diff(PROTOCOL_VERSION) <= 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_one_version_either_side_only() {
        assert!(is_compatible(PROTOCOL_VERSION));
        assert!(is_compatible(PROTOCOL_VERSION - 1));
        assert!(is_compatible(PROTOCOL_VERSION + 1));
        assert!(!is_compatible(PROTOCOL_VERSION + 2));
        assert!(!is_compatible(u16::MAX));
    }
}
