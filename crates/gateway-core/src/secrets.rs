//! Secrets at rest: values the gateway must store but never show (MCP env, headers and
//! credentials; sensitive user-config fields) are sealed with XChaCha20-Poly1305 under a key
//! derived from `AGENT_GATEWAY_SECRET_KEY`.
//!
//! A sealed value is `v1:` + hex(24-byte random nonce ‖ ciphertext ‖ tag). The key is
//! SHA-256 of a fixed context string and the secret, so any secret string works and the same
//! secret always opens what it sealed. Without the variable the gateway refuses to store
//! secrets instead of keeping them in clear.

use chacha20poly1305::aead::{Aead, Generate, KeyInit};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

/// The environment variable holding the gateway's secret.
pub const SECRET_KEY_VAR: &str = "AGENT_GATEWAY_SECRET_KEY";
/// The secret being rotated away from: still opens old values, never seals new ones.
pub const PREVIOUS_SECRET_KEY_VAR: &str = "AGENT_GATEWAY_SECRET_KEY_PREVIOUS";

const PREFIX: &str = "v1:";
const NONCE_LEN: usize = 24;
/// Binds derived keys to this use, so the same secret used elsewhere yields another key.
const CONTEXT: &[u8] = b"agent-gateway secrets at rest v1\0";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("{SECRET_KEY_VAR} is not set: the gateway refuses to store secrets unencrypted")]
    NoKey,
    #[error("a stored secret could not be decrypted (was {SECRET_KEY_VAR} changed?)")]
    Undecryptable,
    #[error("a stored secret is malformed")]
    Malformed,
}

/// Seals and opens secrets with the gateway's key.
#[derive(Clone)]
pub struct SecretBox {
    cipher: XChaCha20Poly1305,
    previous: Option<XChaCha20Poly1305>,
}

impl std::fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretBox(..)")
    }
}

fn cipher(secret: &str) -> XChaCha20Poly1305 {
    let mut hasher = Sha256::new();
    hasher.update(CONTEXT);
    hasher.update(secret.as_bytes());
    let key: [u8; 32] = hasher.finalize().into();
    XChaCha20Poly1305::new(&key.into())
}

impl SecretBox {
    /// A box keyed by `secret` (any non-empty string).
    pub fn new(secret: &str) -> Self {
        Self {
            cipher: cipher(secret),
            previous: None,
        }
    }

    /// Also opens values sealed under `secret` (key rotation).
    pub fn with_previous(mut self, secret: &str) -> Self {
        self.previous = Some(cipher(secret));
        self
    }

    /// The box of `AGENT_GATEWAY_SECRET_KEY` in `env` (with
    /// `AGENT_GATEWAY_SECRET_KEY_PREVIOUS` during a rotation), if set and non-empty.
    pub fn from_env(env: &std::collections::BTreeMap<String, String>) -> Option<Self> {
        let value = |name: &str| env.get(name).map(|s| s.trim()).filter(|s| !s.is_empty());
        let current = Self::new(value(SECRET_KEY_VAR)?);
        Some(match value(PREVIOUS_SECRET_KEY_VAR) {
            Some(previous) => current.with_previous(previous),
            None => current,
        })
    }

    pub fn seal(&self, plaintext: &[u8]) -> String {
        let nonce = XNonce::generate();
        // Encryption fails only for inputs beyond 256 GiB.
        let sealed = self.cipher.encrypt(&nonce, plaintext).unwrap_or_default();
        let mut bytes = Vec::with_capacity(NONCE_LEN + sealed.len());
        bytes.extend_from_slice(nonce.as_slice());
        bytes.extend_from_slice(&sealed);
        format!("{PREFIX}{}", hex::encode(bytes))
    }

    pub fn open(&self, sealed: &str) -> Result<Vec<u8>, SecretError> {
        let hex_text = sealed.strip_prefix(PREFIX).ok_or(SecretError::Malformed)?;
        let bytes = hex::decode(hex_text).map_err(|_| SecretError::Malformed)?;
        if bytes.len() < NONCE_LEN {
            return Err(SecretError::Malformed);
        }
        let (nonce, ciphertext) = bytes.split_at(NONCE_LEN);
        let nonce = XNonce::try_from(nonce).map_err(|_| SecretError::Malformed)?;
        self.cipher
            .decrypt(&nonce, ciphertext)
            .or_else(|_| match &self.previous {
                Some(previous) => previous.decrypt(&nonce, ciphertext),
                None => Err(chacha20poly1305::Error),
            })
            .map_err(|_| SecretError::Undecryptable)
    }

    pub fn seal_json<T: Serialize>(&self, value: &T) -> String {
        self.seal(&serde_json::to_vec(value).unwrap_or_default())
    }

    pub fn open_json<T: DeserializeOwned>(&self, sealed: &str) -> Result<T, SecretError> {
        serde_json::from_slice(&self.open(sealed)?).map_err(|_| SecretError::Malformed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_with_the_same_secret_only() {
        let one = SecretBox::new("first secret");
        let sealed = one.seal(b"token-123");
        assert!(sealed.starts_with("v1:"));
        assert!(!sealed.contains("token-123"));
        assert_eq!(one.open(&sealed), Ok(b"token-123".to_vec()));
        assert_ne!(one.seal(b"token-123"), sealed, "a fresh nonce every time");
        assert_eq!(
            SecretBox::new("second secret").open(&sealed),
            Err(SecretError::Undecryptable)
        );
        assert_eq!(one.open("v1:zz"), Err(SecretError::Malformed));
        assert_eq!(one.open("plain"), Err(SecretError::Malformed));
        let mut tampered = sealed.clone();
        tampered.pop();
        tampered.push(if sealed.ends_with('0') { '1' } else { '0' });
        assert_eq!(one.open(&tampered), Err(SecretError::Undecryptable));
    }

    #[test]
    fn a_rotated_key_still_opens_old_values() {
        let old = SecretBox::new("old").seal(b"kept");
        let rotated = SecretBox::new("new").with_previous("old");
        assert_eq!(rotated.open(&old), Ok(b"kept".to_vec()));
        let fresh = rotated.seal(b"new value");
        assert_eq!(
            SecretBox::new("new").open(&fresh),
            Ok(b"new value".to_vec())
        );
        assert!(
            SecretBox::new("old").open(&fresh).is_err(),
            "new values use the new key"
        );
    }

    #[test]
    fn json_round_trips() {
        let key = SecretBox::new("k");
        let value = serde_json::json!({"API_KEY": "abc"});
        let sealed = key.seal_json(&value);
        assert_eq!(key.open_json::<serde_json::Value>(&sealed), Ok(value));
    }
}
