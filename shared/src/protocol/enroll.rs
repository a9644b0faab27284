//! `POST /v1/enroll` on the collector: an agent trades a one-time token and a CSR for its
//! certificate.
//!
//! The agent checks the collector's certificate against the CA fingerprint carried in the
//! token before it sends anything; this module holds only the bodies.

use serde::{Deserialize, Serialize};

/// What `muster-agent enroll` sends. JSON shape:
/// `{"token":"...","csr_pem":"-----BEGIN CERTIFICATE REQUEST-----...","listen_port":7443,"agent_version":"0.1.0","protocol_version":1}`
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrollRequest {
    /// The one-time enrollment token from `muster-collector token create --enroll`.
    /// A secret: never logged, and redacted from this type's `Debug`.
    pub token: String,
    /// The PKCS#10 certificate signing request for the agent's fresh key pair, PEM.
    pub csr_pem: String,
    /// The TCP port the agent's API listens on; the collector pulls from
    /// `<the enrolling peer's address>:<listen_port>`.
    pub listen_port: u16,
    /// The agent's build version (semver).
    pub agent_version: String,
    /// The [`super::PROTOCOL_VERSION`] the agent speaks.
    pub protocol_version: u16,
}

// Hand-written so the token never reaches a log line through `{:?}`.
impl std::fmt::Debug for EnrollRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnrollRequest")
            .field("token", &"<redacted>")
            .field("csr_pem", &self.csr_pem)
            .field("listen_port", &self.listen_port)
            .field("agent_version", &self.agent_version)
            .field("protocol_version", &self.protocol_version)
            .finish()
    }
}

/// What the collector answers to an accepted [`EnrollRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrollResponse {
    /// The host id the collector assigned; also the certificate's subject.
    pub host_id: String,
    /// The agent's certificate, PEM, signed by the fleet CA.
    pub cert_pem: String,
    /// The fleet CA certificate, PEM: the only root the agent trusts for the collector.
    pub ca_pem: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec;

    fn request() -> EnrollRequest {
        EnrollRequest {
            token: "mstk_secret".to_owned(),
            csr_pem: "-----BEGIN CERTIFICATE REQUEST-----\n...".to_owned(),
            listen_port: 7443,
            agent_version: "0.1.0".to_owned(),
            protocol_version: 1,
        }
    }

    #[test]
    fn json_shape_is_flat_snake_case() {
        let json = serde_json::to_value(request()).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "token": "mstk_secret",
                "csr_pem": "-----BEGIN CERTIFICATE REQUEST-----\n...",
                "listen_port": 7443,
                "agent_version": "0.1.0",
                "protocol_version": 1,
            })
        );
    }

    #[test]
    fn debug_redacts_token() {
        let debug = format!("{:?}", request());
        assert!(!debug.contains("mstk_secret"), "{debug}");
        assert!(debug.contains("<redacted>"));
    }

    #[test]
    fn codec_round_trip() {
        let req = request();
        let bytes = codec::encode_value(&req).unwrap();
        assert_eq!(
            codec::decode_value::<EnrollRequest>(&bytes, 1 << 20).unwrap(),
            req
        );

        let resp = EnrollResponse {
            host_id: "web1".to_owned(),
            cert_pem: "cert".to_owned(),
            ca_pem: "ca".to_owned(),
        };
        let bytes = codec::encode_value(&resp).unwrap();
        assert_eq!(
            codec::decode_value::<EnrollResponse>(&bytes, 1 << 20).unwrap(),
            resp
        );
    }
}
