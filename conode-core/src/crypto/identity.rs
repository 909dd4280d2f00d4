//! The node's Ed25519 identity: it signs the TLS handshake, names the node in rosters and gives the
//! node id `hex(sha256(public key))`, the same as the Go conode's database file name.

use super::{hex_array, sha256, CryptoError};
use ed25519_dalek::{Signer, SigningKey, Verifier, VerifyingKey};
use std::fmt;
use zeroize::Zeroizing;

/// An Ed25519 public key that has been checked to be a valid curve point.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IdentityPublicKey([u8; 32]);

/// Keys of this process found valid lately: a sub-leader decodes its children's keys every round,
/// and each check is a point decompression (about 10 µs). Validity depends on the bytes alone,
/// so the set is shared by every node in the process; the oldest found go first.
static VALID_KEYS: std::sync::Mutex<Option<crate::kept::KeptMap<[u8; 32], ()>>> = std::sync::Mutex::new(None);
const VALID_KEYS_MAX: usize = 1 << 16;

impl IdentityPublicKey {
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, CryptoError> {
        let arr: [u8; 32] = bytes.try_into().map_err(|_| CryptoError::Length { expected: 32, got: bytes.len() })?;
        if crate::sync::lock(&VALID_KEYS).as_ref().is_some_and(|known| known.contains(&arr)) {
            return Ok(Self(arr));
        }
        VerifyingKey::from_bytes(&arr).map_err(|_| CryptoError::Invalid("Ed25519 public key"))?;
        crate::sync::lock(&VALID_KEYS).get_or_insert_with(|| crate::kept::KeptMap::new(VALID_KEYS_MAX)).insert(arr, ());
        Ok(Self(arr))
    }
    pub fn from_hex(s: &str) -> Result<Self, CryptoError> {
        Self::from_bytes(&hex_array::<32>(s)?)
    }
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
    /// The node id: hex of sha256 of the public key bytes.
    pub fn node_id(&self) -> String {
        hex::encode(sha256(&[&self.0]))
    }
    /// Verifies an Ed25519 signature by this key.
    pub fn verify(&self, msg: &[u8], sig: &[u8]) -> Result<(), CryptoError> {
        let sig = ed25519_dalek::Signature::from_slice(sig).map_err(|_| CryptoError::Invalid("Ed25519 signature"))?;
        VerifyingKey::from_bytes(&self.0)
            .map_err(|_| CryptoError::Invalid("Ed25519 public key"))?
            .verify(msg, &sig)
            .map_err(|_| CryptoError::Invalid("Ed25519 signature"))
    }
}

impl fmt::Debug for IdentityPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ed25519:{}", &self.to_hex()[..16])
    }
}

impl fmt::Display for IdentityPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// The node's Ed25519 key pair. Debug output never shows the secret.
#[derive(Clone)]
pub struct IdentityKeyPair {
    signing: SigningKey,
}

impl IdentityKeyPair {
    pub fn generate() -> Self {
        Self { signing: SigningKey::generate(&mut rand::rngs::OsRng) }
    }
    /// From the 32-byte secret seed.
    pub fn from_secret_bytes(seed: &[u8; 32]) -> Self {
        Self { signing: SigningKey::from_bytes(seed) }
    }
    pub fn from_secret_hex(s: &str) -> Result<Self, CryptoError> {
        let seed = Zeroizing::new(hex_array::<32>(s)?);
        Ok(Self::from_secret_bytes(&seed))
    }
    pub fn secret_hex(&self) -> Zeroizing<String> {
        Zeroizing::new(hex::encode(self.signing.to_bytes()))
    }
    pub fn public(&self) -> IdentityPublicKey {
        IdentityPublicKey(self.signing.verifying_key().to_bytes())
    }
    pub fn sign(&self, msg: &[u8]) -> [u8; 64] {
        self.signing.sign(msg).to_bytes()
    }
    /// PKCS#8 DER of the secret key, used to build the TLS certificate.
    pub fn to_pkcs8_der(&self) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        use ed25519_dalek::pkcs8::EncodePrivateKey;
        let doc = self.signing.to_pkcs8_der().map_err(|_| CryptoError::Invalid("Ed25519 key for PKCS#8"))?;
        Ok(Zeroizing::new(doc.as_bytes().to_vec()))
    }
}

impl fmt::Debug for IdentityKeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IdentityKeyPair({:?})", self.public())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_and_node_id() {
        let kp = IdentityKeyPair::generate();
        let again = IdentityKeyPair::from_secret_hex(&kp.secret_hex()).unwrap();
        assert_eq!(kp.public(), again.public());
        let id = kp.public().node_id();
        assert_eq!(id.len(), 64);
        assert_eq!(id, hex::encode(sha256(&[kp.public().as_bytes()])));
        let sig = kp.sign(b"hello");
        kp.public().verify(b"hello", &sig).unwrap();
        assert!(kp.public().verify(b"hellO", &sig).is_err());
    }

    #[test]
    fn points_off_the_curve_are_refused_every_time_and_valid_keys_stay_valid() {
        let off_curve = (2u8..=255)
            .map(|y| {
                let mut b = [0u8; 32];
                b[0] = y;
                b
            })
            .find(|b| VerifyingKey::from_bytes(b).is_err())
            .expect("some small y is off the curve");
        for _ in 0..2 {
            assert_eq!(IdentityPublicKey::from_bytes(&off_curve), Err(CryptoError::Invalid("Ed25519 public key")));
        }
        let good = IdentityKeyPair::generate().public();
        for _ in 0..2 {
            assert_eq!(IdentityPublicKey::from_bytes(good.as_bytes()), Ok(good));
        }
    }

    #[test]
    fn rejects_wrong_length() {
        assert_eq!(IdentityPublicKey::from_hex("abcd"), Err(CryptoError::Length { expected: 32, got: 2 }));
    }
}
