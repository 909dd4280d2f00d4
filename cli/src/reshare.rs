//! `conode beacon reshare`: this node's operator reshares the running beacon group to a new roster
//! and threshold, keeping the chain, its hash and group key, through the node's admin socket (never
//! the network: a resharing hands the group's secret to the new members). Each old and new member's
//! operator approves the same roster and threshold on its own node (`--approve-only`); one of them
//! leads (without the flag). The new group takes over at a transition round the leader picks and
//! prints.

use crate::output::{progress, report};
use anyhow::{Context, Result};
use conode_core::config::Roster;
use conode_core::services::dkg::reshare::ReshareRequest;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct ReshareArgs {
    /// Roster file of the NEW group (concatenated public.toml entries).
    #[arg(long)]
    roster: PathBuf,
    /// Signatures needed per round in the new group (default ⌊n/2⌋+1, the minimum allowed).
    #[arg(long)]
    threshold: Option<u32>,
    /// Only approve this resharing on this node (an old or new member whose operator agrees); another
    /// member's operator leads it.
    #[arg(long)]
    approve_only: bool,
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
    /// The node's admin socket (default: the one of the node of private.toml).
    #[arg(long)]
    socket: Option<PathBuf>,
}

pub fn reshare(config: Option<PathBuf>, a: ReshareArgs) -> Result<()> {
    let text = std::fs::read_to_string(&a.roster).with_context(|| format!("reading {}", a.roster.display()))?;
    let roster = Roster::from_toml_str(&a.roster, &text)?;
    let socket = match a.socket {
        Some(s) => s,
        None => crate::backup::admin_socket(config.as_deref())?,
    };
    let phase_ms = (a.phase_timeout.max(0.1) * 1000.0) as u64;
    let req = ReshareRequest {
        roster_toml: text,
        threshold: a.threshold.unwrap_or(0),
        phase_timeout_ms: phase_ms,
        transition_round: a.transition_round.unwrap_or(0),
    };
    if a.approve_only {
        let approved = conode_core::admin::request_approve_reshare(&socket, &req).context("approving the resharing")?;
        report(
            serde_json::json!({ "approved": true, "members": approved.members, "threshold": approved.threshold }),
            || {
                format!(
                    "approved on this node: a resharing to these {} members with threshold {} (another member leads it)\n",
                    approved.members, approved.threshold
                )
            },
        );
        return Ok(());
    }
    progress(format!("resharing the beacon group to {} members (this node leads)", roster.len()));
    let resp = conode_core::admin::request_reshare(&socket, &req).context("the resharing failed")?;
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
