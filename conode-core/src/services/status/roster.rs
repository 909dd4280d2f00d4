//! The roster view of the status page: `GET /roster/status` answers, as JSON, this node's identity
//! and every roster its services know (the beacon group, the chains it follows), with each
//! member's state as this node sees it over the node port: reachable (a `Net/Ping` through the
//! transport, whose peer health says why not), latency, and the member's own summary (version,
//! uptime, its latest round or height of that roster's chain) from the peer request
//! `Status/Summary`.
//!
//! `Status/Summary` answers a `StatusResponse` (proto/status.proto) whose sections are `Generic`
//! (`version`, `uptime_s`) and one per roster view id (`beacon:<hash>`, `skipchain:<genesis>`)
//! with that view's facts. Only admitted peers can ask (strangers carry no requests).
//!
//! Probing costs a ping and a small request per member, so a probe result is shared for
//! [`PROBE_EVERY`]: a flood of page loads causes one probe per interval, not one per request.

use super::messages::{Status, StatusResponse};
use crate::config::ServerIdentity;
use crate::network::PeerMessage;
use crate::services::metrics::RosterView;
use crate::services::ServiceContext;
use prost::Message;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Peer protocol name of the summary request.
pub const SUMMARY: &str = "Summary";
/// How long one probe of the members is reused.
pub const PROBE_EVERY: Duration = Duration::from_millis(1500);
/// How long a member has to answer a ping or a summary.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// Largest summary reply read from a member.
const MAX_SUMMARY: usize = 256 * 1024;
/// Members probed at most (over all rosters).
const MAX_MEMBERS: usize = 128;

/// This node's summary, as members ask it.
pub fn summary(ctx: &ServiceContext) -> StatusResponse {
    let mut status = HashMap::new();
    let mut generic = HashMap::new();
    generic.insert("version".to_string(), crate::VERSION.to_string());
    generic.insert("uptime_s".to_string(), ctx.started.elapsed().as_secs().to_string());
    status.insert("Generic".to_string(), Status { field: generic });
    for v in ctx.status.rosters() {
        status.insert(v.id.clone(), Status { field: v.facts.into_iter().collect() });
    }
    StatusResponse { status, serveridentity: None }
}

/// Answers `Status/Summary` from a peer.
pub fn handle_peer(ctx: &ServiceContext, msg: &PeerMessage) -> Result<Vec<u8>, String> {
    if msg.protocol != SUMMARY {
        return Err(format!("unknown protocol Status/{}", msg.protocol));
    }
    Ok(summary(ctx).encode_to_vec())
}

/// What this node learnt about one member.
#[derive(Clone, Debug, Default)]
struct MemberState {
    reachable: bool,
    reason: Option<String>,
    latency_ms: Option<f64>,
    version: Option<String>,
    uptime_s: Option<u64>,
    /// View id → the member's facts for it.
    views: BTreeMap<String, BTreeMap<String, String>>,
}

async fn probe_member(ctx: &ServiceContext, member: &ServerIdentity) -> MemberState {
    let net = &ctx.network;
    let mut st = MemberState::default();
    match net.ping(member, PROBE_TIMEOUT).await {
        Ok(rtt) => {
            st.reachable = true;
            st.latency_ms = Some(rtt.as_secs_f64() * 1000.0);
        }
        Err(e) => {
            st.reason = Some(e.to_string());
            return st;
        }
    }
    match net.request(member, super::SERVICE, SUMMARY, &[], Vec::new(), PROBE_TIMEOUT).await {
        Ok(bytes) if bytes.len() <= MAX_SUMMARY => {
            if let Ok(mut r) = StatusResponse::decode(bytes.as_slice()) {
                if let Some(g) = r.status.remove("Generic") {
                    st.version = g.field.get("version").cloned();
                    st.uptime_s = g.field.get("uptime_s").and_then(|v| v.parse().ok());
                }
                st.views = r.status.into_iter().map(|(k, v)| (k, v.field.into_iter().collect())).collect();
            }
        }
        // An older member without the summary: reachable, version unknown.
        _ => {}
    }
    st
}

/// The probe results shared between requests.
#[derive(Default)]
pub struct RosterProbe {
    last: tokio::sync::Mutex<Option<(Instant, Arc<Value>)>>,
}

impl RosterProbe {
    /// The roster status, probed at most once per [`PROBE_EVERY`].
    pub async fn status(&self, ctx: &ServiceContext) -> Arc<Value> {
        let mut last = self.last.lock().await;
        if let Some((at, v)) = last.as_ref() {
            if at.elapsed() < PROBE_EVERY {
                return v.clone();
            }
        }
        let v = Arc::new(roster_status(ctx).await);
        *last = Some((Instant::now(), v.clone()));
        v
    }
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// Probes every member of every roster view and builds the JSON of `/roster/status`.
pub async fn roster_status(ctx: &ServiceContext) -> Value {
    // Not `server_identity()`: that computes proofs of possession.
    let me = ServerIdentity {
        address: ctx.config.address.clone(),
        public: ctx.config.identity.public(),
        description: ctx.config.description.clone(),
        url: ctx.config.url.clone(),
        services: BTreeMap::new(),
    };
    let views: Vec<RosterView> = ctx.status.rosters();
    let mut members: Vec<ServerIdentity> = Vec::new();
    for v in &views {
        for m in &v.members {
            if m.public != me.public && !members.iter().any(|x| x.public == m.public) && members.len() < MAX_MEMBERS {
                members.push(m.clone());
            }
        }
    }
    let probes = members.iter().map(|m| async move { (m.public, probe_member(ctx, m).await) });
    let states: HashMap<_, _> = futures_util::future::join_all(probes).await.into_iter().collect();
    let own_views: BTreeMap<String, BTreeMap<String, String>> =
        views.iter().map(|v| (v.id.clone(), v.facts.clone())).collect();
    let uptime = ctx.started.elapsed().as_secs();
    let mut activity: Vec<Value> = Vec::new();
    let rosters: Vec<Value> = views
        .iter()
        .map(|v| {
            for a in &v.activity {
                activity.push(json!({"unix_ms": a.unix_ms, "text": a.text, "roster": v.name}));
            }
            let current: Option<u64> = v.facts.get("current_round").and_then(|r| r.parse().ok());
            let members: Vec<Value> = v
                .members
                .iter()
                .enumerate()
                .map(|(i, m)| {
                    let own = m.public == me.public;
                    let st = if own {
                        MemberState {
                            reachable: true,
                            version: Some(crate::VERSION.to_string()),
                            uptime_s: Some(uptime),
                            views: own_views.clone(),
                            ..Default::default()
                        }
                    } else {
                        states.get(&m.public).cloned().unwrap_or_default()
                    };
                    let facts = st.views.get(&v.id).cloned().unwrap_or_default();
                    let round: Option<u64> = facts.get("latest_round").and_then(|r| r.parse().ok());
                    let height: Option<u64> = facts.get("height").and_then(|r| r.parse().ok());
                    let down = ctx.network.health().down(&m.public);
                    json!({
                        "index": i,
                        "public": m.public.to_hex(),
                        "id": &m.public.to_hex()[..16],
                        "address": m.address.to_string(),
                        "description": m.description,
                        "self": own,
                        "reachable": st.reachable,
                        "reason": st.reason.or(down.map(|d| d.reason)),
                        "latency_ms": st.latency_ms,
                        "version": st.version,
                        "uptime_s": st.uptime_s,
                        "latest_round": round,
                        "lag_rounds": match (current, round) { (Some(c), Some(r)) => Some(c.saturating_sub(r)), _ => None },
                        "height": height,
                    })
                })
                .collect();
            json!({"id": v.id, "name": v.name, "kind": v.kind, "facts": v.facts, "members": members})
        })
        .collect();
    activity.sort_by_key(|a| std::cmp::Reverse(a["unix_ms"].as_u64().unwrap_or(0)));
    activity.truncate(20);
    json!({
        "node": {
            "id": &me.public.to_hex()[..16],
            "public": me.public.to_hex(),
            "address": me.address.to_string(),
            "description": me.description,
            "url": me.url,
            "version": crate::VERSION,
            "uptime_s": uptime,
            "services": ctx.clients.names(),
            "peer_connections": ctx.network.connection_count(),
        },
        "generated_unix_ms": unix_ms(),
        "refresh_ms": PROBE_EVERY.as_millis() as u64,
        "rosters": rosters,
        "activity": activity,
    })
}
