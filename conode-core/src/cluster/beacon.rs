//! The randomness beacon on a [`LocalCluster`]: the calls the Python and C faces share (start a
//! beacon by a DKG, reshare its group to other nodes of the cluster, read a node's group and wait
//! for a round), so the faces only translate arguments and errors. A roster change voted on the
//! network chain reshares the group by itself (the appender leads it); `beacon_reshare` is the
//! explicit operator action, as `conode beacon reshare`.

use super::{ClusterError, LocalCluster};
use crate::config::ServerIdentity;
use crate::node::NodeError;
use crate::services::beacon::messages::{InitRequest, InitResponse};
use crate::services::beacon::BeaconService;
use crate::services::dkg::reshare::ReshareResponse;
use crate::services::skipchain::config_roster;
use crate::services::ServiceError;
use crate::verify::beacon::Beacon;
use std::time::Duration;

/// What a node knows of the beacon group it runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BeaconGroupInfo {
    /// Members of the group.
    pub size: usize,
    /// Partial signatures a round needs.
    pub threshold: u32,
    /// This node's share index in the group (None: not a member, e.g. retired).
    pub share_index: Option<u32>,
    /// The first round of this group when it took over the chain by resharing (None: the DKG's
    /// group).
    pub transition_round: Option<u64>,
}

impl LocalCluster {
    /// Node `i`'s beacon service (an error when it is stopped).
    pub fn beacon(&self, i: usize) -> Result<BeaconService, ClusterError> {
        if i >= self.len() {
            return Err(ClusterError::Node { index: i, error: NodeError::NotRunning });
        }
        self.node(i).beacon().map_err(|error| ClusterError::Node { index: i, error })
    }

    /// Starts a beacon chain led by node `leader` (a DKG among the members the request's roster
    /// names). Every running node of the roster approves the group first, as each operator would
    /// with `conode beacon approve` (see `BeaconService::approve_init`); a node that refuses to
    /// approve (it holds a group already) is left out. Returns once the DKG is done.
    pub fn start_beacon(&self, leader: usize, req: InitRequest) -> Result<InitResponse, ClusterError> {
        let b = self.beacon(leader)?;
        b.approve_init_request(&req)?;
        self.approve_beacon(&req)?;
        Ok(self.runtime().block_on(b.init(req))?)
    }

    /// Every running node of the request's roster approves its beacon group, as each operator
    /// would with `conode beacon approve`; then `/Beacon/Init` on any of them starts it. Nodes
    /// that cannot approve it (not in the roster, holding a group already) are left out.
    pub fn approve_beacon(&self, req: &InitRequest) -> Result<(), ClusterError> {
        for i in (0..self.len()).filter(|&i| self.node(i).is_running()) {
            let _ = self.beacon(i)?.approve_init_request(req);
        }
        Ok(())
    }

    /// Reshares the beacon group node `leader` runs (it must be a member) to the cluster's nodes
    /// `members`, keeping the chain, its hash and its group key. Every running old and new member approves
    /// it first (see `BeaconService::approve_reshare`). `threshold` 0: ⌊n/2⌋+1;
    /// `phase` zero: 10 s; `transition_round` 0: the first round at least two phases and two
    /// periods away. Returns once the new members agreed; the new group produces from the
    /// transition round in the answer.
    pub fn beacon_reshare(
        &self,
        leader: usize,
        members: &[usize],
        threshold: u32,
        phase: Duration,
        transition_round: u64,
    ) -> Result<ReshareResponse, ClusterError> {
        let b = self.beacon(leader)?;
        let mut identities = Vec::with_capacity(members.len());
        for &m in members {
            if m >= self.len() {
                return Err(
                    ServiceError::BadRequest(format!("member {m}: the cluster has {} nodes", self.len())).into()
                );
            }
            let si = self.node(m).server_identity();
            if identities.iter().any(|s: &ServerIdentity| s.public == si.public) {
                return Err(ServiceError::BadRequest(format!("member {m} named twice")).into());
            }
            identities.push(si);
        }
        // Every old and new member's operator approves it (the cluster runs them all), as each
        // would run `conode beacon reshare --approve-only`; members that are stopped approve nothing.
        if let Some(group) = b.group() {
            for i in (0..self.len()).filter(|&i| self.node(i).is_running()) {
                let key = self.node(i).server_identity().public;
                if group.index_of(&key).is_some() || identities.iter().any(|s| s.public == key) {
                    self.beacon(i)?.approve_reshare(&identities, threshold)?;
                }
            }
        }
        let phase_ms = phase.as_millis().min(u128::from(u64::MAX)) as u64;
        Ok(self.runtime().block_on(b.reshare_to(&identities, threshold, phase_ms, transition_round))?)
    }

    /// The nodes of the network chain's current roster, by cluster index, as node `i` knows it
    /// (None without a network chain).
    pub fn network_members(&self, i: usize) -> Result<Option<Vec<usize>>, ClusterError> {
        let Some((block, _)) = self.membership(i)?.latest() else { return Ok(None) };
        let Some(roster) = block.roster.as_ref().map(config_roster).transpose()? else { return Ok(None) };
        let members = (0..self.len())
            .filter(|&j| roster.servers.iter().any(|s| s.public == self.node(j).server_identity().public))
            .collect();
        Ok(Some(members))
    }

    /// The beacon group node `i` currently runs (None: no beacon chain there).
    pub fn beacon_group(&self, i: usize) -> Result<Option<BeaconGroupInfo>, ClusterError> {
        let b = self.beacon(i)?;
        Ok(b.group().map(|g| BeaconGroupInfo {
            size: g.nodes.len(),
            threshold: g.threshold,
            share_index: g.index_of(&self.node(i).server_identity().public),
            transition_round: g.reshare.map(|r| r.transition_round),
        }))
    }

    /// Beacon `round` as node `i` stores it, waiting up to `timeout` for it.
    pub fn beacon_round(&self, i: usize, round: u64, timeout: Duration) -> Result<Option<Beacon>, ClusterError> {
        let b = self.beacon(i)?;
        if let Some(found) = b.get(round) {
            return Ok(Some(found));
        }
        Ok(self.runtime().block_on(b.wait_for_round(round, timeout)))
    }
}
