//! The client side of the service: `/Beacon/<Method>` requests (`Init`, `DkgStatus`, `Latest`,
//! `Round`, `Info`; `Reshare` is refused: an operator action, see `approval`) and `Init` itself,
//! which checks the request, fills in the defaults and leads a DKG among the roster, of a group
//! its members' operators approved (the chain starts when the DKG hands its result over).

use super::messages as m;
use super::round_loop::unix_now_ms;
use super::service::{BeaconService, SERVICE};
use super::store::to_packet;
use crate::config::Roster;
use crate::services::dkg::{self, messages as dm, DkgError};
use crate::services::ServiceError;
use crate::verify::beacon::{info_json, Scheme};
use prost::Message;

/// Default length of a DKG phase.
pub const DEFAULT_PHASE_MS: u64 = 10_000;
/// Longest phase a DKG accepts ([`crate::services::dkg::protocol::MAX_PHASE`]), in ms.
pub const MAX_PHASE_MS: u64 = crate::services::dkg::protocol::MAX_PHASE.as_millis() as u64;
/// Longest delay before the genesis `/Beacon/Init` accepts (a week).
pub const MAX_GENESIS_DELAY_MS: u64 = 7 * 24 * 3600 * 1000;

impl BeaconService {
    pub(super) async fn client(&self, method: String, body: Vec<u8>) -> Result<Vec<u8>, ServiceError> {
        let bad = |e: prost::DecodeError| ServiceError::BadRequest(e.to_string());
        match method.as_str() {
            "Init" => {
                let req = m::InitRequest::decode(body.as_slice()).map_err(bad)?;
                Ok(self.init(req).await?.encode_to_vec())
            }
            "DkgStatus" => {
                m::DkgStatusRequest::decode(body.as_slice()).map_err(bad)?;
                let s = self.inner.dkg.status().unwrap_or_default();
                Ok(m::DkgStatusResponse {
                    session: s.session,
                    phase: s.phase,
                    elapsed_ms: s.elapsed_ms,
                    finished: s.finished,
                    error: s.error.unwrap_or_default(),
                    log: s.log,
                }
                .encode_to_vec())
            }
            "Latest" => {
                m::LatestRequest::decode(body.as_slice()).map_err(bad)?;
                let b = self.latest().ok_or_else(|| ServiceError::NotFound("no beacon yet".into()))?;
                Ok(to_packet(&b).encode_to_vec())
            }
            "Round" => {
                let req = m::RoundRequest::decode(body.as_slice()).map_err(bad)?;
                let b = self
                    .get(req.round)
                    .ok_or_else(|| ServiceError::NotFound(format!("round {} is not available", req.round)))?;
                Ok(to_packet(&b).encode_to_vec())
            }
            "Info" => {
                m::InfoRequest::decode(body.as_slice()).map_err(bad)?;
                let c = self.chain().ok_or_else(|| ServiceError::NotFound("no beacon chain on this node".into()))?;
                Ok(m::InfoResponse { info_json: info_json(&c.info), group_toml: c.group.to_toml() }.encode_to_vec())
            }
            // Operator only (see `approval`): a client of this port must not reshare the group.
            "Reshare" => Err(ServiceError::Refused(super::approval::RESHARING_IS_LOCAL.into())),
            _ => Err(ServiceError::UnknownMethod { service: SERVICE.into(), method }),
        }
    }

    /// `/Beacon/Init`: leads a DKG among the roster and reports the group. This node's operator
    /// (and every member's) must have approved the group first (see `approval`): the request only
    /// says when to start it.
    pub async fn init(&self, req: m::InitRequest) -> Result<m::InitResponse, ServiceError> {
        if req.roster_toml.len() > m::MAX_ROSTER_TOML {
            return Err(ServiceError::BadRequest("roster too large".into()));
        }
        if self.inner.store.as_ref().is_some_and(|s| s.has_group()) {
            return Err(ServiceError::Refused(DkgError::HasGroup.to_string()));
        }
        let roster = Roster::from_toml_str(std::path::Path::new("<request>"), &req.roster_toml)
            .map_err(|e| ServiceError::BadRequest(e.to_string()))?;
        if roster.index_of(&self.inner.me).is_none() {
            return Err(ServiceError::BadRequest("this node is not in the roster".into()));
        }
        let scheme = if req.scheme.is_empty() {
            Scheme::PedersenBlsChained
        } else {
            Scheme::from_id(&req.scheme).map_err(|e| ServiceError::BadRequest(e.to_string()))?
        };
        if req.period_secs == 0 {
            return Err(ServiceError::BadRequest("period must be at least 1 s".into()));
        }
        let n = roster.len();
        let threshold = if req.threshold == 0 { dkg::minimum_threshold(n) as u32 } else { req.threshold };
        let phase_ms = if req.phase_timeout_ms == 0 { DEFAULT_PHASE_MS } else { req.phase_timeout_ms };
        let now_ms = unix_now_ms();
        if phase_ms > MAX_PHASE_MS {
            return Err(ServiceError::BadRequest(format!("phase_timeout_ms above {MAX_PHASE_MS}")));
        }
        let genesis_time = if req.genesis_time > 0 {
            let genesis_ms = req.genesis_time.saturating_mul(1000);
            if genesis_ms <= now_ms {
                return Err(ServiceError::BadRequest("genesis time is in the past".into()));
            }
            if genesis_ms - now_ms > MAX_GENESIS_DELAY_MS as i64 {
                return Err(ServiceError::BadRequest("genesis time more than a week ahead".into()));
            }
            req.genesis_time
        } else {
            let delay = if req.genesis_delay_ms == 0 {
                4 * phase_ms + u64::from(req.period_secs) * 1000
            } else {
                req.genesis_delay_ms
            };
            if delay > MAX_GENESIS_DELAY_MS {
                return Err(ServiceError::BadRequest(format!("genesis_delay_ms above {MAX_GENESIS_DELAY_MS}")));
            }
            (now_ms + delay as i64 + 999) / 1000
        };
        let config = dm::DkgConfig {
            members: roster
                .servers
                .iter()
                .map(|s| dm::Member {
                    public: s.public.as_bytes().to_vec(),
                    address: s.address.to_string(),
                    description: s.description.clone(),
                })
                .collect(),
            threshold,
            scheme: scheme.id().to_string(),
            period_secs: req.period_secs,
            genesis_time,
            beacon_id: if req.beacon_id.is_empty() { "default".into() } else { req.beacon_id.clone() },
            phase_timeout_ms: phase_ms,
            leader: 0,
            nonce: Vec::new(),
        };
        let report = self.inner.dkg.run_leader(config).await.map_err(|e| match e {
            DkgError::Config(_) | DkgError::NotMember => ServiceError::BadRequest(e.to_string()),
            DkgError::Busy | DkgError::HasGroup | DkgError::AlreadyDealt(_) | DkgError::NotApproved(_) => {
                ServiceError::Refused(e.to_string())
            }
            e => ServiceError::Failed(e.to_string()),
        })?;
        let info = report.group.chain_info();
        let excl =
            |v: Vec<(u32, String)>| v.into_iter().map(|(index, reason)| m::Exclusion { index, reason }).collect();
        Ok(m::InitResponse {
            group_toml: report.group.to_toml(),
            info_json: info_json(&info),
            chain_hash: info.hash_hex(),
            qualified: report.group.qualified.clone(),
            disqualified: excl(report.disqualified.iter().map(|d| (d.dealer, d.reason.clone())).collect()),
            absent: excl(report.absent.clone()),
            confirmed: report.confirmations.iter().filter(|c| c.agrees).count() as u32 + 1,
            participants: report.group.nodes.len() as u32,
            log: report.log,
        })
    }
}
