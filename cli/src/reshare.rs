//! `conode beacon reshare`: asks a member of a running beacon group (through its client port) to
//! reshare the group to a new roster and threshold, keeping the chain, its hash and group key; the
//! new group takes over at a transition round the leader picks and prints.

use crate::output::{progress, report};
use anyhow::{Context, Result};
use conode_core::config::Roster;
use conode_core::services::dkg::reshare::{ReshareRequest, ReshareResponse};
use prost::Message;
use std::path::PathBuf;
use std::time::Duration;

#[derive(clap::Args)]
pub struct ReshareArgs {
    /// Roster file of the NEW group (concatenated public.toml entries).
    #[arg(long)]
    roster: PathBuf,
    /// Client URL (ws://host:port) of a member of the running group, which leads the resharing.
    #[arg(long)]
    url: String,
    /// Signatures needed per round in the new group (default ⌊n/2⌋+1, the minimum allowed).
    #[arg(long)]
    threshold: Option<u32>,
    /// Seconds per resharing phase.
    #[arg(long, default_value_t = 10.0)]
    phase_timeout: f64,
    /// First round the new group produces (default: the first round at least two phases and two
    /// periods away).
    #[arg(long)]
    transition_round: Option<u64>,
    /// Also write the new group file here.
    #[arg(long)]
    out: Option<PathBuf>,
}

pub async fn reshare(a: ReshareArgs) -> Result<()> {
    let text = std::fs::read_to_string(&a.roster).with_context(|| format!("reading {}", a.roster.display()))?;
    let roster = Roster::from_toml_str(&a.roster, &text)?;
    let phase_ms = (a.phase_timeout.max(0.1) * 1000.0) as u64;
    let req = ReshareRequest {
        roster_toml: text,
        threshold: a.threshold.unwrap_or(0),
        phase_timeout_ms: phase_ms,
        transition_round: a.transition_round.unwrap_or(0),
    };
    progress(format!("resharing the beacon group to {} members via {}", roster.len(), a.url));
    let timeout = Duration::from_millis(phase_ms * 4 + 30_000);
    let reply = crate::target::call(&a.url, "Beacon", "Reshare", req.encode_to_vec(), timeout)
        .await
        .map_err(|e| crate::output::explain(&a.url, e.into()))
        .context("the resharing failed")?;
    let resp = ReshareResponse::decode(reply.as_slice()).context("undecodable reply")?;
    for line in &resp.log {
        progress(format!("  {line}"));
    }
    if let Some(out) = &a.out {
        std::fs::write(out, &resp.group_toml).with_context(|| format!("writing {}", out.display()))?;
    }
    report(
        serde_json::json!({
            "chain_hash": resp.chain_hash,
            "transition_round": resp.transition_round,
            "qualified": resp.qualified,
            "confirmed": resp.confirmed,
            "participants": resp.participants,
            "group_toml": resp.group_toml,
            "group_file": a.out.as_ref().map(|p| p.display().to_string()),
        }),
        || {
            format!(
                "resharing agreed: the new group of {} members produces from round {} ({} confirmed, dealers {:?})\n\
                 chain hash (unchanged): {}\n",
                roster.len(),
                resp.transition_round,
                resp.confirmed,
                resp.qualified,
                resp.chain_hash
            )
        },
    );
    Ok(())
}
