//! What a signing round returns: the collective signature with a report of who signed, refused,
//! timed out or sent an invalid partial, or an error that says why no signature could be made.

use crate::crypto::{BlsSignature, IdentityPublicKey};
use crate::verify::cosi::CosiVerifyError;
use std::fmt;

/// A roster member that is not part of the signature.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Exclusion {
    pub index: usize,
    pub public: IdentityPublicKey,
    pub reason: String,
}

/// Why a member is missing from the signature.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExclusionKind {
    /// Its verification hook (or its policy) refused the statement.
    Refused,
    /// No answer in time: down, unreachable or slow.
    TimedOut,
    /// Its partial signature (or its sub-leader aggregate) did not verify or did not decode.
    Invalid,
}

impl fmt::Display for ExclusionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ExclusionKind::Refused => "refused",
            ExclusionKind::TimedOut => "timed out",
            ExclusionKind::Invalid => "invalid partial",
        })
    }
}

/// Who took part in a round.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SignReport {
    /// Roster size.
    pub n: usize,
    /// Signers the policy required.
    pub required: usize,
    /// Roster indices in the mask.
    pub signed: Vec<usize>,
    pub refused: Vec<Exclusion>,
    pub timed_out: Vec<Exclusion>,
    pub invalid: Vec<Exclusion>,
    /// When the threshold was not reached: the aggregate of the partials that were gathered (and
    /// checked), so a caller can hold the signers to what they signed (equivocation evidence).
    pub partial: Option<PartialAggregate>,
}

/// A sub-threshold aggregate signature: compressed G2 point and LSB-first roster mask.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PartialAggregate {
    pub signature: Vec<u8>,
    pub mask: Vec<u8>,
}

impl SignReport {
    /// Every excluded member with the kind of exclusion, by roster index.
    pub fn missing(&self) -> Vec<(ExclusionKind, &Exclusion)> {
        let mut v: Vec<(ExclusionKind, &Exclusion)> = self
            .refused
            .iter()
            .map(|e| (ExclusionKind::Refused, e))
            .chain(self.timed_out.iter().map(|e| (ExclusionKind::TimedOut, e)))
            .chain(self.invalid.iter().map(|e| (ExclusionKind::Invalid, e)))
            .collect();
        v.sort_by_key(|(_, e)| e.index);
        v
    }
}

/// A collective signature that verified at the root and meets the policy.
#[derive(Clone, Debug)]
pub struct SignOutcome {
    pub signature: BlsSignature,
    /// Bit i = roster index i, LSB-first, ceil(n/8) bytes.
    pub mask: Vec<u8>,
    pub report: SignReport,
}

/// Why no collective signature was produced.
#[derive(Debug, thiserror::Error, Clone)]
pub enum CosiError {
    #[error("bad roster: {0}")]
    BadRoster(String),
    #[error("this node ({0}) is not in the roster; a round is run by one of its members")]
    NotInRoster(String),
    #[error("this node has no `Cosi` service key")]
    NoKey,
    #[error("the roster lists another `Cosi` key for this node (#{0})")]
    KeyMismatch(usize),
    #[error(transparent)]
    Policy(CosiVerifyError),
    #[error("bad request: {0}")]
    BadRequest(String),
    /// This node (the root) will not sign the statement.
    #[error("refused: {0}")]
    Refused(String),
    #[error("{}", threshold_message(*signed, *required, *n, missing))]
    ThresholdNotReached {
        signed: usize,
        required: usize,
        n: usize,
        /// Every member not in the signature, sorted by roster index.
        missing: Vec<(ExclusionKind, Exclusion)>,
        report: Box<SignReport>,
    },
    #[error("the final collective signature does not verify ({0}); this is a bug")]
    FinalVerify(String),
    #[error("the node is stopping")]
    Stopped,
    /// This node leads as many rounds as it can at once (see `admission`): the round waited
    /// `waited` for its turn (nothing, when `queued` units of work were waiting already).
    #[error(
        "busy: this node leads rounds worth {capacity} signatures at once and {queued} more wait; the round waited {waited:?} for its turn; try again in {retry_after:?}"
    )]
    Busy { capacity: usize, queued: usize, waited: std::time::Duration, retry_after: std::time::Duration },
}

/// Short enough that the roster indices survive the 123-byte WebSocket close reason; the details
/// (why each member is missing) follow.
fn threshold_message(signed: usize, required: usize, n: usize, missing: &[(ExclusionKind, Exclusion)]) -> String {
    let idx: Vec<String> = missing.iter().map(|(_, e)| format!("#{}", e.index)).collect();
    let details: Vec<String> = missing
        .iter()
        .map(|(k, e)| format!("#{} (node {}): {k}: {}", e.index, &e.public.to_hex()[..16], e.reason))
        .collect();
    format!(
        "threshold not reached: {signed} of {n} signed, {required} required; missing {} -- {}",
        idx.join(" "),
        details.join("; ")
    )
}
