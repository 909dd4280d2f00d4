//! `conode skipchain watch --genesis ID` and `conode beacon watch`: follow a chain's new blocks or
//! a beacon's new rounds over the client port's streaming subscriptions, verify each item on its
//! own (blocks by the forward link from the previous block, from the genesis on; beacons by their
//! signature against the chain's public key) and print one JSON line per item. A broken stream
//! (node restarting, network down) is resubscribed from the next index or round, so no item is
//! skipped or repeated; an item that does not verify stops the command with an error.

use crate::target::{load_optional_roster, seconds, NodeChoice};
use anyhow::{bail, Context, Result};
use conode_core::api::client::Client;
use conode_core::api::subscribe::{BeaconWatcher, BlockWatcher};
use serde_json::json;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct BlocksArgs {
    /// Genesis block hash (hex) of the chain to follow.
    #[arg(long)]
    genesis: String,
    /// Print blocks from this index on (earlier ones are still fetched and verified from the
    /// genesis block, which is the only trusted starting point).
    #[arg(long, default_value_t = 0)]
    from: u64,
    /// Stop after this many blocks (default: run until interrupted).
    #[arg(long)]
    count: Option<u64>,
    /// Roster file (concatenated public.toml entries) to pick the node from.
    #[arg(long, required_unless_present = "url")]
    roster: Option<PathBuf>,
    #[command(flatten)]
    target: NodeChoice,
    /// Seconds to wait for a connection; a broken stream is retried for 30 s.
    #[arg(long, default_value_t = 10.0)]
    timeout: f64,
}

#[derive(clap::Args)]
pub struct BeaconArgs {
    /// First round to print (default: the next round the node stores).
    #[arg(long, default_value_t = 0)]
    from: u64,
    /// Stop after this many rounds (default: run until interrupted).
    #[arg(long)]
    count: Option<u64>,
    /// Expected chain hash (hex): refuse a node serving another chain.
    #[arg(long)]
    chain_hash: Option<String>,
    /// Roster file (concatenated public.toml entries) to pick the node from.
    #[arg(long, required_unless_present = "url")]
    roster: Option<PathBuf>,
    #[command(flatten)]
    target: NodeChoice,
    /// Seconds to wait for a connection; a broken stream is retried for 30 s.
    #[arg(long, default_value_t = 10.0)]
    timeout: f64,
}

fn client(roster: &Option<PathBuf>, target: &NodeChoice, timeout: f64) -> Result<Client> {
    let roster = load_optional_roster(roster)?;
    let url = target.base_url(roster.as_ref().map(|(p, r)| (p.as_path(), r)))?;
    Ok(Client::parse(&url, seconds(timeout))?)
}

pub fn blocks(a: BlocksArgs) -> Result<()> {
    let genesis = hex::decode(a.genesis.trim())
        .ok()
        .filter(|g| g.len() == 32)
        .with_context(|| format!("--genesis `{}`: expected the 64 hex digits of the genesis block hash", a.genesis))?;
    let client = client(&a.roster, &a.target, a.timeout)?;
    let rt = crate::target::runtime()?;
    let mut watcher = BlockWatcher::from_genesis(client, &genesis);
    let mut printed = 0u64;
    while a.count.is_none_or(|c| printed < c) {
        let block = rt.block_on(watcher.next()).context("following the chain")?;
        if block.index < a.from {
            continue;
        }
        let mut line = crate::skipchain::block_json(&block);
        line["verified"] = json!(true);
        if !crate::output::line(format_args!("{line}")) {
            break; // the reader has gone (`| head -3`)
        }
        printed += 1;
    }
    Ok(())
}

pub fn beacons(a: BeaconArgs) -> Result<()> {
    let client = client(&a.roster, &a.target, a.timeout)?;
    let rt = crate::target::runtime()?;
    let info = rt.block_on(client.beacon_info()).context("fetching the chain info")?;
    if let Some(h) = &a.chain_hash {
        if !h.trim().eq_ignore_ascii_case(&info.hash_hex()) {
            bail!("the node serves chain {}, not {h}", info.hash_hex());
        }
    }
    let chain = info.hash_hex();
    let mut watcher = BeaconWatcher::new(client, &info, a.from).context("the chain's public key")?;
    let mut printed = 0u64;
    while a.count.is_none_or(|c| printed < c) {
        let beacon = rt.block_on(watcher.next()).context("following the beacon")?;
        let mut line: serde_json::Value = serde_json::from_str(&conode_core::verify::beacon::beacon_json(&beacon))?;
        line["chain_hash"] = json!(chain);
        line["verified"] = json!(true);
        if !crate::output::line(format_args!("{line}")) {
            break;
        }
        printed += 1;
    }
    Ok(())
}
