//! Bearer tokens as pasted by operators and sent in `Authorization` headers:
//! `EnrollToken::parse` and `ApiToken::parse` on arbitrary strings.
//!
//! Properties, beyond "never panics":
//! - a parsed token's text is canonical: parsing `expose()` gives the same token, the same
//!   hash and the same text again; for an enrollment token, the same CA fingerprint;
//! - hex case and surrounding whitespace do not change which token it is (the collector
//!   looks tokens up by hash, so two spellings must hash alike);
//! - `Debug` never shows the secret, and an error never quotes the input's hex (the token
//!   itself is never echoed).

#![no_main]

use libfuzzer_sys::fuzz_target;
use muster_shared::token::{ApiToken, EnrollToken, TokenError};

fuzz_target!(|text: &str| {
    check_enroll(text);
    check_api(text);
});

fn check_enroll(text: &str) {
    let token = match EnrollToken::parse(text) {
        Ok(token) => token,
        Err(err) => return check_error(&err),
    };
    let exposed = token.expose();
    assert_eq!(exposed.len(), 4 + 64 + 1 + 64, "{exposed:?}");
    let again = EnrollToken::parse(&exposed).expect("an exposed enrollment token parses");
    assert!(again == token, "reparsing {exposed:?} gave another token");
    assert_eq!(again.hash(), token.hash());
    assert_eq!(again.ca_fingerprint(), token.ca_fingerprint());
    assert_eq!(again.expose(), exposed);

    let spelled = format!(
        " {}\t",
        text.to_ascii_uppercase().replacen("MSE_", "mse_", 1)
    );
    let respelled = EnrollToken::parse(&spelled).expect("case and padding do not matter");
    assert_eq!(respelled.hash(), token.hash());

    let secret = &exposed[exposed.len() - 64..];
    assert!(
        !format!("{token:?}").contains(secret),
        "Debug shows the secret"
    );
}

fn check_api(text: &str) {
    let token = match ApiToken::parse(text) {
        Ok(token) => token,
        Err(err) => return check_error(&err),
    };
    let exposed = token.expose();
    assert_eq!(exposed.len(), 4 + 64, "{exposed:?}");
    let again = ApiToken::parse(exposed).expect("an exposed API token parses");
    assert!(again == token, "reparsing {exposed:?} gave another token");
    assert_eq!(again.hash(), token.hash());
    assert_eq!(again.expose(), exposed);

    let spelled = format!(
        "\n{}  ",
        text.to_ascii_uppercase().replacen("MST_", "mst_", 1)
    );
    let respelled = ApiToken::parse(&spelled).expect("case and padding do not matter");
    assert_eq!(respelled.hash(), token.hash());

    assert!(
        !format!("{token:?}").contains(&exposed[4..]),
        "Debug shows the secret"
    );
}

fn check_error(err: &TokenError) {
    assert!(matches!(err, TokenError::Malformed { .. }), "{err:?}");
    // The messages are fixed text; a run of hex digits would be a piece of the input.
    let shown = err.to_string();
    let longest_hex_run = shown
        .split(|c: char| !c.is_ascii_hexdigit())
        .map(str::len)
        .max()
        .unwrap_or(0);
    assert!(longest_hex_run < 16, "{shown:?} quotes the token");
}
