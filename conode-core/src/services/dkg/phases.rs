//! The phases of a DKG at one participant, leader or not: deals (point to point), responses
//! (broadcast and echoed), justifications for "no deal" complaints, each ending at its deadline or
//! as soon as every expected message is in; then the result is finalized, handed over to the
//! completion hooks (the beacon service), its transcript stored, and `Done` sent to the leader.

use super::group::GroupNode;
use super::messages::{self as m, protocol as proto};
use super::protocol::{Disqualification, DkgError};
use super::service::{DkgOutput, Inner, SERVICE};
use super::session::{finish_failed, lock, Slot};
use super::Group;
use crate::network::Network;
use crate::services::Tasks;
use crate::storage::ServiceTree;
use crate::verify::beacon::Scheme;
use prost::Message;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Instant;
use tracing::warn;

/// Forwards a signed broadcast message once to every participant that may not have it.
pub(super) fn echo(
    slot: &Arc<Slot>,
    network: &Network,
    tasks: &Tasks,
    protocol: &'static str,
    payload: Vec<u8>,
    origin: u32,
    via: &crate::crypto::IdentityPublicKey,
) {
    let targets: Vec<u32> = lock(&slot.dkg)
        .participants()
        .iter()
        .copied()
        .filter(|i| *i != slot.me && *i != origin && slot.params.members.get(*i as usize) != Some(via))
        .collect();
    broadcast(slot, network, tasks, protocol, payload, &targets);
}

fn broadcast(
    slot: &Arc<Slot>,
    network: &Network,
    tasks: &Tasks,
    protocol: &'static str,
    payload: Vec<u8>,
    targets: &[u32],
) {
    for &i in targets {
        let Some(si) = slot.server_identity(i) else { continue };
        let (net, body, sid, timeout) = (network.clone(), payload.clone(), slot.params.session, slot.params.phase);
        tasks.spawn(async move {
            if let Err(e) = net.request(&si, SERVICE, protocol, &sid, body, timeout).await {
                tracing::debug!(to = i, %protocol, error = %e, "DKG: send failed");
            }
        });
    }
}

/// Runs the three phases at this node and hands the result over. Returns the group and the
/// disqualifications.
pub(super) async fn drive(
    slot: Arc<Slot>,
    network: Network,
    tasks: Tasks,
    weak: Weak<Inner>,
) -> Result<(Group, Vec<Disqualification>), DkgError> {
    let result = drive_inner(&slot, &network, &tasks, &weak).await;
    let done = match &result {
        Ok((g, _)) => m::Done {
            session: slot.params.session.to_vec(),
            from: slot.me,
            group_hash: g.genesis_seed().to_vec(),
            error: String::new(),
        },
        Err(e) => {
            finish_failed(&slot, e);
            m::Done {
                session: slot.params.session.to_vec(),
                from: slot.me,
                group_hash: Vec::new(),
                error: e.to_string(),
            }
        }
    };
    if result.is_ok() {
        slot.finished.store(true, Ordering::SeqCst);
        lock(&slot.status).finished = true;
    }
    let leader = slot.params.config.leader;
    if leader != slot.me {
        if let Some(si) = slot.server_identity(leader) {
            if let Err(e) = network
                .request(&si, SERVICE, proto::DONE, &slot.params.session, done.encode_to_vec(), slot.params.phase)
                .await
            {
                warn!(error = %e, "DKG: could not report the result to the leader");
            }
        }
    }
    result
}

async fn drive_inner(
    slot: &Arc<Slot>,
    network: &Network,
    tasks: &Tasks,
    weak: &Weak<Inner>,
) -> Result<(Group, Vec<Disqualification>), DkgError> {
    let p = &slot.params;
    let phase = p.phase;
    let start = Instant::now();
    let participants: Vec<u32> = lock(&slot.dkg).participants().iter().copied().collect();
    let others: Vec<u32> = participants.iter().copied().filter(|i| *i != slot.me).collect();

    // Phase 1: deals, point to point.
    slot.log(Some("deal"), format!("phase 1/3 (deal): dealing shares to {} participants", others.len()));
    let Some(inner) = weak.upgrade() else { return Err(DkgError::Failed("the DKG service stopped".into())) };
    inner
        .tree
        .put_async(&super::session::dealt_key(&p.session), b"")
        .await
        .map_err(|e| DkgError::Failed(format!("could not record the deal durably: {e}")))?;
    drop(inner);
    let deals = lock(&slot.dkg).deals();
    for deal in deals {
        let Some(si) = slot.server_identity(deal.recipient) else { continue };
        let (net, sid, to) = (network.clone(), p.session, deal.recipient);
        let body = deal.encode_to_vec();
        tasks.spawn(async move {
            if let Err(e) = net.request(&si, SERVICE, proto::DEAL, &sid, body, phase).await {
                warn!(to, error = %e, "DKG: deal not delivered");
            }
        });
    }
    slot.wait_until(start + phase, |d| d.have_all_deals()).await;
    if weak.strong_count() == 0 || tasks.is_cancelled() {
        return Err(DkgError::Failed("node stopped".into()));
    }

    // Phase 2: responses, broadcast and echoed.
    let responses = lock(&slot.dkg).make_responses();
    let complaints: Vec<String> = responses
        .entries
        .iter()
        .filter(|e| e.status != m::status::APPROVE)
        .map(|e| {
            format!(
                "{} against member {}",
                if e.status == m::status::BAD_DEAL { "bad deal" } else { "no deal" },
                e.dealer
            )
        })
        .collect();
    slot.log(
        Some("response"),
        format!(
            "phase 2/3 (response): {} of {} deals valid{}",
            others.len() - complaints.len(),
            others.len(),
            if complaints.is_empty() { String::new() } else { format!("; complaints: {}", complaints.join(", ")) }
        ),
    );
    broadcast(slot, network, tasks, proto::RESPONSES, responses.encode_to_vec(), &others);
    slot.wait_until(start + 2 * phase, |d| d.have_all_responses()).await;
    if weak.strong_count() == 0 || tasks.is_cancelled() {
        return Err(DkgError::Failed("node stopped".into()));
    }

    // Phase 3: justifications for "no deal" complaints, if any.
    let ev = lock(&slot.dkg).evaluate();
    let mut answered = 0usize;
    if let Some(j) = lock(&slot.dkg).make_justification(&ev) {
        answered = j.shares.len();
        broadcast(slot, network, tasks, proto::JUSTIFICATION, j.encode_to_vec(), &others);
    }
    slot.log(
        Some("justification"),
        format!(
            "phase 3/3 (justification): {} responses, {} dealers disqualified, {} with complaints to answer",
            lock(&slot.dkg).responses_count(),
            ev.disqualified.len(),
            ev.pending.len()
        ),
    );
    if !ev.pending.is_empty() {
        let deadline = start + 3 * phase;
        loop {
            let notified = slot.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let (complete, j) = {
                let d = lock(&slot.dkg);
                let ev = d.evaluate();
                (d.justifications_complete(&ev), d.make_justification(&ev))
            };
            if let Some(j) = j {
                if j.shares.len() > answered {
                    answered = j.shares.len();
                    broadcast(slot, network, tasks, proto::JUSTIFICATION, j.encode_to_vec(), &others);
                }
            }
            if complete || Instant::now() >= deadline {
                break;
            }
            tokio::select! {
                _ = &mut notified => {}
                _ = tokio::time::sleep_until(deadline.into()) => {}
            }
        }
    }

    let result = lock(&slot.dkg).finalize()?;
    for d in &result.disqualified {
        slot.log(
            None,
            format!("member {} disqualified as dealer: {} ({} evidence items)", d.dealer, d.reason, d.evidence.len()),
        );
    }
    let nodes: Vec<GroupNode> = participants
        .iter()
        .map(|&i| GroupNode {
            index: i,
            public: p.members[i as usize],
            address: p.addresses[i as usize].clone(),
            description: p.config.members[i as usize].description.clone(),
        })
        .collect();
    let scheme = Scheme::from_id(&p.config.scheme).map_err(|e| DkgError::Config(e.to_string()))?;
    let group = Group {
        scheme,
        beacon_id: p.config.beacon_id.clone(),
        period: p.config.period_secs,
        genesis_time: p.config.genesis_time,
        threshold: p.threshold as u32,
        nodes,
        qualified: result.qualified.clone(),
        public_poly: result.group_poly.clone(),
        session: p.session,
        reshare: None,
    };
    let out = DkgOutput {
        group: group.clone(),
        index: result.index,
        share: result.share,
        disqualified: result.disqualified.clone(),
    };
    let inner = weak.upgrade().ok_or_else(|| DkgError::Failed("node stopped".into()))?;
    let hooks = inner.hooks.read().unwrap_or_else(|p| p.into_inner()).clone();
    for h in hooks {
        h(&out).map_err(DkgError::Failed)?;
    }
    save_transcript(&inner.tree, &group, &result.disqualified);
    drop(inner);
    slot.log(
        Some("done"),
        format!(
            "done: {} qualified dealers, group key {}…, chain hash {}",
            group.qualified.len(),
            &hex::encode(group.public_key())[..16],
            group.chain_info().hash_hex()
        ),
    );
    Ok((group, result.disqualified))
}

/// Keeps the public outcome (group file, disqualifications with evidence) for inspection.
fn save_transcript(tree: &ServiceTree, group: &Group, disq: &[Disqualification]) {
    let record = serde_json::json!({
        "group": group.to_toml(),
        "disqualified": disq.iter().map(|d| serde_json::json!({
            "dealer": d.dealer,
            "reason": d.reason,
            "evidence": d.evidence.iter().map(hex::encode).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    });
    let key = format!("session/{}", hex::encode(group.session));
    if let Err(e) = tree.put(key.as_bytes(), record.to_string().as_bytes()) {
        warn!(error = %e, "DKG: could not store the transcript");
    }
}
