//! Standard Webhooks signing (https://www.standardwebhooks.com): the
//! `webhook-id`, `webhook-timestamp` and `webhook-signature` headers, the
//! last one `v1,` + base64(HMAC-SHA256(key, "{id}.{timestamp}.{body}")).
//!
//! The key: a secret `whsec_<base64>` (the standard form, what receivers'
//! libraries hand out) is base64-decoded; a secret without the prefix is
//! used as its raw UTF-8 bytes, so a receiver verifying by hand can use the
//! same string as its HMAC key. Surrounding whitespace (a newline at the end
//! of a secret file) is ignored. A `whsec_` secret that is not valid base64
//! is refused by [`check_secret`]; [`sign`] then falls back to the raw
//! bytes of the whole string rather than failing a delivery.
//!
//! Retries keep the same `webhook-id` and get a fresh timestamp and
//! signature.

use base64::Engine;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

pub const HEADER_ID: &str = "webhook-id";
pub const HEADER_TIMESTAMP: &str = "webhook-timestamp";
pub const HEADER_SIGNATURE: &str = "webhook-signature";
const PREFIX: &str = "whsec_";

/// Standard base64, with or without its `=` padding (both are seen in the wild).
const LENIENT: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// The HMAC key of a secret (see the module comment).
pub fn signing_key(secret: &str) -> Vec<u8> {
    let secret = secret.trim();
    match secret.strip_prefix(PREFIX) {
        Some(encoded) => LENIENT
            .decode(encoded)
            .ok()
            .filter(|key| !key.is_empty())
            .unwrap_or_else(|| secret.as_bytes().to_vec()),
        None => secret.as_bytes().to_vec(),
    }
}

/// For `check-config`: refuses an empty secret and a `whsec_` secret whose
/// rest is not base64. The message never contains the secret.
pub fn check_secret(secret: &str) -> Result<(), String> {
    let secret = secret.trim();
    if secret.is_empty() {
        return Err("the webhook secret is empty".into());
    }
    if let Some(encoded) = secret.strip_prefix(PREFIX) {
        match LENIENT.decode(encoded) {
            Ok(key) if !key.is_empty() => {}
            _ => {
                return Err(
                    "the webhook secret starts with `whsec_` but the rest is not base64 \
                     (give the secret exactly as the receiver shows it)"
                        .into(),
                );
            }
        }
    }
    Ok(())
}

/// `v1,<base64 signature>` for one attempt.
pub fn sign(secret: &str, msg_id: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(&signing_key(secret))
        .expect("HMAC-SHA256 takes a key of any length");
    mac.update(msg_id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

/// The headers of one attempt: `webhook-id` and `webhook-timestamp` always
/// (receivers deduplicate on the id), `webhook-signature` when a secret is
/// set. `timestamp` is the attempt's time in Unix seconds.
pub fn headers(
    msg_id: &str,
    timestamp: i64,
    body: &[u8],
    secret: Option<&str>,
) -> Vec<(&'static str, String)> {
    let mut out = vec![
        (HEADER_ID, msg_id.to_string()),
        (HEADER_TIMESTAMP, timestamp.to_string()),
    ];
    if let Some(secret) = secret {
        out.push((HEADER_SIGNATURE, sign(secret, msg_id, timestamp, body)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The test vector of the Standard Webhooks reference libraries
    /// (standard-webhooks/standard-webhooks, libraries/go/webhook_test.go,
    /// `TestWebhookSign`, commit 449485ca; MIT): computed by their code, not
    /// ours, so matching it shows a receiver's library accepts what we send.
    const VECTOR_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const VECTOR_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const VECTOR_TIMESTAMP: i64 = 1614265330;
    const VECTOR_BODY: &[u8] = br#"{"test": 2432232314}"#;
    const VECTOR_SIGNATURE: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    #[test]
    fn the_published_test_vector_is_reproduced_exactly() {
        assert_eq!(
            sign(VECTOR_SECRET, VECTOR_ID, VECTOR_TIMESTAMP, VECTOR_BODY),
            VECTOR_SIGNATURE
        );
        // A trailing newline from a secret file changes nothing.
        assert_eq!(
            sign(
                &format!("{VECTOR_SECRET}\n"),
                VECTOR_ID,
                VECTOR_TIMESTAMP,
                VECTOR_BODY
            ),
            VECTOR_SIGNATURE
        );
    }

    #[test]
    fn every_input_is_part_of_the_signature() {
        let reference = sign(VECTOR_SECRET, VECTOR_ID, VECTOR_TIMESTAMP, VECTOR_BODY);
        let variants = [
            (
                "secret",
                sign(
                    "whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
                    VECTOR_ID,
                    VECTOR_TIMESTAMP,
                    VECTOR_BODY,
                ),
            ),
            (
                "id",
                sign(VECTOR_SECRET, "msg_other", VECTOR_TIMESTAMP, VECTOR_BODY),
            ),
            (
                "timestamp",
                sign(VECTOR_SECRET, VECTOR_ID, VECTOR_TIMESTAMP + 1, VECTOR_BODY),
            ),
            (
                "body",
                sign(
                    VECTOR_SECRET,
                    VECTOR_ID,
                    VECTOR_TIMESTAMP,
                    br#"{"test": 2432232315}"#,
                ),
            ),
        ];
        for (changed, signature) in variants {
            assert_ne!(
                signature, reference,
                "changing the {changed} kept the signature"
            );
            assert!(signature.starts_with("v1,"), "{signature}");
        }
    }

    #[test]
    fn keys_come_from_whsec_base64_or_raw_bytes() {
        let cases: &[(&str, &[u8])] = &[
            ("whsec_aGVsbG8=", b"hello"),
            ("whsec_aGVsbG8", b"hello"), // without padding
            ("  whsec_aGVsbG8=\n", b"hello"),
            ("plain-secret", b"plain-secret"),
            ("aGVsbG8=", b"aGVsbG8="), // no prefix: raw, not decoded
            ("whsec_not base64!", b"whsec_not base64!"),
            ("whsec_", b"whsec_"),
        ];
        for (secret, key) in cases {
            assert_eq!(signing_key(secret), key.to_vec(), "secret {secret:?}");
        }
    }

    #[test]
    fn secrets_are_checked_without_being_echoed() {
        for good in [VECTOR_SECRET, "whsec_aGVsbG8", "any raw secret"] {
            assert_eq!(check_secret(good), Ok(()), "{good}");
        }
        for bad in ["", "   ", "whsec_", "whsec_not base64!", "whsec_%%%%"] {
            let err = check_secret(bad).expect_err(bad);
            if !bad.trim().is_empty() && bad != "whsec_" {
                assert!(!err.contains(bad.trim_start_matches("whsec_")), "{err}");
            }
        }
    }

    #[test]
    fn headers_carry_id_timestamp_and_signature_only_with_a_secret() {
        let with = headers(
            VECTOR_ID,
            VECTOR_TIMESTAMP,
            VECTOR_BODY,
            Some(VECTOR_SECRET),
        );
        assert_eq!(
            with,
            vec![
                (HEADER_ID, VECTOR_ID.to_string()),
                (HEADER_TIMESTAMP, "1614265330".to_string()),
                (HEADER_SIGNATURE, VECTOR_SIGNATURE.to_string()),
            ]
        );
        let without = headers(VECTOR_ID, VECTOR_TIMESTAMP, VECTOR_BODY, None);
        assert_eq!(without.len(), 2);
        assert!(without.iter().all(|(name, _)| *name != HEADER_SIGNATURE));
    }
}
