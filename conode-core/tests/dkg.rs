//! Distributed key generation on a LocalCluster, started through `/Beacon/Init` on one member once
//! every member approved the group (without the approvals nothing starts):
//! 4 and 7 members, a member absent from the start, a dealer sending a bad deal (disqualified with
//! evidence while the DKG completes), a second DKG refused on a node that has a chain, a slow
//! dealer retried past the first deadline and included, and a member that never answers excluded
//! while the DKG completes with the others.

use conode_core::api::client;
use conode_core::cluster::LocalCluster;
use conode_core::services::beacon::messages::{InitRequest, InitResponse};
use conode_core::services::beacon::BeaconService;
use conode_core::services::dkg::Group;
use conode_core::verify::beacon::{ChainInfo, Scheme};
use prost::Message;
use std::time::Duration;

fn init_request(cluster: &LocalCluster, scheme: Scheme, genesis_delay_ms: u64) -> InitRequest {
    InitRequest {
        roster_toml: cluster.roster().to_toml(),
        scheme: scheme.id().into(),
        period_secs: 1,
        threshold: 0,
        phase_timeout_ms: 2000,
        genesis_time: 0,
        genesis_delay_ms,
        beacon_id: String::new(),
    }
}

/// `/Beacon/Init` on `leader`'s client port, once every running member approved the group.
fn init(cluster: &LocalCluster, leader: usize, req: InitRequest) -> Result<InitResponse, String> {
    cluster.approve_beacon(&req).unwrap();
    init_unapproved(cluster, leader, req)
}

/// `/Beacon/Init` on `leader`'s client port, approvals as they are.
fn init_unapproved(cluster: &LocalCluster, leader: usize, req: InitRequest) -> Result<InitResponse, String> {
    let url = cluster.client_url(leader).unwrap();
    let reply = cluster
        .runtime()
        .block_on(client::call(&url, "Beacon", "Init", req.encode_to_vec(), Duration::from_secs(60)))
        .map_err(|e| e.to_string())?;
    Ok(InitResponse::decode(reply.as_slice()).unwrap())
}

fn beacon(cluster: &LocalCluster, i: usize) -> BeaconService {
    cluster.node(i).beacon().unwrap()
}

/// Every running member holds the same group, a distinct share index, and round 1 verifies.
fn check_group(cluster: &LocalCluster, resp: &InitResponse, running: &[usize]) -> Group {
    let group = Group::from_toml(&resp.group_toml).unwrap();
    let info = ChainInfo::from_drand_json(&resp.info_json).unwrap();
    assert_eq!(info, group.chain_info());
    assert_eq!(resp.chain_hash, info.hash_hex());
    let mut indices = Vec::new();
    for &i in running {
        let b = beacon(cluster, i);
        assert_eq!(b.group().as_ref(), Some(&group), "member {i} has another group");
        indices.push(b.share_index().unwrap());
        let r1 = cluster.runtime().block_on(b.wait_for_round(1, Duration::from_secs(30))).expect("round 1");
        info.verify(&r1).unwrap();
    }
    indices.sort_unstable();
    indices.dedup();
    assert_eq!(indices.len(), running.len());
    group
}

#[test]
fn dkg_four_members_chained() {
    let cluster = LocalCluster::new(4).unwrap();
    let resp = init(&cluster, 1, init_request(&cluster, Scheme::PedersenBlsChained, 2500)).unwrap();
    assert_eq!(resp.qualified, vec![0, 1, 2, 3]);
    assert!(resp.disqualified.is_empty() && resp.absent.is_empty());
    assert_eq!((resp.participants, resp.confirmed), (4, 4));
    // Progress, phase by phase.
    let log = resp.log.join("\n");
    for phase in ["phase 1/3 (deal)", "phase 2/3 (response)", "phase 3/3 (justification)", "confirmed the same group"] {
        assert!(log.contains(phase), "missing `{phase}` in:\n{log}");
    }
    let group = check_group(&cluster, &resp, &[0, 1, 2, 3]);
    assert_eq!(group.threshold, 3);
    assert_eq!(group.public_key().len(), 48);
    // Every member reports the finished DKG.
    for i in 0..4 {
        let st = cluster.node(i).dkg().unwrap().status().unwrap();
        assert!(st.finished && st.error.is_none(), "member {i}: {st:?}");
        assert_eq!(st.phase, "done");
    }
    // A node with a chain refuses another DKG.
    let err = init(&cluster, 0, init_request(&cluster, Scheme::PedersenBlsChained, 2500)).unwrap_err();
    assert!(err.contains("already has a beacon chain"), "{err}");
}

#[test]
fn dkg_seven_members_quicknet() {
    let cluster = LocalCluster::new(7).unwrap();
    let resp = init(&cluster, 0, init_request(&cluster, Scheme::BlsUnchainedG1Rfc9380, 3000)).unwrap();
    assert_eq!(resp.qualified, (0..7).collect::<Vec<u32>>());
    assert_eq!((resp.participants, resp.confirmed), (7, 7));
    let group = check_group(&cluster, &resp, &[0, 1, 2, 3, 4, 5, 6]);
    assert_eq!(group.threshold, 4);
    assert_eq!(group.public_key().len(), 96);
    assert_eq!(group.scheme, Scheme::BlsUnchainedG1Rfc9380);
}

#[test]
fn dkg_completes_with_one_member_absent() {
    let mut cluster = LocalCluster::new(4).unwrap();
    cluster.stop(3).unwrap();
    let resp = init(&cluster, 0, init_request(&cluster, Scheme::PedersenBlsChained, 4000)).unwrap();
    assert_eq!(resp.absent.len(), 1);
    assert_eq!(resp.absent[0].index, 3);
    assert_eq!(resp.qualified, vec![0, 1, 2]);
    assert_eq!((resp.participants, resp.confirmed), (3, 3));
    let group = check_group(&cluster, &resp, &[0, 1, 2]);
    assert_eq!(group.threshold, 3, "threshold of the roster (⌊4/2⌋+1) is met by the three present");
    assert!(group.node(3).is_none());
}

#[test]
fn dkg_disqualifies_a_bad_dealer_with_evidence() {
    let cluster = LocalCluster::new(4).unwrap();
    // Member 2 sends member 0 a share that does not match its (signed) commitments.
    cluster.node(2).dkg().unwrap().corrupt_deals_to(0);
    let resp = init(&cluster, 1, init_request(&cluster, Scheme::PedersenBlsChained, 2500)).unwrap();
    assert_eq!(resp.qualified, vec![0, 1, 3]);
    assert_eq!(resp.disqualified.len(), 1);
    assert_eq!(resp.disqualified[0].index, 2);
    assert!(resp.disqualified[0].reason.contains("bad deal to member 0"), "{}", resp.disqualified[0].reason);
    // Every node checked the evidence itself and agrees; member 2 keeps a share (it is only
    // excluded as a dealer) and takes part in the beacon.
    assert_eq!((resp.participants, resp.confirmed), (4, 4));
    let group = check_group(&cluster, &resp, &[0, 1, 2, 3]);
    assert_eq!(group.qualified, vec![0, 1, 3]);
    for i in 0..4 {
        let st = cluster.node(i).dkg().unwrap().status().unwrap();
        assert!(
            st.log.iter().any(|l| l.contains("member 2 disqualified as dealer") && l.contains("1 evidence items")),
            "member {i}: {:?}",
            st.log
        );
    }
}

#[test]
fn dkg_retries_a_slow_dealer_past_the_first_deadline_and_includes_it() {
    let cluster = LocalCluster::new(4).unwrap();
    // Member 2's deals leave 1.5 s after dealing starts: after the first 1 s window of the
    // others, within their first retry (1 s more).
    cluster.node(2).dkg().unwrap().delay_deals(Duration::from_millis(1500));
    let mut req = init_request(&cluster, Scheme::BlsUnchainedG1Rfc9380, 6000);
    req.phase_timeout_ms = 1000;
    let resp = init(&cluster, 0, req).unwrap();
    assert_eq!(resp.qualified, vec![0, 1, 2, 3]);
    assert!(resp.disqualified.is_empty(), "{:?}", resp.disqualified);
    assert_eq!((resp.participants, resp.confirmed), (4, 4));
    let log = resp.log.join("\n");
    assert!(log.contains("deal phase: 2 in at the deadline; retry 1"), "no retry in:\n{log}");
    assert!(log.contains("3 of 3 deals valid"), "{log}");
    check_group(&cluster, &resp, &[0, 1, 2, 3]);
}

#[test]
fn dkg_excludes_a_member_that_never_answers_and_completes_with_the_others() {
    let cluster = LocalCluster::new(4).unwrap();
    // Member 3 accepts the proposal and the start, then sends nothing at all.
    cluster.node(3).dkg().unwrap().mute();
    let mut req = init_request(&cluster, Scheme::PedersenBlsChained, 9000);
    req.phase_timeout_ms = 600;
    let resp = init(&cluster, 1, req).unwrap();
    assert!(resp.absent.is_empty());
    assert_eq!(resp.qualified, vec![0, 1, 2]);
    assert_eq!(resp.disqualified.len(), 1);
    assert_eq!(resp.disqualified[0].index, 3);
    assert!(resp.disqualified[0].reason.contains("no-deal complaints"), "{}", resp.disqualified[0].reason);
    // Its deals were waited for with a retry before it was given up.
    let log = resp.log.join("\n");
    assert!(log.contains("deal phase: 2 in at the deadline; retry 1"), "{log}");
    assert!(log.contains("going on without the missing ones"), "{log}");
    assert_eq!((resp.participants, resp.confirmed), (4, 3));
    let group = check_group(&cluster, &resp, &[0, 1, 2]);
    assert_eq!(group.qualified, vec![0, 1, 2]);
}

/// A node takes part in a DKG, as its leader or a member, only for a group its operator approved
/// (members, threshold, scheme and period): without approvals a client's `/Beacon/Init` starts
/// nothing; members that approved another group stay out (and with too few the DKG fails, no one
/// holding a group); approvals through the admin socket count, bad ones are refused by name.
#[test]
fn dkg_needs_each_members_approval_of_that_group() {
    use conode_core::admin::{request_approve_beacon, socket_path};
    let cluster = LocalCluster::new(4).unwrap();
    let req = init_request(&cluster, Scheme::PedersenBlsChained, 2500);
    let no_group = |cluster: &LocalCluster| (0..4).all(|i| beacon(cluster, i).group().is_none());

    let err = init_unapproved(&cluster, 0, req.clone()).unwrap_err();
    assert!(err.contains("not approved on this node") && err.contains("beacon approve"), "{err}");
    assert!(no_group(&cluster));

    // Leader 0 and member 3 approved this group; member 1 another threshold, member 2 another
    // period: two of the three needed take part.
    beacon(&cluster, 0).approve_init_request(&req).unwrap();
    beacon(&cluster, 3).approve_init_request(&req).unwrap();
    beacon(&cluster, 1).approve_init_request(&InitRequest { threshold: 4, ..req.clone() }).unwrap();
    beacon(&cluster, 2).approve_init_request(&InitRequest { period_secs: 2, ..req.clone() }).unwrap();
    let err = init_unapproved(&cluster, 0, req.clone()).unwrap_err();
    assert!(err.contains("2 of 3"), "{err}");
    assert!(no_group(&cluster));
    // Approvals that are no approval at all.
    for (bad, what) in [
        (InitRequest { threshold: 2, ..req.clone() }, "threshold 2"),
        (InitRequest { threshold: 5, ..req.clone() }, "threshold 5"),
        (InitRequest { period_secs: 0, ..req.clone() }, "period"),
        (InitRequest { scheme: "nope".into(), ..req.clone() }, "nope"),
    ] {
        let err = beacon(&cluster, 1).approve_init_request(&bad).unwrap_err().to_string();
        assert!(err.contains(what), "{what}: {err}");
    }

    // Members 1 and 2's operators approve this group through their admin sockets.
    let socket = |i: usize| socket_path(cluster.node(i).data_dir(), &cluster.node(i).config().node_id());
    let err = request_approve_beacon(&socket(1), &InitRequest { roster_toml: "x".into(), ..req.clone() })
        .unwrap_err()
        .to_string();
    assert!(err.contains("roster_toml"), "{err}");
    for i in [1, 2] {
        let approved = request_approve_beacon(&socket(i), &req).unwrap();
        assert_eq!((approved.members, approved.threshold, approved.period_secs), (4, 3, 1));
        assert_eq!(approved.scheme, Scheme::PedersenBlsChained.id());
    }
    let resp = init_unapproved(&cluster, 2, req.clone()).unwrap();
    assert_eq!((resp.participants, resp.confirmed), (4, 4));
    check_group(&cluster, &resp, &[0, 1, 2, 3]);
    // A node holding a group approves no other.
    let err = beacon(&cluster, 1).approve_init_request(&req).unwrap_err().to_string();
    assert!(err.contains("already has a beacon chain"), "{err}");
}
