//! BLS12-381 service keys (blst, min_pk: 48-byte G1 public keys, 96-byte G2 signatures) following the
//! IETF POP ciphersuite, so that plain aggregation of keys whose PoP was checked is rogue-key safe.

use super::{hex_array, CryptoError};
use blst::min_pk::{AggregatePublicKey, AggregateSignature, PublicKey, SecretKey, Signature};
use blst::BLST_ERROR;
use std::fmt;
use zeroize::Zeroizing;

/// Domain separation tag for signatures (IETF BLS POP ciphersuite, signatures in G2).
pub const DST_SIG: &[u8] = b"BLS_SIG_BLS12381G2_XMD:SHA-256_SSWU_RO_POP_";
/// Domain separation tag for proofs of possession.
pub const DST_POP: &[u8] = b"BLS_POP_BLS12381G2_XMD:SHA-256_SSWU_RO_POP_";
/// Suite name written in config files.
pub const SUITE: &str = "BLS12-381.min_pk";

/// A checked (in group, not identity) BLS public key.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct BlsPublicKey(PublicKey);

impl BlsPublicKey {
    pub const LEN: usize = 48;
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, CryptoError> {
        if bytes.len() != Self::LEN {
            return Err(CryptoError::Length { expected: Self::LEN, got: bytes.len() });
        }
        PublicKey::key_validate(bytes).map(Self).map_err(|_| CryptoError::Invalid("BLS12-381 G1 public key"))
    }
    pub fn from_hex(s: &str) -> Result<Self, CryptoError> {
        Self::from_bytes(&hex_array::<48>(s)?)
    }
    pub fn to_bytes(&self) -> [u8; 48] {
        self.0.compress()
    }
    pub fn to_hex(&self) -> String {
        hex::encode(self.to_bytes())
    }
    pub fn raw(&self) -> &PublicKey {
        &self.0
    }
    /// Checks a proof of possession for this key.
    pub fn verify_pop(&self, pop: &BlsSignature) -> Result<(), CryptoError> {
        match pop.0.verify(true, &self.to_bytes(), DST_POP, &[], &self.0, true) {
            BLST_ERROR::BLST_SUCCESS => Ok(()),
            _ => Err(CryptoError::BadPop),
        }
    }
    /// Verifies a plain signature of `msg` by this key. Every `BlsSignature` is in the group
    /// already (checked on decode, or made by signing or adding such signatures), so the
    /// signature's subgroup check is not repeated here.
    pub fn verify(&self, msg: &[u8], sig: &BlsSignature) -> bool {
        sig.0.verify(false, msg, DST_SIG, &[], &self.0, false) == BLST_ERROR::BLST_SUCCESS
    }
    /// Sum of public keys (only sound for keys whose PoP was checked).
    pub fn aggregate(keys: &[&BlsPublicKey]) -> Result<BlsPublicKey, CryptoError> {
        let raws: Vec<&PublicKey> = keys.iter().map(|k| &k.0).collect();
        let agg = AggregatePublicKey::aggregate(&raws, false).map_err(|_| CryptoError::Invalid("empty key set"))?;
        Ok(BlsPublicKey(agg.to_public_key()))
    }
}

impl fmt::Debug for BlsPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "bls:{}", &self.to_hex()[..16])
    }
}

/// A BLS signature (G2 point, 96 bytes compressed), group-checked on decode.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct BlsSignature(Signature);

impl BlsSignature {
    pub const LEN: usize = 96;
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, CryptoError> {
        if bytes.len() != Self::LEN {
            return Err(CryptoError::Length { expected: Self::LEN, got: bytes.len() });
        }
        Signature::sig_validate(bytes, true).map(Self).map_err(|_| CryptoError::Invalid("BLS12-381 G2 signature"))
    }
    pub fn from_hex(s: &str) -> Result<Self, CryptoError> {
        Self::from_bytes(&hex_array::<96>(s)?)
    }
    pub fn to_bytes(&self) -> [u8; 96] {
        self.0.compress()
    }
    /// The blst point (group-checked when decoded).
    pub fn raw(&self) -> &Signature {
        &self.0
    }
    pub fn to_hex(&self) -> String {
        hex::encode(self.to_bytes())
    }
    /// Sum of signatures.
    pub fn aggregate(sigs: &[&BlsSignature]) -> Result<BlsSignature, CryptoError> {
        let raws: Vec<&Signature> = sigs.iter().map(|s| &s.0).collect();
        let agg =
            AggregateSignature::aggregate(&raws, false).map_err(|_| CryptoError::Invalid("empty signature set"))?;
        Ok(BlsSignature(agg.to_signature()))
    }
}

impl fmt::Debug for BlsSignature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "blssig:{}", &self.to_hex()[..16])
    }
}

/// A BLS service key pair. Debug output never shows the secret.
#[derive(Clone)]
pub struct BlsKeyPair {
    secret: SecretKey,
    public: BlsPublicKey,
    /// The messages this key signed or had hashed lately, hashed to G2 (see
    /// [`BlsKeyPair::message_point`]); shared by the clones of the key (one node's services).
    points: std::sync::Arc<MessagePoints>,
}

/// Messages hashed to G2 (under [`DST_SIG`]) lately, by the sha256 of their exact bytes (so a
/// large message costs 32 bytes here): a node that signs a statement and later verifies the
/// collective signature of it (a prepare certificate, a forward link) hashes it to G2 once.
/// Bounded; the points are public values.
struct MessagePoints {
    kept: std::sync::Mutex<crate::kept::KeptMap<[u8; 32], blst::blst_p2_affine>>,
}

/// Messages whose points a key keeps (a few appends' statements of every chain it signs for).
const POINTS_KEPT: usize = 256;

impl Default for MessagePoints {
    fn default() -> Self {
        Self { kept: std::sync::Mutex::new(crate::kept::KeptMap::new(POINTS_KEPT)) }
    }
}

impl MessagePoints {
    fn get(&self, msg: &[u8]) -> blst::blst_p2_affine {
        let key = super::sha256(&[msg]);
        if let Some(p) = crate::sync::lock(&self.kept).get(&key) {
            return *p;
        }
        let point = hash_to_g2(msg);
        crate::sync::lock(&self.kept).insert(key, point);
        point
    }
}

/// `msg` hashed to G2 under [`DST_SIG`] (the point a signature of `msg` is a multiple of).
pub fn hash_to_g2(msg: &[u8]) -> blst::blst_p2_affine {
    let mut point = blst::blst_p2::default();
    let mut affine = blst::blst_p2_affine::default();
    // SAFETY: pointers to live locals and to slices with their own lengths.
    unsafe {
        blst::blst_hash_to_g2(
            &mut point,
            msg.as_ptr(),
            msg.len(),
            DST_SIG.as_ptr(),
            DST_SIG.len(),
            std::ptr::null(),
            0,
        );
        blst::blst_p2_to_affine(&mut affine, &point);
    }
    affine
}

/// −g1: the G1 generator negated, so that a check e(g1, σ) = e(key, H) reads
/// e(key, H)·e(−g1, σ) = 1, one multi-pairing.
pub fn neg_g1() -> blst::blst_p1_affine {
    // SAFETY: blst returns a pointer to its static generator; the rest are live locals.
    unsafe {
        let mut neg = *blst::blst_p1_affine_generator();
        let y = neg.y;
        blst::blst_fp_cneg(&mut neg.y, &y, true);
        neg
    }
}

/// −g2: the G2 generator negated (for checks with signatures on G1: e(σ, −g2)·e(H, key) = 1).
pub fn neg_g2() -> blst::blst_p2_affine {
    // SAFETY: blst returns a pointer to its static generator; the rest are live locals.
    unsafe {
        let mut neg = *blst::blst_p2_affine_generator();
        let y = neg.y;
        blst::blst_fp2_cneg(&mut neg.y, &y, true);
        neg
    }
}

/// Whether Π e(p_i, q_i) = 1: one Miller loop over all the pairs (their squarings shared) and
/// one final exponentiation. Two separate Miller loops compared by `blst_fp12_finalverify` cost
/// about a tenth more for a single signature check. False for no pairs, unequal lengths or any
/// point at infinity (blst's multi-pairing would count such a pair as 1).
pub fn pairings_product_is_one(ps: &[blst::blst_p1_affine], qs: &[blst::blst_p2_affine]) -> bool {
    if ps.is_empty() || ps.len() != qs.len() {
        return false;
    }
    // SAFETY: pointers to live points of the slices.
    if ps.iter().any(|p| unsafe { blst::blst_p1_affine_is_inf(p) })
        || qs.iter().any(|q| unsafe { blst::blst_p2_affine_is_inf(q) })
    {
        return false;
    }
    let p: Vec<*const blst::blst_p1_affine> = ps.iter().map(|x| x as *const _).collect();
    let q: Vec<*const blst::blst_p2_affine> = qs.iter().map(|x| x as *const _).collect();
    let (mut ml, mut gt) = (blst::blst_fp12::default(), blst::blst_fp12::default());
    // SAFETY: `p` and `q` hold `ps.len()` pointers each to live points.
    unsafe {
        blst::blst_miller_loop_n(&mut ml, q.as_ptr(), p.as_ptr(), ps.len());
        blst::blst_final_exp(&mut gt, &ml);
        blst::blst_fp12_is_one(&gt)
    }
}

impl BlsKeyPair {
    pub fn generate() -> Self {
        let mut ikm = Zeroizing::new([0u8; 32]);
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, ikm.as_mut());
        // key_gen only fails for ikm shorter than 32 bytes.
        let secret = SecretKey::key_gen(ikm.as_ref(), &[]).expect("32-byte ikm");
        Self::from_secret(secret)
    }
    fn from_secret(secret: SecretKey) -> Self {
        let public = BlsPublicKey(secret.sk_to_pk());
        Self { secret, public, points: Default::default() }
    }
    pub fn from_secret_hex(s: &str) -> Result<Self, CryptoError> {
        let bytes = Zeroizing::new(hex_array::<32>(s)?);
        let secret = SecretKey::from_bytes(bytes.as_ref()).map_err(|_| CryptoError::Invalid("BLS12-381 secret key"))?;
        Ok(Self::from_secret(secret))
    }
    pub fn secret_hex(&self) -> Zeroizing<String> {
        Zeroizing::new(hex::encode(self.secret.to_bytes()))
    }
    pub fn public(&self) -> BlsPublicKey {
        self.public
    }
    pub fn sign(&self, msg: &[u8]) -> BlsSignature {
        // The same signature as `self.secret.sign(msg, DST_SIG, &[])`, with the message's point
        // kept for a later verification of a collective signature of it on this node.
        let point = self.points.get(msg);
        let secret = Zeroizing::new(self.secret.to_bytes());
        let mut scalar = Zeroizing::new(ScalarBytes(blst::blst_scalar::default()));
        let (mut hash, mut sig, mut affine) =
            (blst::blst_p2::default(), blst::blst_p2::default(), blst::blst_p2_affine::default());
        // SAFETY: pointers to live locals (the secret is 32 bytes, as the call reads).
        unsafe {
            blst::blst_scalar_from_bendian(&mut scalar.0, secret.as_ptr());
            blst::blst_p2_from_affine(&mut hash, &point);
            blst::blst_sign_pk_in_g1(&mut sig, &hash, &scalar.0);
            blst::blst_p2_to_affine(&mut affine, &sig);
        }
        BlsSignature(Signature::from(affine))
    }
    /// `msg` hashed to G2 under [`DST_SIG`], as [`hash_to_g2`] gives it, from the points of the
    /// messages this key (or a clone of it) signed or hashed lately when it is one of them.
    pub fn message_point(&self, msg: &[u8]) -> blst::blst_p2_affine {
        self.points.get(msg)
    }
    /// Proof of possession: a signature of the public key under the PoP tag.
    pub fn pop(&self) -> BlsSignature {
        BlsSignature(self.secret.sign(&self.public.to_bytes(), DST_POP, &[]))
    }
}

/// A secret scalar, wiped when dropped.
struct ScalarBytes(blst::blst_scalar);

impl zeroize::Zeroize for ScalarBytes {
    fn zeroize(&mut self) {
        self.0.b.zeroize();
    }
}

impl fmt::Debug for BlsKeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BlsKeyPair({:?})", self.public)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_verify_pop_and_aggregate() {
        let a = BlsKeyPair::generate();
        let b = BlsKeyPair::generate();
        a.public().verify_pop(&a.pop()).unwrap();
        assert_eq!(a.public().verify_pop(&b.pop()), Err(CryptoError::BadPop));
        // A PoP is not a signature on the key bytes under the signing tag.
        assert!(!a.public().verify(&a.public().to_bytes(), &a.pop()));
        let msg = b"statement";
        let agg_sig = BlsSignature::aggregate(&[&a.sign(msg), &b.sign(msg)]).unwrap();
        let agg_pk = BlsPublicKey::aggregate(&[&a.public(), &b.public()]).unwrap();
        assert!(agg_pk.verify(msg, &agg_sig));
        assert!(!agg_pk.verify(b"other", &agg_sig));
        assert!(!a.public().verify(msg, &agg_sig));
        let again = BlsKeyPair::from_secret_hex(&a.secret_hex()).unwrap();
        assert_eq!(again.public(), a.public());
        let decoded = BlsSignature::from_bytes(&agg_sig.to_bytes()).unwrap();
        assert_eq!(decoded, agg_sig);
        assert!(BlsPublicKey::from_bytes(&[0u8; 48]).is_err());
    }

    #[test]
    fn signing_with_kept_points_gives_blst_signatures() {
        let a = BlsKeyPair::generate();
        let clone = a.clone();
        for i in 0..(POINTS_KEPT + 3) {
            let msg = format!("statement {i}");
            let expected = a.secret.sign(msg.as_bytes(), DST_SIG, &[]);
            assert_eq!(a.sign(msg.as_bytes()).to_bytes(), expected.compress());
            // Signed again (its point kept), and by a clone (which shares the points).
            assert_eq!(clone.sign(msg.as_bytes()).to_bytes(), expected.compress());
            assert_eq!(a.message_point(msg.as_bytes()), hash_to_g2(msg.as_bytes()));
        }
        assert_eq!(crate::sync::lock(&a.points.kept).len(), POINTS_KEPT, "bounded");
        assert_eq!(a.message_point(b"statement 0"), hash_to_g2(b"statement 0"), "evicted, hashed again");
        assert_ne!(hash_to_g2(b"a"), hash_to_g2(b"b"));
        assert!(a.public().verify(b"x", &a.sign(b"x")));
    }
}
