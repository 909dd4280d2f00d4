//! The phases of a DKG at one participant, leader or not: deals (point to point), responses
//! (broadcast and echoed), justifications for "no deal" complaints, each ending at its deadline or
//! as soon as every expected message is in (deadlines and retries: `timing`; deals are checked in
//! one batch at the end of the deal phase: `batch`); then the result is finalized, handed over to the
//! completion hooks (the beacon service), its transcript stored, and `Done` sent to the leader.

use super::group::GroupNode;
use super::messages::{self as m, protocol as proto};
use super::protocol::{Disqualification, DkgError};
use super::protocol::{Dkg, MIN_PHASE};
use super::service::{DkgOutput, Inner, SERVICE};
use super::session::{finish_failed, lock, Slot};
use super::timing::{self, Timing};
use super::Group;
use crate::config::ServerIdentity;
use crate::network::Network;
use crate::services::Tasks;
use crate::storage::ServiceTree;
use crate::verify::beacon::Scheme;
use prost::Message;
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock, Weak};
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;
use tracing::{debug, warn};

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
    if slot.faults.mute {
        return;
    }
    let targets: Vec<u32> = lock(&slot.dkg)
        .participants()
        .iter()
        .copied()
        .filter(|i| *i != slot.me && *i != origin && slot.params.members.get(*i as usize) != Some(via))
        .collect();
    broadcast(slot, network, tasks, protocol, payload, &targets);
}

/// Sends `payload` to each of `targets`, each retried with backoff until it is acknowledged or
/// the phase is over (see [`send_retrying`]).
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
        let (net, body, slot2) = (network.clone(), payload.clone(), slot.clone());
        tasks.spawn(async move { send_retrying(&slot2, &net, &si, i, protocol, body, Duration::ZERO).await });
    }
}

/// One message to member `to`, first after `delay`; a failed or unanswered send is retried with
/// backoff ([`timing::send_backoff`]) until this session's give-up time (the current phase window
/// and its retries). Returns whether it was acknowledged.
async fn send_retrying(
    slot: &Slot,
    net: &Network,
    si: &ServerIdentity,
    to: u32,
    protocol: &'static str,
    body: Vec<u8>,
    delay: Duration,
) -> bool {
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let started = Instant::now();
    let mut attempt = 0u32;
    loop {
        let window = slot.window();
        let give_up = started + slot.timing().give_up_after(window);
        let timeout = window.min(give_up.saturating_duration_since(Instant::now())).max(MIN_PHASE);
        match net.request(si, SERVICE, protocol, &slot.params.session, body.clone(), timeout).await {
            Ok(_) => return true,
            Err(e) => {
                attempt += 1;
                let pause = timing::send_backoff(attempt);
                if Instant::now() + pause >= give_up {
                    warn!(to, %protocol, attempts = attempt, error = %e, "DKG: message not delivered; giving up");
                    return false;
                }
                debug!(to, %protocol, attempt, error = %e, "DKG: send failed; retrying");
                tokio::time::sleep(pause).await;
            }
        }
    }
}

/// The process-wide gate for the DKG's heavy work (decoding and checking deals): at most one
/// check per core runs at a time. It belongs to the machine, not to a node: with many members in
/// one process (LocalCluster, benchmarks) unbounded checks on the blocking pool would starve the
/// runtime threads that carry the messages, and their requests would time out.
fn cpu_gate() -> &'static Semaphore {
    static GATE: OnceLock<Semaphore> = OnceLock::new();
    GATE.get_or_init(|| Semaphore::new(std::thread::available_parallelism().map(|c| c.get()).unwrap_or(1)))
}

/// Runs `f` on the blocking pool behind the [`cpu_gate`]; returns its result and how long it
/// ran (not counting the wait for the gate).
async fn heavy<T: Send + 'static>(
    tasks: &Tasks,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<(T, Duration), DkgError> {
    let _permit = cpu_gate().acquire().await.map_err(|_| DkgError::Failed("CPU gate closed".into()))?;
    let t = Instant::now();
    let out = tasks.spawn_blocking(f).await.map_err(|e| DkgError::Failed(format!("deal check: {e}")))?;
    Ok((out, t.elapsed()))
}

/// Waits until `done` holds: a first `window`, then further windows with backoff
/// ([`timing::extension`]) while [`timing::retry_again`] says so (`count` tells progress).
/// Returns whether `done` holds.
async fn wait_phase(
    slot: &Slot,
    what: &str,
    window: Duration,
    done: impl Fn(&Dkg) -> bool,
    count: impl Fn(&Dkg) -> usize,
) -> bool {
    let mut deadline = Instant::now() + window;
    let mut retries = 0;
    let mut before = count(&lock(&slot.dkg));
    loop {
        if slot.wait_until(deadline, &done).await {
            return true;
        }
        let now = count(&lock(&slot.dkg));
        if !timing::retry_again(retries, now > before) {
            slot.log(
                None,
                format!("{what}: {now} in after {} windows; going on without the missing ones", retries + 1),
            );
            return false;
        }
        retries += 1;
        before = now;
        let more = timing::extension(window, retries);
        slot.log(
            None,
            format!("{what}: {now} in at the deadline; retry {retries}: waiting {} ms more", more.as_millis()),
        );
        deadline = Instant::now() + more;
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
    if leader != slot.me && !slot.faults.mute {
        if let Some(si) = slot.server_identity(leader) {
            if !send_retrying(&slot, &network, &si, leader, proto::DONE, done.encode_to_vec(), Duration::ZERO).await {
                warn!("DKG: could not report the result to the leader");
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
    let participants: Vec<u32> = lock(&slot.dkg).participants().iter().copied().collect();
    let others: Vec<u32> = participants.iter().copied().filter(|i| *i != slot.me).collect();
    let timing = Timing::new(p.phase, participants.len());
    slot.set_timing(timing);
    // A muted member (fault injection) takes part but sends nothing.
    let send_to = if slot.faults.mute { Vec::new() } else { others.clone() };

    // Phase 1: deals, point to point.
    let Some(inner) = weak.upgrade() else { return Err(DkgError::Failed("the DKG service stopped".into())) };
    inner
        .tree
        .put_async(&super::session::dealt_key(&p.session), b"")
        .await
        .map_err(|e| DkgError::Failed(format!("could not record the deal durably: {e}")))?;
    drop(inner);
    let t = Instant::now();
    let deals = lock(&slot.dkg).deals();
    let deal_window = timing.window(t.elapsed());
    slot.set_window(deal_window);
    slot.log(
        Some("deal"),
        format!(
            "phase 1/3 (deal): dealing shares to {} participants; waiting up to {} ms for theirs",
            others.len(),
            deal_window.as_millis()
        ),
    );
    for deal in deals.into_iter().filter(|d| send_to.contains(&d.recipient)) {
        let Some(si) = slot.server_identity(deal.recipient) else { continue };
        let (net, slot2, to, delay) = (network.clone(), slot.clone(), deal.recipient, slot.faults.deal_delay);
        let body = deal.encode_to_vec();
        tasks.spawn(async move { send_retrying(&slot2, &net, &si, to, proto::DEAL, body, delay).await });
    }
    wait_phase(slot, "deal phase", deal_window, |d| d.have_all_deals(), |d| d.deals_count()).await;
    if weak.strong_count() == 0 || tasks.is_cancelled() {
        return Err(DkgError::Failed("node stopped".into()));
    }

    // Check every deal received in one batch, away from the lock and the runtime's threads.
    let batch = lock(&slot.dkg).take_unchecked();
    let received = batch.len();
    let (checked, cost) = heavy(tasks, move || batch.check()).await?;
    for (dealer, reason) in checked.bad() {
        slot.log(None, format!("bad deal from member {dealer}: {reason}"));
    }
    lock(&slot.dkg).apply_checked(checked);
    let window = timing.window(cost);
    slot.set_window(window);

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
            "phase 2/3 (response): {} of {} deals valid (checked {received} in {} ms){}; waiting up to {} ms",
            others.len() - complaints.len(),
            others.len(),
            cost.as_millis(),
            if complaints.is_empty() { String::new() } else { format!("; complaints: {}", complaints.join(", ")) },
            window.as_millis()
        ),
    );
    broadcast(slot, network, tasks, proto::RESPONSES, responses.encode_to_vec(), &send_to);
    wait_phase(slot, "response phase", window, |d| d.have_all_responses(), |d| d.responses_count()).await;
    if weak.strong_count() == 0 || tasks.is_cancelled() {
        return Err(DkgError::Failed("node stopped".into()));
    }

    // Phase 3: justifications for "no deal" complaints, if any.
    let ev = lock(&slot.dkg).evaluate();
    let mut answered = 0usize;
    if let Some(j) = lock(&slot.dkg).make_justification(&ev) {
        answered = j.shares.len();
        broadcast(slot, network, tasks, proto::JUSTIFICATION, j.encode_to_vec(), &send_to);
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
        let mut deadline = Instant::now() + window;
        let (mut retries, mut before) = (0, lock(&slot.dkg).justifications_count());
        loop {
            let notified = slot.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let (complete, j, count) = {
                let d = lock(&slot.dkg);
                let ev = d.evaluate();
                (d.justifications_complete(&ev), d.make_justification(&ev), d.justifications_count())
            };
            if let Some(j) = j {
                if j.shares.len() > answered {
                    answered = j.shares.len();
                    broadcast(slot, network, tasks, proto::JUSTIFICATION, j.encode_to_vec(), &send_to);
                }
            }
            if complete {
                break;
            }
            if Instant::now() >= deadline {
                if !timing::retry_again(retries, count > before) {
                    break;
                }
                retries += 1;
                before = count;
                let more = timing::extension(window, retries);
                slot.log(None, format!("justification phase: retry {retries}: waiting {} ms more", more.as_millis()));
                deadline = Instant::now() + more;
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
