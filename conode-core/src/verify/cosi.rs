//! Light-client check of a collective (BLS-CoSi) signature: an aggregate BLS signature (min_pk, POP
//! ciphersuite) plus a participation mask over the roster. Pure code: no runtime, no I/O, so phones
//! and wasm can verify what a cothority signed.
//!
//! Mask layout: bit i stands for roster index i, least significant bit first within each byte,
//! `ceil(n / 8)` bytes; padding bits past `n` must be zero. The aggregate public key is the plain sum
//! of the signers' keys, which is rogue-key safe because every key's proof of possession is checked
//! when the roster is loaded.

use crate::crypto::{BlsPublicKey, BlsSignature, CryptoError};

/// Why a collective signature (or its mask, or a policy) is not acceptable.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum CosiVerifyError {
    #[error("the roster is empty")]
    EmptyRoster,
    #[error("mask has {got} bytes, a roster of {n} members needs {expected}")]
    MaskLength { n: usize, expected: usize, got: usize },
    #[error("mask sets bits past the roster's {n} members")]
    MaskBeyondRoster { n: usize },
    #[error("bad policy: {0}")]
    BadPolicy(String),
    #[error("{signers} of {n} roster members signed, the policy requires {required}")]
    NotEnoughSigners { signers: usize, required: usize, n: usize },
    #[error("signature: {0}")]
    SignatureEncoding(CryptoError),
    #[error("the aggregate signature does not verify for the masked roster keys")]
    InvalidSignature,
}

/// How many roster members must have signed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Policy {
    /// `n − ⌊(n − 1) / 3⌋`: more than two thirds, tolerating `⌊(n − 1) / 3⌋` faulty members.
    #[default]
    Default,
    /// At least this many signers (1 ≤ t ≤ n).
    Threshold(usize),
}

impl Policy {
    /// The policy of an optional threshold as the faces take it: absent is the default policy
    /// (a threshold of 0 stays invalid, so `required` reports it).
    pub fn from_threshold(threshold: Option<usize>) -> Self {
        threshold.map_or(Policy::Default, Policy::Threshold)
    }

    /// The default threshold for `n` members: `n − ⌊(n − 1) / 3⌋` (0 for an empty roster).
    pub fn default_threshold(n: usize) -> usize {
        n - Self::tolerated_faults(n)
    }

    /// The faulty members `n` members tolerate under the default threshold: `⌊(n − 1) / 3⌋`.
    pub fn tolerated_faults(n: usize) -> usize {
        n.saturating_sub(1) / 3
    }

    /// The number of signers required out of `n`; an error if the policy cannot be met.
    pub fn required(&self, n: usize) -> Result<usize, CosiVerifyError> {
        if n == 0 {
            return Err(CosiVerifyError::EmptyRoster);
        }
        match *self {
            Policy::Default => Ok(Self::default_threshold(n)),
            Policy::Threshold(0) => {
                Err(CosiVerifyError::BadPolicy("a threshold of 0 accepts anything; use at least 1".into()))
            }
            Policy::Threshold(t) if t > n => {
                Err(CosiVerifyError::BadPolicy(format!("threshold {t} exceeds the roster size {n}")))
            }
            Policy::Threshold(t) => Ok(t),
        }
    }
}

/// A participation mask: bit i = roster index i, LSB-first within each byte.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Mask {
    n: usize,
    bytes: Vec<u8>,
}

impl Mask {
    /// Length in bytes of the mask of an `n`-member roster.
    pub fn byte_len(n: usize) -> usize {
        n.div_ceil(8)
    }

    /// An empty mask for `n` members.
    pub fn new(n: usize) -> Self {
        Self { n, bytes: vec![0; Self::byte_len(n)] }
    }

    /// Checks the length and that no padding bit is set.
    pub fn from_bytes(n: usize, bytes: &[u8]) -> Result<Self, CosiVerifyError> {
        let expected = Self::byte_len(n);
        if bytes.len() != expected {
            return Err(CosiVerifyError::MaskLength { n, expected, got: bytes.len() });
        }
        // Bits used in the last byte (1..=8); the others are padding and must be zero.
        let used = n + 8 - expected * 8;
        if let Some(last) = bytes.last() {
            if used < 8 && last >> used != 0 {
                return Err(CosiVerifyError::MaskBeyondRoster { n });
            }
        }
        Ok(Self { n, bytes: bytes.to_vec() })
    }

    /// A mask with exactly the given members set (indices ≥ n are ignored).
    pub fn from_indices(n: usize, indices: impl IntoIterator<Item = usize>) -> Self {
        let mut m = Self::new(n);
        for i in indices {
            m.set(i);
        }
        m
    }

    /// Number of roster members the mask is for.
    pub fn roster_len(&self) -> usize {
        self.n
    }

    /// Sets bit `i` (ignored when `i ≥ n`).
    pub fn set(&mut self, i: usize) {
        if i < self.n {
            self.bytes[i / 8] |= 1 << (i % 8);
        }
    }

    pub fn contains(&self, i: usize) -> bool {
        i < self.n && self.bytes[i / 8] & (1 << (i % 8)) != 0
    }

    /// Number of set bits.
    pub fn count(&self) -> usize {
        self.bytes.iter().map(|b| b.count_ones() as usize).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.iter().all(|b| *b == 0)
    }

    /// Set indices in increasing order.
    pub fn indices(&self) -> Vec<usize> {
        (0..self.n).filter(|&i| self.contains(i)).collect()
    }

    /// Whether the two masks share a member.
    pub fn intersects(&self, other: &Mask) -> bool {
        self.bytes.iter().zip(&other.bytes).any(|(a, b)| a & b != 0)
    }

    /// Adds every member of `other` (masks of the same roster size).
    pub fn union_with(&mut self, other: &Mask) {
        for (a, b) in self.bytes.iter_mut().zip(&other.bytes) {
            *a |= *b;
        }
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }
}

/// Sum of the public keys of the members set in `mask` (`None` when the mask is empty).
pub fn aggregate_key(mask: &Mask, keys: &[BlsPublicKey]) -> Option<BlsPublicKey> {
    let members: Vec<&BlsPublicKey> = mask.indices().into_iter().filter_map(|i| keys.get(i)).collect();
    BlsPublicKey::aggregate(&members).ok()
}

/// Checks that `signature` is a valid aggregate signature of `statement` by exactly the members
/// set in `mask`, ignoring the policy. `keys` must come from a roster whose PoPs were checked.
pub fn verify_aggregate(
    statement: &[u8],
    signature: &BlsSignature,
    mask: &Mask,
    keys: &[BlsPublicKey],
) -> Result<(), CosiVerifyError> {
    if mask.roster_len() != keys.len() {
        return Err(CosiVerifyError::MaskLength {
            n: keys.len(),
            expected: Mask::byte_len(keys.len()),
            got: mask.as_bytes().len(),
        });
    }
    let agg = aggregate_key(mask, keys).ok_or(CosiVerifyError::NotEnoughSigners {
        signers: 0,
        required: 1,
        n: keys.len(),
    })?;
    if agg.verify(statement, signature) {
        Ok(())
    } else {
        Err(CosiVerifyError::InvalidSignature)
    }
}

/// Verifies a collective signature: `signature` (96 bytes) is the aggregate BLS signature of
/// `statement` by the roster members set in `mask`, and they are enough for `policy`.
/// `roster_public_keys` are the members' cosi service keys in roster order (PoPs already checked).
pub fn verify(
    statement: &[u8],
    signature: &[u8],
    mask: &[u8],
    roster_public_keys: &[BlsPublicKey],
    policy: Policy,
) -> Result<(), CosiVerifyError> {
    let (mask, signature) = signers_and_signature(signature, mask, roster_public_keys.len(), policy)?;
    verify_aggregate(statement, &signature, &mask, roster_public_keys)
}

/// The checks every collective-signature verifier makes before its pairing: the mask fits a
/// roster of `n`, enough members for `policy` signed, and the signature decodes.
pub fn signers_and_signature(
    signature: &[u8],
    mask: &[u8],
    n: usize,
    policy: Policy,
) -> Result<(Mask, BlsSignature), CosiVerifyError> {
    let required = policy.required(n)?;
    let mask = Mask::from_bytes(n, mask)?;
    let signers = mask.count();
    if signers < required {
        return Err(CosiVerifyError::NotEnoughSigners { signers, required, n });
    }
    let signature = BlsSignature::from_bytes(signature).map_err(CosiVerifyError::SignatureEncoding)?;
    Ok((mask, signature))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::BlsKeyPair;

    fn setup(n: usize, signers: &[usize], msg: &[u8]) -> (Vec<BlsPublicKey>, Vec<u8>, Vec<u8>) {
        let kps: Vec<BlsKeyPair> = (0..n).map(|_| BlsKeyPair::generate()).collect();
        let sigs: Vec<BlsSignature> = signers.iter().map(|&i| kps[i].sign(msg)).collect();
        let refs: Vec<&BlsSignature> = sigs.iter().collect();
        let agg = BlsSignature::aggregate(&refs).unwrap();
        let mask = Mask::from_indices(n, signers.iter().copied());
        (kps.iter().map(|k| k.public()).collect(), agg.to_bytes().to_vec(), mask.into_bytes())
    }

    #[test]
    fn default_threshold() {
        let t: Vec<usize> = [1, 2, 3, 4, 5, 7, 10, 16, 64].iter().map(|&n| Policy::default_threshold(n)).collect();
        assert_eq!(t, vec![1, 2, 3, 3, 4, 5, 7, 11, 43]);
        assert!(Policy::Threshold(0).required(4).is_err());
        assert!(Policy::Threshold(5).required(4).is_err());
        assert_eq!(Policy::Threshold(2).required(4), Ok(2));
        assert_eq!(Policy::Default.required(0), Err(CosiVerifyError::EmptyRoster));
    }

    #[test]
    fn mask_layout_is_lsb_first() {
        let m = Mask::from_indices(10, [0, 3, 9]);
        assert_eq!(m.as_bytes(), &[0b0000_1001, 0b0000_0010]);
        assert_eq!(m.indices(), vec![0, 3, 9]);
        assert_eq!(m.count(), 3);
        assert!(Mask::from_bytes(10, &[0, 0b0000_0100]).is_err(), "bit 10 is padding");
        assert!(Mask::from_bytes(10, &[0]).is_err());
        assert!(Mask::from_bytes(8, &[0xff]).is_ok());
    }

    #[test]
    fn verifies_and_rejects_tampering() {
        let msg = b"statement";
        let (keys, sig, mask) = setup(7, &[0, 1, 2, 4, 6], msg);
        verify(msg, &sig, &mask, &keys, Policy::Default).unwrap();
        // Other message.
        assert_eq!(verify(b"other", &sig, &mask, &keys, Policy::Default), Err(CosiVerifyError::InvalidSignature));
        // Tampered mask: claims member 3 signed too.
        let mut m2 = mask.clone();
        m2[0] |= 1 << 3;
        assert_eq!(verify(msg, &sig, &m2, &keys, Policy::Default), Err(CosiVerifyError::InvalidSignature));
        // Tampered signature: flipped bit breaks the encoding or the check.
        let mut s2 = sig.clone();
        s2[40] ^= 1;
        assert!(verify(msg, &s2, &mask, &keys, Policy::Default).is_err());
        // Policy: 5 signers, threshold 6 fails.
        assert!(matches!(
            verify(msg, &sig, &mask, &keys, Policy::Threshold(6)),
            Err(CosiVerifyError::NotEnoughSigners { signers: 5, required: 6, n: 7 })
        ));
        // Wrong roster.
        let (other_keys, _, _) = setup(7, &[0], msg);
        assert_eq!(verify(msg, &sig, &mask, &other_keys, Policy::Default), Err(CosiVerifyError::InvalidSignature));
        // Roster of another size: the mask length no longer fits.
        assert!(matches!(
            verify(msg, &sig, &mask, &keys[..6], Policy::Default),
            Err(CosiVerifyError::MaskBeyondRoster { .. })
        ));
        let mut nine = keys.clone();
        nine.extend_from_slice(&keys[..2]);
        assert!(matches!(verify(msg, &sig, &mask, &nine, Policy::Default), Err(CosiVerifyError::MaskLength { .. })));
        // Garbage never panics.
        assert!(verify(msg, &[0u8; 5], &mask, &keys, Policy::Default).is_err());
        assert!(verify(msg, &sig, &mask, &[], Policy::Default).is_err());
    }
}
