//! Standard Webhooks (v1) signatures: `v1,` + base64(HMAC-SHA256(key, "id.timestamp.body")),
//! where the key is the base64-decoded part of a `whsec_…` secret. Pure functions with
//! fixed test vectors; the dispatcher signs with them and tests verify with them.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

const PREFIX: &str = "whsec_";
/// Key sizes accepted for a user-supplied secret, in bytes.
pub const MIN_KEY_BYTES: usize = 24;
pub const MAX_KEY_BYTES: usize = 64;

/// Why a secret was not accepted.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SecretError {
    #[error("secret must start with `whsec_`")]
    Prefix,
    #[error("secret is not valid base64 after `whsec_`")]
    Base64,
    #[error("secret key must be {MIN_KEY_BYTES} to {MAX_KEY_BYTES} bytes long, not {0}")]
    Length(usize),
}

/// A decoded signing key.
#[derive(Clone)]
pub struct Key(Vec<u8>);

impl Key {
    /// Parses `whsec_<base64>`, checking the key length.
    pub fn parse(secret: &str) -> Result<Self, SecretError> {
        let encoded = secret.strip_prefix(PREFIX).ok_or(SecretError::Prefix)?;
        let bytes = STANDARD.decode(encoded).map_err(|_| SecretError::Base64)?;
        if !(MIN_KEY_BYTES..=MAX_KEY_BYTES).contains(&bytes.len()) {
            return Err(SecretError::Length(bytes.len()));
        }
        Ok(Self(bytes))
    }

    /// Parses a secret without checking the key length (for verifying third-party vectors).
    pub fn parse_any_length(secret: &str) -> Result<Self, SecretError> {
        let encoded = secret.strip_prefix(PREFIX).unwrap_or(secret);
        STANDARD
            .decode(encoded)
            .map(Self)
            .map_err(|_| SecretError::Base64)
    }

    /// One `v1,<base64>` signature of `msg_id.timestamp.body`.
    pub fn sign(&self, msg_id: &str, timestamp: i64, body: &[u8]) -> String {
        let mut out = String::with_capacity(48);
        out.push_str("v1,");
        STANDARD.encode_string(self.mac(msg_id, timestamp, body), &mut out);
        out
    }

    fn mac(&self, msg_id: &str, timestamp: i64, body: &[u8]) -> [u8; 32] {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes keys of any size");
        mac.update(msg_id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        mac.finalize().into_bytes().into()
    }

    /// Whether any `v1,` entry of a space-separated signature header matches, compared in
    /// constant time.
    pub fn verify(&self, msg_id: &str, timestamp: i64, body: &[u8], header: &str) -> bool {
        let expected = self.mac(msg_id, timestamp, body);
        header
            .split(' ')
            .filter_map(|entry| entry.strip_prefix("v1,"))
            .filter_map(|b64| STANDARD.decode(b64).ok())
            .any(|candidate| bool::from(candidate.as_slice().ct_eq(&expected)))
    }
}

/// A fresh secret with a 32-byte random key.
pub fn generate_secret() -> String {
    let key: [u8; 32] = rand::random();
    format!("{PREFIX}{}", STANDARD.encode(key))
}

/// The `webhook-signature` header value for several secrets: one entry each, space separated.
pub fn signature_header<'a>(
    keys: impl IntoIterator<Item = &'a Key>,
    msg_id: &str,
    timestamp: i64,
    body: &[u8],
) -> String {
    let mut out = String::new();
    for key in keys {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(&key.sign(msg_id, timestamp, body));
    }
    out
}

#[cfg(test)]
mod tests;
