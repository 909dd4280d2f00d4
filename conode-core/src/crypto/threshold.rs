//! Threshold BLS over BLS12-381 with blst's low-level API: scalars mod r, secret polynomials,
//! Feldman commitments in G1 or G2 (generic over the group, since `pedersen-bls-chained` has its
//! group key in G1 and signatures in G2 while quicknet `bls-unchained-g1-rfc9380` is the other way
//! round), share verification, partial signatures and Lagrange recovery in the signature group.
//!
//! Share index `i` (0-based, as in kyber/drand) is the evaluation of the polynomial at `x = i + 1`.
//! Decoding checks everything (canonical scalars, on-curve, in-subgroup, not the identity) and never
//! panics on garbage. Pure: compiles without the runtime.

use blst::*;
use std::fmt;
use zeroize::Zeroize;

/// Largest share index accepted (indices are roster positions).
pub const MAX_INDEX: u32 = 1 << 16;

/// Why threshold material could not be used.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum ThresholdError {
    #[error("expected {expected} bytes, got {got}")]
    Length { expected: usize, got: usize },
    #[error("not a canonical scalar")]
    Scalar,
    #[error("not a valid {0} point")]
    Point(&'static str),
    #[error("polynomial has no coefficient")]
    EmptyPolynomial,
    #[error("polynomials of different degree ({0} and {1} coefficients)")]
    DegreeMismatch(usize, usize),
    #[error("need {need} partials, got {got}")]
    NotEnough { need: usize, got: usize },
    #[error("duplicate share index {0}")]
    DuplicateIndex(u32),
    #[error("share index {0} out of range")]
    IndexRange(u32),
    #[error("recovered signature does not verify")]
    BadRecovery,
    /// A resharing dealer's deal does not match its commitments or its old public share.
    #[error("re-share from dealer {dealer}: {reason}")]
    BadReshare { dealer: u32, reason: &'static str },
    #[error("resharing would change the group public key")]
    KeyChanged,
}

/// An element of the scalar field of BLS12-381 (mod r).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Scalar(blst_fr);

impl fmt::Debug for Scalar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Scalars are often secret: never print them.
        f.write_str("Scalar(..)")
    }
}

impl Scalar {
    pub const LEN: usize = 32;

    pub fn zero() -> Self {
        Scalar(blst_fr::default())
    }
    pub fn from_u64(v: u64) -> Self {
        let limbs = [v, 0, 0, 0];
        let mut out = blst_fr::default();
        // SAFETY: out and limbs are valid for the call; blst_fr_from_uint64 reads 4 limbs.
        unsafe { blst_fr_from_uint64(&mut out, limbs.as_ptr()) };
        Scalar(out)
    }
    pub fn one() -> Self {
        Self::from_u64(1)
    }
    /// A uniformly random scalar (64 random bytes reduced mod r).
    pub fn random<R: rand::RngCore + rand::CryptoRng>(rng: &mut R) -> Self {
        let mut wide = zeroize::Zeroizing::new([0u8; 64]);
        rng.fill_bytes(wide.as_mut());
        let mut s = blst_scalar::default();
        // SAFETY: s is valid; wide is 64 readable bytes.
        unsafe { blst_scalar_from_be_bytes(&mut s, wide.as_ptr(), wide.len()) };
        let mut out = blst_fr::default();
        // SAFETY: valid pointers.
        unsafe { blst_fr_from_scalar(&mut out, &s) };
        Scalar(out)
    }
    /// From 32 big-endian bytes; refuses values ≥ r.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, ThresholdError> {
        if bytes.len() != Self::LEN {
            return Err(ThresholdError::Length { expected: Self::LEN, got: bytes.len() });
        }
        let mut s = blst_scalar::default();
        // SAFETY: bytes has 32 readable bytes.
        unsafe { blst_scalar_from_bendian(&mut s, bytes.as_ptr()) };
        // SAFETY: valid pointer.
        if !unsafe { blst_scalar_fr_check(&s) } && bytes.iter().any(|b| *b != 0) {
            return Err(ThresholdError::Scalar);
        }
        let mut out = blst_fr::default();
        // SAFETY: valid pointers.
        unsafe { blst_fr_from_scalar(&mut out, &s) };
        Ok(Scalar(out))
    }
    /// 32 big-endian bytes.
    pub fn to_bytes(&self) -> [u8; 32] {
        let s = self.to_blst_scalar();
        let mut out = [0u8; 32];
        // SAFETY: out has 32 writable bytes.
        unsafe { blst_bendian_from_scalar(out.as_mut_ptr(), &s) };
        out
    }
    fn to_blst_scalar(self) -> blst_scalar {
        let mut s = blst_scalar::default();
        // SAFETY: valid pointers.
        unsafe { blst_scalar_from_fr(&mut s, &self.0) };
        s
    }
    pub fn is_zero(&self) -> bool {
        self.0 == blst_fr::default()
    }
    pub fn add(&self, o: &Scalar) -> Scalar {
        let mut out = blst_fr::default();
        // SAFETY: valid pointers.
        unsafe { blst_fr_add(&mut out, &self.0, &o.0) };
        Scalar(out)
    }
    pub fn sub(&self, o: &Scalar) -> Scalar {
        let mut out = blst_fr::default();
        // SAFETY: valid pointers.
        unsafe { blst_fr_sub(&mut out, &self.0, &o.0) };
        Scalar(out)
    }
    pub fn mul(&self, o: &Scalar) -> Scalar {
        let mut out = blst_fr::default();
        // SAFETY: valid pointers.
        unsafe { blst_fr_mul(&mut out, &self.0, &o.0) };
        Scalar(out)
    }
    /// The multiplicative inverse (`None` for zero).
    pub fn inverse(&self) -> Option<Scalar> {
        if self.is_zero() {
            return None;
        }
        let mut out = blst_fr::default();
        // SAFETY: valid pointers.
        unsafe { blst_fr_inverse(&mut out, &self.0) };
        Some(Scalar(out))
    }
    /// Overwrites the value with zero.
    pub fn wipe(&mut self) {
        self.0.l.zeroize();
    }
}

/// A point of G1 or G2 with the operations threshold BLS needs.
pub trait Point: Copy + Clone + PartialEq + Eq + Send + Sync + fmt::Debug + 'static {
    /// Compressed size in bytes (48 for G1, 96 for G2).
    const COMPRESSED_LEN: usize;
    const NAME: &'static str;
    fn identity() -> Self;
    fn generator() -> Self;
    fn add(&self, other: &Self) -> Self;
    fn mul(&self, s: &Scalar) -> Self;
    /// `Σ scalars[i]·points[i]` (over the shorter of the two) as one multi-scalar
    /// multiplication: blst's Pippenger on this thread, for public scalars such as Lagrange
    /// coefficients (not constant time).
    fn multi_mul(points: &[Self], scalars: &[Scalar]) -> Self;
    /// Multiplication by a small public integer (cheaper than a full scalar).
    fn mul_u64(&self, v: u64) -> Self;
    /// `Σ weights[i]·points[i]` (over the shorter of the two) with 64-bit weights, as one
    /// Pippenger multi-scalar multiplication of 64-bit scalars: the random linear combinations
    /// of batch checks (not constant time; the weights are secret but used once).
    fn multi_mul_u64(points: &[Self], weights: &[u64]) -> Self;
    fn is_identity(&self) -> bool;
    fn to_bytes(&self) -> Vec<u8>;
    /// Decodes a compressed point: on the curve, in the prime-order subgroup, not the identity.
    fn from_bytes(bytes: &[u8]) -> Result<Self, ThresholdError> {
        let p = Self::from_bytes_on_curve(bytes)?;
        if !p.in_subgroup() {
            return Err(ThresholdError::Point(Self::NAME));
        }
        Ok(p)
    }
    /// Decodes a compressed point on the curve, not the identity, WITHOUT the (costly) subgroup
    /// check: only for points whose combination is verified afterwards with the group check (e.g.
    /// partial signatures recovered into a signature that is then verified).
    fn from_bytes_on_curve(bytes: &[u8]) -> Result<Self, ThresholdError>;
    /// In the prime-order subgroup.
    fn in_subgroup(&self) -> bool;
    /// Hash to the curve (RFC 9380, SSWU, random oracle) with `dst`.
    fn hash_to(msg: &[u8], dst: &[u8]) -> Self;
}

/// A point of G1 (48 bytes compressed).
#[derive(Clone, Copy)]
pub struct G1(blst_p1);
/// A point of G2 (96 bytes compressed).
#[derive(Clone, Copy)]
pub struct G2(blst_p2);

macro_rules! impl_point {
    ($t:ident, $raw:ident, $aff:ident, $len:expr, $name:expr, $gen:ident, $add:ident, $mult:ident, $inf:ident,
     $eq:ident, $compress:ident, $uncompress:ident, $from_aff:ident, $in_group:ident, $hash:ident,
     $to_affines:ident, $pippenger:ident, $scratch:ident) => {
        impl PartialEq for $t {
            fn eq(&self, o: &Self) -> bool {
                // SAFETY: valid pointers.
                unsafe { $eq(&self.0, &o.0) }
            }
        }
        impl Eq for $t {}
        impl fmt::Debug for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}:{}", $name, &hex::encode(self.to_bytes())[..16])
            }
        }
        impl $t {
            /// Σ scalar_i · point_i by blst's Pippenger: `le` holds one little-endian scalar of
            /// `bits` bits (`bits / 8` bytes, rounded up) per point, back to back; at least 2 points.
            fn pippenger(points: &[Self], le: &[u8], bits: usize) -> Self {
                let n = points.len();
                assert_eq!(le.len(), n * bits.div_ceil(8), "one scalar per point");
                let mut affine = vec![$aff::default(); n];
                let raw: Vec<*const $raw> = points.iter().map(|p| &p.0 as *const $raw).collect();
                // SAFETY: `raw` holds n valid point pointers and `affine` n slots; blst reads the
                // points and scalars (n of `bits` bits, checked above) as contiguous arrays when
                // the second pointer is null; the scratch is the size blst asks for (bytes,
                // rounded up to whole limbs).
                unsafe {
                    $to_affines(affine.as_mut_ptr(), raw.as_ptr(), n);
                    let pts: [*const $aff; 2] = [affine.as_ptr(), std::ptr::null()];
                    let scs: [*const u8; 2] = [le.as_ptr(), std::ptr::null()];
                    let mut scratch = vec![0 as limb_t; $scratch(n).div_ceil(std::mem::size_of::<limb_t>())];
                    let mut out = $raw::default();
                    $pippenger(&mut out, pts.as_ptr(), n, scs.as_ptr(), bits, scratch.as_mut_ptr());
                    $t(out)
                }
            }
        }
        impl Point for $t {
            const COMPRESSED_LEN: usize = $len;
            const NAME: &'static str = $name;
            fn identity() -> Self {
                $t($raw::default())
            }
            fn generator() -> Self {
                // SAFETY: blst returns a pointer to a static generator.
                $t(unsafe { *$gen() })
            }
            fn add(&self, o: &Self) -> Self {
                let mut out = $raw::default();
                // SAFETY: valid pointers; the _or_double variant handles equal inputs.
                unsafe { $add(&mut out, &self.0, &o.0) };
                $t(out)
            }
            fn mul(&self, s: &Scalar) -> Self {
                let sc = s.to_blst_scalar();
                let mut out = $raw::default();
                // SAFETY: sc.b is 32 little-endian bytes; 255 bits are read.
                unsafe { $mult(&mut out, &self.0, sc.b.as_ptr(), 255) };
                $t(out)
            }
            fn multi_mul(points: &[Self], scalars: &[Scalar]) -> Self {
                let n = points.len().min(scalars.len());
                if n == 0 {
                    return Self::identity();
                }
                if n == 1 {
                    return points[0].mul(&scalars[0]);
                }
                let le: Vec<u8> = scalars[..n].iter().flat_map(|s| s.to_blst_scalar().b).collect();
                Self::pippenger(&points[..n], &le, 255)
            }
            fn multi_mul_u64(points: &[Self], weights: &[u64]) -> Self {
                let n = points.len().min(weights.len());
                if n == 0 {
                    return Self::identity();
                }
                if n == 1 {
                    return points[0].mul_u64(weights[0]);
                }
                let le: Vec<u8> = weights[..n].iter().flat_map(|w| w.to_le_bytes()).collect();
                Self::pippenger(&points[..n], &le, 64)
            }
            fn mul_u64(&self, v: u64) -> Self {
                if v == 0 {
                    return Self::identity();
                }
                let bytes = v.to_le_bytes();
                let nbits = 64 - v.leading_zeros() as usize;
                let mut out = $raw::default();
                // SAFETY: bytes holds 8 little-endian bytes; nbits ≤ 64.
                unsafe { $mult(&mut out, &self.0, bytes.as_ptr(), nbits) };
                $t(out)
            }
            fn is_identity(&self) -> bool {
                // SAFETY: valid pointer.
                unsafe { $inf(&self.0) }
            }
            fn to_bytes(&self) -> Vec<u8> {
                let mut out = vec![0u8; $len];
                // SAFETY: out has $len writable bytes.
                unsafe { $compress(out.as_mut_ptr(), &self.0) };
                out
            }
            fn from_bytes_on_curve(bytes: &[u8]) -> Result<Self, ThresholdError> {
                if bytes.len() != $len {
                    return Err(ThresholdError::Length { expected: $len, got: bytes.len() });
                }
                let mut aff = $aff::default();
                // SAFETY: bytes has $len readable bytes.
                if unsafe { $uncompress(&mut aff, bytes.as_ptr()) } != BLST_ERROR::BLST_SUCCESS {
                    return Err(ThresholdError::Point($name));
                }
                let mut p = $raw::default();
                // SAFETY: valid pointers.
                unsafe { $from_aff(&mut p, &aff) };
                let p = $t(p);
                if p.is_identity() {
                    return Err(ThresholdError::Point($name));
                }
                Ok(p)
            }
            fn in_subgroup(&self) -> bool {
                // SAFETY: valid pointer.
                unsafe { $in_group(&self.0) }
            }
            fn hash_to(msg: &[u8], dst: &[u8]) -> Self {
                let mut out = $raw::default();
                // SAFETY: slices valid for their lengths; no augmentation.
                unsafe { $hash(&mut out, msg.as_ptr(), msg.len(), dst.as_ptr(), dst.len(), std::ptr::null(), 0) };
                $t(out)
            }
        }
    };
}

impl_point!(
    G1,
    blst_p1,
    blst_p1_affine,
    48,
    "G1",
    blst_p1_generator,
    blst_p1_add_or_double,
    blst_p1_mult,
    blst_p1_is_inf,
    blst_p1_is_equal,
    blst_p1_compress,
    blst_p1_uncompress,
    blst_p1_from_affine,
    blst_p1_in_g1,
    blst_hash_to_g1,
    blst_p1s_to_affine,
    blst_p1s_mult_pippenger,
    blst_p1s_mult_pippenger_scratch_sizeof
);
impl_point!(
    G2,
    blst_p2,
    blst_p2_affine,
    96,
    "G2",
    blst_p2_generator,
    blst_p2_add_or_double,
    blst_p2_mult,
    blst_p2_is_inf,
    blst_p2_is_equal,
    blst_p2_compress,
    blst_p2_uncompress,
    blst_p2_from_affine,
    blst_p2_in_g2,
    blst_hash_to_g2,
    blst_p2s_to_affine,
    blst_p2s_mult_pippenger,
    blst_p2s_mult_pippenger_scratch_sizeof
);

/// A group that carries signatures; its public keys live in the other group.
pub trait SigGroup: Point {
    type Key: Point;
    /// Checks `e(sig, g) == e(H(msg), pk)` with the hash-to-curve tag `dst`.
    fn verify(pk: &Self::Key, msg: &[u8], dst: &[u8], sig: &Self) -> bool;
    /// [`Self::verify`] with the message already hashed to the curve ([`Point::hash_to`]), so
    /// that a message signed and verified (or verified many times) is hashed once: one two-pair
    /// Miller loop and one final exponentiation. `sig` is checked here to be in the subgroup and
    /// not the identity (so it may come from [`Point::from_bytes_on_curve`]).
    fn verify_hashed(pk: &Self::Key, hashed: &Self, sig: &Self) -> bool;
}

impl SigGroup for G2 {
    type Key = G1;
    fn verify_hashed(pk: &G1, hashed: &G2, sig: &G2) -> bool {
        if pk.is_identity() || sig.is_identity() || !sig.in_subgroup() {
            return false;
        }
        // e(sig, g) · e(H, −pk) == 1.
        let mut neg = pk.0;
        let (mut pka, mut ha, mut siga) =
            (blst_p1_affine::default(), blst_p2_affine::default(), blst_p2_affine::default());
        let (mut ml, mut fe) = (blst_fp12::default(), blst_fp12::default());
        // SAFETY: valid pointers; the generator is a static of blst; two pairs are read.
        unsafe {
            blst_p1_cneg(&mut neg, true);
            blst_p1_to_affine(&mut pka, &neg);
            blst_p2_to_affine(&mut ha, &hashed.0);
            blst_p2_to_affine(&mut siga, &sig.0);
            let qs: [*const blst_p2_affine; 2] = [&siga, &ha];
            let ps: [*const blst_p1_affine; 2] = [blst_p1_affine_generator(), &pka];
            blst_miller_loop_n(&mut ml, qs.as_ptr(), ps.as_ptr(), 2);
            blst_final_exp(&mut fe, &ml);
            blst_fp12_is_one(&fe)
        }
    }
    fn verify(pk: &G1, msg: &[u8], dst: &[u8], sig: &G2) -> bool {
        if pk.is_identity() || sig.is_identity() {
            return false;
        }
        let (mut pka, mut siga) = (blst_p1_affine::default(), blst_p2_affine::default());
        // SAFETY: valid pointers; slices valid for their lengths.
        unsafe {
            blst_p1_to_affine(&mut pka, &pk.0);
            blst_p2_to_affine(&mut siga, &sig.0);
            blst_core_verify_pk_in_g1(
                &pka,
                &siga,
                true,
                msg.as_ptr(),
                msg.len(),
                dst.as_ptr(),
                dst.len(),
                std::ptr::null(),
                0,
            ) == BLST_ERROR::BLST_SUCCESS
        }
    }
}

impl SigGroup for G1 {
    type Key = G2;
    fn verify_hashed(pk: &G2, hashed: &G1, sig: &G1) -> bool {
        if pk.is_identity() || sig.is_identity() || !sig.in_subgroup() {
            return false;
        }
        // e(g, sig) · e(−pk, H) == 1.
        let mut neg = pk.0;
        let (mut pka, mut ha, mut siga) =
            (blst_p2_affine::default(), blst_p1_affine::default(), blst_p1_affine::default());
        let (mut ml, mut fe) = (blst_fp12::default(), blst_fp12::default());
        // SAFETY: valid pointers; the generator is a static of blst; two pairs are read.
        unsafe {
            blst_p2_cneg(&mut neg, true);
            blst_p2_to_affine(&mut pka, &neg);
            blst_p1_to_affine(&mut ha, &hashed.0);
            blst_p1_to_affine(&mut siga, &sig.0);
            let qs: [*const blst_p2_affine; 2] = [blst_p2_affine_generator(), &pka];
            let ps: [*const blst_p1_affine; 2] = [&siga, &ha];
            blst_miller_loop_n(&mut ml, qs.as_ptr(), ps.as_ptr(), 2);
            blst_final_exp(&mut fe, &ml);
            blst_fp12_is_one(&fe)
        }
    }
    fn verify(pk: &G2, msg: &[u8], dst: &[u8], sig: &G1) -> bool {
        if pk.is_identity() || sig.is_identity() {
            return false;
        }
        let (mut pka, mut siga) = (blst_p2_affine::default(), blst_p1_affine::default());
        // SAFETY: valid pointers; slices valid for their lengths.
        unsafe {
            blst_p2_to_affine(&mut pka, &pk.0);
            blst_p1_to_affine(&mut siga, &sig.0);
            blst_core_verify_pk_in_g2(
                &pka,
                &siga,
                true,
                msg.as_ptr(),
                msg.len(),
                dst.as_ptr(),
                dst.len(),
                std::ptr::null(),
                0,
            ) == BLST_ERROR::BLST_SUCCESS
        }
    }
}

/// The evaluation point of share index `i`: `x = i + 1`.
fn x_of(index: u32) -> Result<u64, ThresholdError> {
    if index >= MAX_INDEX {
        return Err(ThresholdError::IndexRange(index));
    }
    Ok(u64::from(index) + 1)
}

/// A secret polynomial `f(x) = a₀ + a₁x + … + a_{t−1}x^{t−1}`; `a₀` is the dealer's secret.
/// Coefficients are wiped on drop; Debug shows only the degree.
#[derive(Clone)]
pub struct PriPoly {
    coeffs: Vec<Scalar>,
}

impl fmt::Debug for PriPoly {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PriPoly(t={})", self.coeffs.len())
    }
}

impl Drop for PriPoly {
    fn drop(&mut self) {
        for c in &mut self.coeffs {
            c.wipe();
        }
    }
}

impl PriPoly {
    /// A random polynomial with `t` coefficients whose constant term is `secret`: a resharing
    /// dealer's polynomial (`secret` = its current share of the group secret).
    pub fn with_secret<R: rand::RngCore + rand::CryptoRng>(secret: Scalar, t: usize, rng: &mut R) -> Self {
        let mut coeffs: Vec<Scalar> = (0..t.max(1)).map(|_| Scalar::random(rng)).collect();
        coeffs[0] = secret;
        Self { coeffs }
    }
    /// A random polynomial with `t` coefficients (any `t` shares recover the secret).
    pub fn random<R: rand::RngCore + rand::CryptoRng>(t: usize, rng: &mut R) -> Self {
        Self { coeffs: (0..t.max(1)).map(|_| Scalar::random(rng)).collect() }
    }
    pub fn threshold(&self) -> usize {
        self.coeffs.len()
    }
    pub fn secret(&self) -> Scalar {
        self.coeffs[0]
    }
    /// `f(x)` by Horner's rule.
    pub fn eval_at(&self, x: &Scalar) -> Scalar {
        let mut acc = Scalar::zero();
        for c in self.coeffs.iter().rev() {
            acc = acc.mul(x).add(c);
        }
        acc
    }
    /// The share of index `i`: `f(i + 1)`.
    pub fn share(&self, index: u32) -> Result<Scalar, ThresholdError> {
        Ok(self.eval_at(&Scalar::from_u64(x_of(index)?)))
    }
    /// Feldman commitments `aⱼ·G` in the group `P`.
    pub fn commit<P: Point>(&self) -> PubPoly<P> {
        let g = P::generator();
        PubPoly { commits: self.coeffs.iter().map(|c| g.mul(c)).collect() }
    }
}

/// Public commitments `Cⱼ = aⱼ·G` of a polynomial; `C₀` is the public key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PubPoly<P: Point> {
    commits: Vec<P>,
}

impl<P: Point> PubPoly<P> {
    pub fn new(commits: Vec<P>) -> Result<Self, ThresholdError> {
        if commits.is_empty() {
            return Err(ThresholdError::EmptyPolynomial);
        }
        Ok(Self { commits })
    }
    /// Decodes compressed commitments (each checked).
    pub fn from_bytes(items: &[Vec<u8>]) -> Result<Self, ThresholdError> {
        Self::new(items.iter().map(|b| P::from_bytes(b)).collect::<Result<_, _>>()?)
    }
    pub fn to_bytes(&self) -> Vec<Vec<u8>> {
        self.commits.iter().map(|c| c.to_bytes()).collect()
    }
    pub fn commits(&self) -> &[P] {
        &self.commits
    }
    pub fn threshold(&self) -> usize {
        self.commits.len()
    }
    pub fn public_key(&self) -> P {
        self.commits[0]
    }
    /// `Σ Cⱼ·xʲ` by Horner's rule.
    pub fn eval_at(&self, x: u64) -> P {
        let mut acc = P::identity();
        for c in self.commits.iter().rev() {
            acc = acc.mul_u64(x).add(c);
        }
        acc
    }
    /// The public share of index `i` (`f(i + 1)·G`).
    pub fn public_share(&self, index: u32) -> Result<P, ThresholdError> {
        Ok(self.eval_at(x_of(index)?))
    }
    /// Whether `share` is the evaluation of the committed polynomial at index `i`.
    pub fn verify_share(&self, index: u32, share: &Scalar) -> bool {
        match self.public_share(index) {
            Ok(p) => P::generator().mul(share) == p,
            Err(_) => false,
        }
    }
    /// Coefficient-wise sum (the joint polynomial of several dealers).
    pub fn add(&self, other: &Self) -> Result<Self, ThresholdError> {
        if self.commits.len() != other.commits.len() {
            return Err(ThresholdError::DegreeMismatch(self.commits.len(), other.commits.len()));
        }
        Ok(Self { commits: self.commits.iter().zip(&other.commits).map(|(a, b)| a.add(b)).collect() })
    }
}

/// Lagrange coefficients at 0 for the given share indices (evaluation points `i + 1`).
pub fn lagrange_coefficients(indices: &[u32]) -> Result<Vec<Scalar>, ThresholdError> {
    let mut seen = std::collections::HashSet::new();
    let xs: Vec<Scalar> = indices
        .iter()
        .map(|&i| {
            if !seen.insert(i) {
                return Err(ThresholdError::DuplicateIndex(i));
            }
            Ok(Scalar::from_u64(x_of(i)?))
        })
        .collect::<Result<_, _>>()?;
    // λᵢ = Πⱼ≠ᵢ xⱼ / Πⱼ≠ᵢ (xⱼ − xᵢ). The denominators are inverted together (Montgomery's
    // trick: one inversion and 3(t−1) multiplications instead of t inversions).
    let mut nums = Vec::with_capacity(xs.len());
    let mut dens = Vec::with_capacity(xs.len());
    for (i, xi) in xs.iter().enumerate() {
        let (mut num, mut den) = (Scalar::one(), Scalar::one());
        for (j, xj) in xs.iter().enumerate() {
            if i != j {
                num = num.mul(xj);
                den = den.mul(&xj.sub(xi));
            }
        }
        nums.push(num);
        dens.push(den);
    }
    // Distinct indices give non-zero denominators, hence a non-zero product.
    let invs = batch_inverse(&dens).ok_or(ThresholdError::DuplicateIndex(indices.first().copied().unwrap_or(0)))?;
    Ok(nums.iter().zip(&invs).map(|(n, i)| n.mul(i)).collect())
}

/// The inverses of all `values` with one field inversion (Montgomery's trick); `None` if one is
/// zero.
pub fn batch_inverse(values: &[Scalar]) -> Option<Vec<Scalar>> {
    // prefix[i] = v₀·…·vᵢ₋₁
    let mut prefix = Vec::with_capacity(values.len());
    let mut acc = Scalar::one();
    for v in values {
        if v.is_zero() {
            return None;
        }
        prefix.push(acc);
        acc = acc.mul(v);
    }
    let mut inv = acc.inverse()?;
    let mut out = vec![Scalar::zero(); values.len()];
    for i in (0..values.len()).rev() {
        out[i] = inv.mul(&prefix[i]);
        inv = inv.mul(&values[i]);
    }
    Some(out)
}

/// Interpolates `f(0)·G` from points `(index, f(index + 1)·G)` with their Lagrange
/// coefficients already computed (e.g. cached for a set of indices that recurs):
/// `Σ lambdas[i]·points[i]`, one multi-scalar multiplication.
pub fn recover_point_with<P: Point>(points: &[P], lambdas: &[Scalar]) -> Result<P, ThresholdError> {
    if points.is_empty() || points.len() != lambdas.len() {
        return Err(ThresholdError::NotEnough { need: lambdas.len().max(1), got: points.len() });
    }
    Ok(P::multi_mul(points, lambdas))
}

/// Interpolates `f(0)·G` from `t` points `(index, f(index + 1)·G)`; uses the first `t` given.
pub fn recover_point<P: Point>(points: &[(u32, P)], t: usize) -> Result<P, ThresholdError> {
    if t == 0 || points.len() < t {
        return Err(ThresholdError::NotEnough { need: t.max(1), got: points.len() });
    }
    let chosen = &points[..t];
    let idx: Vec<u32> = chosen.iter().map(|(i, _)| *i).collect();
    let lambdas = lagrange_coefficients(&idx)?;
    let pts: Vec<P> = chosen.iter().map(|(_, p)| *p).collect();
    Ok(P::multi_mul(&pts, &lambdas))
}

/// Interpolates the secret `f(0)` from `t` shares (tests and resharing).
pub fn recover_secret(shares: &[(u32, Scalar)], t: usize) -> Result<Scalar, ThresholdError> {
    if t == 0 || shares.len() < t {
        return Err(ThresholdError::NotEnough { need: t.max(1), got: shares.len() });
    }
    let chosen = &shares[..t];
    let idx: Vec<u32> = chosen.iter().map(|(i, _)| *i).collect();
    let lambdas = lagrange_coefficients(&idx)?;
    let mut acc = Scalar::zero();
    for ((_, s), l) in chosen.iter().zip(&lambdas) {
        acc = acc.add(&s.mul(l));
    }
    Ok(acc)
}

/// A partial signature: `H(msg)·share` in the signature group.
pub fn sign_partial<S: SigGroup>(share: &Scalar, msg: &[u8], dst: &[u8]) -> S {
    S::hash_to(msg, dst).mul(share)
}

/// Checks a partial signature of share index `i` against the group's public polynomial.
pub fn verify_partial<S: SigGroup>(poly: &PubPoly<S::Key>, index: u32, msg: &[u8], dst: &[u8], partial: &S) -> bool {
    match poly.public_share(index) {
        Ok(pk) => S::verify(&pk, msg, dst, partial),
        Err(_) => false,
    }
}

/// Recovers the group signature from `t` partials (already verified) and checks it against the
/// group key; `BadRecovery` if it does not verify (an unverified bad partial was included).
pub fn recover_signature<S: SigGroup>(
    poly: &PubPoly<S::Key>,
    partials: &[(u32, S)],
    msg: &[u8],
    dst: &[u8],
) -> Result<S, ThresholdError> {
    let sig = recover_point(partials, poly.threshold())?;
    if !S::verify(&poly.public_key(), msg, dst, &sig) {
        return Err(ThresholdError::BadRecovery);
    }
    Ok(sig)
}

// ---------------------------------------------------------------------------------------------
// Resharing (drand's / Desmedt–Jajodia): the old group hands its secret to a new group (other
// members, other threshold) without ever reconstructing it. Old member i (share sᵢ, public share
// Sᵢ = sᵢ·G) deals a random polynomial fᵢ of the new degree with fᵢ(0) = sᵢ, committed as Cᵢ (so
// Cᵢ₀ must equal Sᵢ, which anyone checks against the old public polynomial), and sends fᵢ(j+1) to
// new member j. From any old-threshold set Q of valid dealers, new member j's share is
// s'ⱼ = Σ_{i∈Q} λᵢ·fᵢ(j+1) and the new public polynomial is C' = Σ_{i∈Q} λᵢ·Cᵢ, with λ the Lagrange
// coefficients of Q at 0: C'₀ = Σ λᵢ·Sᵢ = the old group key. Old shares are useless against C'.
// ---------------------------------------------------------------------------------------------

/// Checks a re-share dealt by old member `dealer` to new member `new_index`: its commitments open
/// at 0 to the dealer's old public share, and `share` is their evaluation at `new_index`.
pub fn check_reshare<P: Point>(
    old: &PubPoly<P>,
    dealer: u32,
    commits: &PubPoly<P>,
    new_index: u32,
    share: &Scalar,
) -> Result<(), ThresholdError> {
    if commits.public_key() != old.public_share(dealer)? {
        return Err(ThresholdError::BadReshare { dealer, reason: "its constant term is not its old public share" });
    }
    if !commits.verify_share(new_index, share) {
        return Err(ThresholdError::BadReshare { dealer, reason: "the share does not match its commitments" });
    }
    Ok(())
}

/// The new group's public polynomial from the commitments of old-threshold dealers (the first
/// `old.threshold()` given are used); fails unless it keeps the group public key.
pub fn reshared_public<P: Point>(old: &PubPoly<P>, deals: &[(u32, PubPoly<P>)]) -> Result<PubPoly<P>, ThresholdError> {
    let t = old.threshold();
    if deals.len() < t {
        return Err(ThresholdError::NotEnough { need: t, got: deals.len() });
    }
    let chosen = &deals[..t];
    let lambdas = lagrange_coefficients(&chosen.iter().map(|(i, _)| *i).collect::<Vec<_>>())?;
    let degree = chosen[0].1.threshold();
    let mut commits = vec![P::identity(); degree];
    for ((dealer, c), l) in chosen.iter().zip(&lambdas) {
        if c.threshold() != degree {
            return Err(ThresholdError::DegreeMismatch(degree, c.threshold()));
        }
        if c.public_key() != old.public_share(*dealer)? {
            return Err(ThresholdError::BadReshare {
                dealer: *dealer,
                reason: "its constant term is not its old public share",
            });
        }
        for (acc, cj) in commits.iter_mut().zip(c.commits()) {
            *acc = acc.add(&cj.mul(l));
        }
    }
    let new = PubPoly::new(commits)?;
    if new.public_key() != old.public_key() {
        return Err(ThresholdError::KeyChanged);
    }
    Ok(new)
}

/// New member `new_index`'s share from the re-shares of old-threshold dealers
/// `(dealer, commitments, share)` (each checked; the first `old.threshold()` are used), with the
/// new public polynomial, which keeps the group key.
pub fn combine_reshares<P: Point>(
    old: &PubPoly<P>,
    new_index: u32,
    deals: &[(u32, PubPoly<P>, Scalar)],
) -> Result<(Scalar, PubPoly<P>), ThresholdError> {
    let t = old.threshold();
    if deals.len() < t {
        return Err(ThresholdError::NotEnough { need: t, got: deals.len() });
    }
    let chosen = &deals[..t];
    for (dealer, c, s) in chosen {
        check_reshare(old, *dealer, c, new_index, s)?;
    }
    let public = reshared_public(old, &chosen.iter().map(|(i, c, _)| (*i, c.clone())).collect::<Vec<_>>())?;
    let lambdas = lagrange_coefficients(&chosen.iter().map(|(i, _, _)| *i).collect::<Vec<_>>())?;
    let mut share = Scalar::zero();
    for ((_, _, s), l) in chosen.iter().zip(&lambdas) {
        share = share.add(&s.mul(l));
    }
    Ok((share, public))
}

/// Which group holds a scheme's public keys (the other one holds its signatures).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KeyGroup {
    G1,
    G2,
}

impl KeyGroup {
    pub fn point_len(self) -> usize {
        match self {
            KeyGroup::G1 => G1::COMPRESSED_LEN,
            KeyGroup::G2 => G2::COMPRESSED_LEN,
        }
    }
}

/// A public polynomial in either group, chosen at run time (the DKG runs for both schemes).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AnyPubPoly {
    G1(PubPoly<G1>),
    G2(PubPoly<G2>),
}

impl AnyPubPoly {
    pub fn from_bytes(group: KeyGroup, items: &[Vec<u8>]) -> Result<Self, ThresholdError> {
        Ok(match group {
            KeyGroup::G1 => AnyPubPoly::G1(PubPoly::from_bytes(items)?),
            KeyGroup::G2 => AnyPubPoly::G2(PubPoly::from_bytes(items)?),
        })
    }
    pub fn commit(poly: &PriPoly, group: KeyGroup) -> Self {
        match group {
            KeyGroup::G1 => AnyPubPoly::G1(poly.commit()),
            KeyGroup::G2 => AnyPubPoly::G2(poly.commit()),
        }
    }
    pub fn group(&self) -> KeyGroup {
        match self {
            AnyPubPoly::G1(_) => KeyGroup::G1,
            AnyPubPoly::G2(_) => KeyGroup::G2,
        }
    }
    pub fn to_bytes(&self) -> Vec<Vec<u8>> {
        match self {
            AnyPubPoly::G1(p) => p.to_bytes(),
            AnyPubPoly::G2(p) => p.to_bytes(),
        }
    }
    pub fn threshold(&self) -> usize {
        match self {
            AnyPubPoly::G1(p) => p.threshold(),
            AnyPubPoly::G2(p) => p.threshold(),
        }
    }
    /// The compressed group public key `C₀`.
    pub fn public_key_bytes(&self) -> Vec<u8> {
        match self {
            AnyPubPoly::G1(p) => p.public_key().to_bytes(),
            AnyPubPoly::G2(p) => p.public_key().to_bytes(),
        }
    }
    pub fn verify_share(&self, index: u32, share: &Scalar) -> bool {
        match self {
            AnyPubPoly::G1(p) => p.verify_share(index, share),
            AnyPubPoly::G2(p) => p.verify_share(index, share),
        }
    }
    pub fn public_share_bytes(&self, index: u32) -> Result<Vec<u8>, ThresholdError> {
        Ok(match self {
            AnyPubPoly::G1(p) => p.public_share(index)?.to_bytes(),
            AnyPubPoly::G2(p) => p.public_share(index)?.to_bytes(),
        })
    }
    pub fn add(&self, other: &Self) -> Result<Self, ThresholdError> {
        match (self, other) {
            (AnyPubPoly::G1(a), AnyPubPoly::G1(b)) => Ok(AnyPubPoly::G1(a.add(b)?)),
            (AnyPubPoly::G2(a), AnyPubPoly::G2(b)) => Ok(AnyPubPoly::G2(a.add(b)?)),
            _ => Err(ThresholdError::Point("polynomials in different groups")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::OsRng;

    const DST_G2: &[u8] = b"BLS_SIG_BLS12381G2_XMD:SHA-256_SSWU_RO_NUL_";
    const DST_G1: &[u8] = b"BLS_SIG_BLS12381G1_XMD:SHA-256_SSWU_RO_NUL_";

    /// `verify_hashed` gives `verify`'s verdict: on a good signature, another message, another
    /// key, the identity, and a point on the curve outside the subgroup.
    fn hashed_verification_is_verify<S: SigGroup>(dst: &[u8]) {
        let sk = Scalar::random(&mut OsRng);
        let pk = <S::Key as Point>::generator().mul(&sk);
        let other_pk = <S::Key as Point>::generator().mul(&Scalar::random(&mut OsRng));
        let (msg, other) = (b"round 7".as_slice(), b"round 8".as_slice());
        let h = S::hash_to(msg, dst);
        let sig: S = sign_partial(&sk, msg, dst);
        let wrong: S = sign_partial(&sk, other, dst);
        for (key, s, want) in [(&pk, &sig, true), (&pk, &wrong, false), (&other_pk, &sig, false)] {
            assert_eq!(S::verify(key, msg, dst, s), want);
            assert_eq!(S::verify_hashed(key, &h, s), want);
        }
        assert!(!S::verify_hashed(&pk, &h, &S::identity()));
        assert!(!S::verify_hashed(&<S::Key as Point>::identity(), &h, &sig));
        // A point on the curve outside the subgroup never verifies.
        let outside = (0u8..=255)
            .find_map(|b| {
                let mut bytes = vec![b; S::COMPRESSED_LEN];
                bytes[0] = 0x80 | (b & 0x1f);
                S::from_bytes_on_curve(&bytes).ok().filter(|p| !p.in_subgroup())
            })
            .expect("a point outside the subgroup");
        assert!(!S::verify_hashed(&pk, &h, &outside));
    }

    #[test]
    fn verification_with_the_message_hashed_beforehand_is_the_same() {
        hashed_verification_is_verify::<G2>(DST_G2);
        hashed_verification_is_verify::<G1>(DST_G1);
    }

    #[test]
    fn scalar_roundtrip_and_field_ops() {
        let a = Scalar::random(&mut OsRng);
        let b = Scalar::from_bytes(&a.to_bytes()).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.mul(&a.inverse().unwrap()), Scalar::one());
        assert_eq!(a.add(&Scalar::one()).sub(&Scalar::one()), a);
        assert_eq!(Scalar::from_bytes(&[0u8; 32]).unwrap(), Scalar::zero());
        assert!(Scalar::zero().inverse().is_none());
        // r itself and 2^256-1 are not canonical
        let r = hex::decode("73eda753299d7d483339d80809a1d80553bda402fffe5bfeffffffff00000001").unwrap();
        assert_eq!(Scalar::from_bytes(&r), Err(ThresholdError::Scalar));
        assert_eq!(Scalar::from_bytes(&[0xff; 32]), Err(ThresholdError::Scalar));
        assert!(Scalar::from_bytes(&[1; 31]).is_err());
        assert_eq!(format!("{a:?}"), "Scalar(..)");
    }

    #[test]
    fn batch_inversion_and_lagrange_coefficients_equal_the_one_by_one_ones() {
        let vals: Vec<Scalar> = (0..9).map(|_| Scalar::random(&mut OsRng)).collect();
        let invs = batch_inverse(&vals).unwrap();
        for (v, i) in vals.iter().zip(&invs) {
            assert_eq!(Some(*i), v.inverse());
        }
        assert!(batch_inverse(&[Scalar::one(), Scalar::zero()]).is_none());
        assert_eq!(batch_inverse(&[]), Some(vec![]));
        // The coefficients, against the one-inversion-each formula.
        let idx = [0u32, 3, 4, 9, 17];
        let xs: Vec<Scalar> = idx.iter().map(|&i| Scalar::from_u64(u64::from(i) + 1)).collect();
        let fast = lagrange_coefficients(&idx).unwrap();
        for (i, xi) in xs.iter().enumerate() {
            let (mut num, mut den) = (Scalar::one(), Scalar::one());
            for (j, xj) in xs.iter().enumerate() {
                if i != j {
                    num = num.mul(xj);
                    den = den.mul(&xj.sub(xi));
                }
            }
            assert_eq!(fast[i], num.mul(&den.inverse().unwrap()));
        }
        assert_eq!(lagrange_coefficients(&[2, 5, 2]), Err(ThresholdError::DuplicateIndex(2)));
        // Recovery with given coefficients is the same as recover_point.
        let poly = PriPoly::random(5, &mut OsRng);
        let pts: Vec<(u32, G1)> = idx.iter().map(|&i| (i, G1::generator().mul(&poly.share(i).unwrap()))).collect();
        let only: Vec<G1> = pts.iter().map(|(_, p)| *p).collect();
        assert_eq!(recover_point_with(&only, &fast).unwrap(), recover_point(&pts, 5).unwrap());
        assert_eq!(recover_point_with(&only, &fast).unwrap(), G1::generator().mul(&poly.secret()));
        assert!(recover_point_with(&only[..4], &fast).is_err());
    }

    #[test]
    fn multi_mul_u64_equals_the_sum_of_small_products() {
        let g1: Vec<G1> = (0..7).map(|_| G1::generator().mul(&Scalar::random(&mut OsRng))).collect();
        let g2: Vec<G2> = (0..7).map(|_| G2::generator().mul(&Scalar::random(&mut OsRng))).collect();
        let w: Vec<u64> = (0..7).map(|_| rand::random::<u64>() | 1).collect();
        let sum1 = g1.iter().zip(&w).fold(G1::identity(), |a, (p, v)| a.add(&p.mul_u64(*v)));
        let sum2 = g2.iter().zip(&w).fold(G2::identity(), |a, (p, v)| a.add(&p.mul_u64(*v)));
        assert_eq!(G1::multi_mul_u64(&g1, &w), sum1);
        assert_eq!(G2::multi_mul_u64(&g2, &w), sum2);
        assert_eq!(G1::multi_mul_u64(&g1[..1], &w), g1[0].mul_u64(w[0]));
        assert!(G2::multi_mul_u64(&[], &w).is_identity());
        // u64::MAX uses all 64 bits.
        assert_eq!(G1::multi_mul_u64(&g1[..2], &[u64::MAX, 1]), g1[0].mul_u64(u64::MAX).add(&g1[1]));
    }

    #[test]
    fn multi_mul_equals_the_sum_of_products() {
        fn check<P: Point>() {
            for n in [0usize, 1, 2, 17, 33] {
                let pts: Vec<P> = (0..n).map(|_| P::generator().mul(&Scalar::random(&mut OsRng))).collect();
                let scs: Vec<Scalar> = (0..n).map(|_| Scalar::random(&mut OsRng)).collect();
                let naive = pts.iter().zip(&scs).fold(P::identity(), |acc, (p, s)| acc.add(&p.mul(s)));
                assert_eq!(P::multi_mul(&pts, &scs), naive, "{} n={n}", P::NAME);
            }
            // Equal points (doubling inside the buckets) and a zero scalar.
            let p = P::generator();
            let two = Scalar::from_u64(2);
            assert_eq!(P::multi_mul(&[p, p, p], &[two, two, Scalar::zero()]), p.mul(&Scalar::from_u64(4)));
        }
        check::<G1>();
        check::<G2>();
    }

    #[test]
    fn points_decode_strictly() {
        let p = G1::generator().mul(&Scalar::random(&mut OsRng));
        assert_eq!(G1::from_bytes(&p.to_bytes()).unwrap(), p);
        let q = G2::generator().mul(&Scalar::random(&mut OsRng));
        assert_eq!(G2::from_bytes(&q.to_bytes()).unwrap(), q);
        assert!(G1::from_bytes(&G1::identity().to_bytes()).is_err());
        assert!(G1::from_bytes(&[0u8; 48]).is_err());
        assert!(G2::from_bytes(&[0xaa; 96]).is_err());
        assert!(G1::from_bytes(&[1, 2, 3]).is_err());
        for _ in 0..200 {
            let mut g = [0u8; 48];
            rand::RngCore::fill_bytes(&mut OsRng, &mut g);
            let _ = G1::from_bytes(&g);
        }
        assert_eq!(G1::generator().mul_u64(5), G1::generator().mul(&Scalar::from_u64(5)));
        // A random point of the curve is (almost surely) outside the prime-order subgroup: decodable
        // without the subgroup check, refused with it.
        let off_subgroup = (0..1000)
            .find_map(|_| {
                let mut g = [0u8; 48];
                rand::RngCore::fill_bytes(&mut OsRng, &mut g);
                g[0] = 0x80 | (g[0] & 0x1f); // compressed, not infinity
                G1::from_bytes_on_curve(&g).ok().map(|p| (g, p))
            })
            .expect("some random x is on the curve");
        assert!(!off_subgroup.1.in_subgroup());
        assert!(G1::from_bytes(&off_subgroup.0).is_err());
        assert!(G1::from_bytes_on_curve(&p.to_bytes()).unwrap().in_subgroup());
    }

    #[test]
    fn shares_verify_and_secret_recovers() {
        let poly = PriPoly::random(3, &mut OsRng);
        let pubp: PubPoly<G1> = poly.commit();
        let shares: Vec<(u32, Scalar)> = (0..5).map(|i| (i, poly.share(i).unwrap())).collect();
        for (i, s) in &shares {
            assert!(pubp.verify_share(*i, s));
            assert!(!pubp.verify_share(*i + 1, s));
        }
        let subset = [shares[4], shares[1], shares[2]];
        assert_eq!(recover_secret(&subset, 3).unwrap(), poly.secret());
        assert_ne!(recover_secret(&shares[..2], 2).unwrap(), poly.secret());
        assert!(matches!(recover_secret(&shares[..2], 3), Err(ThresholdError::NotEnough { .. })));
        assert_eq!(recover_secret(&[shares[0], shares[0], shares[1]], 3), Err(ThresholdError::DuplicateIndex(0)));
        // joint polynomial: sums of shares verify against sums of commitments
        let poly2 = PriPoly::random(3, &mut OsRng);
        let joint = pubp.add(&poly2.commit()).unwrap();
        let s = poly.share(2).unwrap().add(&poly2.share(2).unwrap());
        assert!(joint.verify_share(2, &s));
    }

    fn threshold_sign_roundtrip<S: SigGroup>(dst: &[u8]) {
        let (n, t) = (7u32, 4usize);
        let poly = PriPoly::random(t, &mut OsRng);
        let pubp: PubPoly<S::Key> = poly.commit();
        let msg = b"round 42";
        let partials: Vec<(u32, S)> =
            (0..n).map(|i| (i, sign_partial::<S>(&poly.share(i).unwrap(), msg, dst))).collect();
        for (i, p) in &partials {
            assert!(verify_partial(&pubp, *i, msg, dst, p));
            assert!(!verify_partial(&pubp, (*i + 1) % n, msg, dst, p));
            assert!(!verify_partial(&pubp, *i, b"other", dst, p));
        }
        let subset = vec![partials[6], partials[0], partials[3], partials[5]];
        let sig = recover_signature(&pubp, &subset, msg, dst).unwrap();
        // Same as signing with the secret directly, whichever subset is used.
        assert_eq!(sig, sign_partial::<S>(&poly.secret(), msg, dst));
        assert_eq!(recover_signature(&pubp, &partials[1..5], msg, dst).unwrap(), sig);
        // A bad partial makes recovery fail verification.
        let mut bad = subset.clone();
        bad[1].1 = sign_partial::<S>(&Scalar::random(&mut OsRng), msg, dst);
        assert_eq!(recover_signature(&pubp, &bad, msg, dst), Err(ThresholdError::BadRecovery));
        assert!(matches!(recover_signature(&pubp, &subset[..3], msg, dst), Err(ThresholdError::NotEnough { .. })));
    }

    /// One resharing from `old_shares` (index, share) of `old` to `n` members with threshold `t`;
    /// the dealers are the first old-threshold holders given.
    fn reshare<P: Point>(
        old: &PubPoly<P>,
        old_shares: &[(u32, Scalar)],
        n: u32,
        t: usize,
    ) -> (PubPoly<P>, Vec<(u32, Scalar)>) {
        let dealers: Vec<(u32, PriPoly)> =
            old_shares.iter().map(|(i, s)| (*i, PriPoly::with_secret(*s, t, &mut OsRng))).collect();
        let mut public = None;
        let mut shares = vec![];
        for j in 0..n {
            let deals: Vec<(u32, PubPoly<P>, Scalar)> =
                dealers.iter().map(|(i, f)| (*i, f.commit(), f.share(j).unwrap())).collect();
            let (s, p) = combine_reshares(old, j, &deals).unwrap();
            assert!(p.verify_share(j, &s));
            assert_eq!(p.threshold(), t);
            if let Some(prev) = &public {
                assert_eq!(prev, &p, "new members disagree on the public polynomial");
            }
            public = Some(p);
            shares.push((j, s));
        }
        (public.unwrap(), shares)
    }

    #[test]
    fn resharing_4_to_5_to_3_keeps_the_key_and_retires_old_shares() {
        let msg = b"round 7";
        let poly = PriPoly::random(3, &mut OsRng);
        let p4: PubPoly<G1> = poly.commit();
        let s4: Vec<(u32, Scalar)> = (0..4).map(|i| (i, poly.share(i).unwrap())).collect();
        // 4 → 5 (threshold 3 → 3), dealt by old members 3, 1, 0 (any three).
        let (p5, s5) = reshare(&p4, &[s4[3], s4[1], s4[0]], 5, 3);
        assert_eq!(p5.public_key(), p4.public_key());
        assert_ne!(p5, p4);
        // 5 → 3 (threshold 3 → 2), dealt by new members 4, 2, 0.
        let (p3, s3) = reshare(&p5, &[s5[4], s5[2], s5[0]], 3, 2);
        assert_eq!(p3.public_key(), p4.public_key());
        // Every group signs with the same key: the recovered signatures are identical.
        let sig = |p: &PubPoly<G1>, shares: &[(u32, Scalar)]| {
            let partials: Vec<(u32, G2)> =
                shares.iter().map(|(i, s)| (*i, sign_partial::<G2>(s, msg, DST_G2))).collect();
            for (i, part) in &partials {
                assert!(verify_partial(p, *i, msg, DST_G2, part));
            }
            recover_signature(p, &partials[..p.threshold()], msg, DST_G2).unwrap()
        };
        let direct = sign_partial::<G2>(&poly.secret(), msg, DST_G2);
        assert_eq!(sig(&p4, &s4), direct);
        assert_eq!(sig(&p5, &s5), direct);
        assert_eq!(sig(&p3, &s3[1..]), direct);
        // An old share no longer counts: its partial fails against the new polynomial and spoils
        // a recovery it is mixed into.
        let old = sign_partial::<G2>(&s5[4].1, msg, DST_G2);
        assert!(!verify_partial(&p3, 1, msg, DST_G2, &old));
        let mixed = vec![(0, sign_partial::<G2>(&s3[0].1, msg, DST_G2)), (1, old)];
        assert_eq!(recover_signature(&p3, &mixed, msg, DST_G2), Err(ThresholdError::BadRecovery));
    }

    #[test]
    fn resharing_refuses_bad_dealers() {
        let poly = PriPoly::random(2, &mut OsRng);
        let old: PubPoly<G1> = poly.commit();
        let share = |i| poly.share(i).unwrap();
        // A dealer that re-shares a made-up secret instead of its share.
        let liar = PriPoly::random(3, &mut OsRng);
        let honest = PriPoly::with_secret(share(1), 3, &mut OsRng);
        assert_eq!(
            check_reshare(&old, 0, &liar.commit(), 2, &liar.share(2).unwrap()),
            Err(ThresholdError::BadReshare { dealer: 0, reason: "its constant term is not its old public share" })
        );
        // A share that does not match the commitments.
        assert!(matches!(
            check_reshare(&old, 1, &honest.commit::<G1>(), 2, &honest.share(3).unwrap()),
            Err(ThresholdError::BadReshare { dealer: 1, .. })
        ));
        assert!(matches!(
            combine_reshares(&old, 0, &[(1, honest.commit::<G1>(), honest.share(0).unwrap())]),
            Err(ThresholdError::NotEnough { need: 2, got: 1 })
        ));
        let deals = vec![(0, liar.commit::<G1>()), (1, honest.commit::<G1>())];
        assert!(matches!(reshared_public(&old, &deals), Err(ThresholdError::BadReshare { dealer: 0, .. })));
    }

    #[test]
    fn threshold_bls_min_pk_and_min_sig() {
        threshold_sign_roundtrip::<G2>(DST_G2);
        threshold_sign_roundtrip::<G1>(DST_G1);
    }

    #[test]
    fn agrees_with_blst_high_level_api() {
        // A signature made with our low-level path verifies with blst's min_pk API.
        let sk_scalar = Scalar::random(&mut OsRng);
        let sk = blst::min_pk::SecretKey::from_bytes(&sk_scalar.to_bytes()).unwrap();
        let pk = G1::generator().mul(&sk_scalar);
        assert_eq!(pk.to_bytes(), sk.sk_to_pk().compress().to_vec());
        let sig: G2 = sign_partial(&sk_scalar, b"m", DST_G2);
        assert_eq!(sig.to_bytes(), sk.sign(b"m", DST_G2, &[]).compress().to_vec());
        let sk2 = blst::min_sig::SecretKey::from_bytes(&sk_scalar.to_bytes()).unwrap();
        let sig1: G1 = sign_partial(&sk_scalar, b"m", DST_G1);
        assert_eq!(sig1.to_bytes(), sk2.sign(b"m", DST_G1, &[]).compress().to_vec());
        assert!(G1::verify(&G2::generator().mul(&sk_scalar), b"m", DST_G1, &sig1));
    }

    #[test]
    fn any_poly_dispatch() {
        let poly = PriPoly::random(2, &mut OsRng);
        for g in [KeyGroup::G1, KeyGroup::G2] {
            let a = AnyPubPoly::commit(&poly, g);
            let bytes = a.to_bytes();
            assert!(bytes.iter().all(|b| b.len() == g.point_len()));
            let b = AnyPubPoly::from_bytes(g, &bytes).unwrap();
            assert_eq!(a, b);
            assert!(b.verify_share(3, &poly.share(3).unwrap()));
            assert!(
                AnyPubPoly::from_bytes(if g == KeyGroup::G1 { KeyGroup::G2 } else { KeyGroup::G1 }, &bytes).is_err()
            );
        }
        assert!(AnyPubPoly::from_bytes(KeyGroup::G1, &[]).is_err());
    }
}
