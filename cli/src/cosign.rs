//! `conode sign` and `conode verify`: ask a cothority for a collective (BLS-CoSi) signature through
//! one member's `/Cosi/Sign`, save it as a JSON signature file, and check such a file offline with
//! the pure verifier (`conode_core::verify::cosi`) against a roster.

use crate::input::{hex_bytes, text_or_file, write_output};
use crate::target::{load_roster, runtime, seconds, NodeChoice};
use anyhow::{bail, Context, Result};
use conode_core::config::{Roster, COSI_SERVICE};
use conode_core::crypto::BlsPublicKey;
use conode_core::services::cosi::messages::{Exclusion, SignRequest, SignResponse};
use conode_core::verify::cosi::{self, Mask, Policy};
use prost::Message;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

#[derive(clap::Args)]
#[command(group(clap::ArgGroup::new("statement").required(true).args(["message", "file"])))]
pub struct SignArgs {
    /// Roster file (concatenated public.toml entries); its members sign.
    #[arg(long)]
    roster: PathBuf,
    #[command(flatten)]
    target: NodeChoice,
    /// Signers required (default n − ⌊(n−1)/3⌋).
    #[arg(long)]
    threshold: Option<u32>,
    /// Seconds each level of the signing tree waits for its children (default: the node's own).
    #[arg(long)]
    timeout: Option<f64>,
    /// The statement to sign, as text.
    #[arg(long)]
    message: Option<String>,
    /// The statement to sign, read from a file.
    #[arg(long)]
    file: Option<PathBuf>,
    /// Also write the signature file here.
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(clap::Args)]
pub struct VerifyArgs {
    /// Roster file the signature was made by (same members, same order).
    #[arg(long)]
    roster: PathBuf,
    /// Signature file written by `conode sign`.
    #[arg(long)]
    signature: PathBuf,
    /// Signers required (default n − ⌊(n−1)/3⌋).
    #[arg(long)]
    threshold: Option<usize>,
    /// Check the signature over this text instead of the message in the signature file.
    #[arg(long, group = "statement")]
    message: Option<String>,
    /// Check the signature over this file's content instead.
    #[arg(long, group = "statement")]
    file: Option<PathBuf>,
}

/// A roster member left out of a signature, and why.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Excluded {
    pub index: u32,
    pub reason: String,
}

/// The signature file (`conode sign` output).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct SignatureFile {
    /// The signed statement (hex).
    pub message: String,
    /// Aggregate BLS signature (hex, 96 bytes).
    pub signature: String,
    /// Participation mask (hex; bit i = roster index i, LSB first).
    pub mask: String,
    #[serde(default)]
    pub signed: Vec<u32>,
    #[serde(default)]
    pub refused: Vec<Excluded>,
    #[serde(default)]
    pub timed_out: Vec<Excluded>,
    #[serde(default)]
    pub invalid: Vec<Excluded>,
    #[serde(default)]
    pub required: u32,
}

fn excluded(list: &[Exclusion]) -> Vec<Excluded> {
    list.iter().map(|e| Excluded { index: e.index, reason: e.reason.clone() }).collect()
}

pub fn sign(a: SignArgs) -> Result<()> {
    let roster = load_roster(&a.roster)?;
    let url = a.target.base_url(Some((&a.roster, &roster)))?;
    let message = text_or_file(&a.message, &a.file)?.context("give --message or --file")?;
    let roster_toml =
        std::fs::read_to_string(&a.roster).with_context(|| format!("{}: cannot read", a.roster.display()))?;
    let level = a.timeout.map(seconds);
    let req = SignRequest {
        message: message.clone(),
        roster_toml: Some(roster_toml),
        threshold: a.threshold,
        timeout_ms: level.map(|d| d.as_millis() as u64),
    };
    // The tree has two levels below the root, and a failed sub-leader's subtree is asked again.
    let wait = level.map(|d| d * 4).unwrap_or(std::time::Duration::from_secs(60)) + std::time::Duration::from_secs(10);
    let reply = runtime()?
        .block_on(crate::target::call(&url, "Cosi", "Sign", req.encode_to_vec(), wait))
        .map_err(|e| crate::output::explain(&url, e.into()))
        .context("collective signing failed")?;
    let resp = SignResponse::decode(reply.as_slice()).with_context(|| format!("{url}: undecodable SignResponse"))?;
    let file = SignatureFile {
        message: hex::encode(&message),
        signature: hex::encode(&resp.signature),
        mask: hex::encode(&resp.mask),
        signed: resp.signed.clone(),
        refused: excluded(&resp.refused),
        timed_out: excluded(&resp.timed_out),
        invalid: excluded(&resp.invalid),
        required: resp.required,
    };
    // Never hand out (or save) what does not verify.
    let keys = cosi_keys(&a.roster, &roster)?;
    let policy = Policy::from_threshold(a.threshold.filter(|t| *t > 0).map(|t| t as usize));
    cosi::verify(&message, &resp.signature, &resp.mask, &keys, policy)
        .with_context(|| format!("{url} returned a signature that does not verify"))?;
    let json = serde_json::to_string_pretty(&file)?;
    if let Some(out) = &a.out {
        write_output(out, format!("{json}\n").as_bytes())?;
    }
    outln!("{}", serde_json::to_string(&file)?);
    Ok(())
}

/// The members' cosi keys in roster order.
fn cosi_keys(path: &Path, roster: &Roster) -> Result<Vec<BlsPublicKey>> {
    roster
        .service_keys(COSI_SERVICE)
        .with_context(|| format!("{}: cannot check a collective signature", path.display()))
}

/// A signature file with its hex fields decoded.
#[derive(Debug)]
pub struct DecodedSignature {
    pub message: Vec<u8>,
    pub signature: Vec<u8>,
    pub mask: Vec<u8>,
}

/// Reads and decodes a signature file.
pub fn read_signature_file(path: &Path) -> Result<DecodedSignature> {
    let text = std::fs::read_to_string(path).with_context(|| format!("{}: cannot read", path.display()))?;
    let file: SignatureFile =
        serde_json::from_str(&text).with_context(|| format!("{}: not a signature file", path.display()))?;
    let field = |name: &str, v: &str| hex_bytes(&format!("{}: field `{name}`", path.display()), v);
    let message = field("message", &file.message)?;
    let signature = field("signature", &file.signature)?;
    let mask = field("mask", &file.mask)?;
    Ok(DecodedSignature { message, signature, mask })
}

pub fn verify(a: VerifyArgs) -> Result<()> {
    let roster = load_roster(&a.roster)?;
    let DecodedSignature { message: saved_message, signature, mask, .. } = read_signature_file(&a.signature)?;
    let message = text_or_file(&a.message, &a.file)?.unwrap_or(saved_message);
    let keys = cosi_keys(&a.roster, &roster)?;
    let policy = match a.threshold {
        Some(0) => bail!("--threshold 0 accepts anything; use at least 1"),
        t => Policy::from_threshold(t),
    };
    let n = keys.len();
    let required = policy.required(n).map_err(|e| anyhow::anyhow!("--threshold: {e}"))?;
    cosi::verify(&message, &signature, &mask, &keys, policy)
        .map_err(|e| anyhow::anyhow!("{}: the signature does NOT verify: {e}", a.signature.display()))?;
    let signers = Mask::from_bytes(n, &mask).map(|m| m.count()).unwrap_or(0);
    crate::output::report(
        serde_json::json!({"ok": true, "signers": signers, "members": n, "required": required}),
        || format!("ok: {signers} of {n} signed (required {required})"),
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_file_errors_name_the_field() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sig.json");
        std::fs::write(&p, r#"{"message":"00","signature":"xyz","mask":"0f"}"#).unwrap();
        let e = format!("{:#}", read_signature_file(&p).unwrap_err());
        assert!(e.contains("sig.json") && e.contains("`signature`"), "{e}");
        std::fs::write(&p, "{ not json").unwrap();
        let e = format!("{:#}", read_signature_file(&p).unwrap_err());
        assert!(e.contains("sig.json") && e.contains("not a signature file"), "{e}");
        std::fs::write(&p, r#"{"message":"6869","signature":"00","mask":"0f"}"#).unwrap();
        let d = read_signature_file(&p).unwrap();
        assert_eq!((d.message, d.signature, d.mask), (b"hi".to_vec(), vec![0], vec![0x0f]));
    }
}
