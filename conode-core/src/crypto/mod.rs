//! Cryptographic primitives every part of conode shares: the Ed25519 identity key (TLS and rosters)
//! and BLS12-381 service keys with proofs of possession. Compiles without the runtime.

pub mod bls;
pub mod checked_once;
pub mod identity;
#[cfg(feature = "runtime")]
pub mod pool;
pub mod pop_batch;
pub mod pop_cache;
pub mod threshold;

pub use bls::{BlsKeyPair, BlsPublicKey, BlsSignature};
pub use identity::{IdentityKeyPair, IdentityPublicKey};
pub use pop_batch::verify_pops;
pub use pop_cache::PopCache;

/// Errors from decoding or checking key material.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum CryptoError {
    #[error("invalid hex: {0}")]
    Hex(String),
    #[error("expected {expected} bytes, got {got}")]
    Length { expected: usize, got: usize },
    #[error("not a valid {0}")]
    Invalid(&'static str),
    #[error("proof of possession does not verify")]
    BadPop,
}

/// Decodes hex into exactly `N` bytes.
pub fn hex_array<const N: usize>(s: &str) -> Result<[u8; N], CryptoError> {
    let bytes = hex::decode(s.trim()).map_err(|e| CryptoError::Hex(e.to_string()))?;
    <[u8; N]>::try_from(bytes.as_slice()).map_err(|_| CryptoError::Length { expected: N, got: bytes.len() })
}

/// sha256 of the concatenation of `parts`.
pub fn sha256(parts: &[&[u8]]) -> [u8; 32] {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}
