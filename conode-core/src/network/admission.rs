//! Who the node port serves. Any Ed25519 certificate completes the TLS handshake, so the transport
//! itself decides what a peer may do: peers whose identity key is in a roster this node knows
//! (its services feed the set: cosi, skipchain, DKG and beacon rosters, kept; and, bounded, the
//! rosters of accepted introductions and every peer this node dials) get the full protocol; everyone else is a stranger with a small separate budget: only
//! introductions (a reachability ping, a cosi announcement, a skipchain block, a DKG proposal —
//! each carrying the roster that then admits its members — and a membership join request and its
//! status poll), few connections at once, a shared memory budget, short deadlines. Frame sizes are
//! limited per route, and memory follows received bytes (see [`super::frame::read_body`]).

use super::frame::{self, Envelope, FrameError, Route};
use super::NetSettings;
use crate::crypto::IdentityPublicKey;
use prost::Message;
use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, RwLock};
use tokio::io::AsyncRead;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// A peer's source for per-source limits: an IPv4 address, or the /64 network of an IPv6 one
/// (one host usually holds a whole /64), as 16 bytes; zeros when unknown.
pub fn source_key(source: Option<std::net::IpAddr>) -> [u8; 16] {
    match source.map(|ip| ip.to_canonical()) {
        Some(std::net::IpAddr::V4(v4)) => v4.to_ipv6_mapped().octets(),
        Some(std::net::IpAddr::V6(v6)) => {
            let mut k = [0u8; 16];
            k[..8].copy_from_slice(&v6.octets()[..8]);
            k
        }
        None => [0u8; 16],
    }
}

/// The network a source's key falls in (an IPv4 /24, an IPv6 /48: one operator's, as a rule), for
/// limits a holder of many addresses must not multiply: the first bytes of [`source_key`] that
/// name it (15 for IPv4, as the key is the mapped address; 6 for IPv6). IPv6 sources in ::/48
/// (whose keys begin as IPv4 ones do) and unknown ones are their own network: all 16 bytes.
pub fn network_prefix(source: Option<std::net::IpAddr>) -> Vec<u8> {
    let key = source_key(source);
    let len = match source.map(|ip| ip.to_canonical()) {
        Some(std::net::IpAddr::V4(_)) => 15,
        Some(std::net::IpAddr::V6(_)) if key[..6] != [0; 6] => 6,
        _ => 16,
    };
    key[..len].to_vec()
}

/// Unit of the strangers' memory budget.
const BUDGET_UNIT: usize = 1024;

/// Most keys kept admitted because an introduction named them (16 of the largest cosi rosters).
/// An introduction may name members no one runs, so beyond this the oldest are forgotten: a peer
/// whose key goes is a stranger again until its next introduction (every announcement is one).
pub const MAX_INTRODUCED: usize = 65_536;

/// The set of admitted identity keys and the strangers' budget. Keys are kept as bytes: admitting
/// a roster of n members must not cost n curve-point decompressions (a peer proves its key in the
/// TLS handshake, so a key that is no valid point is never matched anyway).
pub struct Admission {
    /// Members of the rosters this node's services work with: kept.
    keys: RwLock<HashSet<[u8; 32]>>,
    /// Keys named by accepted introductions or dialed by this node for others' rounds, oldest
    /// first, at most [`MAX_INTRODUCED`].
    introduced: RwLock<Introduced>,
    strangers: Arc<Semaphore>,
    /// Stranger connections held per source (see [`source_key`]), at most `per_source` each.
    by_source: Arc<std::sync::Mutex<std::collections::HashMap<[u8; 16], usize>>>,
    per_source: usize,
    memory: Arc<Semaphore>,
}

/// One stranger connection's place: a slot of the strangers' budget and of its source's share,
/// both given back when it is dropped.
pub struct StrangerSlot {
    _slot: OwnedSemaphorePermit,
    source: [u8; 16],
    by_source: Arc<std::sync::Mutex<std::collections::HashMap<[u8; 16], usize>>>,
}

impl Drop for StrangerSlot {
    fn drop(&mut self) {
        let mut held = crate::sync::lock(&self.by_source);
        if let Some(n) = held.get_mut(&self.source) {
            *n -= 1;
            if *n == 0 {
                held.remove(&self.source);
            }
        }
    }
}

#[derive(Default)]
struct Introduced {
    set: HashSet<[u8; 32]>,
    /// Insertion order; may hold keys since moved to `keys` (their removal from `set` is a no-op).
    order: VecDeque<[u8; 32]>,
}

impl Admission {
    pub fn new(own: IdentityPublicKey, settings: &NetSettings) -> Self {
        let units = (settings.stranger_memory / BUDGET_UNIT).clamp(1, Semaphore::MAX_PERMITS);
        Self {
            keys: RwLock::new(HashSet::from([*own.as_bytes()])),
            introduced: RwLock::default(),
            strangers: Arc::new(Semaphore::new(settings.max_strangers)),
            by_source: Default::default(),
            // One source (an address, an IPv6 /64) holds half the slots at most, so one host
            // cannot keep every newcomer out.
            per_source: (settings.max_strangers / 2).max(1),
            memory: Arc::new(Semaphore::new(units)),
        }
    }

    /// Admits `keys` for good (rosters this node works with); returns how many were new.
    pub fn admit(&self, keys: impl IntoIterator<Item = IdentityPublicKey>) -> usize {
        let mut set = self.keys.write().unwrap_or_else(|p| p.into_inner());
        let mut introduced = self.introduced.write().unwrap_or_else(|p| p.into_inner());
        keys.into_iter().filter(|k| set.insert(*k.as_bytes()) && !introduced.set.remove(k.as_bytes())).count()
    }

    /// Admits keys named by an accepted introduction (see [`introduced_keys`]), forgetting the
    /// oldest such keys beyond [`MAX_INTRODUCED`]; returns how many were new.
    pub fn admit_raw(&self, keys: impl IntoIterator<Item = [u8; 32]>) -> usize {
        let kept = self.keys.read().unwrap_or_else(|p| p.into_inner());
        let mut introduced = self.introduced.write().unwrap_or_else(|p| p.into_inner());
        let mut new = 0;
        for k in keys {
            if kept.contains(&k) || !introduced.set.insert(k) {
                continue;
            }
            new += 1;
            introduced.order.push_back(k);
            while introduced.order.len() > MAX_INTRODUCED {
                if let Some(old) = introduced.order.pop_front() {
                    introduced.set.remove(&old);
                }
            }
        }
        new
    }

    pub fn is_admitted(&self, key: &IdentityPublicKey) -> bool {
        self.keys.read().unwrap_or_else(|p| p.into_inner()).contains(key.as_bytes())
            || self.introduced.read().unwrap_or_else(|p| p.into_inner()).set.contains(key.as_bytes())
    }

    /// Whether `key` is admitted for good (a member of a roster this node works with), not only
    /// because an introduction named it or this node dialed it.
    pub fn is_kept(&self, key: &IdentityPublicKey) -> bool {
        self.keys.read().unwrap_or_else(|p| p.into_inner()).contains(key.as_bytes())
    }

    /// Number of admitted keys (this node's own included).
    pub fn len(&self) -> usize {
        self.keys.read().unwrap_or_else(|p| p.into_inner()).len()
            + self.introduced.read().unwrap_or_else(|p| p.into_inner()).set.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A place for one more stranger connection from `remote`, if any is free and its source
    /// holds less than its share.
    pub fn stranger_slot(&self, remote: Option<std::net::IpAddr>) -> Option<StrangerSlot> {
        let source = source_key(remote);
        let mut held = crate::sync::lock(&self.by_source);
        if held.get(&source).is_some_and(|&n| n >= self.per_source) {
            return None;
        }
        let slot = self.strangers.clone().try_acquire_owned().ok()?;
        *held.entry(source).or_default() += 1;
        Some(StrangerSlot { _slot: slot, source, by_source: self.by_source.clone() })
    }

    /// Free stranger connection slots (for tests and metrics).
    pub fn free_stranger_slots(&self) -> usize {
        self.strangers.available_permits()
    }
}

impl NetSettings {
    /// The node-port part of private.toml's `[Limits]`, other settings at their defaults.
    pub fn from_limits(l: &crate::config::Limits) -> Self {
        NetSettings {
            max_frame: l.peer_max_frame,
            idle_timeout: l.peer_idle_timeout,
            frame_timeout: l.peer_frame_timeout,
            max_strangers: l.stranger_connections,
            stranger_memory: l.stranger_memory,
            stranger_timeout: l.stranger_timeout,
            peer_requests_in_flight: l.peer_requests_in_flight,
            peer_request_memory: l.peer_request_memory,
            ..NetSettings::default()
        }
    }
}

/// The largest frame allowed on `route` from an admitted peer (`None` = not allowed at all).
pub fn peer_frame_limit(route: Option<Route<'_>>, max_frame: usize) -> usize {
    let by_service = match route.map(|r| r.service) {
        Some(super::NET_SERVICE) => 64 * 1024,
        Some("Beacon") => 4 << 20,
        Some("Cosi") => 8 << 20,
        _ => max_frame,
    };
    by_service.min(max_frame)
}

/// The largest frame a stranger may send on `route`: only introductions are served.
pub fn stranger_frame_limit(route: Option<Route<'_>>, max_frame: usize) -> Option<usize> {
    let r = route?;
    if r.kind != frame::Kind::Request as u32 {
        return None;
    }
    let limit = match (r.service, r.protocol) {
        (super::NET_SERVICE, "Ping") => 1024,
        // Statement (1 MiB), hook data (4 MiB) and a roster.
        ("Cosi", "Announce") => 6 << 20,
        // A root's warm-up of a new roster: an announcement without a statement.
        ("Cosi", "WarmUp") => 64 * 1024,
        ("Skipchain", "Store") => 8 << 20,
        ("Dkg", "Prepare") => 512 * 1024,
        // A resharing proposal (the old group file and both member lists).
        ("Reshare", "Prepare") => 512 * 1024,
        // A join request (the joiner's public.toml and node data) and its status poll.
        ("Membership", "Join") => 64 * 1024,
        ("Membership", "JoinStatus") => 64 * 1024,
        _ => return None,
    };
    Some(limit.min(max_frame))
}

/// Just the roster of a cosi `Announce` (field 1); prost skips the other fields without copying.
#[derive(Clone, PartialEq, prost::Message)]
struct AnnounceRoster {
    #[prost(message, repeated, tag = "1")]
    roster: Vec<KeyAt1>,
}

/// A roster member whose identity key is field 1 (cosi and DKG members, skipchain roster entries).
#[derive(Clone, PartialEq, prost::Message)]
struct KeyAt1 {
    #[prost(bytes = "vec", tag = "1")]
    key: Vec<u8>,
}

/// `LinkedBlock.block(1).roster(8).members(1)`.
#[derive(Clone, PartialEq, prost::Message)]
struct LinkedBlockRoster {
    #[prost(message, optional, tag = "1")]
    block: Option<BlockRosterOnly>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct BlockRosterOnly {
    #[prost(message, optional, tag = "8")]
    roster: Option<MembersAt1>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct MembersAt1 {
    #[prost(message, repeated, tag = "1")]
    members: Vec<KeyAt1>,
}

/// `Prepare.config(1).members(1)`.
#[derive(Clone, PartialEq, prost::Message)]
struct PrepareMembers {
    #[prost(message, optional, tag = "1")]
    config: Option<MembersAt1>,
}

/// `ResharePrepare.config(1)`: the new members (1) and the old group's nodes (2).
#[derive(Clone, PartialEq, prost::Message)]
struct ResharePrepareMembers {
    #[prost(message, optional, tag = "1")]
    config: Option<ReshareMembers>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct ReshareMembers {
    #[prost(message, repeated, tag = "1")]
    members: Vec<KeyAt1>,
    #[prost(message, repeated, tag = "2")]
    old_members: Vec<KeyAt1>,
}

/// Whether requests on this route introduce a roster.
pub fn is_introduction(service: &str, protocol: &str) -> bool {
    matches!(
        (service, protocol),
        ("Cosi", "Announce")
            | ("Cosi", "WarmUp")
            | ("Skipchain", "Store")
            | ("Dkg", "Prepare")
            | ("Reshare", "Prepare")
    )
}

/// The identity keys an introduction names (the roster it asks this node to work with), read
/// without copying the rest of the message, as bytes (not decoded: see [`Admission`]). They are
/// admitted once the service accepted it.
pub fn introduced_keys(service: &str, protocol: &str, payload: &[u8]) -> Vec<[u8; 32]> {
    if !is_introduction(service, protocol) {
        return vec![];
    }
    let keys: Vec<KeyAt1> = match service {
        "Cosi" => AnnounceRoster::decode(payload).map(|a| a.roster).unwrap_or_default(),
        "Skipchain" => {
            LinkedBlockRoster::decode(payload).ok().and_then(|l| l.block?.roster).map(|r| r.members).unwrap_or_default()
        }
        "Reshare" => ResharePrepareMembers::decode(payload)
            .ok()
            .and_then(|p| p.config)
            .map(|c| c.members.into_iter().chain(c.old_members).collect())
            .unwrap_or_default(),
        _ => PrepareMembers::decode(payload).ok().and_then(|p| p.config).map(|c| c.members).unwrap_or_default(),
    };
    keys.iter().filter_map(|k| <[u8; 32]>::try_from(k.key.as_slice()).ok()).collect()
}

/// Reads the next frame of a connection: an admitted peer's with its per-route limits, idle and
/// frame deadlines; a stranger's only when it is an introduction, within the strangers' memory
/// budget and shorter deadlines. Returns the envelope, its size on the wire and, for a stranger,
/// the budget it holds (drop it once the frame has been handled).
pub async fn read_peer_frame<R: AsyncRead + Unpin>(
    reader: &mut R,
    settings: &NetSettings,
    admission: &Admission,
    admitted: bool,
) -> Result<(Envelope, usize, Vec<OwnedSemaphorePermit>), FrameError> {
    let (idle, frame_deadline) = if admitted {
        (settings.idle_timeout, settings.frame_timeout)
    } else {
        (settings.stranger_timeout, settings.stranger_timeout)
    };
    let size = match tokio::time::timeout(idle, frame::read_length(reader)).await {
        Ok(r) => r?,
        Err(_) => return Err(FrameError::Idle(idle)),
    };
    if size > settings.max_frame {
        return Err(FrameError::TooLarge { size, max: settings.max_frame });
    }
    let max = settings.max_frame;
    let mut held: Vec<OwnedSemaphorePermit> = Vec::new();
    let memory = &admission.memory;
    let body = async {
        if admitted {
            frame::read_body(reader, size, |route| Ok(peer_frame_limit(route, max)), |_| Ok(())).await
        } else {
            let limit = |route: Option<Route<'_>>| match stranger_frame_limit(route, max) {
                Some(l) => Ok(l),
                None => Err(FrameError::NotServed {
                    service: route.map(|r| r.service.to_string()).unwrap_or_default(),
                    protocol: route.map(|r| r.protocol.to_string()).unwrap_or_default(),
                }),
            };
            let on_chunk = |n: usize| {
                let units = n.div_ceil(BUDGET_UNIT) as u32;
                let permit = memory.clone().try_acquire_many_owned(units).map_err(|_| FrameError::Budget)?;
                held.push(permit);
                Ok(())
            };
            frame::read_body(reader, size, limit, on_chunk).await
        }
    };
    let result = match tokio::time::timeout(frame_deadline, body).await {
        Ok(r) => r,
        Err(_) => Err(FrameError::Slow(frame_deadline)),
    };
    let buf = result?;
    let env = frame::decode(&buf)?;
    Ok((env, size + 4, held))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route<'a>(service: &'a str, protocol: &'a str) -> Option<Route<'a>> {
        Some(Route { kind: 1, service, protocol })
    }

    #[test]
    fn strangers_get_only_introductions() {
        let max = 16 << 20;
        assert_eq!(stranger_frame_limit(route("Net", "Ping"), max), Some(1024));
        assert!(stranger_frame_limit(route("Dkg", "Prepare"), max).is_some());
        assert_eq!(stranger_frame_limit(route("Beacon", "Partial"), max), None);
        assert_eq!(stranger_frame_limit(route("Skipchain", "GetBlocks"), max), None);
        assert_eq!(stranger_frame_limit(None, max), None);
        let reply = Some(Route { kind: 2, service: "Net", protocol: "Ping" });
        assert_eq!(stranger_frame_limit(reply, max), None);
        assert_eq!(peer_frame_limit(route("Net", "Ping"), max), 64 * 1024);
        assert_eq!(peer_frame_limit(route("Skipchain", "Store"), max), max);
    }

    #[test]
    fn admit_counts_new_keys() {
        let own = crate::crypto::IdentityKeyPair::generate().public();
        let other = crate::crypto::IdentityKeyPair::generate().public();
        let a = Admission::new(own, &NetSettings::default());
        assert!(a.is_admitted(&own) && !a.is_admitted(&other));
        assert_eq!(a.admit([other, own]), 1);
        assert!(a.is_admitted(&other));
        assert_eq!(a.len(), 2);
    }

    #[test]
    fn one_source_holds_half_the_stranger_slots() {
        let own = crate::crypto::IdentityKeyPair::generate().public();
        let a = Admission::new(own, &NetSettings { max_strangers: 8, ..NetSettings::default() });
        let ip = |s: &str| Some(s.parse::<std::net::IpAddr>().unwrap());
        let mut first: Vec<_> = (0..4).map(|_| a.stranger_slot(ip("10.0.0.1")).expect("a slot")).collect();
        assert!(a.stranger_slot(ip("10.0.0.1")).is_none(), "a fifth slot for one address");
        // The same host by its IPv4-mapped IPv6 form, and another address of one IPv6 /64.
        assert!(a.stranger_slot(ip("::ffff:10.0.0.1")).is_none());
        let mut v6: Vec<_> = (1..=3).map(|h| a.stranger_slot(ip(&format!("2001:db8:1:2::{h}"))).unwrap()).collect();
        v6.push(a.stranger_slot(ip("2001:db8:1:2:ffff::9")).expect("a fourth slot for the /64"));
        // Both shares are full, and so is the budget: another source gets none either.
        assert!(a.stranger_slot(ip("2001:db8:1:2::7")).is_none());
        assert!(a.stranger_slot(ip("10.0.1.1")).is_none(), "the budget is shared by all sources");
        // A slot given back goes to whoever asks next, within its source's share.
        v6.pop();
        assert!(a.stranger_slot(ip("10.0.0.1")).is_none(), "still at its share");
        let other = a.stranger_slot(ip("10.0.1.1")).expect("the freed slot");
        drop((first.pop(), first, v6, other));
        assert_eq!(a.free_stranger_slots(), 8);
        assert!(crate::sync::lock(&a.by_source).is_empty(), "sources without slots are forgotten");
    }

    #[test]
    fn introduced_keys_are_bounded_and_kept_keys_stay() {
        let own = crate::crypto::IdentityKeyPair::generate().public();
        let member = crate::crypto::IdentityKeyPair::generate().public();
        let a = Admission::new(own, &NetSettings::default());
        a.admit([member]);
        let key = |i: usize| {
            let mut k = [0u8; 32];
            k[..8].copy_from_slice(&(i as u64).to_le_bytes());
            k
        };
        // Introductions naming the member again and then ever new keys, past the bound.
        assert_eq!(a.admit_raw([*member.as_bytes(), key(0)]), 1);
        assert_eq!(a.admit_raw((0..MAX_INTRODUCED + 10).map(key)), MAX_INTRODUCED + 9);
        assert_eq!(a.len(), 2 + MAX_INTRODUCED);
        let admitted = |i: usize| a.introduced.read().unwrap().set.contains(&key(i));
        assert!(!admitted(0) && !admitted(9), "the oldest introduced keys stayed");
        assert!(admitted(10) && admitted(MAX_INTRODUCED + 9));
        assert!(a.is_admitted(&own) && a.is_admitted(&member), "kept keys went with introduced ones");
        // An introduced key a service then admits is kept for good, counted once.
        let late = crate::crypto::IdentityKeyPair::generate().public();
        a.admit_raw([*late.as_bytes()]);
        let before = a.len();
        assert_eq!(a.admit([late]), 0);
        assert_eq!(a.len(), before);
        a.admit_raw((0..MAX_INTRODUCED).map(|i| key(i + 1_000_000)));
        assert!(a.is_admitted(&late));
    }

    #[test]
    fn introductions_name_their_roster() {
        let k = crate::crypto::IdentityKeyPair::generate().public();
        let ann = crate::wire::cosi::Announce {
            roster: vec![crate::wire::cosi::Member { public: k.as_bytes().to_vec(), ..Default::default() }],
            ..Default::default()
        };
        assert_eq!(introduced_keys("Cosi", "Announce", &ann.encode_to_vec()), vec![*k.as_bytes()]);
        assert!(introduced_keys("Cosi", "Announce", &[0xff, 0xff]).is_empty());
        assert!(introduced_keys("Beacon", "Partial", &ann.encode_to_vec()).is_empty());
        let block = crate::wire::skipchain::LinkedBlock {
            block: Some(crate::wire::skipchain::SkipBlock {
                data: vec![7; 100],
                roster: Some(crate::wire::skipchain::BlockRoster {
                    members: vec![crate::wire::skipchain::RosterEntry {
                        identity: k.as_bytes().to_vec(),
                        ..Default::default()
                    }],
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(introduced_keys("Skipchain", "Store", &block.encode_to_vec()), vec![*k.as_bytes()]);
        let prepare = crate::wire::dkg::Prepare {
            config: Some(crate::wire::dkg::DkgConfig {
                members: vec![crate::wire::dkg::Member { public: k.as_bytes().to_vec(), ..Default::default() }],
                ..Default::default()
            }),
        };
        assert_eq!(introduced_keys("Dkg", "Prepare", &prepare.encode_to_vec()), vec![*k.as_bytes()]);
    }
}
