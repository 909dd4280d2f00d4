//! drand-compatible randomness beacon verification (pure: no runtime, no I/O).
//!
//! This follows drand exactly (`crypto/schemes.go`, `common/chain/info.go`, `common/time.go`):
//!
//! | scheme id                  | public key    | signature     | message signed                        | hash-to-curve DST |
//! |----------------------------|---------------|---------------|---------------------------------------|-------------------|
//! | `pedersen-bls-chained`     | G1, 48 bytes  | G2, 96 bytes  | `sha256(previous_sig ‖ u64_be(round))` | [`DST_G2`]        |
//! | `pedersen-bls-unchained`   | G1, 48 bytes  | G2, 96 bytes  | `sha256(u64_be(round))`               | [`DST_G2`]        |
//! | `bls-unchained-on-g1`      | G2, 96 bytes  | G1, 48 bytes  | `sha256(u64_be(round))`               | [`DST_G2`] (sic: drand's legacy non-RFC choice) |
//! | `bls-unchained-g1-rfc9380` | G2, 96 bytes  | G1, 48 bytes  | `sha256(u64_be(round))`               | [`DST_G1`]        |
//!
//! Points are in the compressed ZCash encoding (what drand publishes). `randomness = sha256(signature)`.
//! The chain hash is `sha256(u32_be(period) ‖ i64_be(genesis_time) ‖ public_key ‖ genesis_seed ‖ beacon_id)`,
//! the beacon id only when it is neither `""` nor `"default"`; the scheme is not part of it.
//!
//! For many verifications under one key, decode it once with [`PreparedChain`]; each verification
//! is then one signature decode plus one blst verify (hash-to-curve and two Miller loops).
//!
//! Modules: `drand_json` reads and writes drand's JSON (`/info`, `/public/{round}`); `time` maps
//! rounds to times as drand does; `batch` verifies many beacons of one chain at once
//! ([`verify_beacons`], the same results as one by one, several times faster).

mod batch;
mod drand_json;
mod time;

pub use batch::{verify_beacons, verify_beacons_with_threads};
pub use drand_json::{beacon_json, info_json};
pub use time::{current_round, latest_round, next_round, time_of_round, TIME_OF_ROUND_ERROR_VALUE};

use crate::crypto::sha256;
use blst::BLST_ERROR;
use std::fmt;
use std::str::FromStr;

/// Hash-to-G2 domain separation tag (signatures on G2): drand's `pedersen-*` schemes (and, by a
/// legacy mistake, `bls-unchained-on-g1`).
pub const DST_G2: &[u8] = b"BLS_SIG_BLS12381G2_XMD:SHA-256_SSWU_RO_NUL_";
/// Hash-to-G1 domain separation tag (signatures on G1, RFC 9380): `bls-unchained-g1-rfc9380` (quicknet).
pub const DST_G1: &[u8] = b"BLS_SIG_BLS12381G1_XMD:SHA-256_SSWU_RO_NUL_";

/// drand's reserved name for the default beacon; `""` means the same.
pub const DEFAULT_BEACON_ID: &str = "default";

/// Compressed G1 point length.
pub const G1_LEN: usize = 48;
/// Compressed G2 point length.
pub const G2_LEN: usize = 96;

/// A drand beacon scheme.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Scheme {
    /// `pedersen-bls-chained`: drand's original (mainnet "default") scheme.
    #[default]
    PedersenBlsChained,
    /// `pedersen-bls-unchained`: as chained, but the message is only the round.
    PedersenBlsUnchained,
    /// `bls-unchained-on-g1`: signatures on G1, hashed with the G2 DST (deprecated in drand, kept for
    /// old chains).
    BlsUnchainedOnG1,
    /// `bls-unchained-g1-rfc9380`: signatures on G1 with the RFC 9380 G1 DST (quicknet).
    BlsUnchainedG1Rfc9380,
}

impl Scheme {
    /// Every supported scheme.
    pub const ALL: [Scheme; 4] = [
        Scheme::PedersenBlsChained,
        Scheme::PedersenBlsUnchained,
        Scheme::BlsUnchainedOnG1,
        Scheme::BlsUnchainedG1Rfc9380,
    ];

    /// The drand scheme id.
    pub const fn id(self) -> &'static str {
        match self {
            Scheme::PedersenBlsChained => "pedersen-bls-chained",
            Scheme::PedersenBlsUnchained => "pedersen-bls-unchained",
            Scheme::BlsUnchainedOnG1 => "bls-unchained-on-g1",
            Scheme::BlsUnchainedG1Rfc9380 => "bls-unchained-g1-rfc9380",
        }
    }

    /// Parses a drand scheme id (exact match). drand reads an empty id as `pedersen-bls-chained`; so
    /// does [`ChainInfo::from_drand_json`], but this function is strict.
    pub fn from_id(id: &str) -> Result<Scheme, BeaconError> {
        Scheme::ALL.into_iter().find(|s| s.id() == id).ok_or_else(|| BeaconError::UnknownScheme(id.to_string()))
    }

    /// Whether each round's message includes the previous signature.
    pub const fn is_chained(self) -> bool {
        matches!(self, Scheme::PedersenBlsChained)
    }

    /// Whether signatures are on G1 (and the public key on G2).
    pub const fn signatures_on_g1(self) -> bool {
        matches!(self, Scheme::BlsUnchainedOnG1 | Scheme::BlsUnchainedG1Rfc9380)
    }

    /// The hash-to-curve domain separation tag used to sign.
    pub const fn dst(self) -> &'static [u8] {
        match self {
            Scheme::BlsUnchainedG1Rfc9380 => DST_G1,
            _ => DST_G2,
        }
    }

    /// Length of the compressed group public key.
    pub const fn public_key_len(self) -> usize {
        if self.signatures_on_g1() {
            G2_LEN
        } else {
            G1_LEN
        }
    }

    /// Length of a compressed signature.
    pub const fn signature_len(self) -> usize {
        if self.signatures_on_g1() {
            G1_LEN
        } else {
            G2_LEN
        }
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.id())
    }
}

impl FromStr for Scheme {
    type Err = BeaconError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Scheme::from_id(s)
    }
}

/// What is wrong with an encoded curve point.
#[derive(Debug, thiserror::Error, Clone, Copy, PartialEq, Eq)]
pub enum PointProblem {
    #[error("is not a valid compressed point encoding")]
    BadEncoding,
    #[error("is not on the curve")]
    NotOnCurve,
    #[error("is not in the prime-order subgroup")]
    NotInSubgroup,
    #[error("is the point at infinity")]
    Infinity,
}

impl PointProblem {
    fn from_blst(e: BLST_ERROR) -> PointProblem {
        match e {
            BLST_ERROR::BLST_POINT_NOT_ON_CURVE => PointProblem::NotOnCurve,
            BLST_ERROR::BLST_POINT_NOT_IN_GROUP => PointProblem::NotInSubgroup,
            BLST_ERROR::BLST_PK_IS_INFINITY => PointProblem::Infinity,
            _ => PointProblem::BadEncoding,
        }
    }
}

/// Why a beacon, a chain description or a key is not acceptable.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum BeaconError {
    #[error("unknown beacon scheme {0:?} (supported: pedersen-bls-chained, pedersen-bls-unchained, bls-unchained-on-g1, bls-unchained-g1-rfc9380)")]
    UnknownScheme(String),
    #[error("{what} has {got} bytes, scheme {scheme} needs {expected}")]
    Length { what: &'static str, scheme: Scheme, expected: usize, got: usize },
    #[error("{what} {problem}")]
    InvalidPoint { what: &'static str, problem: PointProblem },
    #[error("round 0 is the genesis beacon: it has no signature to verify")]
    GenesisRound,
    #[error("scheme {scheme} is chained: round {round} cannot be verified without the previous signature")]
    MissingPreviousSignature { scheme: Scheme, round: u64 },
    #[error("the signature of round {round} does not verify under the chain's public key")]
    InvalidSignature { round: u64 },
    #[error("the signature does not verify for this message and public key")]
    InvalidMessageSignature,
    #[error("secret key is not a non-zero 32-byte big-endian scalar below the group order")]
    InvalidSecretKey,
    #[error("the period must be at least 1 second")]
    ZeroPeriod,
    #[error("chain hash mismatch: the info says {claimed}, its fields hash to {computed}")]
    ChainHashMismatch { claimed: String, computed: String },
    #[error("randomness of round {round} is not sha256(signature)")]
    RandomnessMismatch { round: u64 },
    #[error("invalid JSON: {0}")]
    Json(String),
    #[error("field {0:?} is missing or has the wrong type")]
    MissingField(&'static str),
    #[error("field {field:?} is not valid hex: {reason}")]
    Hex { field: &'static str, reason: String },
    #[error("field {field:?} is out of range: {value}")]
    OutOfRange { field: &'static str, value: String },
}

/// The public description of a drand chain: everything a client needs to verify its beacons.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainInfo {
    /// Compressed group public key (G1, 48 bytes, or G2, 96 bytes, per the scheme).
    pub public_key: Vec<u8>,
    /// Seconds between rounds.
    pub period: u32,
    /// UNIX time (seconds) of round 1.
    pub genesis_time: i64,
    /// The genesis seed (drand's `groupHash`): the "previous signature" of round 1 in chained schemes.
    pub genesis_seed: Vec<u8>,
    pub scheme: Scheme,
    /// drand beacon id; `""` and `"default"` are the default beacon.
    pub beacon_id: String,
}

/// Whether drand treats `id` as the default beacon (`""` or `"default"`).
pub fn is_default_beacon_id(id: &str) -> bool {
    id.is_empty() || id == DEFAULT_BEACON_ID
}

impl ChainInfo {
    /// drand's chain hash: `sha256(u32_be(period) ‖ i64_be(genesis_time) ‖ public_key ‖ genesis_seed
    /// ‖ beacon_id)`, the beacon id only when it is not the default one.
    pub fn hash(&self) -> [u8; 32] {
        let period = self.period.to_be_bytes();
        let genesis = self.genesis_time.to_be_bytes();
        let id: &[u8] = if is_default_beacon_id(&self.beacon_id) { &[] } else { self.beacon_id.as_bytes() };
        sha256(&[&period, &genesis, &self.public_key, &self.genesis_seed, id])
    }

    /// [`ChainInfo::hash`] in lowercase hex.
    pub fn hash_hex(&self) -> String {
        hex::encode(self.hash())
    }

    /// Checks that the chain is usable: non-zero period and a valid group public key.
    pub fn validate(&self) -> Result<(), BeaconError> {
        if self.period == 0 {
            return Err(BeaconError::ZeroPeriod);
        }
        PreparedChain::from_public_key(self.scheme, &self.public_key).map(|_| ())
    }

    /// Decodes the group public key once for fast repeated verification.
    pub fn prepare(&self) -> Result<PreparedChain, BeaconError> {
        PreparedChain::new(self)
    }

    /// Verifies one beacon of this chain (see [`verify_beacon`]).
    pub fn verify(&self, beacon: &Beacon) -> Result<(), BeaconError> {
        verify_beacon(self, beacon)
    }

    /// UNIX time at which `round` is due ([`time_of_round`]).
    pub fn time_of_round(&self, round: u64) -> Option<i64> {
        time_of_round(self.period, self.genesis_time, round)
    }

    /// drand's current round at `now` ([`current_round`]; 1 before genesis, as drand).
    pub fn current_round(&self, now: i64) -> u64 {
        current_round(now, self.period, self.genesis_time)
    }

    /// The latest round due at `now`, 0 before genesis ([`latest_round`]).
    pub fn latest_round(&self, now: i64) -> u64 {
        latest_round(now, self.period, self.genesis_time)
    }

    /// The next round after `now` and its time ([`next_round`]).
    pub fn next_round(&self, now: i64) -> (u64, i64) {
        next_round(now, self.period, self.genesis_time)
    }
}

/// One beacon: a round and its (recovered, group) signature.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Beacon {
    pub round: u64,
    /// Compressed signature (G2, 96 bytes, or G1, 48 bytes, per the scheme).
    pub signature: Vec<u8>,
    /// The previous round's signature (the genesis seed for round 1). Required by chained
    /// schemes, ignored by unchained ones.
    pub previous_signature: Option<Vec<u8>>,
}

impl Beacon {
    /// `sha256(signature)`.
    pub fn randomness(&self) -> [u8; 32] {
        randomness(&self.signature)
    }

    /// The message this beacon's signature signs under `scheme`.
    pub fn digest(&self, scheme: Scheme) -> [u8; 32] {
        digest(scheme, self.round, self.previous_signature.as_deref())
    }
}

/// drand's randomness of a beacon: `sha256(signature)`.
pub fn randomness(signature: &[u8]) -> [u8; 32] {
    sha256(&[signature])
}

/// The 32-byte message signed for `round` (drand's `DigestBeacon`): for chained schemes
/// `sha256(previous_signature ‖ u64_be(round))`, otherwise `sha256(u64_be(round))` (the previous
/// signature is then ignored). As in drand, a chained digest without previous signature hashes the
/// round alone. Nodes sign this digest, with their share, under [`Scheme::dst`].
pub fn digest(scheme: Scheme, round: u64, previous_signature: Option<&[u8]>) -> [u8; 32] {
    let round = round.to_be_bytes();
    match (scheme.is_chained(), previous_signature) {
        (true, Some(prev)) => sha256(&[prev, &round]),
        _ => sha256(&[&round]),
    }
}

/// Verifies `beacon` against `info`'s scheme and group public key. For a chained scheme the beacon
/// must carry the previous signature. For many beacons of one chain use [`PreparedChain`].
pub fn verify_beacon(info: &ChainInfo, beacon: &Beacon) -> Result<(), BeaconError> {
    PreparedChain::from_public_key(info.scheme, &info.public_key)?.verify(beacon)
}

#[derive(Clone, Copy, Debug)]
enum GroupKey {
    /// Key on G1, signatures on G2.
    G1(blst::min_pk::PublicKey),
    /// Key on G2, signatures on G1.
    G2(blst::min_sig::PublicKey),
}

/// A scheme and a public key decoded and group-checked once, ready for fast verification. Works for
/// the chain's group key and equally for a node's share key (partial signatures use the same scheme,
/// message and DST).
#[derive(Clone, Debug)]
pub struct PreparedChain {
    scheme: Scheme,
    key: GroupKey,
}

impl PreparedChain {
    /// Prepares `info`'s group public key.
    pub fn new(info: &ChainInfo) -> Result<PreparedChain, BeaconError> {
        Self::from_public_key(info.scheme, &info.public_key)
    }

    /// Decodes and checks a compressed public key for `scheme` (right length, on the curve, in the
    /// subgroup, not the identity).
    pub fn from_public_key(scheme: Scheme, public_key: &[u8]) -> Result<PreparedChain, BeaconError> {
        const WHAT: &str = "public key";
        if public_key.len() != scheme.public_key_len() {
            return Err(BeaconError::Length {
                what: WHAT,
                scheme,
                expected: scheme.public_key_len(),
                got: public_key.len(),
            });
        }
        let invalid = |e| BeaconError::InvalidPoint { what: WHAT, problem: PointProblem::from_blst(e) };
        let key = if scheme.signatures_on_g1() {
            let pk = blst::min_sig::PublicKey::uncompress(public_key).map_err(invalid)?;
            pk.validate().map_err(invalid)?;
            GroupKey::G2(pk)
        } else {
            let pk = blst::min_pk::PublicKey::uncompress(public_key).map_err(invalid)?;
            pk.validate().map_err(invalid)?;
            GroupKey::G1(pk)
        };
        Ok(PreparedChain { scheme, key })
    }

    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    /// The compressed public key.
    pub fn public_key(&self) -> Vec<u8> {
        match &self.key {
            GroupKey::G1(pk) => pk.compress().to_vec(),
            GroupKey::G2(pk) => pk.compress().to_vec(),
        }
    }

    /// Verifies a beacon.
    pub fn verify(&self, beacon: &Beacon) -> Result<(), BeaconError> {
        self.verify_round(beacon.round, &beacon.signature, beacon.previous_signature.as_deref())
    }

    /// Verifies the signature of `round`; `previous_signature` is required for chained schemes
    /// and ignored otherwise.
    pub fn verify_round(
        &self,
        round: u64,
        signature: &[u8],
        previous_signature: Option<&[u8]>,
    ) -> Result<(), BeaconError> {
        if round == 0 {
            return Err(BeaconError::GenesisRound);
        }
        if self.scheme.is_chained() && previous_signature.is_none() {
            return Err(BeaconError::MissingPreviousSignature { scheme: self.scheme, round });
        }
        let msg = digest(self.scheme, round, previous_signature);
        self.verify_message(&msg, signature).map_err(|e| match e {
            BeaconError::InvalidMessageSignature => BeaconError::InvalidSignature { round },
            e => e,
        })
    }

    /// Verifies a signature of an arbitrary message under this key with the scheme's DST (e.g. a
    /// partial signature of a [`digest`] under a share key).
    pub fn verify_message(&self, msg: &[u8], signature: &[u8]) -> Result<(), BeaconError> {
        const WHAT: &str = "signature";
        let scheme = self.scheme;
        if signature.len() != scheme.signature_len() {
            return Err(BeaconError::Length {
                what: WHAT,
                scheme,
                expected: scheme.signature_len(),
                got: signature.len(),
            });
        }
        let invalid = |e| BeaconError::InvalidPoint { what: WHAT, problem: PointProblem::from_blst(e) };
        let dst = scheme.dst();
        // The signature is group-checked inside verify; on failure, look closer for a precise error.
        match &self.key {
            GroupKey::G1(pk) => {
                let sig = blst::min_pk::Signature::uncompress(signature).map_err(invalid)?;
                if sig.verify(true, msg, dst, &[], pk, false) != BLST_ERROR::BLST_SUCCESS {
                    sig.validate(true).map_err(invalid)?;
                    return Err(BeaconError::InvalidMessageSignature);
                }
            }
            GroupKey::G2(pk) => {
                let sig = blst::min_sig::Signature::uncompress(signature).map_err(invalid)?;
                if sig.verify(true, msg, dst, &[], pk, false) != BLST_ERROR::BLST_SUCCESS {
                    sig.validate(true).map_err(invalid)?;
                    return Err(BeaconError::InvalidMessageSignature);
                }
            }
        }
        Ok(())
    }
}

/// The compressed public key of a 32-byte big-endian secret scalar, in the scheme's key group.
pub fn public_key_from_secret(scheme: Scheme, secret_key: &[u8]) -> Result<Vec<u8>, BeaconError> {
    Ok(if scheme.signatures_on_g1() {
        let sk = blst::min_sig::SecretKey::from_bytes(secret_key).map_err(|_| BeaconError::InvalidSecretKey)?;
        sk.sk_to_pk().compress().to_vec()
    } else {
        let sk = blst::min_pk::SecretKey::from_bytes(secret_key).map_err(|_| BeaconError::InvalidSecretKey)?;
        sk.sk_to_pk().compress().to_vec()
    })
}

/// Signs `msg` with a 32-byte big-endian secret scalar (a key or a threshold share) under the
/// scheme's group and DST; returns the compressed signature.
pub fn sign_message(scheme: Scheme, secret_key: &[u8], msg: &[u8]) -> Result<Vec<u8>, BeaconError> {
    let dst = scheme.dst();
    Ok(if scheme.signatures_on_g1() {
        let sk = blst::min_sig::SecretKey::from_bytes(secret_key).map_err(|_| BeaconError::InvalidSecretKey)?;
        sk.sign(msg, dst, &[]).compress().to_vec()
    } else {
        let sk = blst::min_pk::SecretKey::from_bytes(secret_key).map_err(|_| BeaconError::InvalidSecretKey)?;
        sk.sign(msg, dst, &[]).compress().to_vec()
    })
}

/// Signs round `round` ([`digest`] then [`sign_message`]).
pub fn sign_round(
    scheme: Scheme,
    secret_key: &[u8],
    round: u64,
    previous_signature: Option<&[u8]>,
) -> Result<Vec<u8>, BeaconError> {
    sign_message(scheme, secret_key, &digest(scheme, round, previous_signature))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAINNET_PK: &str =
        "868f005eb8e6e4ca0a47c8a77ceaa5309a47978a7c71bc5cce96366b5d7a569937c529eeda66c7293784a9402801af31";
    const MAINNET_SEED: &str = "176f93498eac9ca337150b46d21dd58673ea4e3581185f869672e59fa4cb390a";
    const MAINNET_HASH: &str = "8990e7a9aaed2ffed73dbd7092123d6f289930540d7651336225dc172e51b2ce";
    const MAINNET_PREV: &str = "a609e19a03c2fcc559e8dae14900aaefe517cb55c840f6e69bc8e4f66c8d18e8a609685d9917efbfb0c37f058c2de88f13d297c7e19e0ab24813079efe57a182554ff054c7638153f9b26a60e7111f71a0ff63d9571704905d3ca6df0b031747";
    const MAINNET_SIG: &str = "82f5d3d2de4db19d40a6980e8aa37842a0e55d1df06bd68bddc8d60002e8e959eb9cfa368b3c1b77d18f02a54fe047b80f0989315f83b12a74fd8679c4f12aae86eaf6ab5690b34f1fddd50ee3cc6f6cdf59e95526d5a5d82aaa84fa6f181e42";
    const MAINNET_RAND: &str = "8b676484b5fb1f37f9ec5c413d7d29883504e5b669f604a1ce68b3388e9ae3d9";
    const QUICKNET_PK: &str = "83cf0f2896adee7eb8b5f01fcad3912212c437e0073e911fb90022d3e760183c8c4b450b6a0a6c3ac6a5776a2d1064510d1fec758c921cc22b0e17e63aaf4bcb5ed66304de9cf809bd274ca73bab4af5a6e9c76a4bc09e76eae8991ef5ece45a";
    const QUICKNET_SEED: &str = "f477d5c89f21a17c863a7f937c6a6d15859414d2be09cd448d4279af331c5d3e";
    const QUICKNET_HASH: &str = "52db9ba70e0cc0f6eaf7803dd07447a1f5477735fd3f661792ba94600c84e971";
    const QUICKNET_SIG_1000: &str =
        "b44679b9a59af2ec876b1a6b1ad52ea9b1615fc3982b19576350f93447cb1125e342b73a8dd2bacbe47e4b6b63ed5e39";

    fn h(s: &str) -> Vec<u8> {
        hex::decode(s).unwrap()
    }

    fn mainnet() -> ChainInfo {
        ChainInfo {
            public_key: h(MAINNET_PK),
            period: 30,
            genesis_time: 1595431050,
            genesis_seed: h(MAINNET_SEED),
            scheme: Scheme::PedersenBlsChained,
            beacon_id: String::new(),
        }
    }

    fn quicknet() -> ChainInfo {
        ChainInfo {
            public_key: h(QUICKNET_PK),
            period: 3,
            genesis_time: 1692803367,
            genesis_seed: h(QUICKNET_SEED),
            scheme: Scheme::BlsUnchainedG1Rfc9380,
            beacon_id: "quicknet".into(),
        }
    }

    fn mainnet_beacon() -> Beacon {
        Beacon { round: 72785, signature: h(MAINNET_SIG), previous_signature: Some(h(MAINNET_PREV)) }
    }

    #[test]
    fn scheme_ids_roundtrip() {
        for s in Scheme::ALL {
            assert_eq!(Scheme::from_id(s.id()), Ok(s));
            assert_eq!(s.id().parse::<Scheme>(), Ok(s));
            assert_eq!(s.to_string(), s.id());
        }
        assert_eq!(Scheme::from_id("bls-unchained-g1-rfc9380"), Ok(Scheme::BlsUnchainedG1Rfc9380));
        assert!(matches!(Scheme::from_id(""), Err(BeaconError::UnknownScheme(_))));
        assert!(matches!(Scheme::from_id("Pedersen-bls-chained"), Err(BeaconError::UnknownScheme(_))));
        assert_eq!(Scheme::PedersenBlsChained.dst(), b"BLS_SIG_BLS12381G2_XMD:SHA-256_SSWU_RO_NUL_");
        assert_eq!(Scheme::BlsUnchainedG1Rfc9380.dst(), b"BLS_SIG_BLS12381G1_XMD:SHA-256_SSWU_RO_NUL_");
        assert_eq!(Scheme::BlsUnchainedOnG1.dst(), DST_G2);
        assert_eq!((Scheme::PedersenBlsChained.public_key_len(), Scheme::PedersenBlsChained.signature_len()), (48, 96));
        assert_eq!(
            (Scheme::BlsUnchainedG1Rfc9380.public_key_len(), Scheme::BlsUnchainedG1Rfc9380.signature_len()),
            (96, 48)
        );
    }

    #[test]
    fn digests() {
        let round = 72785u64;
        let prev = h(MAINNET_PREV);
        let mut m = prev.clone();
        m.extend_from_slice(&round.to_be_bytes());
        assert_eq!(digest(Scheme::PedersenBlsChained, round, Some(&prev)), sha256(&[&m]));
        let unchained = sha256(&[&round.to_be_bytes()]);
        assert_eq!(digest(Scheme::PedersenBlsChained, round, None), unchained);
        for s in [Scheme::PedersenBlsUnchained, Scheme::BlsUnchainedOnG1, Scheme::BlsUnchainedG1Rfc9380] {
            assert_eq!(digest(s, round, Some(&prev)), unchained);
            assert_eq!(digest(s, round, None), unchained);
        }
    }

    #[test]
    fn chain_hashes() {
        assert_eq!(mainnet().hash_hex(), MAINNET_HASH);
        let mut m = mainnet();
        m.beacon_id = "default".into();
        assert_eq!(m.hash_hex(), MAINNET_HASH);
        m.beacon_id = "other".into();
        assert_ne!(m.hash_hex(), MAINNET_HASH);
        assert_eq!(quicknet().hash_hex(), QUICKNET_HASH);
        // the scheme is not hashed
        let mut q = quicknet();
        q.scheme = Scheme::BlsUnchainedOnG1;
        assert_eq!(q.hash_hex(), QUICKNET_HASH);
    }

    #[test]
    fn verifies_mainnet_and_quicknet() {
        let info = mainnet();
        let b = mainnet_beacon();
        assert_eq!(verify_beacon(&info, &b), Ok(()));
        assert_eq!(hex::encode(b.randomness()), MAINNET_RAND);
        let q = quicknet();
        let qb = Beacon { round: 1000, signature: h(QUICKNET_SIG_1000), previous_signature: None };
        assert_eq!(verify_beacon(&q, &qb), Ok(()));
        // unchained schemes ignore a previous signature
        let with_prev = Beacon { previous_signature: Some(vec![1, 2, 3]), ..qb.clone() };
        assert_eq!(verify_beacon(&q, &with_prev), Ok(()));
        let wrong_round = Beacon { round: 1001, ..qb };
        assert_eq!(verify_beacon(&q, &wrong_round), Err(BeaconError::InvalidSignature { round: 1001 }));
    }

    #[test]
    fn chained_errors() {
        let info = mainnet();
        let b = Beacon { previous_signature: None, ..mainnet_beacon() };
        assert_eq!(
            verify_beacon(&info, &b),
            Err(BeaconError::MissingPreviousSignature { scheme: Scheme::PedersenBlsChained, round: 72785 })
        );
        let b = Beacon { round: 0, ..mainnet_beacon() };
        assert_eq!(verify_beacon(&info, &b), Err(BeaconError::GenesisRound));
        let b = Beacon { round: 72786, ..mainnet_beacon() };
        assert_eq!(verify_beacon(&info, &b), Err(BeaconError::InvalidSignature { round: 72786 }));
    }

    #[test]
    fn key_and_signature_encoding_errors() {
        let mut info = mainnet();
        info.public_key.pop();
        let e = verify_beacon(&info, &mainnet_beacon()).unwrap_err();
        assert_eq!(
            e,
            BeaconError::Length { what: "public key", scheme: Scheme::PedersenBlsChained, expected: 48, got: 47 }
        );
        assert_eq!(e.to_string(), "public key has 47 bytes, scheme pedersen-bls-chained needs 48");
        // the mainnet key under a G1-signature scheme: wrong length
        info = mainnet();
        info.scheme = Scheme::BlsUnchainedG1Rfc9380;
        assert!(matches!(info.validate(), Err(BeaconError::Length { expected: 96, got: 48, .. })));
        // no compression flag
        info = mainnet();
        info.public_key[0] &= 0x7f;
        assert!(matches!(
            info.validate(),
            Err(BeaconError::InvalidPoint { what: "public key", problem: PointProblem::BadEncoding })
        ));
        // the identity
        let mut inf = vec![0u8; 48];
        inf[0] = 0xc0;
        info.public_key = inf;
        assert_eq!(
            info.validate(),
            Err(BeaconError::InvalidPoint { what: "public key", problem: PointProblem::Infinity })
        );
        // x not on the curve: find one by bumping the last byte
        let mut not_on_curve = 0;
        for i in 0..=255u8 {
            let mut pk = h(MAINNET_PK);
            pk[47] = i;
            if let Err(BeaconError::InvalidPoint { problem: PointProblem::NotOnCurve, .. }) =
                PreparedChain::from_public_key(Scheme::PedersenBlsChained, &pk)
            {
                not_on_curve += 1;
            }
        }
        assert!(not_on_curve > 0);

        let chain = mainnet().prepare().unwrap();
        let prev = h(MAINNET_PREV);
        let sig = h(MAINNET_SIG);
        assert!(matches!(
            chain.verify_round(72785, &sig[..95], Some(&prev)),
            Err(BeaconError::Length { what: "signature", expected: 96, got: 95, .. })
        ));
        let mut inf = vec![0u8; 96];
        inf[0] = 0xc0;
        assert_eq!(
            chain.verify_round(72785, &inf, Some(&prev)),
            Err(BeaconError::InvalidPoint { what: "signature", problem: PointProblem::Infinity })
        );
        assert!(matches!(chain.verify_round(72785, &[0u8; 96], Some(&prev)), Err(BeaconError::InvalidPoint { .. })));
        assert!(matches!(chain.verify_round(72785, &[], Some(&prev)), Err(BeaconError::Length { .. })));
    }

    #[test]
    fn not_in_subgroup_signature_is_reported() {
        // A point on E'(Fp2) outside the order-r subgroup: scan x = (i, 0)... is slow to find on G2, so
        // use G1 (quicknet signatures) where most valid x coordinates give a non-subgroup point.
        let chain = quicknet().prepare().unwrap();
        let mut found = false;
        for i in 0..200u8 {
            let mut s = vec![0u8; 48];
            s[0] = 0x80;
            s[47] = i;
            if let Err(BeaconError::InvalidPoint { problem: PointProblem::NotInSubgroup, .. }) =
                chain.verify_round(1000, &s, None)
            {
                found = true;
                break;
            }
        }
        assert!(found);
    }

    #[test]
    fn sign_and_verify_every_scheme() {
        let mut sk = sha256(&[b"conode beacon test key"]);
        sk[0] &= 0x3f; // below the group order
        for scheme in Scheme::ALL {
            let pk = public_key_from_secret(scheme, &sk).unwrap();
            assert_eq!(pk.len(), scheme.public_key_len());
            let chain = PreparedChain::from_public_key(scheme, &pk).unwrap();
            assert_eq!(chain.public_key(), pk);
            assert_eq!(chain.scheme(), scheme);
            let seed = sha256(&[b"seed"]);
            let mut prev = seed.to_vec();
            for round in 1..4u64 {
                let sig = sign_round(scheme, &sk, round, Some(&prev)).unwrap();
                assert_eq!(sig.len(), scheme.signature_len());
                let b = Beacon { round, signature: sig.clone(), previous_signature: Some(prev.clone()) };
                assert_eq!(chain.verify(&b), Ok(()));
                let tampered = Beacon { previous_signature: Some(vec![0; 3]), ..b.clone() };
                assert_eq!(chain.verify(&tampered).is_ok(), !scheme.is_chained());
                prev = sig;
            }
            // the same key under the other DST must not verify
            let msg = digest(scheme, 7, None);
            let sig = sign_message(scheme, &sk, &msg).unwrap();
            assert_eq!(chain.verify_message(&msg, &sig), Ok(()));
            assert_eq!(chain.verify_message(b"other", &sig), Err(BeaconError::InvalidMessageSignature));
        }
        // bls-unchained-on-g1 and the RFC scheme differ only by DST
        let sig = sign_round(Scheme::BlsUnchainedOnG1, &sk, 5, None).unwrap();
        let pk = public_key_from_secret(Scheme::BlsUnchainedG1Rfc9380, &sk).unwrap();
        let rfc = PreparedChain::from_public_key(Scheme::BlsUnchainedG1Rfc9380, &pk).unwrap();
        assert_eq!(rfc.verify_round(5, &sig, None), Err(BeaconError::InvalidSignature { round: 5 }));
        assert_eq!(sign_message(Scheme::PedersenBlsChained, &[0u8; 32], b"x"), Err(BeaconError::InvalidSecretKey));
        assert_eq!(sign_message(Scheme::PedersenBlsChained, &[1u8; 31], b"x"), Err(BeaconError::InvalidSecretKey));
        assert_eq!(
            public_key_from_secret(Scheme::BlsUnchainedG1Rfc9380, &[0xffu8; 32]),
            Err(BeaconError::InvalidSecretKey)
        );
    }

    #[test]
    fn info_json_v1_and_v2() {
        let v1 = format!(
            r#"{{"public_key":"{MAINNET_PK}","period":30,"genesis_time":1595431050,"hash":"{MAINNET_HASH}","groupHash":"{MAINNET_SEED}","schemeID":"pedersen-bls-chained","metadata":{{"beaconID":"default"}}}}"#
        );
        let info = ChainInfo::from_drand_json(&v1).unwrap();
        assert_eq!(info.scheme, Scheme::PedersenBlsChained);
        assert_eq!(info.beacon_id, "default");
        assert_eq!(info.hash_hex(), MAINNET_HASH);
        // no scheme, no metadata: drand's defaults
        let bare = format!(
            r#"{{"public_key":"{MAINNET_PK}","period":30,"genesis_time":1595431050,"groupHash":"{MAINNET_SEED}"}}"#
        );
        assert_eq!(ChainInfo::from_drand_json(&bare).unwrap(), ChainInfo { beacon_id: String::new(), ..info.clone() });
        let v2 = format!(
            r#"{{"public_key":"{QUICKNET_PK}","period":3,"genesis_time":1692803367,"genesis_seed":"{QUICKNET_SEED}","chain_hash":"{QUICKNET_HASH}","scheme":"bls-unchained-g1-rfc9380","beacon_id":"quicknet"}}"#
        );
        assert_eq!(ChainInfo::from_drand_json(&v2).unwrap(), quicknet());
        // a wrong hash, a wrong period, a bad key, bad JSON
        let wrong = v2.replace("\"period\":3", "\"period\":4");
        assert!(matches!(ChainInfo::from_drand_json(&wrong), Err(BeaconError::ChainHashMismatch { .. })));
        let zero = bare.replace("\"period\":30", "\"period\":0");
        assert_eq!(ChainInfo::from_drand_json(&zero), Err(BeaconError::ZeroPeriod));
        let big = bare.replace("\"period\":30", "\"period\":4294967296");
        assert!(matches!(ChainInfo::from_drand_json(&big), Err(BeaconError::OutOfRange { field: "period", .. })));
        let bad_scheme = v2.replace("bls-unchained-g1-rfc9380", "bls-bn254-unchained-on-g1");
        assert!(matches!(ChainInfo::from_drand_json(&bad_scheme), Err(BeaconError::UnknownScheme(_))));
        let bad_hex = bare.replace(MAINNET_SEED, "zz");
        assert!(matches!(ChainInfo::from_drand_json(&bad_hex), Err(BeaconError::Hex { field: "groupHash", .. })));
        assert!(matches!(ChainInfo::from_drand_json("{"), Err(BeaconError::Json(_))));
        assert_eq!(ChainInfo::from_drand_json("{}"), Err(BeaconError::MissingField("public_key")));
        assert_eq!(ChainInfo::from_drand_json("[]"), Err(BeaconError::MissingField("public_key")));
        let num_key = bare.replace(&format!("\"{MAINNET_PK}\""), "5");
        assert_eq!(ChainInfo::from_drand_json(&num_key), Err(BeaconError::MissingField("public_key")));
    }

    #[test]
    fn beacon_json() {
        let j = format!(
            r#"{{"round":72785,"randomness":"{MAINNET_RAND}","signature":"{MAINNET_SIG}","previous_signature":"{MAINNET_PREV}"}}"#
        );
        let b = Beacon::from_drand_json(&j).unwrap();
        assert_eq!(b, mainnet_beacon());
        assert_eq!(mainnet().verify(&b), Ok(()));
        let bad = j.replace(MAINNET_RAND, &"00".repeat(32));
        assert_eq!(Beacon::from_drand_json(&bad), Err(BeaconError::RandomnessMismatch { round: 72785 }));
        let q = format!(r#"{{"round":1000,"signature":"{QUICKNET_SIG_1000}"}}"#);
        let qb = Beacon::from_drand_json(&q).unwrap();
        assert_eq!(qb.previous_signature, None);
        assert_eq!(quicknet().verify(&qb), Ok(()));
        assert_eq!(Beacon::from_drand_json(r#"{"round":-1,"signature":""}"#), Err(BeaconError::MissingField("round")));
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        let chains: Vec<PreparedChain> = [mainnet(), quicknet()].iter().map(|i| i.prepare().unwrap()).collect();
        let mut x = sha256(&[b"fuzz"]);
        for i in 0..300usize {
            x = sha256(&[&x]);
            let len = [0, 1, 32, 47, 48, 49, 95, 96, 97, 192][i % 10];
            let mut bytes: Vec<u8> = x.iter().cycle().take(len).copied().collect();
            if i % 3 == 0 && !bytes.is_empty() {
                bytes[0] |= 0x80;
            }
            for c in &chains {
                assert!(c.verify_round(i as u64, &bytes, Some(&bytes)).is_err());
            }
            for s in Scheme::ALL {
                assert!(PreparedChain::from_public_key(s, &bytes).is_err() || len == s.public_key_len());
            }
        }
    }
}
