//! The JSON error body both HTTP APIs (agent and collector) answer with.

use serde::{Deserialize, Serialize};

/// The body of every 4xx and 5xx answer: `{"error": "..."}`.
///
/// A 4xx names the problem (`"unknown job id 42"`); a 5xx carries a generic message and its
/// detail is logged on the server. The message never contains secrets (tokens, keys).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// A one-line, human-readable description, without a trailing period.
    pub error: String,
}

impl ErrorBody {
    /// An error body carrying `message`.
    pub fn new(message: impl Into<String>) -> Self {
        ErrorBody {
            error: message.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_shape_is_single_error_field() {
        let json = serde_json::to_string(&ErrorBody::new("unknown job id 42")).unwrap();
        assert_eq!(json, r#"{"error":"unknown job id 42"}"#);
        let back: ErrorBody = serde_json::from_str(&json).unwrap();
        assert_eq!(back.error, "unknown job id 42");
    }

    #[test]
    fn codec_round_trip() {
        let body = ErrorBody::new("nope");
        let bytes = crate::codec::encode_value(&body).unwrap();
        assert_eq!(
            crate::codec::decode_value::<ErrorBody>(&bytes, 1024).unwrap(),
            body
        );
    }
}
