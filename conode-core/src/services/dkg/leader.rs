//! The leader of a DKG (the node a client asked, `/Beacon/Init`): proposes the configuration to
//! the members, keeps those that accept, tells them to go, runs the phases itself, then collects
//! the members' results and reports which of them computed the same group.

use super::messages::{self as m, protocol as proto};
use super::phases::drive;
use super::protocol::{Disqualification, DkgError, Params};
use super::service::{scheme_key_group, DkgService, SERVICE};
use super::session::{finish_failed, lock, PREPARE_TIMEOUT_MAX};
use super::Group;
use prost::Message;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A member's answer to the leader's `Done` collection.
#[derive(Clone, Debug)]
pub struct Confirmation {
    pub index: u32,
    /// Same group hash as the leader's.
    pub agrees: bool,
    pub detail: String,
}

/// What the leader reports to the client.
#[derive(Clone, Debug)]
pub struct DkgReport {
    pub group: Group,
    pub disqualified: Vec<Disqualification>,
    /// Members that did not accept the proposal, with the reason.
    pub absent: Vec<(u32, String)>,
    pub confirmations: Vec<Confirmation>,
    pub log: Vec<String>,
}

impl DkgService {
    /// Runs a DKG as its leader: proposes `config` to its members, keeps those that accept,
    /// runs the phases and waits for the others' results.
    pub async fn run_leader(&self, mut config: m::DkgConfig) -> Result<DkgReport, DkgError> {
        let me = config
            .members
            .iter()
            .position(|mm| mm.public.as_slice() == self.inner.identity.public().as_bytes())
            .ok_or(DkgError::NotMember)? as u32;
        config.leader = me;
        if config.nonce.is_empty() {
            config.nonce = rand::random::<[u8; 16]>().to_vec();
        }
        let params = Params::new(config, scheme_key_group)?;
        let slot = self.new_slot(params, true)?;
        let p = &slot.params;
        slot.log(
            Some("prepare"),
            format!(
                "leading a DKG of {} members, threshold {}, scheme {}, period {} s; proposing",
                p.n(),
                p.threshold,
                p.config.scheme,
                p.config.period_secs
            ),
        );
        let prepare = m::Prepare { config: Some(p.config.clone()) }.encode_to_vec();
        let timeout = p.phase.min(PREPARE_TIMEOUT_MAX);
        let asks = (0..p.n() as u32).filter(|i| *i != me).filter_map(|i| {
            let si = slot.server_identity(i)?;
            let (net, body, sid) = (self.inner.network.clone(), prepare.clone(), p.session);
            Some(async move { (i, net.request(&si, SERVICE, proto::PREPARE, &sid, body, timeout).await) })
        });
        let mut participants = vec![me];
        let mut absent = Vec::new();
        for (i, answer) in futures_util::future::join_all(asks).await {
            match answer {
                Ok(_) => participants.push(i),
                Err(e) => absent.push((i, e.to_string())),
            }
        }
        participants.sort_unstable();
        absent.sort();
        for (i, why) in &absent {
            slot.log(None, format!("member {i} does not take part: {why}"));
        }
        if participants.len() < p.threshold {
            let e = DkgError::NotEnoughParticipants { have: participants.len(), need: p.threshold };
            finish_failed(&slot, &e);
            return Err(e);
        }
        slot.log(None, format!("{} of {} members take part: {:?}", participants.len(), p.n(), participants));
        if let Err(e) = lock(&slot.dkg).set_participants(&participants) {
            finish_failed(&slot, &e);
            return Err(e);
        }
        let go = m::Go { session: p.session.to_vec(), participants: participants.clone() }.encode_to_vec();
        let gos = participants.iter().copied().filter(|i| *i != me).filter_map(|i| {
            let si = slot.server_identity(i)?;
            let (net, body, sid) = (self.inner.network.clone(), go.clone(), p.session);
            Some(async move { (i, net.request(&si, SERVICE, proto::GO, &sid, body, timeout).await) })
        });
        for (i, answer) in futures_util::future::join_all(gos).await {
            if let Err(e) = answer {
                slot.log(None, format!("member {i} did not start: {e}"));
            }
        }
        slot.started.store(true, Ordering::SeqCst);
        let outcome =
            drive(slot.clone(), self.inner.network.clone(), self.tasks().clone(), Arc::downgrade(&self.inner)).await;
        let (group, disqualified) = outcome?;
        // Collect the others' results.
        let others: BTreeSet<u32> = participants.iter().copied().filter(|i| *i != me).collect();
        // Members finish at different times: wait a window (at least 2 s), and again with
        // backoff while results keep coming in.
        let window = slot.window().max(Duration::from_secs(2));
        let mut deadline = Instant::now() + window;
        let (mut retries, mut before) = (0, lock(&slot.dones).len());
        loop {
            let notified = slot.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if others.iter().all(|i| lock(&slot.dones).contains_key(i)) {
                break;
            }
            if Instant::now() >= deadline {
                let now = lock(&slot.dones).len();
                if !(now > before && super::timing::retry_again(retries, true)) {
                    break;
                }
                retries += 1;
                before = now;
                deadline = Instant::now() + super::timing::extension(window, retries);
            }
            tokio::select! {
                _ = &mut notified => {}
                _ = tokio::time::sleep_until(deadline.into()) => {}
            }
        }
        let confirmations = confirmations(&others, &lock(&slot.dones).clone(), &group.genesis_seed());
        let agreeing = confirmations.iter().filter(|c| c.agrees).count() + 1;
        slot.log(Some("done"), format!("{agreeing} of {} participants confirmed the same group", participants.len()));
        let log = lock(&slot.status).log.clone();
        Ok(DkgReport { group, disqualified, absent, confirmations, log })
    }
}

/// What each of the `others` reported (`dones`, by index), against the leader's group seed.
fn confirmations(others: &BTreeSet<u32>, dones: &BTreeMap<u32, m::Done>, seed: &[u8; 32]) -> Vec<Confirmation> {
    others
        .iter()
        .map(|i| match dones.get(i) {
            Some(d) if d.group_hash.as_slice() == seed.as_slice() => {
                Confirmation { index: *i, agrees: true, detail: "same group".into() }
            }
            Some(d) if !d.error.is_empty() => {
                Confirmation { index: *i, agrees: false, detail: format!("failed: {}", d.error) }
            }
            Some(_) => Confirmation { index: *i, agrees: false, detail: "computed a different group".into() },
            None => Confirmation { index: *i, agrees: false, detail: "no result in time".into() },
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn confirmations_tell_agreeing_failed_different_and_missing_members_apart() {
        let seed = [3u8; 32];
        let done = |from: u32, hash: &[u8], error: &str| m::Done {
            session: vec![1; 32],
            from,
            group_hash: hash.to_vec(),
            error: error.into(),
        };
        let dones = BTreeMap::from([
            (1, done(1, &seed, "")),
            (2, done(2, &[], "not enough deals")),
            (3, done(3, &[4u8; 32], "")),
            // Not a participant the leader waits for: ignored.
            (9, done(9, &seed, "")),
        ]);
        let others = BTreeSet::from([1, 2, 3, 4]);
        let c = confirmations(&others, &dones, &seed);
        let got: Vec<(u32, bool, &str)> = c.iter().map(|c| (c.index, c.agrees, c.detail.as_str())).collect();
        assert_eq!(
            got,
            vec![
                (1, true, "same group"),
                (2, false, "failed: not enough deals"),
                (3, false, "computed a different group"),
                (4, false, "no result in time"),
            ]
        );
    }
}
