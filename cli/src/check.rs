//! `conode check <roster.toml>`: connects to every member over pinned TLS (its key must match the
//! roster) and over its client port (status must name the same key); one line per node, non-zero
//! exit if any node fails.

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
    let reply = crate::target::call(&client_base(si), "Status", "Request", StatusRequest {}.encode_to_vec(), timeout)
        .await
        .map_err(|e| e.to_string())?;
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
    let mut failed = 0;
    for r in &results {
        let name =
            format!("#{} {} {} ({})", r.index, r.member.address, &r.member.public.to_hex()[..16], r.member.description);
        match (&r.tls, &r.client) {
            (Ok(t), Ok(c)) => println!(
                "ok    {name}: tls {:.1} ms, client port {:.1} ms",
                t.as_secs_f64() * 1e3,
                c.as_secs_f64() * 1e3
            ),
            _ => {
                failed += 1;
                let mut why = Vec::new();
                if let Err(e) = &r.tls {
                    why.push(format!("tls: {e}"));
                }
                if let Err(e) = &r.client {
                    why.push(format!("client port: {e}"));
                }
                println!("FAIL  {name}: {}", why.join("; "));
            }
        }
    }
    if failed > 0 {
        bail!("{failed} of {} nodes failed the check", results.len());
    }
    println!("all {} nodes ok", results.len());
    Ok(())
}
