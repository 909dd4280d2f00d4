//! Membership by vote on a LocalCluster: a network chain of 4 founders, a stranger that joins
//! (pending → trusted → part of the network, its request surviving a restart), ballots (duplicate,
//! forged and non-member ballots refused), a proposal rejected by no votes, a removal (the removed
//! node retires; once its operator founded another network, being voted back in does not pull it
//! back), a roster change without votes refused by
//! the members, strangers limited to the join routes, the operator's JSON routes, a light client
//! following membership from the genesis with the skipchain proof verifier, and a node following
//! only a network its operator founded (the client port refuses founding; a stranger's genesis is
//! held, not followed). The deciding ballot passes a proposal at once, with a member down or hung.

mod support;

use conode_core::cluster::LocalCluster;
use conode_core::crypto::IdentityKeyPair;
use conode_core::network::NetError;
use conode_core::services::membership::messages::{action, Ballot, NetworkConfig, Proposal, RemoveNode, SetThreshold};
use conode_core::services::membership::{rules, MembershipService, NodeState};
use conode_core::services::skipchain::messages::Append;
use conode_core::verify::cosi::Policy;
use conode_core::verify::skipchain::verify_proof;
use prost::Message;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A proposal's `created` time: `k` ms after this test process first asked (proposals expire a
/// lifetime after it; distinct `k` make repeated proposals of one action distinct).
fn at(k: u64) -> u64 {
    static BASE: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *BASE.get_or_init(conode_core::services::membership::now_ms) + k
}

/// The add_node action for node `j` of `c`.
fn add_node_of(c: &LocalCluster, j: usize) -> action::Kind {
    action::Kind::AddNode(conode_core::services::membership::messages::AddNode {
        public_toml: conode_core::config::Roster::new(vec![c.node(j).server_identity()]).to_toml(),
        node_data: String::new(),
    })
}

fn m(c: &LocalCluster, i: usize) -> MembershipService {
    c.node(i).membership().expect("membership service")
}

fn key(c: &LocalCluster, i: usize) -> IdentityKeyPair {
    c.node(i).config().identity.clone()
}

fn wait(what: &str, ok: impl FnMut() -> bool) {
    support::wait_until(Duration::from_secs(30), what, ok);
}

fn roster_size(c: &LocalCluster, i: usize) -> usize {
    m(c, i).latest().and_then(|(b, _)| b.roster).map(|r| r.members.len()).unwrap_or(0)
}

/// A network of the cluster's 4 nodes; every founder ends `PartOfNetwork`.
fn network(c: &LocalCluster) -> Vec<u8> {
    let net = c.create_network(0, 0).unwrap();
    for i in 0..c.roster().len() {
        wait(&format!("founder {i} part of the network"), || m(c, i).state() == NodeState::PartOfNetwork);
        assert_eq!(m(c, i).network().as_deref(), Some(net.as_slice()));
    }
    net
}

fn vote(c: &LocalCluster, voter: usize, net: &[u8], id: &[u8], yes: bool) -> Result<String, String> {
    let b = Ballot::signed(&key(c, voter), net, id, yes);
    let status = c.runtime().block_on(m(c, voter).vote(b, true)).map_err(|e| e.to_string())?;
    assert!(status.reason.is_empty() || status.state != "open", "{}", status.reason);
    Ok(status.state)
}

/// Waits until node `i` holds proposal `id` with `yes` and `no` ballots.
fn seen(c: &LocalCluster, i: usize, id: &[u8], yes: u32, no: u32) {
    wait(&format!("node {i} holds {yes} yes and {no} no"), || {
        let s = m(c, i).status_of(id);
        s.proposal.is_some() && s.yes == yes && s.no == no
    });
}

/// Node `j` (outside the roster) joins through node 0; returns the add_node proposal id.
fn join(c: &LocalCluster, j: usize, net: &[u8]) -> Vec<u8> {
    let url = c.client_url(0).unwrap();
    m(c, j).join(&url, net, r#"{"pod":"p-7"}"#, Duration::from_millis(50)).unwrap();
    assert_eq!(m(c, j).state(), NodeState::Pending);
    wait("the joiner's add_node proposal", || m(c, j).record().join.and_then(|r| r.proposal).is_some());
    hex::decode(m(c, j).record().join.unwrap().proposal.unwrap()).unwrap()
}

#[test]
fn a_node_joins_by_vote_and_a_removed_node_retires() {
    let mut c = LocalCluster::new(4).unwrap();
    let net = network(&c);
    let j = c.spawn_node().unwrap();
    assert_eq!(m(&c, j).state(), NodeState::Initialized);
    let pid = join(&c, j, &net);
    wait("the proposal reached every member", || (1..4).all(|i| m(&c, i).status_of(&pid).proposal.is_some()));

    // The joiner restarts while pending: it keeps its request and its proposal.
    c.stop(j).unwrap();
    c.restart(j).unwrap();
    assert_eq!(m(&c, j).state(), NodeState::Pending);
    assert_eq!(m(&c, j).record().join.unwrap().proposal.unwrap(), hex::encode(&pid));

    // Ballots: 3 of 4 are needed. A forged ballot and a stranger's are refused; so is a second one.
    let mut forged = Ballot::signed(&key(&c, 1), &net, &pid, true);
    forged.signature[0] ^= 1;
    let err = c.runtime().block_on(m(&c, 1).vote(forged, true)).unwrap_err().to_string();
    assert!(err.contains("does not verify"), "{err}");
    let stranger = Ballot::signed(&IdentityKeyPair::generate(), &net, &pid, true);
    let err = c.runtime().block_on(m(&c, 1).vote(stranger, true)).unwrap_err().to_string();
    assert!(err.contains("not a governance member"), "{err}");
    assert_eq!(vote(&c, 0, &net, &pid, true).unwrap(), "open");
    let err = vote(&c, 0, &net, &pid, false).unwrap_err();
    assert!(err.contains("already voted"), "{err}");
    assert_eq!(vote(&c, 1, &net, &pid, true).unwrap(), "open");
    seen(&c, 2, &pid, 2, 0);
    let last_vote = Instant::now();
    assert_eq!(vote(&c, 2, &net, &pid, true).unwrap(), "accepted");
    wait("the joiner is part of the network", || m(&c, j).state() == NodeState::PartOfNetwork);
    eprintln!("last vote → PartOfNetwork: {:?}", last_vote.elapsed());
    for i in 0..=j {
        wait(&format!("node {i} holds the 5-node roster"), || roster_size(&c, i) == 5);
    }
    let (_, cfg) = m(&c, 3).latest().unwrap();
    assert_eq!(cfg.members.len(), 5);
    assert_eq!(cfg.node_data[0].json, r#"{"pod":"p-7"}"#);
    wait("node 3 closed the proposal", || m(&c, 3).status_of(&pid).state == "accepted");

    // A light client follows membership from the genesis with the skipchain proof verifier.
    let proof = c.proof(3, &net).unwrap();
    let last = verify_proof(&net, &proof, Policy::Default).unwrap();
    assert_eq!(last.roster.as_ref().unwrap().members.len(), 5);
    let data = NetworkConfig::decode(last.data.as_slice()).unwrap();
    assert_eq!(data.passed.unwrap().ballots.len(), 3);

    // remove_node: 4 of 5 yes needed. Two no votes reject it; a second proposal passes.
    let removed = key(&c, 1).public();
    let p = Proposal::signed(
        &key(&c, 0),
        &net,
        action::Kind::RemoveNode(RemoveNode { identity: removed.as_bytes().to_vec() }),
        at(1),
    );
    let st = c.runtime().block_on(m(&c, 0).propose(p, true)).unwrap();
    let rid = st.id.clone();
    assert_eq!((st.needed, st.members), (4, 5));
    for i in [1, j] {
        wait(&format!("the removal reached node {i}"), || m(&c, i).status_of(&rid).proposal.is_some());
    }
    assert_eq!(vote(&c, 1, &net, &rid, false).unwrap(), "open");
    seen(&c, j, &rid, 0, 1);
    assert_eq!(vote(&c, j, &net, &rid, false).unwrap(), "rejected");
    seen(&c, 2, &rid, 0, 2);
    let err = vote(&c, 2, &net, &rid, true).unwrap_err();
    assert!(err.contains("rejected"), "{err}");

    let p = Proposal::signed(
        &key(&c, 0),
        &net,
        action::Kind::RemoveNode(RemoveNode { identity: removed.as_bytes().to_vec() }),
        at(2),
    );
    let rid = c.runtime().block_on(m(&c, 0).propose(p, true)).unwrap().id;
    for v in [0, 2, 3] {
        wait("the proposal reached the voter", || m(&c, v).status_of(&rid).proposal.is_some());
        assert_eq!(vote(&c, v, &net, &rid, true).unwrap(), "open");
    }
    seen(&c, j, &rid, 3, 0);
    assert_eq!(vote(&c, j, &net, &rid, true).unwrap(), "accepted");
    wait("node 1 retired", || m(&c, 1).state() == NodeState::Retired);
    wait("node 3 holds the 4-node roster", || roster_size(&c, 3) == 4);
    let (_, cfg) = m(&c, 0).latest().unwrap();
    assert!(!cfg.members.contains(&removed.as_bytes().to_vec()), "a removed node stays a member");

    // The removed node cannot sign for the new roster: a block it proposes (it still holds the
    // chain, and as a founder it owns it) is refused, and the next block is cosigned without it.
    let (latest, cfg) = m(&c, 1).latest().unwrap();
    let forged = NetworkConfig { threshold: 1, ..cfg };
    let append = Append::signed(&key(&c, 1), &net, latest.index + 1, forged.encode_to_vec(), None).unwrap();
    let chains1 = c.node(1).skipchain().unwrap();
    assert!(c.runtime().block_on(chains1.append(append)).is_err(), "a removed node appended to the network chain");

    // The removed node can no longer vote (it is no member of the new config).
    let p = Proposal::signed(&key(&c, 0), &net, action::Kind::SetThreshold(SetThreshold { threshold: 2 }), at(3));
    let tid = c.runtime().block_on(m(&c, 0).propose(p, true)).unwrap().id;
    let late = Ballot::signed(&key(&c, 1), &net, &tid, true);
    let err = c.runtime().block_on(m(&c, 0).vote(late, true)).unwrap_err().to_string();
    assert!(err.contains("not a governance member"), "{err}");
    for v in [0, 2] {
        wait("the proposal reached the voter", || m(&c, v).status_of(&tid).proposal.is_some());
        vote(&c, v, &net, &tid, true).unwrap();
    }
    seen(&c, 3, &tid, 2, 0);
    assert_eq!(vote(&c, 3, &net, &tid, true).unwrap(), "accepted");
    wait("threshold 2 everywhere", || m(&c, j).latest().is_some_and(|(_, cfg)| rules::needed(&cfg) == 2));
    let (last, _) = m(&c, j).latest().unwrap();
    let link = c.node(0).skipchain().unwrap().store().block_at(&net, last.index - 1).unwrap().forward_links[0].clone();
    let mask = link.signature.unwrap().mask;
    let prev_roster = c.node(0).skipchain().unwrap().store().block_at(&net, last.index - 1).unwrap().roster.unwrap();
    assert!(prev_roster.members.iter().all(|mem| mem.identity != removed.as_bytes().to_vec()));
    assert_eq!(mask.len(), 1, "a 4-member roster signs with a 1-byte mask");

    // The retired node's operator founds a network of its own: it follows that one, and the old
    // members voting it back in do not pull it back.
    let solo = conode_core::config::Roster::new(vec![c.node(1).server_identity()]);
    let own = c.runtime().block_on(m(&c, 1).create_network(&solo, 0)).unwrap().hash;
    assert_eq!((m(&c, 1).state(), m(&c, 1).network()), (NodeState::PartOfNetwork, Some(own.clone())));
    let add = action::Kind::AddNode(conode_core::services::membership::messages::AddNode {
        public_toml: solo.to_toml(),
        node_data: String::new(),
    });
    let aid = c.runtime().block_on(m(&c, 0).propose(Proposal::signed(&key(&c, 0), &net, add, at(4)), true)).unwrap().id;
    assert_eq!(vote(&c, 0, &net, &aid, true).unwrap(), "open");
    seen(&c, 2, &aid, 1, 0);
    assert_eq!(vote(&c, 2, &net, &aid, true).unwrap(), "accepted");
    let chains1 = c.node(1).skipchain().unwrap();
    wait("node 1 holds the roster that names it again", || {
        chains1.store().latest(&net).and_then(|b| b.roster).is_some_and(|r| r.members.len() == 5)
    });
    let watched = Instant::now();
    while watched.elapsed() < Duration::from_secs(3) {
        assert_eq!((m(&c, 1).state(), m(&c, 1).network()), (NodeState::PartOfNetwork, Some(own.clone())));
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// One raw request on a node's admin socket; the kind and text of the first answer frame.
fn admin_raw(socket: &std::path::Path, request: &[u8]) -> (u8, String) {
    use std::io::{Read, Write};
    let mut s = std::os::unix::net::UnixStream::connect(socket).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.write_all(request).unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let mut head = [0u8; 5];
    s.read_exact(&mut head).unwrap();
    let mut payload = vec![0u8; u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize];
    s.read_exact(&mut payload).unwrap();
    (head[0], String::from_utf8_lossy(&payload).into_owned())
}

/// Founding through the admin socket (what `conode network create` sends): bad requests are
/// refused by name (length, body, roster) and change nothing; a good one founds the network.
#[test]
fn the_admin_channel_founds_and_refuses_bad_requests_by_name() {
    use conode_core::admin::{request_found, socket_path};
    use conode_core::services::membership::messages::CreateNetwork;
    let c = LocalCluster::new(4).unwrap();
    let node = c.node(0);
    let socket = socket_path(node.data_dir(), &node.config().node_id());
    let refused = |request: &[u8], says: &str| {
        let (kind, text) = admin_raw(&socket, request);
        assert_eq!((kind, text.contains(says)), (b'E', true), "{text}");
    };
    refused(b"found 99999999999\n", "at most");
    refused(b"found -1\n", "bad length");
    refused(b"found 4\n\xff\xff\xff\xff", "found:");
    refused(b"found 10\nshort", "ended early");
    let body = |roster: &str| CreateNetwork { roster_toml: roster.into(), threshold: 0, members: vec![] };
    refused(&[b"found 3\n".as_slice(), &body("x").encode_to_vec()].concat(), "roster_toml");
    let others = conode_core::config::Roster::new((1..4).map(|i| c.node(i).server_identity()).collect());
    let err = request_found(&socket, &body(&others.to_toml())).unwrap_err();
    assert!(err.to_string().contains("not in the roster"), "{err}");
    assert_eq!((m(&c, 0).state(), m(&c, 0).record().founding), (NodeState::Initialized, None));

    let founded = request_found(&socket, &body(&c.roster().to_toml())).unwrap();
    assert_eq!(founded.state, "PartOfNetwork");
    assert_eq!(m(&c, 0).network().map(hex::encode), Some(founded.network.clone()));
    assert_eq!(m(&c, 0).record().founding, Some(founded.network));
}

/// A node follows only a network its operator founded on it (or asked to join): the client port
/// refuses `CreateNetwork`; a stranger's network genesis naming members (governed by the
/// stranger's key alone) is held by them, never followed; a founder's genesis is followed by each
/// other member only once its own operator founded the same network.
#[test]
fn a_node_follows_only_the_network_its_operator_founded() {
    let mut c = LocalCluster::new(4).unwrap();
    let held = |c: &LocalCluster, i: usize, id: &[u8]| c.node(i).skipchain().unwrap().store().latest(id).is_some();

    // The client port: refused, and nothing changes.
    let url = c.client_url(0).unwrap();
    let req = conode_core::services::membership::messages::CreateNetwork {
        roster_toml: c.roster().to_toml(),
        threshold: 0,
        members: vec![],
    };
    let err = c
        .runtime()
        .block_on(conode_core::api::client::call(
            &url,
            "Membership",
            "CreateNetwork",
            req.encode_to_vec(),
            Duration::from_secs(10),
        ))
        .unwrap_err();
    assert!(err.to_string().contains("operator action"), "{err}");
    assert_eq!((m(&c, 0).state(), m(&c, 0).network()), (NodeState::Initialized, None));

    // A stranger founds a network naming members 1..3, governed by its own key with threshold 1.
    let s = c.spawn_node().unwrap();
    let attacker = IdentityKeyPair::generate();
    let mut evil = vec![c.node(s).server_identity()];
    evil.extend((1..4).map(|i| c.node(i).server_identity()));
    let evil = conode_core::config::Roster::new(evil);
    let evil_net = c
        .runtime()
        .block_on(m(&c, s).create_network_with_members(&evil, 1, &[attacker.public().as_bytes().to_vec()]))
        .unwrap()
        .hash;
    for i in 1..4 {
        wait(&format!("member {i} holds the stranger's genesis"), || held(&c, i, &evil_net));
    }

    // Node 0 founds the real network alone: it follows it, the others hold it.
    let net = c.runtime().block_on(m(&c, 0).create_network(c.roster(), 0)).unwrap().hash;
    assert_eq!(m(&c, 0).state(), NodeState::PartOfNetwork);
    for i in 1..4 {
        wait(&format!("member {i} holds the network genesis"), || held(&c, i, &net));
    }
    // Members 1 and 2 found it too and follow it; member 3 holds both geneses and follows neither
    // (its membership loop runs at least once a second).
    for i in 1..3 {
        c.runtime().block_on(m(&c, i).create_network(c.roster(), 0)).unwrap();
        assert_eq!((m(&c, i).state(), m(&c, i).network()), (NodeState::PartOfNetwork, Some(net.clone())));
    }
    let watched = Instant::now();
    while watched.elapsed() < Duration::from_secs(3) {
        assert_eq!((m(&c, 3).state(), m(&c, 3).network()), (NodeState::Initialized, None));
        std::thread::sleep(Duration::from_millis(50));
    }
    // Founding again on a founder is a no-op; another network is refused.
    assert_eq!(c.runtime().block_on(m(&c, 1).create_network(c.roster(), 0)).unwrap().hash, net);
    let err = c.runtime().block_on(m(&c, 1).create_network(c.roster(), 4)).unwrap_err();
    assert!(err.to_string().contains("already"), "{err}");
    c.runtime().block_on(m(&c, 3).create_network(c.roster(), 0)).unwrap();
    assert_eq!((m(&c, 3).state(), m(&c, 3).network()), (NodeState::PartOfNetwork, Some(net.clone())));
    // Restarted, a founder still follows it.
    c.node_mut(3).stop().unwrap();
    c.node_mut(3).start().unwrap();
    assert_eq!((m(&c, 3).state(), m(&c, 3).network()), (NodeState::PartOfNetwork, Some(net.clone())));

    // A node whose join is pending founds no other network.
    let k = c.spawn_node().unwrap();
    m(&c, k).join(&url, &net, "", Duration::from_millis(50)).unwrap();
    let mut other = vec![c.node(k).server_identity()];
    other.extend(c.roster().servers.iter().cloned());
    let other = conode_core::config::Roster::new(other);
    let err = c.runtime().block_on(m(&c, k).create_network(&other, 0)).unwrap_err();
    assert!(err.to_string().contains("asked to join"), "{err}");
    assert_eq!(m(&c, k).state(), NodeState::Pending);
    // Once the members refused the join, its operator may found a network.
    wait("the joiner's add_node proposal", || m(&c, k).record().join.and_then(|r| r.proposal).is_some());
    let pid = hex::decode(m(&c, k).record().join.unwrap().proposal.unwrap()).unwrap();
    assert_eq!(vote(&c, 0, &net, &pid, false).unwrap(), "open");
    seen(&c, 1, &pid, 0, 1);
    assert_eq!(vote(&c, 1, &net, &pid, false).unwrap(), "rejected");
    wait("the joiner learns the refusal", || m(&c, k).record().join.is_some_and(|j| j.refused.is_some()));
    let founded = c.runtime().block_on(m(&c, k).create_network(&other, 0)).unwrap().hash;
    assert_eq!((m(&c, k).state(), m(&c, k).network()), (NodeState::PartOfNetwork, Some(founded)));
    assert_eq!(m(&c, k).record().join, None);
}

#[test]
fn members_refuse_a_roster_block_without_votes() {
    let mut c = LocalCluster::new(4).unwrap();
    let net = network(&c);
    let j = c.spawn_node().unwrap();
    let chains = c.node(0).skipchain().unwrap();
    // Node 0 is a founder (an owner of the chain): owner-signed blocks are not enough on a governed
    // chain. A block adding node j without any ballot is refused.
    let (latest, cfg) = m(&c, 0).latest().unwrap();
    let mut roster = c.roster().clone();
    roster.servers.push(c.node(j).server_identity());
    let forged =
        NetworkConfig { members: roster.servers.iter().map(|s| s.public.as_bytes().to_vec()).collect(), ..cfg.clone() };
    let append = Append::signed(&key(&c, 0), &net, latest.index + 1, forged.encode_to_vec(), Some(&roster)).unwrap();
    let err = c.runtime().block_on(chains.append(append)).unwrap_err().to_string();
    assert!(err.contains("no passed proposal"), "{err}");
    // A passed proposal whose ballots come from one member only is refused too.
    let p = Proposal::signed(&key(&c, 0), &net, action::Kind::SetThreshold(SetThreshold { threshold: 1 }), at(9));
    let id = conode_core::services::membership::messages::proposal_id(&p);
    let one = vec![Ballot::signed(&key(&c, 0), &net, &id, true)];
    let bad = NetworkConfig {
        threshold: 1,
        passed: Some(conode_core::services::membership::messages::PassedProposal { proposal: Some(p), ballots: one }),
        ..cfg
    };
    let append = Append::signed(&key(&c, 0), &net, latest.index + 1, bad.encode_to_vec(), None).unwrap();
    let err = c.runtime().block_on(chains.append(append)).unwrap_err().to_string();
    assert!(err.contains("do not pass"), "{err}");
    assert_eq!(m(&c, 2).latest().unwrap().0.index, 0);
}

#[test]
fn a_stranger_gets_only_its_join_answer_and_operators_read_json() {
    let mut c = LocalCluster::new(4).unwrap();
    let net = network(&c);
    let j = c.spawn_node().unwrap();
    let member = c.roster().servers[1].clone();
    let sn = c.node(j).network().unwrap();
    c.runtime().block_on(async {
        let req =
            conode_core::services::membership::messages::JoinRequest { network: net.clone(), ..Default::default() };
        // A status poll is answered ("unknown": it asked nothing yet); everything else is not.
        let reply = sn
            .request(&member, "Membership", "JoinStatus", &[], req.encode_to_vec(), Duration::from_secs(5))
            .await
            .unwrap();
        let answer = conode_core::services::membership::messages::JoinAnswer::decode(reply.as_slice()).unwrap();
        assert_eq!(answer.state, "unknown");
        for (svc, proto) in [("Membership", "Ballot"), ("Membership", "Proposal"), ("Skipchain", "GetBlocks")] {
            let err = sn.request(&member, svc, proto, &[], vec![], Duration::from_secs(5)).await.unwrap_err();
            assert!(matches!(err, NetError::Closed { .. }), "a stranger got an answer on {svc}/{proto}: {err}");
        }
        // A join that claims another node's identity is refused.
        let other = conode_core::config::Roster::new(vec![c.node(2).server_identity()]).to_toml();
        let req = conode_core::services::membership::messages::JoinRequest {
            network: net.clone(),
            public_toml: other,
            node_data: String::new(),
        };
        let err = sn
            .request(&member, "Membership", "Join", &[], req.encode_to_vec(), Duration::from_secs(5))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("not the sender's"), "{err}");
    });

    let http = c.client_url(0).unwrap().replacen("ws://", "http://", 1);
    let get = |path: &str| -> serde_json::Value {
        c.runtime().block_on(async { reqwest::get(format!("{http}{path}")).await.unwrap().json().await.unwrap() })
    };
    let state = get("/node/state");
    assert_eq!(state["state"], "PartOfNetwork");
    assert_eq!(state["network"], hex::encode(&net));
    assert_eq!(state["network_index"], 0);
    let network = get("/node/network");
    assert_eq!(network["roster_size"], 4);
    assert_eq!(network["threshold"], 3);
    let pid = join(&c, j, &net);
    let nodes = get("/node/network/nodes");
    let nodes = nodes.as_array().unwrap();
    assert_eq!(nodes.len(), 5);
    assert_eq!(nodes[4]["state"], "Pending");
    assert_eq!(nodes[4]["node_data"]["pod"], "p-7");
    let proposals = get("/node/proposals");
    assert_eq!(proposals[0]["id"], hex::encode(&pid));
    assert_eq!(proposals[0]["state"], "open");
    assert_eq!(proposals[0]["needed"], 3);
    assert_eq!(get("/node/state")["open_proposals"], 1);
    assert_eq!(get("/node/network")["members_follow_roster"], true);
    let joiner = c.client_url(j).unwrap().replacen("ws://", "http://", 1);
    let state: serde_json::Value = c
        .runtime()
        .block_on(async { reqwest::get(format!("{joiner}/node/state")).await.unwrap().json().await.unwrap() });
    assert_eq!(state["state"], "Pending");
}

#[test]
fn a_join_while_appends_and_beacon_rounds_continue() {
    use conode_core::services::beacon::messages::InitRequest;
    use conode_core::verify::beacon::Scheme;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    let mut c = LocalCluster::new(4).unwrap();
    let req = InitRequest {
        roster_toml: c.roster().to_toml(),
        scheme: Scheme::from_id("bls-unchained-g1-rfc9380").unwrap().id().into(),
        period_secs: 1,
        threshold: 0,
        phase_timeout_ms: 2000,
        genesis_time: 0,
        genesis_delay_ms: 1000,
        beacon_id: String::new(),
    };
    c.approve_beacon(&req).unwrap();
    let url = c.client_url(0).unwrap();
    c.runtime()
        .block_on(conode_core::api::client::call(&url, "Beacon", "Init", req.encode_to_vec(), Duration::from_secs(60)))
        .unwrap();
    let beacon = c.node(0).beacon().unwrap();
    let info = beacon.chain_info().unwrap();
    assert!(c.runtime().block_on(beacon.wait_for_round(1, Duration::from_secs(20))).is_some());
    let net = network(&c);

    // Appends to another chain go on through node 0 while the node joins.
    let owner = IdentityKeyPair::generate();
    let log = c.create_chain(0, vec![owner.public()], b"log".to_vec()).unwrap();
    let (chains, handle, stop) =
        (c.node(0).skipchain().unwrap(), c.runtime().handle().clone(), Arc::new(AtomicBool::new(false)));
    let stop2 = stop.clone();
    let appender = std::thread::spawn(move || {
        let mut index = 1;
        while !stop2.load(Ordering::SeqCst) {
            let a = Append::signed(&owner, &log.hash, index, format!("entry {index}").into_bytes(), None).unwrap();
            handle.block_on(chains.append(a)).unwrap_or_else(|e| panic!("append {index} failed during the join: {e}"));
            index += 1;
        }
        index - 1
    });
    let j = c.spawn_node().unwrap();
    let pid = join(&c, j, &net);
    for v in 0..3 {
        seen(&c, v, &pid, v as u32, 0);
        vote(&c, v, &net, &pid, true).unwrap();
    }
    wait("the joiner is part of the network", || m(&c, j).state() == NodeState::PartOfNetwork);
    let round_at_join = beacon.stats().latest_round;
    assert!(c.runtime().block_on(beacon.wait_for_round(round_at_join + 2, Duration::from_secs(20))).is_some());
    stop.store(true, Ordering::SeqCst);
    let appended = appender.join().unwrap();
    assert!(appended > 0, "no append went through during the join");
    // Every beacon round so far verifies, before, during and after the join.
    let latest = beacon.stats().latest_round;
    for r in 1..=latest {
        info.verify(&beacon.get(r).unwrap_or_else(|| panic!("round {r} missing"))).unwrap();
    }
}

/// A stranger that makes fresh identities cannot flood a member with join requests: one source
/// has at most `MAX_OPEN_JOINS_PER_SOURCE` open at a time; polls of an open one are still answered.
#[test]
fn one_source_cannot_flood_a_member_with_join_requests() {
    use conode_core::services::membership::messages::{JoinAnswer, JoinRequest};
    use conode_core::services::membership::MAX_OPEN_JOINS_PER_SOURCE;
    let mut c = LocalCluster::new(4).unwrap();
    let net = network(&c);
    let member = c.roster().servers[1].clone();
    let ask = |c: &LocalCluster, j: usize, protocol: &str| {
        let req = JoinRequest {
            network: net.clone(),
            public_toml: conode_core::config::Roster::new(vec![c.node(j).server_identity()]).to_toml(),
            node_data: String::new(),
        };
        let sn = c.node(j).network().unwrap();
        c.runtime()
            .block_on(sn.request(&member, "Membership", protocol, &[], req.encode_to_vec(), Duration::from_secs(5)))
            .map(|reply| JoinAnswer::decode(reply.as_slice()).unwrap())
    };
    let strangers: Vec<usize> = (0..=MAX_OPEN_JOINS_PER_SOURCE).map(|_| c.spawn_node().unwrap()).collect();
    for &j in &strangers[..MAX_OPEN_JOINS_PER_SOURCE] {
        assert_eq!(ask(&c, j, "Join").unwrap().state, "pending");
    }
    let last = *strangers.last().unwrap();
    let err = ask(&c, last, "Join").unwrap_err().to_string();
    assert!(err.contains("too many open join requests from 127.0.0.1"), "{err}");
    // The open ones are still answered, and nothing was stored for the refused one.
    assert_eq!(ask(&c, strangers[0], "JoinStatus").unwrap().state, "pending");
    assert_eq!(ask(&c, last, "JoinStatus").unwrap().state, "unknown");
    assert_eq!(m(&c, 1).proposals().len(), MAX_OPEN_JOINS_PER_SOURCE);
}

/// Strangers' join requests make add_node proposals, which every member keeps: in a pool per
/// proposer, so that a flood of them (many sources, a proposal at each member) never leaves the
/// members unable to propose anything else (a removal above all), nor one member's joins another's.
/// Other proposals have a pool per proposer too: a member flooding them cannot stop its removal.
#[test]
fn add_node_proposals_never_crowd_out_other_proposals() {
    use conode_core::services::membership::{MAX_OPEN_ADD_NODES_PER_PROPOSER, MAX_OPEN_PROPOSALS_PER_PROPOSER};
    let mut c = LocalCluster::new(4).unwrap();
    let net = network(&c);
    let j = c.spawn_node().unwrap();
    let add = || add_node_of(&c, j);
    let propose = |by: usize, kind: action::Kind, created: u64| {
        let p = Proposal::signed(&key(&c, by), &net, kind, at(created));
        c.runtime().block_on(m(&c, by).propose(p, true)).map(|s| s.id).map_err(|e| e.to_string())
    };
    for created in 0..MAX_OPEN_ADD_NODES_PER_PROPOSER as u64 {
        propose(0, add(), 1000 + created).unwrap();
    }
    let err = propose(0, add(), 5000).unwrap_err();
    assert!(err.contains("add_node proposals of member") && err.contains("vote on them first"), "{err}");
    // Member 0's full pool stops neither its other proposals nor member 1's add_node, here or
    // at the members that got them by gossip.
    let removal =
        propose(0, action::Kind::RemoveNode(RemoveNode { identity: key(&c, 3).public().as_bytes().to_vec() }), 7)
            .unwrap();
    let theirs = propose(1, add(), 8).unwrap();
    for i in 0..4 {
        wait(&format!("node {i} holds the removal and member 1's add_node"), || {
            m(&c, i).status_of(&removal).proposal.is_some() && m(&c, i).status_of(&theirs).proposal.is_some()
        });
    }
    // Member 2 keeps the whole pool as well (gossip, or its sync with the others).
    wait("member 2 holds every open proposal", || {
        m(&c, 2).proposals().into_iter().filter(|p| p.state == "open").count() == MAX_OPEN_ADD_NODES_PER_PROPOSER + 2
    });
    // A member flooding proposals of other kinds (a Byzantine one) fills only its own pool: the
    // others can still propose its removal.
    let set = |t| action::Kind::SetThreshold(SetThreshold { threshold: t });
    for created in 1..MAX_OPEN_PROPOSALS_PER_PROPOSER as u64 {
        propose(0, set(2 + (created % 2) as u32), 20_000 + created).unwrap();
    }
    let err = propose(0, set(2), 30_000).unwrap_err();
    assert!(err.contains("proposals (add_node aside) of member") && err.contains("vote on them first"), "{err}");
    let removal = RemoveNode { identity: key(&c, 0).public().as_bytes().to_vec() };
    let theirs = propose(1, action::Kind::RemoveNode(removal), 9).unwrap();
    wait("member 3 holds the removal of member 0", || m(&c, 3).status_of(&theirs).proposal.is_some());
}

/// Open proposals expire a lifetime after they were made (a day for add_node, which strangers'
/// join requests make members propose; a week for the others), at every member: their pool slots
/// are free again and ballots on them are refused. A proposal made expired already, or too far
/// ahead of the member's clock (it would live longer), is refused with the reason.
#[test]
fn open_proposals_expire_and_free_their_pool_slots() {
    use conode_core::services::membership::{
        now_ms, ADD_NODE_LIFETIME, MAX_OPEN_ADD_NODES_PER_PROPOSER, PROPOSAL_LIFETIME,
    };
    let mut c = LocalCluster::new(4).unwrap();
    let net = network(&c);
    let j = c.spawn_node().unwrap();
    let add = || add_node_of(&c, j);
    let set = |t| action::Kind::SetThreshold(SetThreshold { threshold: t });
    let propose = |kind: action::Kind, created: u64| {
        let p = Proposal::signed(&key(&c, 0), &net, kind, created);
        c.runtime().block_on(m(&c, 0).propose(p, true)).map(|s| s.id).map_err(|e| e.to_string())
    };
    // Made long enough ago that they expire in a few seconds.
    let expiring_soon = |lifetime: Duration| now_ms() + 5_000 - lifetime.as_millis() as u64;
    let base = expiring_soon(ADD_NODE_LIFETIME);
    let adds: Vec<Vec<u8>> =
        (0..MAX_OPEN_ADD_NODES_PER_PROPOSER as u64).map(|k| propose(add(), base + k).unwrap()).collect();
    let threshold = propose(set(2), expiring_soon(PROPOSAL_LIFETIME)).unwrap();
    let err = propose(add(), now_ms()).unwrap_err();
    assert!(err.contains("vote on them first"), "{err}");
    let last = adds.last().unwrap();
    for i in 0..4 {
        wait(&format!("node {i} holds the proposals"), || {
            m(&c, i).status_of(&threshold).proposal.is_some() && m(&c, i).status_of(last).proposal.is_some()
        });
    }
    for i in 0..4 {
        wait(&format!("node {i} lets them expire"), || {
            m(&c, i).status_of(&threshold).state == "expired" && m(&c, i).status_of(last).state == "expired"
        });
    }
    let status = m(&c, 1).status_of(&threshold);
    assert!(status.reason.contains("not passed within 168 h"), "{}", status.reason);
    let err = vote(&c, 1, &net, &threshold, true).unwrap_err();
    assert!(err.contains("expired"), "{err}");
    // The pool has room again; the expired ones stay listed as such.
    propose(add(), now_ms()).unwrap();
    let expired = m(&c, 0).proposals().into_iter().filter(|p| p.state == "expired").count();
    assert_eq!(expired, MAX_OPEN_ADD_NODES_PER_PROPOSER + 1);
    let long_ago = now_ms() - PROPOSAL_LIFETIME.as_millis() as u64 - 60_000;
    let err = propose(set(3), long_ago).unwrap_err();
    assert!(err.contains("expired") && err.contains("propose it again"), "{err}");
    let err = propose(set(3), now_ms() + 3_600_000).unwrap_err();
    assert!(err.contains("ahead of this node's clock"), "{err}");
}

/// Separate governance members (as CCF's consortium): three member keys that no node holds govern
/// a 4-node network. A node's identity key is no member; a forged member ballot is refused; roster
/// changes (a removal, a join) keep the members; add_member and remove_member change them; a
/// join request waits at a node until a member proposes add_node for it.
#[test]
fn separate_member_keys_govern_and_roster_changes_keep_them() {
    use conode_core::services::membership::messages::{AddMember, AddNode, RemoveMember};
    let mut c = LocalCluster::new(4).unwrap();
    let keys: Vec<IdentityKeyPair> = (0..3).map(|_| IdentityKeyPair::generate()).collect();
    let members: Vec<Vec<u8>> = keys.iter().map(|k| k.public().as_bytes().to_vec()).collect();
    let net = c.create_network_with_members(0, 2, &members).unwrap();
    for i in 0..4 {
        wait(&format!("founder {i} part of the network"), || m(&c, i).state() == NodeState::PartOfNetwork);
    }
    let (_, cfg) = m(&c, 3).latest().unwrap();
    assert_eq!(cfg.members, members);
    assert!(!cfg.members_follow_roster);
    assert_eq!(rules::needed(&cfg), 2);
    let j = c.spawn_node().unwrap();

    let propose = |via: usize, by: &IdentityKeyPair, kind: action::Kind, created: u64| {
        let p = Proposal::signed(by, &net, kind, at(created));
        c.runtime().block_on(m(&c, via).propose(p, true)).map(|s| s.id).map_err(|e| e.to_string())
    };
    let cast = |via: usize, by: &IdentityKeyPair, id: &[u8], yes: bool| {
        let b = Ballot::signed(by, &net, id, yes);
        c.runtime().block_on(m(&c, via).vote(b, true)).map(|s| s.state).map_err(|e| e.to_string())
    };

    // A node's identity key is no member: it can neither propose nor vote.
    let set = |t| action::Kind::SetThreshold(SetThreshold { threshold: t });
    let err = propose(0, &key(&c, 0), set(3), 1).unwrap_err();
    assert!(err.contains("not a governance member"), "{err}");

    // remove_node, proposed by member 0 through node 1; node 0's key cannot vote, a forged ballot
    // of member 1 is refused, member 0 and member 1 pass it through two other nodes.
    let node3 = key(&c, 3).public().as_bytes().to_vec();
    let rid = propose(1, &keys[0], action::Kind::RemoveNode(RemoveNode { identity: node3 }), 2).unwrap();
    let err = cast(1, &key(&c, 0), &rid, true).unwrap_err();
    assert!(err.contains("not a governance member"), "{err}");
    let mut forged = Ballot::signed(&keys[1], &net, &rid, true);
    forged.signature[5] ^= 1;
    let err = c.runtime().block_on(m(&c, 1).vote(forged, true)).unwrap_err().to_string();
    assert!(err.contains("does not verify"), "{err}");
    assert_eq!(cast(1, &keys[0], &rid, true).unwrap(), "open");
    wait("the proposal reached node 2", || m(&c, 2).status_of(&rid).yes == 1);
    assert_eq!(cast(2, &keys[1], &rid, true).unwrap(), "accepted");
    wait("node 3 retired", || m(&c, 3).state() == NodeState::Retired);
    wait("node 0 holds the 3-node roster", || roster_size(&c, 0) == 3);
    assert_eq!(m(&c, 0).latest().unwrap().1.members, members, "a roster change changed the members");

    // add_member, then remove_member: the roster stays, the members change.
    let newcomer = IdentityKeyPair::generate();
    let add = action::Kind::AddMember(AddMember { member: newcomer.public().as_bytes().to_vec() });
    let aid = propose(0, &keys[2], add, 3).unwrap();
    assert_eq!(cast(0, &keys[2], &aid, true).unwrap(), "open");
    wait("node 1 holds the ballot", || m(&c, 1).status_of(&aid).yes == 1);
    assert_eq!(cast(1, &keys[0], &aid, true).unwrap(), "accepted");
    wait("four members everywhere", || (0..3).all(|i| m(&c, i).latest().unwrap().1.members.len() == 4));
    assert_eq!(roster_size(&c, 1), 3);
    let rm = action::Kind::RemoveMember(RemoveMember { member: keys[0].public().as_bytes().to_vec() });
    let mid = propose(2, &newcomer, rm, 4).unwrap();
    assert_eq!(cast(2, &newcomer, &mid, true).unwrap(), "open");
    wait("node 0 holds the ballot", || m(&c, 0).status_of(&mid).yes == 1);
    assert_eq!(cast(0, &keys[1], &mid, true).unwrap(), "accepted");
    wait("member 0 removed everywhere", || {
        (0..3).all(|i| !m(&c, i).latest().unwrap().1.members.contains(&keys[0].public().as_bytes().to_vec()))
    });
    let err = propose(0, &keys[0], set(1), 5).unwrap_err();
    assert!(err.contains("not a governance member"), "{err}");

    // A join: node 0 keeps the request (it cannot propose), lists it with its public.toml; a
    // member proposes add_node with it and two members vote it in.
    m(&c, j).join(&c.client_url(0).unwrap(), &net, r#"{"pod":"s-1"}"#, Duration::from_millis(50)).unwrap();
    let mut listed = serde_json::Value::Null;
    wait("node 0 lists the pending joiner", || {
        let nodes = m(&c, 0).nodes_json();
        listed = nodes.as_array().unwrap().iter().find(|n| n["state"] == "Pending").cloned().unwrap_or_default();
        !listed.is_null()
    });
    assert_eq!(m(&c, j).state(), NodeState::Pending);
    assert_eq!(listed["public"], c.node(j).config().identity.public().to_hex());
    let add = AddNode {
        public_toml: listed["public_toml"].as_str().unwrap().to_string(),
        node_data: r#"{"pod":"s-1"}"#.into(),
    };
    let jid = propose(1, &newcomer, action::Kind::AddNode(add), 6).unwrap();
    wait("the joiner learns its proposal", || {
        m(&c, j).record().join.and_then(|r| r.proposal) == Some(hex::encode(&jid))
    });
    assert_eq!(cast(1, &newcomer, &jid, true).unwrap(), "open");
    wait("node 2 holds the ballot", || m(&c, 2).status_of(&jid).yes == 1);
    assert_eq!(cast(2, &keys[2], &jid, true).unwrap(), "accepted");
    wait("the joiner is part of the network", || m(&c, j).state() == NodeState::PartOfNetwork);
    let (_, cfg) = m(&c, j).latest().unwrap();
    assert_eq!(cfg.members.len(), 3, "a join changed the separate members");
    assert!(!cfg.members.contains(&c.node(j).config().identity.public().as_bytes().to_vec()));

    // Removed, the node may ask again: a new request (not its old, accepted one) waits for a
    // new add_node.
    let jkey = c.node(j).config().identity.public().as_bytes().to_vec();
    let rid = propose(2, &keys[1], action::Kind::RemoveNode(RemoveNode { identity: jkey }), 7).unwrap();
    assert_eq!(cast(2, &keys[1], &rid, true).unwrap(), "open");
    wait("node 0 holds the ballot", || m(&c, 0).status_of(&rid).yes == 1);
    assert_eq!(cast(0, &keys[2], &rid, true).unwrap(), "accepted");
    wait("the joiner retired", || m(&c, j).state() == NodeState::Retired);
    m(&c, j).join(&c.client_url(0).unwrap(), &net, "", Duration::from_millis(50)).unwrap();
    wait("node 0 lists the joiner pending again", || {
        m(&c, 0)
            .nodes_json()
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["state"] == "Pending" && n["public_toml"].is_string())
    });
    let add = AddNode { public_toml: listed["public_toml"].as_str().unwrap().to_string(), node_data: String::new() };
    let jid = propose(0, &keys[2], action::Kind::AddNode(add), 8).unwrap();
    wait("the joiner learns its new proposal", || {
        m(&c, j).record().join.and_then(|r| r.proposal) == Some(hex::encode(&jid))
    });
    assert_eq!(cast(0, &keys[2], &jid, true).unwrap(), "open");
    wait("node 1 holds the ballot", || m(&c, 1).status_of(&jid).yes == 1);
    assert_eq!(cast(1, &newcomer, &jid, true).unwrap(), "accepted");
    wait("the joiner is part of the network again", || m(&c, j).state() == NodeState::PartOfNetwork);
}

/// A member that was down while a proposal was made and ballots cast learns them when it comes
/// back (it asks the other members at start), and the no votes that rejected a proposal it held
/// open; it takes only what verifies under its own config: a
/// peer's forged proposal and ballots are dropped. Its own vote then passes the proposal; a member
/// that gets a ballot for a proposal it never saw fetches it.
#[test]
fn a_member_that_was_down_fetches_missed_proposals_and_ballots() {
    use conode_core::services::membership::store::MembershipStore;
    let mut c = LocalCluster::new(4).unwrap();
    let net = network(&c);
    // Open at node 3 when it stops, rejected while it is down (two no of four: 3 yes needed).
    let p0 = Proposal::signed(&key(&c, 0), &net, action::Kind::SetThreshold(SetThreshold { threshold: 1 }), at(0));
    let pid0 = c.runtime().block_on(m(&c, 0).propose(p0, true)).unwrap().id;
    wait("node 3 holds the first proposal", || m(&c, 3).status_of(&pid0).proposal.is_some());
    c.stop(3).unwrap();
    assert_eq!(vote(&c, 0, &net, &pid0, false).unwrap(), "open");
    seen(&c, 1, &pid0, 0, 1);
    assert_eq!(vote(&c, 1, &net, &pid0, false).unwrap(), "rejected");

    // Made while node 3 is down: gossiped to the others (node 3 misses it).
    let p = Proposal::signed(&key(&c, 0), &net, action::Kind::SetThreshold(SetThreshold { threshold: 4 }), at(1));
    let pid = c.runtime().block_on(m(&c, 0).propose(p, true)).unwrap().id;
    vote(&c, 0, &net, &pid, true).unwrap();
    seen(&c, 1, &pid, 1, 0);
    vote(&c, 1, &net, &pid, true).unwrap();
    seen(&c, 2, &pid, 2, 0);
    // Never gossiped at all (as if node 0 had been cut off): only node 0 holds it and a ballot.
    let p2 = Proposal::signed(&key(&c, 0), &net, action::Kind::SetThreshold(SetThreshold { threshold: 2 }), at(2));
    let pid2 = c.runtime().block_on(m(&c, 0).propose(p2, false)).unwrap().id;
    c.runtime().block_on(m(&c, 0).vote(Ballot::signed(&key(&c, 1), &net, &pid2, true), false)).unwrap();

    // Node 0 lies: its store also holds a forged no of node 2, a stranger's no, and a proposal
    // whose signature does not verify.
    let store = MembershipStore::open(&c.node(0).context().unwrap().storage).unwrap();
    let mut forged = Ballot::signed(&key(&c, 2), &net, &pid, false);
    forged.signature[0] ^= 1;
    store.put_ballot(&forged).unwrap();
    store.put_ballot(&Ballot::signed(&IdentityKeyPair::generate(), &net, &pid, false)).unwrap();
    let mut bad = Proposal::signed(&key(&c, 2), &net, action::Kind::SetThreshold(SetThreshold { threshold: 1 }), at(3));
    bad.signature[0] ^= 1;
    let bad_id = conode_core::services::membership::messages::proposal_id(&bad);
    store.put_proposal(&bad_id, &bad).unwrap();

    c.restart(3).unwrap();
    seen(&c, 3, &pid, 2, 0);
    seen(&c, 3, &pid2, 1, 0);
    // Counted right after each item is stored: wait for the count rather than race it.
    wait("node 3 counts what it learned by syncs", || m(&c, 3).synced() >= 2);
    assert_eq!(m(&c, 3).status_of(&pid).ballots.len(), 2, "a forged or stranger's ballot was taken");
    assert!(m(&c, 3).status_of(&bad_id).proposal.is_none(), "a forged proposal was taken");
    assert_eq!(m(&c, 3).status_of(&pid).state, "open");
    wait("node 3 learns the rejection", || m(&c, 3).status_of(&pid0).state == "rejected");

    // Node 3 votes on the proposal node 2 never saw: node 2 fetches it when the ballot comes.
    assert_eq!(vote(&c, 3, &net, &pid2, true).unwrap(), "open");
    seen(&c, 2, &pid2, 2, 0);
    // Node 3's vote passes the first proposal.
    assert_eq!(vote(&c, 3, &net, &pid, true).unwrap(), "accepted");
    for i in 0..4 {
        wait(&format!("threshold 4 at node {i}"), || {
            m(&c, i).latest().is_some_and(|(_, cfg)| rules::needed(&cfg) == 4)
        });
    }
}

/// A proposal every node of a 4-node cluster holds (3 yes of 4 pass it), with yes ballots of
/// members 0 and 1 cast at their own nodes and kept there (not gossiped): node 2 has none of them.
fn proposal_with_two_ballots_kept_at_their_nodes(c: &LocalCluster, net: &[u8]) -> Vec<u8> {
    // Node 2's periodic sync would fetch the ballots (every 5 s): paused, and no sync running.
    m(c, 2).pause_periodic_sync(true);
    wait("node 2's running sync ended", || !m(c, 2).sync_running());
    let p = Proposal::signed(&key(c, 0), net, action::Kind::SetThreshold(SetThreshold { threshold: 3 }), at(0));
    let pid = c.runtime().block_on(m(c, 0).propose(p, true)).unwrap().id;
    for i in 0..4 {
        wait(&format!("node {i} holds the proposal"), || m(c, i).status_of(&pid).proposal.is_some());
    }
    // Members 0 and 1 vote at their own nodes, and their ballots stay there (not gossiped).
    for i in 0..2 {
        let b = Ballot::signed(&key(c, i), net, &pid, true);
        assert_eq!(c.runtime().block_on(m(c, i).vote(b, false)).unwrap().state, "open");
    }
    assert_eq!(m(c, 2).status_of(&pid).yes, 0, "node 2 already holds the other ballots");
    pid
}

/// The ballot that completes the threshold passes the proposal at the node it is cast at, even
/// when the earlier ballots have not been gossiped there yet: the node asks the other members
/// before it answers (it used to answer "open" and leave the block to the fallback append); a
/// member that is down does not stop it.
#[test]
fn the_last_ballot_passes_a_proposal_whose_other_ballots_are_not_gossiped_yet() {
    let mut c = LocalCluster::new(4).unwrap();
    let net = network(&c);
    let pid = proposal_with_two_ballots_kept_at_their_nodes(&c, &net);
    c.stop(3).unwrap();
    // Three yes of four pass it: member 2's vote at node 2 says so at once.
    assert_eq!(vote(&c, 2, &net, &pid, true).unwrap(), "accepted");
    assert_eq!(m(&c, 2).status_of(&pid).yes, 3);
}

/// The same deciding vote with a member that hangs instead of being down: something accepts the
/// connections at its address and never answers (no TLS handshake, no reply). Gathering the other
/// ballots waits for it at most its bound (1 s), and the block's signing rounds go around it (a
/// hung sub-leader's leaves are asked directly once it is late), so the vote still answers
/// "accepted" within a few seconds, from the two members that answer.
#[test]
fn a_hung_member_holds_the_deciding_vote_no_longer_than_the_gathering_bound() {
    let mut c = LocalCluster::new(4).unwrap();
    let net = network(&c);
    let pid = proposal_with_two_ballots_kept_at_their_nodes(&c, &net);
    // Member 3 hangs: its port accepts and holds every connection, and never writes a byte.
    let hung = c.roster().servers[3].address.host_port();
    c.stop(3).unwrap();
    let hole = std::net::TcpListener::bind(&hung).expect("member 3's port is free once it stopped");
    let accepted = Arc::new(AtomicUsize::new(0));
    let counted = accepted.clone();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in hole.incoming().flatten() {
            counted.fetch_add(1, Ordering::SeqCst);
            held.push(conn);
        }
    });
    let started = Instant::now();
    assert_eq!(vote(&c, 2, &net, &pid, true).unwrap(), "accepted");
    let took = started.elapsed();
    assert!(accepted.load(Ordering::SeqCst) >= 1, "the vote never reached the hung member");
    assert!(took < Duration::from_secs(4), "a hung member held the vote for {took:?} (bound: 1 s to gather)");
    assert_eq!(m(&c, 2).status_of(&pid).yes, 3);
}
