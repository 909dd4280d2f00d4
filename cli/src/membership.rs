//! `conode network create`, `conode join`, `conode propose …`, `conode vote`, `conode proposals`,
//! `conode member keygen`: the operator's side of membership by vote. Proposals and ballots are
//! signed locally with the node's identity key from private.toml (the default governance members
//! are the roster's identity keys) or with `--member-key member.toml` (separate members, as CCF's
//! consortium: `network create --members members.toml`); they go to the node's own client port
//! unless `--url` names another. `network create` is the operator's consent to found: it goes to the
//! node's local admin channel, and each founding node's operator runs it. `[Join]` in private.toml
//! (Target, Network, RetryTimeout, NodeData) makes `conode server` join too.

use crate::input::hash32;
use crate::target::{load_roster, runtime, seconds, NodeChoice};
use anyhow::{bail, Context, Result};
use conode_core::api::client::Client;
use conode_core::config::{paths, NodeConfig, Roster};
use conode_core::crypto::IdentityKeyPair;
use conode_core::services::membership::messages::{
    action, AddMember, AddNode, Ballot, CreateNetwork, GetProposals, NetworkReply, Proposal, ProposalStatus, Proposals,
    RemoveMember, RemoveNode, SetThreshold,
};
use conode_core::services::membership::{now_ms, DEFAULT_RETRY, MEMBERSHIP_SERVICE};
use conode_core::Node;
use serde::Deserialize;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(clap::Subcommand)]
pub enum NetworkCommand {
    /// Found the network of a roster on this node (its operator's consent, through the node's local
    /// admin channel). Each founding node's operator runs it with the same roster, members and
    /// threshold; a node follows the network once its own operator founded it.
    Create(CreateArgs),
}

#[derive(clap::Subcommand)]
pub enum MemberCommand {
    /// Write a new governance member key (Ed25519) to a file readable by its owner only.
    Keygen {
        /// The key file to write (never overwritten).
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(clap::Args)]
pub struct CreateArgs {
    /// Roster of the founding nodes (concatenated public.toml entries).
    #[arg(long)]
    roster: PathBuf,
    /// Separate governance members: a file of `[[members]]` entries with `Public` keys (from
    /// `conode member keygen`). Default: the roster's identity keys, following the roster.
    #[arg(long)]
    members: Option<PathBuf>,
    /// Admin socket of the node (default: beside the database named by private.toml).
    #[arg(long)]
    socket: Option<PathBuf>,
    /// Yes votes a proposal needs (default: more than two thirds of the members).
    #[arg(long, default_value_t = 0)]
    threshold: u32,
}

#[derive(clap::Args)]
pub struct JoinArgs {
    /// Client URL of a member of the network (ws://host:port).
    #[arg(long)]
    target: String,
    /// Network id (hex genesis hash of the network chain).
    #[arg(long)]
    network: String,
    /// JSON file of operator data published with the node (e.g. a pod or host id).
    #[arg(long)]
    node_data: Option<PathBuf>,
    /// Seconds between polls while the request is pending.
    #[arg(long, default_value_t = 1.0)]
    retry_timeout: f64,
    /// Run even when started as root (not recommended).
    #[arg(long)]
    allow_root: bool,
}

/// Who signs and where requests go.
#[derive(clap::Args, Clone)]
pub struct Signer {
    /// Governance member key file (from `conode member keygen`); default: the node's identity
    /// key from private.toml.
    #[arg(long = "member-key", visible_alias = "key")]
    key: Option<PathBuf>,
    /// Client URL of the node to send to (default: this node's client port from private.toml).
    #[arg(long)]
    url: Option<String>,
    #[arg(long, default_value_t = 60.0)]
    timeout: f64,
}

#[derive(clap::Subcommand)]
pub enum ProposeCommand {
    /// Add a node: its public.toml (or --pending: the join request a node holds), with optional
    /// node data.
    AddNode {
        #[arg(long, required_unless_present = "pending", conflicts_with = "pending")]
        public: Option<PathBuf>,
        /// The identity key (hex) of a node whose join request the node at --url (or this node)
        /// holds: its public.toml and node data are read from `/node/network/nodes` there.
        #[arg(long)]
        pending: Option<String>,
        #[arg(long)]
        node_data: Option<PathBuf>,
        #[command(flatten)]
        signer: Signer,
    },
    /// Remove a node, by its identity key (hex, the `Public` of its public.toml).
    RemoveNode {
        #[arg(long)]
        public: String,
        #[command(flatten)]
        signer: Signer,
    },
    /// Set the yes votes a proposal needs (0: back to more than two thirds).
    SetThreshold {
        threshold: u32,
        #[command(flatten)]
        signer: Signer,
    },
    /// Add a separate governance member, by its public key (hex, the `Public` of its key file).
    AddMember {
        #[arg(long)]
        public: String,
        #[command(flatten)]
        signer: Signer,
    },
    /// Remove a separate governance member, by its public key (hex).
    RemoveMember {
        #[arg(long)]
        public: String,
        #[command(flatten)]
        signer: Signer,
    },
}

#[derive(clap::Args)]
pub struct VoteArgs {
    /// Proposal id (hex).
    proposal: String,
    /// yes or no.
    #[arg(value_parser = ["yes", "no"])]
    choice: String,
    #[command(flatten)]
    signer: Signer,
}

#[derive(clap::Args)]
pub struct ProposalsArgs {
    #[command(flatten)]
    signer: Signer,
}

/// `[Join]` of private.toml.
#[derive(Deserialize)]
struct JoinSection {
    #[serde(rename = "Join")]
    join: Option<RawJoin>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawJoin {
    #[serde(rename = "Target")]
    target: String,
    #[serde(rename = "Network")]
    network: String,
    #[serde(rename = "RetryTimeout")]
    retry_timeout: Option<f64>,
    #[serde(rename = "NodeData")]
    node_data: Option<PathBuf>,
}

fn private_path(config: &Option<PathBuf>) -> PathBuf {
    config.clone().unwrap_or_else(paths::default_private_toml)
}

fn read_node_data(path: Option<&Path>) -> Result<String> {
    let Some(p) = path else { return Ok(String::new()) };
    let text = std::fs::read_to_string(p).with_context(|| format!("{}: cannot read", p.display()))?;
    serde_json::from_str::<serde_json::Value>(&text).with_context(|| format!("{}: not JSON", p.display()))?;
    Ok(text.trim().to_string())
}

/// Starts joining as `[Join]` of private.toml says, if it has one (called by `conode server`).
pub fn join_from_config(private: &Path, node: &Node) -> Result<()> {
    let text = std::fs::read_to_string(private).with_context(|| format!("{}: cannot read", private.display()))?;
    let section: JoinSection =
        toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: [Join]: {}", private.display(), e.message()))?;
    let Some(j) = section.join else { return Ok(()) };
    let dir = private.parent().unwrap_or(Path::new("."));
    let node_data = j.node_data.map(|p| if p.is_relative() { dir.join(p) } else { p });
    start_join(node, &j.target, &j.network, node_data.as_deref(), j.retry_timeout.map_or(DEFAULT_RETRY, seconds))
        .with_context(|| format!("{}: [Join]", private.display()))
}

fn start_join(node: &Node, target: &str, network: &str, node_data: Option<&Path>, retry: Duration) -> Result<()> {
    let network = hash32("--network", network)?;
    conode_core::client_api::ClientUrl::parse(target).with_context(|| format!("target `{target}`"))?;
    let data = read_node_data(node_data)?;
    node.membership()?.join(target, &network, &data, retry)?;
    outln!("join requested: network {}, target {target}", hex::encode(&network));
    Ok(())
}

/// `conode join`: runs the node (like `conode server`) and asks to join the network.
pub fn join(config: Option<PathBuf>, args: JoinArgs) -> Result<()> {
    crate::server::run_with(config, args.allow_root, |_, node| {
        start_join(node, &args.target, &args.network, args.node_data.as_deref(), seconds(args.retry_timeout))
    })
}

/// `[[members]]` of members.toml.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMembers {
    members: Option<Vec<RawMember>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMember {
    #[serde(rename = "Public")]
    public: Option<String>,
    #[serde(rename = "Description")]
    #[allow(dead_code)]
    description: Option<String>,
}

/// The separate governance members of members.toml: distinct Ed25519 public keys.
pub fn load_members(path: &Path) -> Result<Vec<Vec<u8>>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("{}: cannot read", path.display()))?;
    if let Ok(t) = toml::from_str::<toml::Table>(&text) {
        if t.contains_key("Private") {
            bail!(
                "{}: holds a secret key (`Private`): give a members file of `[[members]]` entries with their                  `Public` keys, never the member key files",
                path.display()
            );
        }
    }
    let raw: RawMembers = toml::from_str(&text)
        .map_err(|e| anyhow::anyhow!("{}: not a members file: {}", path.display(), e.message()))?;
    let list = raw.members.unwrap_or_default();
    if list.is_empty() {
        bail!("{}: no [[members]] entry", path.display());
    }
    let mut out: Vec<Vec<u8>> = Vec::with_capacity(list.len());
    for (i, m) in list.iter().enumerate() {
        let field = format!("{}: members[{i}].Public", path.display());
        let public = m.public.as_deref().map(str::trim).filter(|p| !p.is_empty());
        let public = public.ok_or_else(|| anyhow::anyhow!("{field}: missing"))?;
        let key =
            conode_core::crypto::IdentityPublicKey::from_hex(public).map_err(|e| anyhow::anyhow!("{field}: {e}"))?;
        let key = key.as_bytes().to_vec();
        if out.contains(&key) {
            bail!("{field}: the key {public} is listed twice");
        }
        out.push(key);
    }
    Ok(out)
}

pub fn member(cmd: MemberCommand) -> Result<()> {
    let MemberCommand::Keygen { out } = cmd;
    let pair = crate::owner_key::create_with(
        &out,
        "conode governance member key: whoever holds it votes for this member. Keep it secret (mode 0600).",
    )?;
    let public = pair.public().to_hex();
    crate::output::report(json!({ "public": public, "file": out.display().to_string() }), || {
        format!(
            "member key written to {} (mode 0600)\nits entry for members.toml:\n[[members]]\nPublic = \"{public}\"",
            out.display()
        )
    });
    Ok(())
}

pub fn network(config: Option<PathBuf>, cmd: NetworkCommand) -> Result<()> {
    let NetworkCommand::Create(a) = cmd;
    let roster = load_roster(&a.roster)?;
    let members = a.members.as_deref().map(load_members).transpose()?.unwrap_or_default();
    if a.threshold as usize > if members.is_empty() { roster.len() } else { members.len() } {
        bail!("--threshold {}: above the number of governance members", a.threshold);
    }
    let socket = match a.socket {
        Some(s) => s,
        None => crate::backup::admin_socket(config.as_deref())?,
    };
    let req = CreateNetwork { roster_toml: Roster::to_toml(&roster), threshold: a.threshold, members: members.clone() };
    let founded = conode_core::admin::request_found(&socket, &req)?;
    outln!(
        "{}",
        json!({
            "network": founded.network,
            "state": founded.state,
            "members": if members.is_empty() { roster.len() } else { members.len() },
            "members_follow_roster": members.is_empty(),
            "roster": roster.len(),
            "threshold": a.threshold,
        })
    );
    Ok(())
}

impl Signer {
    fn key_and_url(&self, config: &Option<PathBuf>) -> Result<(IdentityKeyPair, String)> {
        let private = private_path(config);
        let node = if self.key.is_none() || self.url.is_none() { Some(NodeConfig::load(&private)?) } else { None };
        let key = match (&self.key, &node) {
            (Some(k), _) => crate::owner_key::load_named(k, "member key")?,
            (None, Some(n)) => n.identity.clone(),
            (None, None) => bail!("no key"),
        };
        let url = match (&self.url, &node) {
            (Some(u), _) => NodeChoice { node: 0, url: Some(u.clone()) }.base_url(None)?,
            (None, Some(n)) => crate::check::client_base(&n.server_identity()),
            (None, None) => bail!("no url"),
        };
        Ok((key, url))
    }

    fn client(&self, url: &str) -> Result<Client> {
        Ok(Client::parse(url, seconds(self.timeout))?)
    }
}

fn status_json(s: &ProposalStatus) -> serde_json::Value {
    let p = s.proposal.clone().unwrap_or_default();
    json!({
        "id": hex::encode(&s.id),
        "action": conode_core::services::membership::messages::describe(p.action.as_ref()),
        "state": s.state,
        "yes": s.yes,
        "no": s.no,
        "needed": s.needed,
        "members": s.members,
        "reason": s.reason,
    })
}

/// The network this node follows (to sign proposals for it).
async fn network_of(client: &Client) -> Result<Vec<u8>> {
    let reply: NetworkReply = client
        .request(MEMBERSHIP_SERVICE, "GetNetwork", &conode_core::services::membership::messages::GetNetwork {})
        .await?;
    Ok(reply.network)
}

/// The join request of node `public` (hex) that the node at `url` holds and no proposal answers
/// yet, as an add_node (from its `/node/network/nodes`).
fn pending_join(url: &str, public: &str, timeout: Duration) -> Result<AddNode> {
    let public = conode_core::crypto::IdentityPublicKey::from_hex(public.trim())
        .map_err(|e| anyhow::anyhow!("--pending: {e}"))?
        .to_hex();
    let base = conode_core::client_api::ClientUrl::parse(url)?.http_base();
    let http = crate::target::http_client(timeout)?;
    let nodes: serde_json::Value = runtime()?.block_on(async {
        let r = http.get(format!("{base}/node/network/nodes")).send().await?;
        let status = r.status();
        if !status.is_success() {
            bail!("{base}/node/network/nodes: HTTP {status}");
        }
        anyhow::Ok(r.json().await?)
    })?;
    let entry = nodes
        .as_array()
        .into_iter()
        .flatten()
        .find(|n| n["public"] == public.as_str() && n["state"] == "Pending" && n["public_toml"].is_string())
        .with_context(|| {
            format!("--pending {public}: {base} holds no join request of that node waiting for a proposal")
        })?;
    let public_toml = entry["public_toml"].as_str().unwrap_or_default().to_string();
    let node_data = match &entry["node_data"] {
        serde_json::Value::Null => String::new(),
        v => v.to_string(),
    };
    Ok(AddNode { public_toml, node_data })
}

pub fn propose(config: Option<PathBuf>, cmd: ProposeCommand) -> Result<()> {
    let (kind, signer) = match cmd {
        ProposeCommand::AddNode { public: Some(public), node_data, signer, .. } => {
            let text =
                std::fs::read_to_string(&public).with_context(|| format!("{}: cannot read", public.display()))?;
            let roster = Roster::from_toml_str(&public, &text)?;
            if roster.len() != 1 {
                bail!("{}: holds {} servers; give one node's public.toml", public.display(), roster.len());
            }
            let add = AddNode { public_toml: roster.to_toml(), node_data: read_node_data(node_data.as_deref())? };
            (action::Kind::AddNode(add), signer)
        }
        ProposeCommand::AddNode { public: None, pending, node_data, signer } => {
            let pending = pending.unwrap_or_default();
            let (_, url) = signer.key_and_url(&config)?;
            let mut add = pending_join(&url, &pending, seconds(signer.timeout))?;
            if node_data.is_some() {
                add.node_data = read_node_data(node_data.as_deref())?;
            }
            (action::Kind::AddNode(add), signer)
        }
        ProposeCommand::RemoveNode { public, signer } => {
            let id = hash32("--public", &public)?;
            (action::Kind::RemoveNode(RemoveNode { identity: id }), signer)
        }
        ProposeCommand::SetThreshold { threshold, signer } => {
            (action::Kind::SetThreshold(SetThreshold { threshold }), signer)
        }
        ProposeCommand::AddMember { public, signer } => {
            let member = conode_core::crypto::IdentityPublicKey::from_hex(public.trim())
                .map_err(|e| anyhow::anyhow!("--public: {e}"))?;
            (action::Kind::AddMember(AddMember { member: member.as_bytes().to_vec() }), signer)
        }
        ProposeCommand::RemoveMember { public, signer } => {
            let member = conode_core::crypto::IdentityPublicKey::from_hex(public.trim())
                .map_err(|e| anyhow::anyhow!("--public: {e}"))?;
            (action::Kind::RemoveMember(RemoveMember { member: member.as_bytes().to_vec() }), signer)
        }
    };
    let (key, url) = signer.key_and_url(&config)?;
    let client = signer.client(&url)?;
    let status: ProposalStatus = runtime()?.block_on(async {
        let net = network_of(&client).await?;
        let p = Proposal::signed(&key, &net, kind, now_ms());
        anyhow::Ok(client.request(MEMBERSHIP_SERVICE, "Propose", &p).await?)
    })?;
    outln!("{}", status_json(&status));
    Ok(())
}

pub fn vote(config: Option<PathBuf>, a: VoteArgs) -> Result<()> {
    let id = hash32("proposal", &a.proposal)?;
    let (key, url) = a.signer.key_and_url(&config)?;
    let client = a.signer.client(&url)?;
    let status: ProposalStatus = runtime()?.block_on(async {
        let net = network_of(&client).await?;
        let b = Ballot::signed(&key, &net, &id, a.choice == "yes");
        anyhow::Ok(client.request(MEMBERSHIP_SERVICE, "Vote", &b).await?)
    })?;
    outln!("{}", status_json(&status));
    Ok(())
}

pub fn proposals(config: Option<PathBuf>, a: ProposalsArgs) -> Result<()> {
    let url = match &a.signer.url {
        Some(u) => NodeChoice { node: 0, url: Some(u.clone()) }.base_url(None)?,
        None => crate::check::client_base(&NodeConfig::load(&private_path(&config))?.server_identity()),
    };
    let client = a.signer.client(&url)?;
    let list: Proposals = runtime()?.block_on(client.request(MEMBERSHIP_SERVICE, "GetProposals", &GetProposals {}))?;
    for s in &list.proposals {
        outln!("{}", status_json(s));
    }
    Ok(())
}
