//! `conode beacon …` and `conode reset`: approve a beacon group on this node (its operator's
//! consent, through the admin socket), start the DKG of an approved group through one member's
//! client port (printing its progress and the group file), fetch beacons over drand's HTTP API and
//! verify them with the pure verifier, and drop a node's beacon state while keeping its keys.

use crate::output::{progress, report};
use anyhow::{bail, Context, Result};
use conode_core::config::{paths, NodeConfig, Roster};
use conode_core::services::beacon::messages::{DkgStatusRequest, DkgStatusResponse, InitRequest, InitResponse};
use conode_core::verify::beacon::{Beacon, ChainInfo, Scheme};
use prost::Message;
use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::time::Duration;

#[derive(clap::Subcommand)]
pub enum BeaconCommand {
    /// On this node (its admin socket): approve a beacon group (roster, threshold, scheme,
    /// period). Every member's operator approves it before `beacon init` can start it.
    Approve(ApproveArgs),
    /// Run a DKG among a roster and start a drand-compatible beacon chain (every member's operator
    /// approved the same group with `beacon approve`).
    Init(InitArgs),
    /// Fetch a beacon (`latest` or a round number) over drand's HTTP API.
    Get(GetArgs),
    /// Follow new rounds over the client port: one verified JSON line per round.
    Watch(crate::watch::BeaconArgs),
    /// Reshare the running group to a new roster and threshold (same chain, hash and group key):
    /// on this node (its admin socket), approve it, and lead it unless --approve-only.
    Reshare(crate::reshare::ReshareArgs),
}

/// The beacon group: what each member's operator approves and `beacon init` then starts (the
/// same options, so the same defaults, in both).
#[derive(clap::Args)]
pub struct GroupArgs {
    /// Roster file (concatenated public.toml entries); every member takes part.
    #[arg(long)]
    roster: PathBuf,
    /// Seconds between rounds.
    #[arg(long)]
    period: u32,
    /// drand scheme: pedersen-bls-chained, bls-unchained-g1-rfc9380 (quicknet), pedersen-bls-unchained, bls-unchained-on-g1.
    #[arg(long, default_value = "pedersen-bls-chained")]
    scheme: String,
    /// Signatures needed per round (default ⌊n/2⌋+1, the minimum allowed).
    #[arg(long)]
    threshold: Option<u32>,
}

#[derive(clap::Args)]
pub struct ApproveArgs {
    #[command(flatten)]
    group: GroupArgs,
    /// The node's admin socket (default: the one of the node of private.toml).
    #[arg(long)]
    socket: Option<PathBuf>,
}

#[derive(clap::Args)]
pub struct InitArgs {
    #[command(flatten)]
    group: GroupArgs,
    /// Roster index of the member that leads the DKG (its client port is used).
    #[arg(long, visible_alias = "node", default_value_t = 0)]
    leader: usize,
    /// Client URL of the leader instead (ws://host:port); it must be in the roster.
    #[arg(long)]
    url: Option<String>,
    /// Shortest wait of a DKG phase in seconds (large groups wait longer, by their measured cost).
    #[arg(long, default_value_t = 10.0)]
    phase_timeout: f64,
    /// Seconds from now to round 1 (default: four phases plus one period).
    #[arg(long)]
    genesis_delay: Option<f64>,
    /// drand beacon id.
    #[arg(long, default_value = "default")]
    beacon_id: String,
    /// Also write the group file here.
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(clap::Args)]
#[command(group(clap::ArgGroup::new("where").required(true).args(["url", "roster"])))]
pub struct GetArgs {
    /// `latest` or a round number.
    which: String,
    /// Check the beacon against the chain's /info (group key, scheme, chain hash).
    #[arg(long)]
    verify: bool,
    /// A member's client URL (http(s):// or ws(s)://), or a roster file (members tried in order).
    #[arg(long)]
    url: Option<String>,
    /// Roster file: its members are tried in order (or only `--node I`).
    #[arg(long)]
    roster: Option<PathBuf>,
    /// With --roster: ask only this member (roster index).
    #[arg(long, requires = "roster")]
    node: Option<usize>,
    /// Expected chain hash (hex): refuse a node serving another chain.
    #[arg(long)]
    chain_hash: Option<String>,
}

#[derive(clap::Args)]
pub struct ResetArgs {
    /// Do not ask for confirmation.
    #[arg(long)]
    yes: bool,
}

pub fn run(config: Option<std::path::PathBuf>, cmd: BeaconCommand) -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    match cmd {
        BeaconCommand::Approve(a) => {
            drop(rt);
            approve(config, a)
        }
        BeaconCommand::Init(a) => rt.block_on(init(a)),
        BeaconCommand::Get(a) => rt.block_on(get(a)),
        BeaconCommand::Reshare(a) => {
            drop(rt);
            crate::reshare::reshare(config, a)
        }
        BeaconCommand::Watch(a) => {
            drop(rt);
            crate::watch::beacons(a)
        }
    }
}

/// `conode beacon approve`: this node's operator approves the group, through the admin socket.
fn approve(config: Option<PathBuf>, a: ApproveArgs) -> Result<()> {
    let text =
        std::fs::read_to_string(&a.group.roster).with_context(|| format!("reading {}", a.group.roster.display()))?;
    Roster::from_toml_str(&a.group.roster, &text)?;
    Scheme::from_id(&a.group.scheme)?;
    let socket = match a.socket {
        Some(s) => s,
        None => crate::backup::admin_socket(config.as_deref())?,
    };
    let req = InitRequest {
        roster_toml: text,
        scheme: a.group.scheme.clone(),
        period_secs: a.group.period,
        threshold: a.group.threshold.unwrap_or(0),
        ..Default::default()
    };
    let g = conode_core::admin::request_approve_beacon(&socket, &req).context("approving the beacon group")?;
    report(
        serde_json::json!({
            "approved": true,
            "members": g.members,
            "threshold": g.threshold,
            "scheme": g.scheme,
            "period": g.period_secs,
        }),
        || {
            format!(
                "approved on this node: a beacon group of these {} members, threshold {}, scheme {}, period {} s \
                 (any member's `conode beacon init` with the same options starts it)",
                g.members, g.threshold, g.scheme, g.period_secs
            )
        },
    );
    Ok(())
}

/// Client-port base URL (`ws://…`) of roster member `i`.
fn member_url(roster: &Roster, i: usize) -> Result<String> {
    let si = roster.servers.get(i).with_context(|| format!("the roster has no member {i}"))?;
    Ok(crate::check::client_base(si))
}

async fn init(a: InitArgs) -> Result<()> {
    let roster = Roster::load(&a.group.roster)?;
    let url = match &a.url {
        Some(u) => u.clone(),
        None => member_url(&roster, a.leader)?,
    };
    Scheme::from_id(&a.group.scheme)?;
    let phase_ms = (a.phase_timeout.max(0.1) * 1000.0) as u64;
    let req = InitRequest {
        roster_toml: std::fs::read_to_string(&a.group.roster)
            .with_context(|| format!("reading {}", a.group.roster.display()))?,
        scheme: a.group.scheme.clone(),
        period_secs: a.group.period,
        threshold: a.group.threshold.unwrap_or(0),
        phase_timeout_ms: phase_ms,
        genesis_time: 0,
        genesis_delay_ms: a.genesis_delay.map(|s| (s.max(0.0) * 1000.0) as u64).unwrap_or(0),
        beacon_id: a.beacon_id.clone(),
    };
    progress(format!(
        "starting a DKG of {} members via {url} (scheme {}, period {} s)",
        roster.len(),
        a.group.scheme,
        a.group.period
    ));
    // The DKG runs three phases, each retried for missing members, plus the collection of results.
    let timeout = Duration::from_millis(phase_ms * 12 + 60_000);
    let call = crate::target::call(&url, "Beacon", "Init", req.encode_to_vec(), timeout);
    tokio::pin!(call);
    let mut shown = 0usize;
    let mut session = String::new();
    let reply = loop {
        tokio::select! {
            r = &mut call => break r,
            _ = tokio::time::sleep(Duration::from_millis(500)) => {
                if let Ok(b) = crate::target::call(&url, "Beacon", "DkgStatus", DkgStatusRequest {}.encode_to_vec(), Duration::from_secs(5)).await {
                    if let Ok(st) = DkgStatusResponse::decode(b.as_slice()) {
                        if st.session != session {
                            session = st.session.clone();
                            shown = 0;
                        }
                        for line in st.log.iter().skip(shown) {
                            progress(format!("  {line}"));
                        }
                        shown = shown.max(st.log.len());
                    }
                }
            }
        }
    };
    let reply = reply.map_err(|e| crate::output::explain(&url, e.into())).context("the DKG failed")?;
    let resp = InitResponse::decode(reply.as_slice()).context("undecodable reply")?;
    for line in resp.log.iter().skip(shown) {
        progress(format!("  {line}"));
    }
    if let Some(out) = &a.out {
        std::fs::write(out, &resp.group_toml).with_context(|| format!("writing {}", out.display()))?;
    }
    let info: serde_json::Value = serde_json::from_str(&resp.info_json).unwrap_or(serde_json::Value::Null);
    report(
        serde_json::json!({
            "chain_hash": resp.chain_hash,
            "participants": resp.participants,
            "qualified": resp.qualified,
            "confirmed": resp.confirmed,
            "absent": resp.absent.iter().map(|x| serde_json::json!({"index": x.index, "reason": x.reason})).collect::<Vec<_>>(),
            "disqualified": resp.disqualified.iter().map(|x| serde_json::json!({"index": x.index, "reason": x.reason})).collect::<Vec<_>>(),
            "info": info,
            "group_toml": resp.group_toml,
            "group_file": a.out.as_ref().map(|p| p.display().to_string()),
        }),
        || {
            let mut t = String::new();
            for x in &resp.absent {
                t.push_str(&format!("absent:       member {}: {}\n", x.index, x.reason));
            }
            for x in &resp.disqualified {
                t.push_str(&format!("disqualified: member {}: {}\n", x.index, x.reason));
            }
            t.push_str(&format!(
                "DKG done: {} participants, {} qualified dealers, {} confirmed the group\n",
                resp.participants,
                resp.qualified.len(),
                resp.confirmed
            ));
            t.push_str(&format!("chain hash: {}\nchain info: {}\n", resp.chain_hash, resp.info_json));
            t.push_str(&format!("--- group file ---\n{}", resp.group_toml));
            if let Some(out) = &a.out {
                t.push_str(&format!("\ngroup file written to {}", out.display()));
            }
            t
        },
    );
    Ok(())
}

fn to_http(u: &str) -> Result<String> {
    Ok(conode_core::client_api::ClientUrl::parse(u)?.http_base())
}

/// HTTP base URLs of every member of a roster, in roster order.
fn http_bases_of(roster: &Roster) -> Vec<String> {
    roster.servers.iter().filter_map(|si| to_http(&crate::check::client_base(si)).ok()).collect()
}

/// HTTP base URLs to try for `--url` (a URL, or a roster file whose members are tried in order).
fn http_bases(url: &str) -> Result<Vec<String>> {
    if url.contains("://") {
        return Ok(vec![to_http(url)?]);
    }
    let roster = Roster::load(std::path::Path::new(url))
        .with_context(|| format!("--url `{url}` is neither a URL nor a roster file"))?;
    Ok(http_bases_of(&roster))
}

async fn fetch(http: &reqwest::Client, base: &str, path: &str) -> Result<String> {
    let r = http.get(format!("{base}{path}")).send().await?;
    let status = r.status();
    let body = r.text().await?;
    if !status.is_success() {
        bail!("{base}{path}: HTTP {status}: {body}");
    }
    Ok(body)
}

async fn get(a: GetArgs) -> Result<()> {
    let path = match a.which.as_str() {
        "latest" => "/public/latest".to_string(),
        n => format!(
            "/public/{}",
            n.parse::<u64>().with_context(|| format!("`{n}` is neither `latest` nor a round number"))?
        ),
    };
    let http = crate::target::http_client(Duration::from_secs(30))?;
    let bases = match (&a.url, &a.roster) {
        (Some(u), _) => http_bases(u)?,
        (None, Some(r)) => {
            let all = http_bases_of(&Roster::load(r)?);
            match a.node {
                Some(i) => vec![all.get(i).cloned().with_context(|| {
                    format!("--node {i}: the roster {} has only {} members", r.display(), all.len())
                })?],
                None => all,
            }
        }
        (None, None) => bail!("give --url or --roster"),
    };
    let mut last_err = None;
    let count = bases.len();
    for (i, base) in bases.into_iter().enumerate() {
        match get_from(&http, &base, &path, &a).await {
            Ok(()) => return Ok(()),
            Err(e) => {
                let e = crate::output::explain(&base, e).context(base.clone());
                // The last failure is printed once, by `main`; earlier ones say why the next is tried.
                if i + 1 < count {
                    progress(format!("{e:#}; trying the next member"));
                }
                last_err = Some(e);
            }
        }
    }
    Err(last_err.unwrap_or_else(|| anyhow::anyhow!("no member to ask")))
}

async fn get_from(http: &reqwest::Client, base: &str, path: &str, a: &GetArgs) -> Result<()> {
    let body = fetch(http, base, path).await?;
    let beacon = Beacon::from_drand_json(&body)?;
    let mut verified = None;
    if a.verify || a.chain_hash.is_some() {
        let info = ChainInfo::from_drand_json(&fetch(http, base, "/info").await?)?;
        if let Some(h) = &a.chain_hash {
            if !h.eq_ignore_ascii_case(&info.hash_hex()) {
                bail!("the node serves chain {}, not {h}", info.hash_hex());
            }
        }
        info.verify(&beacon).with_context(|| format!("round {} does NOT verify", beacon.round))?;
        verified = Some(format!("verified: round {} of chain {} ({})", beacon.round, info.hash_hex(), info.scheme));
    }
    // stdout is the beacon, as drand serves it (one JSON document, with or without --verify);
    // the verification note is for people (stderr).
    outln!("{}", body.trim_end());
    if let Some(v) = verified {
        progress(v);
    }
    Ok(())
}

/// `conode reset`: drops the beacon chain, group, share and DKG transcripts of this node's
/// database (the node must be stopped); private.toml and its keys stay.
pub fn reset(config: Option<PathBuf>, a: ResetArgs) -> Result<()> {
    let explicit = config.is_some();
    let path = config.unwrap_or_else(paths::default_private_toml);
    if !path.exists() {
        return Err(crate::output::missing_config(&path, explicit));
    }
    let cfg = NodeConfig::load(&path)?;
    let dir = cfg.data_dir.clone().unwrap_or_else(paths::default_data_dir);
    let id = cfg.node_id();
    let db = dir.join(format!("{id}.db"));
    if !db.exists() {
        report(serde_json::json!({"reset": false, "reason": "no database"}), || {
            format!("nothing to reset: {} does not exist", db.display())
        });
        return Ok(());
    }
    if !a.yes {
        let stdin = std::io::stdin();
        let mut out = std::io::stdout();
        if !confirm(&mut stdin.lock(), &mut out, &db)? {
            bail!("reset aborted: {} was kept", db.display());
        }
    }
    let storage = conode_core::storage::Storage::open(&dir, &id)
        .with_context(|| format!("opening {} (stop the node first)", db.display()))?;
    conode_core::services::beacon::store::reset(&storage)?;
    report(serde_json::json!({"reset": true}), || {
        format!(
            "beacon chain, group, share and DKG transcripts dropped from {}; keys kept in {}",
            db.display(),
            path.display()
        )
    });
    Ok(())
}

fn confirm(input: &mut dyn BufRead, out: &mut dyn Write, db: &std::path::Path) -> Result<bool> {
    write!(out, "This deletes the beacon chain, the group and this node's share in {}.\nThe node's keys are kept. Continue? [y/N] ", db.display())?;
    out.flush()?;
    let mut line = String::new();
    input.read_line(&mut line)?;
    Ok(matches!(line.trim(), "y" | "Y" | "yes" | "YES"))
}

/// `conode bench beacon`: one JSON line per member count and scheme with the tick-to-served latency
/// and the verification rate (pure verifier vs raw blst) of the same run.
pub fn bench(members: &[usize], rounds: usize, schemes: &[String], verifications: usize) -> Result<()> {
    for id in schemes {
        let scheme = Scheme::from_id(id).with_context(|| format!("--scheme `{id}`"))?;
        for &n in members {
            let r = conode_core::services::beacon::bench::run(n, rounds, scheme, verifications)?;
            outln!("{}", serde_json::json!({ "bench": "beacon", "members": n, "scheme": id, "result": r }));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn confirmation_defaults_to_no() {
        let db = std::path::Path::new("/x.db");
        let mut out = Vec::new();
        assert!(!confirm(&mut "\n".as_bytes(), &mut out, db).unwrap());
        assert!(!confirm(&mut "nope\n".as_bytes(), &mut out, db).unwrap());
        assert!(confirm(&mut "y\n".as_bytes(), &mut out, db).unwrap());
        assert!(String::from_utf8(out).unwrap().contains("keys are kept"));
    }

    #[test]
    fn urls_to_http() {
        assert_eq!(http_bases("ws://127.0.0.1:7771/").unwrap(), vec!["http://127.0.0.1:7771"]);
        assert_eq!(http_bases("https://example.com").unwrap(), vec!["https://example.com"]);
        assert!(http_bases("/does/not/exist.toml").is_err());
    }
}
