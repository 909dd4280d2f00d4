//! The operator's JSON routes of the client port: `/node/state`, `/node/network`,
//! `/node/network/nodes` and `/node/proposals`. Public data only (the chain is public anyway).

use super::messages::describe;
use super::rules;
use super::service::MembershipService;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde_json::json;

fn json_response(v: serde_json::Value) -> Response {
    (StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], v.to_string()).into_response()
}

pub fn state_json(s: &MembershipService) -> serde_json::Value {
    let r = s.record();
    json!({
        "node_id": s.node_id(),
        "state": r.state.as_str(),
        "network": r.network,
        "network_index": s.latest().map(|(b, _)| b.index),
        "open_proposals": s.open_count(),
        "since_ms": r.since_ms,
        "started_ms": s.started_ms(),
        "join": r.join,
        "founding": r.founding,
        "recovery": s.recovery(),
    })
}

pub fn network_json(s: &MembershipService) -> serde_json::Value {
    match s.latest() {
        None => json!({ "network": null }),
        Some((b, cfg)) => json!({
            "network": hex::encode(b.chain_id()),
            "index": b.index,
            "roster_size": b.roster.as_ref().map(|r| r.members.len()).unwrap_or(0),
            "members": cfg.members.iter().map(hex::encode).collect::<Vec<_>>(),
            "members_follow_roster": cfg.members_follow_roster,
            "threshold": rules::needed(&cfg),
            "threshold_rule": if cfg.threshold == 0 { "more than two thirds".to_string() } else { cfg.threshold.to_string() },
            "node_data": cfg.node_data.iter().map(|d| json!({
                "public": hex::encode(&d.identity),
                "node_data": serde_json::from_str::<serde_json::Value>(&d.json).ok(),
            })).collect::<Vec<_>>(),
        }),
    }
}

pub fn proposals_json(s: &MembershipService) -> serde_json::Value {
    let list: Vec<serde_json::Value> = s
        .proposals()
        .into_iter()
        .map(|p| {
            let proposal = p.proposal.unwrap_or_default();
            json!({
                "id": hex::encode(&p.id),
                "action": describe(proposal.action.as_ref()),
                "proposer": hex::encode(&proposal.proposer),
                "created_ms": proposal.created,
                "state": p.state,
                "yes": p.yes,
                "no": p.no,
                "needed": p.needed,
                "members": p.members,
                "reason": p.reason,
            })
        })
        .collect();
    serde_json::Value::Array(list)
}

pub fn router(svc: MembershipService) -> Router {
    let (s1, s2, s3, s4) = (svc.clone(), svc.clone(), svc.clone(), svc);
    Router::new()
        .route("/node/state", get(move || async move { json_response(state_json(&s1)) }))
        .route("/node/network", get(move || async move { json_response(network_json(&s2)) }))
        .route("/node/network/nodes", get(move || async move { json_response(s3.nodes_json()) }))
        .route("/node/proposals", get(move || async move { json_response(proposals_json(&s4)) }))
}
