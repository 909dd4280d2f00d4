//! The randomness beacon on a LocalCluster (period 1 s): beacons of both schemes verify with the
//! pure verifier from drand's JSON; the HTTP API has drand's shapes and headers; the chain keeps
//! going with n − t members stopped, produces nothing below the threshold, then resumes and catches
//! up after restarts; invalid partials are rejected.

use conode_core::api::client;
use conode_core::cluster::LocalCluster;
use conode_core::services::beacon::messages::{BeaconPacket, InitRequest, LatestRequest, PartialBeacon, RoundRequest};
use conode_core::services::beacon::{BeaconFault, BeaconService};
use conode_core::verify::beacon::{Beacon, ChainInfo, Scheme};
use prost::Message;
use std::time::Duration;

fn start_chain(cluster: &LocalCluster, scheme: Scheme) -> ChainInfo {
    let req = InitRequest {
        roster_toml: cluster.roster().to_toml(),
        scheme: scheme.id().into(),
        period_secs: 1,
        threshold: 0,
        phase_timeout_ms: 2000,
        genesis_time: 0,
        genesis_delay_ms: 2000,
        beacon_id: String::new(),
    };
    cluster.approve_beacon(&req).unwrap();
    let url = cluster.client_url(0).unwrap();
    cluster
        .runtime()
        .block_on(client::call(&url, "Beacon", "Init", req.encode_to_vec(), Duration::from_secs(60)))
        .unwrap();
    beacon(cluster, 0).chain_info().unwrap()
}

fn beacon(cluster: &LocalCluster, i: usize) -> BeaconService {
    cluster.node(i).beacon().unwrap()
}

fn wait_round(cluster: &LocalCluster, i: usize, round: u64, secs: u64) -> Option<Beacon> {
    cluster.runtime().block_on(beacon(cluster, i).wait_for_round(round, Duration::from_secs(secs)))
}

/// Every round 1..=latest stored on member `i` verifies and chains.
fn verify_stored_chain(cluster: &LocalCluster, i: usize, info: &ChainInfo) -> u64 {
    let b = beacon(cluster, i);
    let latest = b.stats().latest_round;
    let mut prev = info.genesis_seed.clone();
    for r in 1..=latest {
        let bc = b.get(r).unwrap_or_else(|| panic!("member {i} lacks round {r} (latest {latest})"));
        info.verify(&bc).unwrap_or_else(|e| panic!("member {i} round {r}: {e}"));
        if info.scheme.is_chained() {
            assert_eq!(bc.previous_signature.as_deref(), Some(prev.as_slice()));
            prev = bc.signature.clone();
        }
    }
    latest
}

fn http(base: &str, path: &str) -> (u16, reqwest::header::HeaderMap, String) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let r = reqwest::get(format!("{base}{path}")).await.unwrap();
        let (s, h) = (r.status().as_u16(), r.headers().clone());
        (s, h, r.text().await.unwrap())
    })
}

fn hdr<'a>(h: &'a reqwest::header::HeaderMap, k: &str) -> &'a str {
    h.get(k).and_then(|v| v.to_str().ok()).unwrap_or("")
}

fn check_http_api(cluster: &LocalCluster, info: &ChainInfo) {
    let base = cluster.client_url(1).unwrap().replace("ws://", "http://");
    // /info: drand's v1 JSON; the pure verifier parses it and checks the chain hash.
    let (s, h, body) = http(&base, "/info");
    assert_eq!(s, 200);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    for k in ["public_key", "period", "genesis_time", "hash", "groupHash", "schemeID", "metadata"] {
        assert!(v.get(k).is_some(), "/info lacks {k}: {body}");
    }
    assert_eq!(v["metadata"]["beaconID"], "default");
    assert_eq!(v["schemeID"], info.scheme.id());
    assert_eq!(&ChainInfo::from_drand_json(&body).unwrap(), info);
    assert_eq!(hdr(&h, "cache-control"), "public, max-age=604800, immutable");
    assert_eq!(hdr(&h, "content-type"), "application/json");
    assert_eq!(hdr(&h, "access-control-allow-origin"), "*");
    assert!(hdr(&h, "last-modified").ends_with(" GMT") && hdr(&h, "expires").ends_with(" GMT"));
    let hash = info.hash_hex();
    // /{chainhash}/info (answered through the client port's fallback).
    let (s, _, body2) = http(&base, &format!("/{hash}/info"));
    assert_eq!((s, body2.as_str()), (200, body.as_str()));
    let (s, _, _) = http(&base, &format!("/{}/info", "00".repeat(32)));
    assert_eq!(s, 404);
    // /public/1: immutable; verifies from its JSON.
    let (s, h, body) = http(&base, "/public/1");
    assert_eq!(s, 200);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["round"], 1);
    assert_eq!(v.get("previous_signature").is_some(), info.scheme.is_chained(), "{body}");
    info.verify(&Beacon::from_drand_json(&body).unwrap()).unwrap();
    assert_eq!(hdr(&h, "cache-control"), "public, max-age=604800, immutable");
    let (s, _, body1) = http(&base, &format!("/{hash}/public/1"));
    assert_eq!((s, body1), (200, body));
    // /public/latest: expires with the next round.
    let (s, h, body) = http(&base, "/public/latest");
    assert_eq!(s, 200);
    let latest = Beacon::from_drand_json(&body).unwrap();
    info.verify(&latest).unwrap();
    assert!(hdr(&h, "expires").ends_with(" GMT") && hdr(&h, "last-modified").ends_with(" GMT"));
    let (s, _, body) = http(&base, &format!("/{hash}/public/latest"));
    assert_eq!(s, 200);
    assert!(Beacon::from_drand_json(&body).unwrap().round >= latest.round);
    // Far future: 404 with a max-age until it is due; garbage round: 400.
    let (s, h, _) = http(&base, "/public/1000000");
    assert_eq!(s, 404);
    assert!(hdr(&h, "cache-control").starts_with("public, must-revalidate, max-age="));
    assert_eq!(http(&base, "/public/abc").0, 400);
    // Rounds whose time in ms is beyond i64, or whose time is beyond drand's range: 404 too.
    let (s, h, _) = http(&base, "/public/9300000000000000");
    assert_eq!(s, 404);
    assert!(hdr(&h, "cache-control").starts_with("public, must-revalidate, max-age="));
    assert_eq!(http(&base, &format!("/public/{}", u64::MAX)).0, 404);
    // /chains and /health.
    let (s, _, body) = http(&base, "/chains");
    assert_eq!(s, 200);
    assert_eq!(serde_json::from_str::<Vec<String>>(&body).unwrap(), vec![hash.clone()]);
    let (s, h, body) = http(&base, "/health");
    assert_eq!(s, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(v["current"].as_u64().unwrap() + 1 >= v["expected"].as_u64().unwrap());
    assert_eq!(hdr(&h, "cache-control"), "no-cache");
    assert_eq!(http(&base, &format!("/{hash}/health")).0, 200);
    // The WebSocket API.
    let ws = cluster.client_url(2).unwrap();
    let rt = cluster.runtime();
    let l = rt
        .block_on(client::call(&ws, "Beacon", "Latest", LatestRequest {}.encode_to_vec(), Duration::from_secs(10)))
        .unwrap();
    let l = BeaconPacket::decode(l.as_slice()).unwrap();
    assert!(l.round >= 1);
    let r1 = rt
        .block_on(client::call(
            &ws,
            "Beacon",
            "Round",
            RoundRequest { round: 1 }.encode_to_vec(),
            Duration::from_secs(10),
        ))
        .unwrap();
    let r1 = BeaconPacket::decode(r1.as_slice()).unwrap();
    assert_eq!(
        r1.randomness,
        Beacon { round: 1, signature: r1.signature.clone(), previous_signature: None }.randomness().to_vec()
    );
    let err = rt
        .block_on(client::call(
            &ws,
            "Beacon",
            "Round",
            RoundRequest { round: 999_999 }.encode_to_vec(),
            Duration::from_secs(10),
        ))
        .unwrap_err();
    assert!(err.to_string().contains("not available"), "{err}");
}

#[test]
fn chained_beacons_verify_and_http_api_is_drands() {
    let cluster = LocalCluster::new(4).unwrap();
    let info = start_chain(&cluster, Scheme::PedersenBlsChained);
    for i in 0..4 {
        wait_round(&cluster, i, 3, 30).expect("round 3");
    }
    for i in 0..4 {
        assert!(verify_stored_chain(&cluster, i, &info) >= 3);
    }
    check_http_api(&cluster, &info);
}

/// `/Beacon/Init` refuses times out of range by name (they overflowed before), and starts nothing.
#[test]
fn init_refuses_times_out_of_range() {
    let cluster = LocalCluster::new(1).unwrap();
    let url = cluster.client_url(0).unwrap();
    let base = InitRequest {
        roster_toml: cluster.roster().to_toml(),
        scheme: String::new(),
        period_secs: 1,
        threshold: 0,
        phase_timeout_ms: 1000,
        genesis_time: 0,
        genesis_delay_ms: 0,
        beacon_id: String::new(),
    };
    let refused = |req: InitRequest, what: &str| {
        let call = client::call(&url, "Beacon", "Init", req.encode_to_vec(), Duration::from_secs(10));
        let err = cluster.runtime().block_on(call).unwrap_err().to_string();
        assert!(err.contains(what), "{err}");
    };
    refused(InitRequest { phase_timeout_ms: u64::MAX, ..base.clone() }, "phase_timeout_ms above");
    refused(InitRequest { genesis_delay_ms: u64::MAX, ..base.clone() }, "genesis_delay_ms above");
    refused(InitRequest { genesis_time: i64::MAX, ..base.clone() }, "more than a week ahead");
    refused(InitRequest { genesis_time: 1, ..base.clone() }, "in the past");
    assert!(beacon(&cluster, 0).chain_info().is_none(), "a refused init started a chain");
}

#[test]
fn quicknet_beacons_verify_and_http_api_is_drands() {
    let cluster = LocalCluster::new(3).unwrap();
    let info = start_chain(&cluster, Scheme::BlsUnchainedG1Rfc9380);
    assert_eq!(info.public_key.len(), 96);
    for i in 0..3 {
        let b = wait_round(&cluster, i, 3, 30).expect("round 3");
        assert_eq!(b.signature.len(), 48);
        assert!(b.previous_signature.is_none());
    }
    for i in 0..3 {
        verify_stored_chain(&cluster, i, &info);
    }
    check_http_api(&cluster, &info);
}

#[test]
fn keeps_going_with_n_minus_t_down_halts_below_threshold_and_catches_up() {
    let mut cluster = LocalCluster::new(4).unwrap(); // threshold 3
    let info = start_chain(&cluster, Scheme::PedersenBlsChained);
    for i in 0..4 {
        wait_round(&cluster, i, 2, 30).expect("round 2");
    }
    // n − t = 1 member down: the chain goes on.
    cluster.stop(3).unwrap();
    let now = beacon(&cluster, 0).stats().latest_round;
    wait_round(&cluster, 0, now + 2, 10).expect("rounds with 3 of 4 members");
    // Below the threshold: nothing is produced (and nothing wrong is stored).
    cluster.stop(2).unwrap();
    let settled = beacon(&cluster, 0).stats().latest_round;
    // At most the round in flight completes; after that the chain must stand still.
    let stalled_at = wait_round(&cluster, 0, settled + 1, 2).map_or(settled, |b| b.round);
    assert!(wait_round(&cluster, 0, stalled_at + 1, 3).is_none(), "a beacon was produced by 2 of 4 members");
    assert!(wait_round(&cluster, 1, stalled_at + 1, 1).is_none());
    for i in 0..2 {
        verify_stored_chain(&cluster, i, &info);
    }
    // Members come back: the missed rounds are produced in order, the restarted ones catch up.
    cluster.restart(2).unwrap();
    cluster.restart(3).unwrap();
    let due = info.latest_round(conode_core::services::beacon::unix_now_ms() / 1000);
    for i in 0..4 {
        wait_round(&cluster, i, due, 30).unwrap_or_else(|| panic!("member {i} did not catch up to round {due}"));
    }
    let mut lasts = Vec::new();
    for i in 0..4 {
        lasts.push(verify_stored_chain(&cluster, i, &info));
    }
    assert!(lasts.iter().all(|l| *l >= due), "{lasts:?} < {due}");
    // The restarted members fetched (and verified) what they missed from their peers.
    for i in [2, 3] {
        assert!(beacon(&cluster, i).stats().received > 0, "member {i}: {:?}", beacon(&cluster, i).stats());
    }
    // Same beacons everywhere.
    let r = due;
    let sigs: Vec<Vec<u8>> = (0..4).map(|i| beacon(&cluster, i).get(r).unwrap().signature).collect();
    assert!(sigs.windows(2).all(|w| w[0] == w[1]));
}

#[test]
fn invalid_partials_are_rejected() {
    let cluster = LocalCluster::new(4).unwrap(); // threshold 3: the three honest members suffice
    let info = start_chain(&cluster, Scheme::PedersenBlsChained);
    beacon(&cluster, 3).set_fault(BeaconFault::InvalidPartials);
    let now = beacon(&cluster, 0).stats().latest_round.max(1);
    for i in 0..4 {
        wait_round(&cluster, i, now + 3, 30).expect("rounds despite a member sending invalid partials");
    }
    for i in 0..3 {
        // A partial not needed for its round is checked after it (the audit): wait for that too.
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while beacon(&cluster, i).stats().invalid_partials == 0 {
            let st = beacon(&cluster, i).stats();
            assert!(std::time::Instant::now() < deadline, "member {i} did not reject member 3's partials: {st:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
        verify_stored_chain(&cluster, i, &info);
    }
    verify_stored_chain(&cluster, 3, &info);
    // A garbage partial sent directly is refused with a reason.
    let net1 = cluster.node(1).network().unwrap();
    let to0 = cluster.roster().servers[0].clone();
    let next = beacon(&cluster, 0).stats().latest_round + 1;
    let bad = PartialBeacon {
        round: next,
        previous_signature: beacon(&cluster, 0).get(next - 1).unwrap().signature,
        index: 1,
        partial: vec![0xab; 96],
    };
    let err = cluster
        .runtime()
        .block_on(net1.request(&to0, "Beacon", "Partial", &[], bad.encode_to_vec(), Duration::from_secs(5)))
        .unwrap_err();
    assert!(
        err.to_string().contains("invalid partial") || err.to_string().contains("another previous signature"),
        "{err}"
    );
    // A partial claiming another member's index is refused too.
    let forged = PartialBeacon { round: next, previous_signature: vec![], index: 2, partial: vec![0; 96] };
    let err = cluster
        .runtime()
        .block_on(net1.request(&to0, "Beacon", "Partial", &[], forged.encode_to_vec(), Duration::from_secs(5)))
        .unwrap_err();
    assert!(err.to_string().contains("another member's index"), "{err}");
    beacon(&cluster, 3).set_fault(BeaconFault::None);
    byzantine_recoverers_and_floods(&cluster, &info);
}

/// The cluster node holding share index `share`.
fn node_of_share(cluster: &LocalCluster, share: u32) -> usize {
    (0..4).find(|i| beacon(cluster, *i).share_index() == Some(share)).expect("a member holds every share")
}

/// Two Byzantine recoverers of one round push forged beacons of it (one a valid point that is
/// not the round's signature, one garbage): a member rejects both and still stores and serves the
/// group's beacon of that round. Then a member floods another with partials (repeats, rounds far
/// ahead) and resharing `Fetch`es of unknown sessions: all refused or ignored, memory stays
/// bounded (at most one held partial per member and open round) and the rounds go on.
fn byzantine_recoverers_and_floods(cluster: &LocalCluster, info: &ChainInfo) {
    let rt = cluster.runtime();
    let h = 1;
    let latest = beacon(cluster, h).stats().latest_round + 1;
    wait_round(cluster, h, latest, 10).expect("the next round");
    let next = latest + 1;
    // n = 4: the recoverers of `next` are shares next % 4 and (next + 2) % 4.
    let liars = [node_of_share(cluster, (next % 4) as u32), node_of_share(cluster, ((next + 2) % 4) as u32)];
    let to_h = cluster.roster().servers[h].clone();
    let stored = beacon(cluster, h).get(latest).unwrap();
    let before = beacon(cluster, h).stats();
    let forged = [
        // Round `latest`'s signature: a valid signature of the group, of another round.
        BeaconPacket {
            round: next,
            signature: stored.signature.clone(),
            previous_signature: stored.signature.clone(),
            randomness: vec![],
        },
        BeaconPacket {
            round: next,
            signature: vec![0xab; stored.signature.len()],
            previous_signature: stored.signature.clone(),
            randomness: vec![],
        },
    ];
    for (liar, packet) in liars.iter().zip(forged) {
        if *liar == h {
            continue;
        }
        let net = cluster.node(*liar).network().unwrap();
        let err = rt
            .block_on(net.request(&to_h, "Beacon", "Recovered", &[], packet.encode_to_vec(), Duration::from_secs(5)))
            .expect_err("a forged push is refused");
        assert!(err.to_string().contains("signature") || err.to_string().contains("point"), "{err}");
    }
    let rejected = liars.iter().filter(|l| **l != h).count() as u64;
    let b = wait_round(cluster, h, next, 10).expect("the round after the forged pushes");
    info.verify(&b).unwrap();
    let after = beacon(cluster, h).stats();
    assert_eq!(after.invalid_pushes, before.invalid_pushes + rejected, "{after:?}");
    for liar in liars {
        let theirs = wait_round(cluster, liar, next, 10).expect("the liar's own round");
        assert_eq!(theirs.signature, b.signature, "the group's signature is unique");
    }
    let base = cluster.client_url(h).unwrap().replace("ws://", "http://");
    let (status, _, body) = http(&base, &format!("/public/{next}"));
    assert_eq!(status, 200);
    assert_eq!(Beacon::from_drand_json(&body).unwrap().signature, b.signature);

    // From now on the two liars push a forged beacon of every round they recover (the fault
    // knob), while member 2 floods member 1 with hundreds of requests at once.
    for liar in liars.iter().filter(|l| **l != h) {
        beacon(cluster, *liar).set_fault(BeaconFault::ForgedPushes);
    }
    let net2 = cluster.node(2).network().unwrap();
    let idx2 = beacon(cluster, 2).share_index().unwrap();
    let now = beacon(cluster, h).stats().latest_round;
    let prev = beacon(cluster, h).get(now).unwrap().signature;
    let mut session = vec![0x0a, 0x20];
    session.extend([7u8; 32]);
    let answers = rt.block_on(async {
        let mut set = tokio::task::JoinSet::new();
        for k in 0..300u64 {
            let (net, to) = (net2.clone(), to_h.clone());
            let partial = PartialBeacon {
                round: if k % 2 == 0 { now + 1 } else { now + 1 + k },
                previous_signature: prev.clone(),
                index: idx2,
                partial: vec![(k % 251) as u8; stored.signature.len()],
            };
            let (proto, body) =
                if k % 3 == 0 { ("Fetch", session.clone()) } else { ("Partial", partial.encode_to_vec()) };
            let service = if proto == "Fetch" { "Reshare" } else { "Beacon" };
            set.spawn(
                async move { (proto, net.request(&to, service, proto, &[], body, Duration::from_secs(10)).await) },
            );
        }
        set.join_all().await
    });
    for (proto, r) in &answers {
        if *proto == "Fetch" {
            let err = r.as_ref().expect_err("no resharing session");
            assert!(err.to_string().contains("unknown resharing session"), "{err}");
        }
    }
    let held = beacon(cluster, h).stats().held_partials;
    assert!(held <= 4 * 3, "one partial per member and open round at most: {held}");
    let goal = now + 2;
    let b = wait_round(cluster, h, goal, 10).expect("rounds go on after the flood, with lying recoverers");
    info.verify(&b).unwrap();
    for i in 0..4 {
        beacon(cluster, i).set_fault(BeaconFault::None);
        let theirs = wait_round(cluster, i, goal, 10).unwrap_or_else(|| panic!("member {i} at round {goal}"));
        assert_eq!(theirs.signature, b.signature);
        verify_stored_chain(cluster, i, info);
    }
}
