//! `conode skipchain create | append | get | update | verify`: the skipchain client. Requests go to
//! one member's `/Skipchain/<Method>`; appends are signed with the owner key file; proofs are
//! checked with the pure light verifier (`conode_core::verify::skipchain`) before being trusted.

use crate::input::{hash32, read_file, text_or_file, write_output};
use crate::owner_key;
use crate::target::{load_optional_roster, load_roster, runtime, seconds, NodeChoice};
use anyhow::{bail, Context, Result};
use conode_core::config::Roster;
use conode_core::services::skipchain::messages::{Append, BlockReply, CreateChain, GetBlock, GetUpdateChain, Proof};
use conode_core::verify::cosi::Policy;
use conode_core::verify::skipchain::{verify_proof, SkipBlock};
use prost::Message;
use serde_json::json;
use std::path::PathBuf;
use std::time::Duration;

const SERVICE: &str = "Skipchain";

#[derive(clap::Subcommand)]
pub enum SkipchainCommand {
    /// Create a chain (its genesis block) owned by the key in --key (created if missing).
    Create(CreateArgs),
    /// Append a block, signed with the owner key.
    Append(AppendArgs),
    /// Fetch one block by index or by hash.
    Get(GetArgs),
    /// Fetch the shortest proof from a block to the newest one, verify it and save it.
    Update(UpdateArgs),
    /// Verify a saved proof offline, or fetch one and verify it, from a trusted genesis.
    Verify(VerifyArgs),
    /// Follow a chain's new blocks: one verified JSON line per block.
    Watch(crate::watch::BlocksArgs),
}

/// `--roster R` (optional when `--url` names the node) and `--node I | --url U`.
#[derive(clap::Args)]
pub struct Where {
    /// Roster file (concatenated public.toml entries) to pick the node from.
    #[arg(long, required_unless_present = "url")]
    roster: Option<PathBuf>,
    #[command(flatten)]
    target: NodeChoice,
    /// Seconds to wait for the node's answer.
    #[arg(long, default_value_t = 60.0)]
    timeout: f64,
}

impl Where {
    fn url(&self) -> Result<String> {
        let roster = load_optional_roster(&self.roster)?;
        self.target.base_url(roster.as_ref().map(|(p, r)| (p.as_path(), r)))
    }
}

#[derive(clap::Args)]
pub struct CreateArgs {
    /// Roster of the new chain (every member stores and signs it).
    #[arg(long)]
    roster: PathBuf,
    #[command(flatten)]
    target: NodeChoice,
    /// Owner key file (created with mode 0600 when it does not exist; never overwritten).
    #[arg(long)]
    key: PathBuf,
    /// Base of the skip levels (block i has a level-h link to block i + base^h).
    #[arg(long, default_value_t = 4)]
    base_height: u32,
    /// Highest number of levels.
    #[arg(long, default_value_t = 32)]
    max_height: u32,
    /// Data of the genesis block, as text.
    #[arg(long, conflicts_with = "file")]
    data: Option<String>,
    /// Data of the genesis block, from a file.
    #[arg(long)]
    file: Option<PathBuf>,
    /// Seconds to wait for the node's answer.
    #[arg(long, default_value_t = 60.0)]
    timeout: f64,
}

#[derive(clap::Args)]
#[command(group(clap::ArgGroup::new("content").required(true).args(["data", "file"])))]
pub struct AppendArgs {
    #[command(flatten)]
    at: Where,
    /// Owner key file of the chain.
    #[arg(long)]
    key: PathBuf,
    /// Genesis block hash (hex) of the chain.
    #[arg(long)]
    genesis: String,
    /// Data of the new block, as text.
    #[arg(long)]
    data: Option<String>,
    /// Data of the new block, from a file.
    #[arg(long)]
    file: Option<PathBuf>,
    /// A new roster for this block and the ones after it.
    #[arg(long)]
    new_roster: Option<PathBuf>,
}

#[derive(clap::Args)]
#[command(group(clap::ArgGroup::new("which").required(true).args(["index", "hash"])))]
pub struct GetArgs {
    #[command(flatten)]
    at: Where,
    /// Genesis block hash (hex) of the chain (needed with --index).
    #[arg(long, required_unless_present = "hash")]
    genesis: Option<String>,
    /// Index of the block.
    #[arg(long)]
    index: Option<u64>,
    /// Hash of the block (hex).
    #[arg(long)]
    hash: Option<String>,
}

#[derive(clap::Args)]
pub struct UpdateArgs {
    #[command(flatten)]
    at: Where,
    /// Hash (hex) of the block the proof starts from (usually the genesis).
    #[arg(long)]
    from: String,
    /// Write the proof (protobuf `Proof`) here.
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(clap::Args)]
#[command(group(clap::ArgGroup::new("source").required(true).args(["proof", "roster"])))]
pub struct VerifyArgs {
    /// Trusted genesis block hash (hex).
    #[arg(long)]
    genesis: String,
    /// A proof saved by `conode skipchain update --out`.
    #[arg(long)]
    proof: Option<PathBuf>,
    /// Fetch the proof from this roster's member (--node / --url) instead.
    #[arg(long)]
    roster: Option<PathBuf>,
    #[command(flatten)]
    target: NodeChoice,
    /// Seconds to wait for the node's answer.
    #[arg(long, default_value_t = 60.0)]
    timeout: f64,
}

pub fn run(cmd: SkipchainCommand) -> Result<()> {
    match cmd {
        SkipchainCommand::Create(a) => create(a),
        SkipchainCommand::Append(a) => append(a),
        SkipchainCommand::Get(a) => get(a),
        SkipchainCommand::Update(a) => update(a),
        SkipchainCommand::Verify(a) => verify(a),
        SkipchainCommand::Watch(a) => crate::watch::blocks(a),
    }
}

fn call(url: &str, method: &str, body: Vec<u8>, timeout: Duration) -> Result<Vec<u8>> {
    runtime()?
        .block_on(crate::target::call(url, SERVICE, method, body, timeout))
        .map_err(|e| crate::output::explain(url, e.into()))
        .with_context(|| format!("{SERVICE}/{method} failed"))
}

fn block_of(url: &str, reply: &[u8]) -> Result<SkipBlock> {
    BlockReply::decode(reply)
        .with_context(|| format!("{url}: undecodable reply"))?
        .block
        .with_context(|| format!("{url}: reply without a block"))
}

fn proof_of(url: &str, reply: &[u8]) -> Result<Vec<SkipBlock>> {
    Ok(Proof::decode(reply).with_context(|| format!("{url}: undecodable proof"))?.blocks)
}

fn create(a: CreateArgs) -> Result<()> {
    let roster = load_roster(&a.roster)?;
    let url = a.target.base_url(Some((&a.roster, &roster)))?;
    if a.base_height < 2 {
        bail!("--base-height must be at least 2");
    }
    if !(1..=32).contains(&a.max_height) {
        bail!("--max-height must be in 1..=32");
    }
    let data = text_or_file(&a.data, &a.file)?.unwrap_or_default();
    let roster_toml =
        std::fs::read_to_string(&a.roster).with_context(|| format!("{}: cannot read", a.roster.display()))?;
    let (owner, created) = owner_key::load_or_create(&a.key)?;
    let req = CreateChain {
        roster_toml,
        base_height: a.base_height,
        maximum_height: a.max_height,
        owners: vec![owner.public().as_bytes().to_vec()],
        data,
    };
    let genesis = block_of(&url, &call(&url, "CreateChain", req.encode_to_vec(), seconds(a.timeout))?)?;
    genesis.check_self().with_context(|| format!("{url} returned an inconsistent genesis block"))?;
    outln!(
        "{}",
        json!({
            "genesis": hex::encode(&genesis.hash),
            "index": genesis.index,
            "height": genesis.height,
            "base_height": genesis.base_height,
            "maximum_height": genesis.maximum_height,
            "members": roster.len(),
            "owner": owner.public().to_hex(),
            "key_file": a.key.display().to_string(),
            "key_created": created,
        })
    );
    Ok(())
}

fn append(a: AppendArgs) -> Result<()> {
    let genesis = hash32("--genesis", &a.genesis)?;
    let data = text_or_file(&a.data, &a.file)?.unwrap_or_default();
    let owner = owner_key::load(&a.key)?;
    let new_roster = a.new_roster.as_ref().map(|p| load_roster(p)).transpose()?;
    let url = a.at.url()?;
    let timeout = seconds(a.at.timeout);
    // The next index is the newest block the node holds plus one (it refuses any other).
    let proof = proof_of(
        &url,
        &call(&url, "GetUpdateChain", GetUpdateChain { from: genesis.clone() }.encode_to_vec(), timeout)?,
    )?;
    if proof.first().map(|b| b.hash.as_slice()) != Some(genesis.as_slice()) {
        bail!("{url}: the update does not start at genesis {}", a.genesis);
    }
    let latest = proof.last().map(|b| b.index).unwrap_or(0);
    let index = latest + 1;
    let req = Append::signed(&owner, &genesis, index, data, new_roster.as_ref()).map_err(|e| {
        anyhow::anyhow!("{}: {e}", a.new_roster.as_ref().map(|p| p.display().to_string()).unwrap_or_default())
    })?;
    let block = block_of(&url, &call(&url, "Append", req.encode_to_vec(), timeout)?)?;
    block.check_self().with_context(|| format!("{url} returned an inconsistent block"))?;
    if block.index != index || block.genesis_id != genesis {
        bail!("{url} answered with block {} of another chain or index (asked for {index})", block.index);
    }
    outln!(
        "{}",
        json!({
            "index": block.index,
            "hash": hex::encode(&block.hash),
            "genesis": hex::encode(&genesis),
            "height": block.height,
            "roster_changed": !req.new_roster_toml.is_empty(),
        })
    );
    Ok(())
}

/// A block as JSON (hashes, keys and data in hex; data also as text when it is UTF-8).
pub fn block_json(b: &SkipBlock) -> serde_json::Value {
    let roster = b.roster.clone().unwrap_or_default();
    json!({
        "index": b.index,
        "hash": hex::encode(&b.hash),
        "genesis": hex::encode(b.chain_id()),
        "height": b.height,
        "base_height": b.base_height,
        "maximum_height": b.maximum_height,
        "data": std::str::from_utf8(&b.data).ok(),
        "data_hex": hex::encode(&b.data),
        "back_links": b.back_link_ids.iter().map(hex::encode).collect::<Vec<_>>(),
        "forward_links": b.forward_links.iter().enumerate().filter(|(_, l)| !l.to.is_empty()).map(|(level, l)| json!({
            "level": level,
            "to": hex::encode(&l.to),
            "new_roster": l.new_roster.as_ref().map(hex::encode),
            "signature": l.signature.as_ref().map(|s| hex::encode(&s.signature)),
            "mask": l.signature.as_ref().map(|s| hex::encode(&s.mask)),
        })).collect::<Vec<_>>(),
        "roster": roster.members.iter().map(|m| json!({
            "identity": hex::encode(&m.identity),
            "cosi_key": hex::encode(&m.cosi_key),
            "address": m.address,
            "description": m.description,
        })).collect::<Vec<_>>(),
        "owners": b.owners.iter().map(hex::encode).collect::<Vec<_>>(),
    })
}

fn get(a: GetArgs) -> Result<()> {
    let req = match (&a.hash, a.index) {
        (Some(h), _) => GetBlock { hash: hash32("--hash", h)?, genesis: vec![], index: 0 },
        (None, Some(index)) => {
            let g = a.genesis.as_deref().context("--index needs --genesis")?;
            GetBlock { hash: vec![], genesis: hash32("--genesis", g)?, index }
        }
        (None, None) => bail!("give --index or --hash"),
    };
    let url = a.at.url()?;
    let block = block_of(&url, &call(&url, "GetBlock", req.encode_to_vec(), seconds(a.at.timeout))?)?;
    block.check_self().with_context(|| format!("{url} returned an inconsistent block"))?;
    let matches = if req.hash.is_empty() {
        block.index == req.index && block.chain_id() == req.genesis.as_slice()
    } else {
        block.hash == req.hash
    };
    if !matches {
        bail!("{url} answered with another block ({} at index {})", hex::encode(&block.hash), block.index);
    }
    outln!("{}", block_json(&block));
    Ok(())
}

fn update(a: UpdateArgs) -> Result<()> {
    let from = hash32("--from", &a.from)?;
    let url = a.at.url()?;
    let reply =
        call(&url, "GetUpdateChain", GetUpdateChain { from: from.clone() }.encode_to_vec(), seconds(a.at.timeout))?;
    let blocks = proof_of(&url, &reply)?;
    let latest = verify_proof(&from, &blocks, Policy::Default)
        .map_err(|e| anyhow::anyhow!("{url}: the proof does NOT verify: {e}"))?;
    if let Some(out) = &a.out {
        write_output(out, &Proof { blocks: blocks.clone() }.encode_to_vec())?;
    }
    outln!(
        "{}",
        json!({
            "from": hex::encode(&from),
            "hops": blocks.len() - 1,
            "latest_index": latest.index,
            "latest_hash": hex::encode(&latest.hash),
            "verified": true,
            "out": a.out.as_ref().map(|p| p.display().to_string()),
        })
    );
    Ok(())
}

fn verify(a: VerifyArgs) -> Result<()> {
    let genesis = hash32("--genesis", &a.genesis)?;
    let (origin, blocks) = match (&a.proof, &a.roster) {
        (Some(p), _) => {
            let bytes = read_file(p)?;
            let proof =
                Proof::decode(bytes.as_slice()).with_context(|| format!("{}: not a skipchain proof", p.display()))?;
            (p.display().to_string(), proof.blocks)
        }
        (None, Some(r)) => {
            let roster: Roster = load_roster(r)?;
            let url = a.target.base_url(Some((r, &roster)))?;
            let reply = call(
                &url,
                "GetUpdateChain",
                GetUpdateChain { from: genesis.clone() }.encode_to_vec(),
                seconds(a.timeout),
            )?;
            (url.clone(), proof_of(&url, &reply)?)
        }
        (None, None) => bail!("give --proof or --roster"),
    };
    let latest = verify_proof(&genesis, &blocks, Policy::Default)
        .map_err(|e| anyhow::anyhow!("{origin}: the proof does NOT verify: {e}"))?;
    crate::output::report(
        json!({"ok": true, "latest_index": latest.index, "latest_hash": hex::encode(&latest.hash), "hops": blocks.len() - 1}),
        || format!("ok: block {} ({} hops)", latest.index, blocks.len() - 1),
    );
    Ok(())
}
