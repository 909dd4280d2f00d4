//! The `Dkg` peer protocol on a member: the leader's proposal (`Prepare`) and start (`Go`), the
//! deals, responses and justifications of the other participants (responses and justifications
//! are echoed once so every honest member sees the same complaints), and, on the leader, the
//! members' results (`Done`).

use super::messages::{self as m, protocol as proto};
use super::phases::{drive, echo};
use super::protocol::{DkgError, Params};
use super::service::{scheme_key_group, DkgService};
use super::session::{lock, PREPARE_TIMEOUT_MAX};
use crate::network::PeerMessage;
use prost::Message;
use std::sync::atomic::Ordering;
use std::sync::Arc;

impl DkgService {
    /// Answers a message of the `Dkg` peer protocol.
    pub(super) async fn handle(&self, msg: PeerMessage) -> Result<Vec<u8>, DkgError> {
        let from = msg.from;
        let bad = |e: prost::DecodeError| DkgError::Malformed(from.to_hex()[..16].to_string(), e.to_string());
        let ack = m::Ack {}.encode_to_vec();
        match msg.protocol.as_str() {
            proto::PREPARE => {
                let p = m::Prepare::decode(msg.payload.as_slice()).map_err(bad)?;
                let config = p.config.ok_or_else(|| DkgError::Config("no configuration".into()))?;
                let params = Params::new(config, scheme_key_group)?;
                if params.members.get(params.config.leader as usize) != Some(&from) {
                    return Err(DkgError::Config("proposal not sent by its leader".into()));
                }
                if self.slot_for(&params.session).is_ok() {
                    return Ok(ack);
                }
                let slot = self.new_slot(params, false)?;
                slot.log(
                    Some("prepare"),
                    format!(
                        "accepted the proposal of member {} ({} members, threshold {}, {})",
                        slot.params.config.leader,
                        slot.params.n(),
                        slot.params.threshold,
                        slot.params.config.scheme
                    ),
                );
                // Forget the session if the leader never says go.
                let weak = Arc::downgrade(&slot);
                let wait = 2 * slot.params.phase + PREPARE_TIMEOUT_MAX;
                self.tasks().spawn(async move {
                    tokio::time::sleep(wait).await;
                    if let Some(s) = weak.upgrade() {
                        if !s.started.load(Ordering::SeqCst) && !s.finished.swap(true, Ordering::SeqCst) {
                            s.log(Some("failed"), "the leader never started the DKG; session dropped".into());
                            lock(&s.status).error = Some("leader never started".into());
                            lock(&s.status).finished = true;
                        }
                    }
                });
                Ok(ack)
            }
            proto::GO => {
                let go = m::Go::decode(msg.payload.as_slice()).map_err(bad)?;
                let slot = self.slot_for(&go.session)?;
                if slot.params.members.get(slot.params.config.leader as usize) != Some(&from) {
                    return Err(DkgError::Config("go not sent by the leader".into()));
                }
                if go.participants.len() > m::MAX_MEMBERS {
                    return Err(DkgError::Malformed("leader".into(), "participants".into()));
                }
                lock(&slot.dkg).set_participants(&go.participants)?;
                if !slot.started.swap(true, Ordering::SeqCst) {
                    let (net, weak, tasks) =
                        (self.inner.network.clone(), Arc::downgrade(&self.inner), self.tasks().clone());
                    self.tasks().spawn(async move {
                        let _ = drive(slot, net, tasks, weak).await;
                    });
                }
                Ok(ack)
            }
            proto::DEAL => {
                let deal = m::Deal::decode(msg.payload.as_slice()).map_err(bad)?;
                let slot = self.slot_for(&deal.session)?;
                lock(&slot.dkg).receive_deal(&from, deal)?;
                slot.notify.notify_waiters();
                Ok(ack)
            }
            proto::RESPONSES => {
                let r = m::Responses::decode(msg.payload.as_slice()).map_err(bad)?;
                let slot = self.slot_for(&r.session)?;
                let origin = r.from;
                let new = lock(&slot.dkg).receive_responses(r)?;
                slot.notify.notify_waiters();
                if new {
                    echo(&slot, &self.inner.network, self.tasks(), proto::RESPONSES, msg.payload, origin, &from);
                }
                Ok(ack)
            }
            proto::JUSTIFICATION => {
                let j = m::Justification::decode(msg.payload.as_slice()).map_err(bad)?;
                let slot = self.slot_for(&j.session)?;
                let origin = j.dealer;
                let new = lock(&slot.dkg).receive_justification(j)?;
                slot.notify.notify_waiters();
                if new {
                    echo(&slot, &self.inner.network, self.tasks(), proto::JUSTIFICATION, msg.payload, origin, &from);
                }
                Ok(ack)
            }
            proto::DONE => {
                let d = m::Done::decode(msg.payload.as_slice()).map_err(bad)?;
                // Done may arrive after the leader's own session finished: look it up directly.
                let slot = lock(&self.inner.current)
                    .as_ref()
                    .filter(|s| s.params.session.as_slice() == d.session.as_slice() && s.leader)
                    .cloned()
                    .ok_or(DkgError::UnknownSession)?;
                if slot.params.members.get(d.from as usize) != Some(&from)
                    || d.group_hash.len() > 64
                    || d.error.len() > 1024
                {
                    return Err(DkgError::Malformed(from.to_hex()[..16].to_string(), "done".into()));
                }
                lock(&slot.dones).insert(d.from, d);
                slot.notify.notify_waiters();
                Ok(ack)
            }
            other => Err(DkgError::Malformed(from.to_hex()[..16].to_string(), format!("unknown protocol `{other}`"))),
        }
    }
}
