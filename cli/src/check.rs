//! `conode check <roster.toml>`: connects to every member over pinned TLS (its key must match the
//! roster) and over its client port (status must name the same key); a table of the members (or
//! JSON with `--json`), non-zero exit if any node fails.

use crate::output::report;
use anyhow::{bail, Result};
use conode_core::config::{AddressOverrides, Roster, ServerIdentity};
use conode_core::crypto::IdentityKeyPair;
use conode_core::network::{NetSettings, Network};
use conode_core::services::status::messages::{public_of, StatusRequest, StatusResponse};
use prost::Message;
use std::path::PathBuf;
use std::time::Duration;

#[derive(clap::Args)]
pub struct CheckArgs {
    /// Roster file (concatenated public.toml entries).
    roster: PathBuf,
    /// Seconds allowed per node and channel.
    #[arg(long, default_value_t = 10.0)]
    timeout: f64,
}

/// Result of checking one member.
pub struct NodeCheck {
    pub index: usize,
    pub member: ServerIdentity,
    pub tls: Result<Duration, String>,
    pub client: Result<Duration, String>,
}

/// The client-port URL of a member: its `URL` if set (http→ws), else ws://host:port+1.
pub fn client_base(si: &ServerIdentity) -> String {
    match si.client_url() {
        Ok(u) => u.ws_base(),
        // An unusable published URL: the port next to the node port (the call then says why).
        Err(_) => format!("ws://{}", si.address.client_host_port()),
    }
}

async fn check_client(si: &ServerIdentity, timeout: Duration) -> Result<Duration, String> {
    let start = std::time::Instant::now();
    let base = client_base(si);
    let reply = match crate::target::call(&base, "Status", "Request", StatusRequest {}.encode_to_vec(), timeout).await {
        Ok(r) => r,
        Err(e) => {
            let e = anyhow::Error::from(e);
            let base2 = base.clone();
            let hint = tokio::task::spawn_blocking(move || crate::output::node_port_hint(&base2)).await.ok().flatten();
            return Err(match hint {
                Some(h) => format!("{e}: {h}"),
                None => e.to_string(),
            });
        }
    };
    let resp = StatusResponse::decode(reply.as_slice()).map_err(|e| format!("undecodable status reply: {e}"))?;
    let rsi = resp.serveridentity.ok_or("status reply without ServerIdentity")?;
    let key = public_of(&rsi)?;
    if key != si.public {
        return Err(format!("client port answers with key {key}, roster says {}", si.public));
    }
    Ok(start.elapsed())
}

/// Checks every member concurrently.
pub async fn check_roster(roster: &Roster, timeout: Duration) -> Result<Vec<NodeCheck>> {
    // The transport's connections run in this set; they are cancelled once every member is checked.
    let links = conode_core::services::Tasks::new();
    let settings = NetSettings { dial_timeout: timeout, handshake_timeout: timeout, ..NetSettings::default() };
    // A throwaway identity: the check is a client, not a roster member.
    let net = Network::new(IdentityKeyPair::generate(), settings, AddressOverrides::default(), links.clone())?;
    let mut tasks = Vec::new();
    for (index, member) in roster.servers.iter().cloned().enumerate() {
        let net = net.clone();
        tasks.push(tokio::spawn(async move {
            let tls = net.ping(&member, timeout).await.map_err(|e| e.to_string());
            let client = check_client(&member, timeout).await;
            NodeCheck { index, member, tls, client }
        }));
    }
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await?);
    }
    links.token().cancel();
    Ok(out)
}

pub fn run(args: CheckArgs) -> Result<()> {
    let roster = Roster::load(&args.roster)?;
    let timeout = Duration::from_secs_f64(args.timeout.max(0.1));
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let results = rt.block_on(check_roster(&roster, timeout))?;
    let failed = results.iter().filter(|r| r.tls.is_err() || r.client.is_err()).count();
    let ms = |r: &Result<Duration, String>| r.as_ref().ok().map(|d| (d.as_secs_f64() * 1e4).round() / 10.0);
    let why = |r: &Result<Duration, String>| r.as_ref().err().cloned();
    report(
        serde_json::json!({
            "ok": failed == 0,
            "members": results.len(),
            "failed": failed,
            "results": results.iter().map(|r| serde_json::json!({
                "index": r.index,
                "address": r.member.address.to_string(),
                "public": r.member.public.to_hex(),
                "description": r.member.description,
                "ok": r.tls.is_ok() && r.client.is_ok(),
                "tls_ms": ms(&r.tls),
                "tls_error": why(&r.tls),
                "client_ms": ms(&r.client),
                "client_error": why(&r.client),
            })).collect::<Vec<_>>(),
        }),
        || table(&results),
    );
    if failed > 0 {
        bail!("{failed} of {} nodes failed the check", results.len());
    }
    Ok(())
}

/// The results as a table: one row per member (`ok`/`FAIL` first), failures explained below it.
fn table(results: &[NodeCheck]) -> String {
    let cell = |r: &Result<Duration, String>| match r {
        Ok(d) => format!("{:.1} ms", d.as_secs_f64() * 1e3),
        Err(_) => "failed".to_string(),
    };
    let rows: Vec<[String; 7]> = results
        .iter()
        .map(|r| {
            let ok = r.tls.is_ok() && r.client.is_ok();
            [
                if ok { "ok" } else { "FAIL" }.to_string(),
                format!("#{}", r.index),
                r.member.address.to_string(),
                r.member.public.to_hex()[..16].to_string(),
                r.member.description.clone(),
                cell(&r.tls),
                cell(&r.client),
            ]
        })
        .collect();
    let head = ["", "#", "address", "id", "description", "tls", "client port"].map(String::from);
    let mut widths = [0usize; 7];
    for row in std::iter::once(&head).chain(rows.iter()) {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |row: &[String; 7]| {
        let cells: Vec<String> = row.iter().zip(widths).map(|(c, w)| format!("{c:<w$}")).collect();
        cells.join("  ").trim_end().to_string()
    };
    let mut out = vec![line(&head)];
    out.extend(rows.iter().map(line));
    for r in results {
        for (what, res) in [("tls", &r.tls), ("client port", &r.client)] {
            if let Err(e) = res {
                out.push(format!("  #{} {what}: {e}", r.index));
            }
        }
    }
    let failed = rows.iter().filter(|r| r[0] == "FAIL").count();
    out.push(if failed == 0 {
        format!("all {} nodes ok", results.len())
    } else {
        format!("{failed} of {} nodes failed", results.len())
    });
    out.join("\n")
}
