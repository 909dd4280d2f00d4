//! Measures membership changes on a LocalCluster (for `conode bench membership`): a network of
//! `from` founders grows one joiner at a time to `to` nodes; for each join, the time from the
//! deciding ballot to the joiner being `PartOfNetwork`, and the time of the ballot call itself
//! (which returns once the roster block is appended). With a beacon (`--beacon`), the founders
//! first run a beacon chain (period 1 s); each roster change reshares it (the appending member
//! leads), and the time from the deciding ballot to the first round of the reshared group stored
//! at the joiner is measured too (the next join waits for that round).

use super::messages::Ballot;
use super::store::NodeState;
use crate::cluster::LocalCluster;
use std::time::{Duration, Instant};

/// One join, measured.
#[derive(Debug, Clone, serde::Serialize)]
pub struct JoinSample {
    /// Roster size before and after.
    pub from: usize,
    pub to: usize,
    /// Yes votes the join needed.
    pub votes: u32,
    /// From sending the deciding ballot to its answer (the block is appended by then).
    pub last_vote_call_ms: f64,
    /// From sending the deciding ballot to the joiner reporting `PartOfNetwork`.
    pub last_vote_to_part_of_network_ms: f64,
    /// With a beacon: the transition round of the resharing and the time from sending the
    /// deciding ballot to that round being stored at the joiner (signed by the reshared group).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transition_round: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_vote_to_reshared_round_ms: Option<f64>,
}

/// Grows a network from `from` to `to` nodes, one join at a time.
pub fn join_latency(from: usize, to: usize) -> Result<Vec<JoinSample>, String> {
    join_latency_with(from, to, false)
}

/// [`join_latency`], with a beacon chain that reshares at each join when `beacon`.
pub fn join_latency_with(from: usize, to: usize, beacon: bool) -> Result<Vec<JoinSample>, String> {
    let mut c = LocalCluster::new(from).map_err(|e| e.to_string())?;
    let ms = |i: usize, c: &LocalCluster| c.node(i).membership().map_err(|e| e.to_string());
    let net = c.create_network(0, 0).map_err(|e| e.to_string())?;
    let wait = |what: &str, f: &mut dyn FnMut() -> bool| -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !f() {
            if Instant::now() > deadline {
                return Err(format!("timed out: {what}"));
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        Ok(())
    };
    for i in 0..from {
        let m = ms(i, &c)?;
        wait("founders part of the network", &mut || m.state() == NodeState::PartOfNetwork)?;
    }
    let url = c.client_url(0).ok_or("node 0 stopped")?;
    if beacon {
        use prost::Message;
        let init = crate::services::beacon::messages::InitRequest {
            roster_toml: c.roster().to_toml(),
            period_secs: 1,
            phase_timeout_ms: 1000,
            genesis_delay_ms: 1000,
            ..Default::default()
        };
        c.approve_beacon(&init).map_err(|e| e.to_string())?;
        let call = crate::api::client::call(&url, "Beacon", "Init", init.encode_to_vec(), Duration::from_secs(60));
        c.runtime().block_on(call).map_err(|e| e.to_string())?;
        let b = c.node(0).beacon().map_err(|e| e.to_string())?;
        wait("the first beacon round", &mut || b.stats().latest_round >= 1)?;
    }
    let mut out = vec![];
    for size in from..to {
        let j = c.spawn_node().map_err(|e| e.to_string())?;
        let joiner = ms(j, &c)?;
        joiner.join(&url, &net, "", Duration::from_millis(20)).map_err(|e| e.to_string())?;
        wait("the join proposal", &mut || joiner.record().join.and_then(|r| r.proposal).is_some())?;
        let id = hex::decode(joiner.record().join.and_then(|r| r.proposal).unwrap_or_default())
            .map_err(|e| e.to_string())?;
        let needed = ms(0, &c)?.status_of(&id).needed;
        for v in 0..needed as usize {
            let m = ms(v, &c)?;
            wait("the proposal at the voter", &mut || m.status_of(&id).proposal.is_some())?;
            wait("earlier ballots at the voter", &mut || m.status_of(&id).yes == v as u32)?;
            let b = Ballot::signed(&c.node(v).config().identity, &net, &id, true);
            let start = Instant::now();
            let st = c.runtime().block_on(m.vote(b, true)).map_err(|e| e.to_string())?;
            if v + 1 == needed as usize {
                let call = start.elapsed();
                if st.state != "accepted" {
                    return Err(format!("the deciding ballot left the proposal {}: {}", st.state, st.reason));
                }
                wait("the joiner part of the network", &mut || joiner.state() == NodeState::PartOfNetwork)?;
                let part_of_network = start.elapsed();
                let (mut transition_round, mut reshared) = (None, None);
                if beacon {
                    let b = c.node(j).beacon().map_err(|e| e.to_string())?;
                    wait("the first round of the reshared group at the joiner", &mut || {
                        b.group()
                            .is_some_and(|g| g.nodes.len() == size + 1 && b.stats().latest_round >= g.first_round())
                    })?;
                    reshared = Some(start.elapsed().as_secs_f64() * 1e3);
                    transition_round = b.group().map(|g| g.first_round());
                }
                out.push(JoinSample {
                    from: size,
                    to: size + 1,
                    votes: needed,
                    last_vote_call_ms: call.as_secs_f64() * 1e3,
                    last_vote_to_part_of_network_ms: part_of_network.as_secs_f64() * 1e3,
                    transition_round,
                    last_vote_to_reshared_round_ms: reshared,
                });
            }
        }
    }
    Ok(out)
}
