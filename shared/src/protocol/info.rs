//! `GET /v1/info`: what an agent is and what it serves.

use serde::{Deserialize, Serialize};

/// The agent serves `GET /v1/samples` ([`super::samples`]).
pub const CAP_SAMPLES: &str = "samples";
/// The agent runs probes and serves their results.
pub const CAP_PROBES: &str = "probes";
/// The agent accepts backup, verify and restore jobs ([`super::jobs`]).
pub const CAP_BACKUPS: &str = "backups";
/// The agent accepts deploy and rollback jobs ([`super::jobs`]).
pub const CAP_DEPLOYS: &str = "deploys";
/// The agent serves `POST /v1/jobs` and `GET /v1/jobs/{id}` at all.
pub const CAP_JOBS: &str = "jobs";

/// The agent serves `GET /v1/samples/urgent` ([`super::samples::UrgentQuery`]).
pub const CAP_URGENT: &str = "urgent";

/// Every capability this protocol version defines, in a stable order.
pub const KNOWN_CAPABILITIES: [&str; 6] = [
    CAP_SAMPLES,
    CAP_PROBES,
    CAP_BACKUPS,
    CAP_DEPLOYS,
    CAP_JOBS,
    CAP_URGENT,
];

/// An agent's description of itself, answered by `GET /v1/info`.
///
/// JSON shape:
/// `{"host_id":"web1","agent_version":"0.1.0","protocol_version":1,"capabilities":["samples"],"started_at_unix_ms":1700000000000}`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentInfo {
    /// The host id the collector assigned at enrollment (the certificate's subject).
    pub host_id: String,
    /// The agent's build version (semver, as in `muster-agent --version`).
    pub agent_version: String,
    /// The [`super::PROTOCOL_VERSION`] the agent speaks.
    pub protocol_version: u16,
    /// What the agent serves, as `CAP_*` strings, each at most once. Only what the running
    /// agent actually serves is listed (a disabled feature is absent).
    ///
    /// Strings, not an enum: bincode encodes an enum variant by index and cannot skip an
    /// unknown one, so a capability added by a newer agent would make an older collector fail
    /// to decode the whole answer. With strings it ignores what it does not know.
    pub capabilities: Vec<String>,
    /// When the agent process started, in milliseconds since the Unix epoch (UTC).
    pub started_at_unix_ms: u64,
}

impl AgentInfo {
    /// Whether the agent lists `capability` (one of the `CAP_*` constants).
    pub fn has_capability(&self, capability: &str) -> bool {
        self.capabilities.iter().any(|c| c == capability)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec;

    fn sample() -> AgentInfo {
        AgentInfo {
            host_id: "web1".to_owned(),
            agent_version: "0.1.0".to_owned(),
            protocol_version: 1,
            capabilities: vec![CAP_SAMPLES.to_owned(), CAP_JOBS.to_owned()],
            started_at_unix_ms: 1_700_000_000_000,
        }
    }

    #[test]
    fn json_shape_is_flat_snake_case() {
        let json = serde_json::to_value(sample()).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "host_id": "web1",
                "agent_version": "0.1.0",
                "protocol_version": 1,
                "capabilities": ["samples", "jobs"],
                "started_at_unix_ms": 1_700_000_000_000_u64,
            })
        );
    }

    #[test]
    fn unknown_capability_from_newer_agent_still_decodes() {
        let mut info = sample();
        info.capabilities.push("teleport".to_owned());
        let frame = codec::encode_frame(&info, 2, 3).unwrap();
        let (version, back): (u16, AgentInfo) =
            codec::decode_frame(&frame, &codec::Limits::DEFAULT, super::super::is_compatible)
                .unwrap();
        assert_eq!(version, 2);
        assert!(back.has_capability(CAP_SAMPLES));
        assert!(!back.has_capability(CAP_BACKUPS));
        assert_eq!(back, info);
    }

    #[test]
    fn codec_round_trip() {
        let info = sample();
        let bytes = codec::encode_value(&info).unwrap();
        assert_eq!(
            codec::decode_value::<AgentInfo>(&bytes, 1 << 20).unwrap(),
            info
        );
    }
}
