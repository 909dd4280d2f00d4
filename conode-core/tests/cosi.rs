//! Collective signing on LocalClusters of 4, 7 and 16 nodes: success over `/Cosi/Sign`, tampered
//! signatures / masks / rosters rejected by the pure verifier, a node sending garbage or signing
//! another message excluded and reported, f stopped nodes tolerated, f+1 refused with an error that
//! names the missing nodes; plus hooks, the open-signing switch, silent nodes and bad requests.
//! Short per-level timeouts keep every test fast; nothing sleeps.

use conode_core::api::client;
use conode_core::cluster::{ClusterOptions, LocalCluster};
use conode_core::config::{Roster, COSI_SERVICE};
use conode_core::crypto::{BlsKeyPair, BlsPublicKey};
use conode_core::services::cosi::messages::{SignRequest, SignResponse};
use conode_core::services::cosi::{self, tree, CosiError, CosiFault, CosiService, ExclusionKind, Policy, SignOutcome};
use prost::Message;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Per-level timeout used by the tests.
const LEVEL: Duration = Duration::from_millis(1000);

fn cosi_keys(roster: &Roster) -> Vec<BlsPublicKey> {
    roster.servers.iter().map(|s| *s.service_key(COSI_SERVICE).unwrap()).collect()
}

fn full_mask(n: usize, except: &[usize]) -> Vec<u8> {
    cosi::Mask::from_indices(n, (0..n).filter(|i| !except.contains(i))).into_bytes()
}

fn ws_sign(
    cluster: &LocalCluster,
    node: usize,
    msg: &[u8],
    roster: Option<&Roster>,
    threshold: Option<u32>,
) -> Result<SignResponse, client::ClientError> {
    let url = cluster.client_url(node).unwrap();
    let req = SignRequest {
        message: msg.to_vec(),
        roster_toml: roster.map(|r| r.to_toml()),
        threshold,
        timeout_ms: Some(LEVEL.as_millis() as u64),
    };
    let reply =
        cluster.runtime().block_on(client::call(&url, "Cosi", "Sign", req.encode_to_vec(), Duration::from_secs(30)))?;
    Ok(SignResponse::decode(reply.as_slice()).unwrap())
}

fn svc(cluster: &LocalCluster, i: usize) -> CosiService {
    cluster.node(i).cosi().expect("cosi service of a running node")
}

fn rust_sign(cluster: &LocalCluster, msg: &[u8], policy: Policy) -> Result<SignOutcome, CosiError> {
    let roster = cluster.roster().clone();
    let s = svc(cluster, 0);
    cluster.runtime().block_on(s.sign_with_timeout(&roster, msg, cosi::OPEN_SIGNING_PURPOSE, &[], policy, LEVEL))
}

fn indices(list: &[cosi::Exclusion]) -> Vec<usize> {
    list.iter().map(|e| e.index).collect()
}

/// Everything the issue asks for, on a cluster of `n` nodes (root: node 0).
fn scenario(n: usize) {
    let started = Instant::now();
    let mut cluster = LocalCluster::new(n).unwrap();
    let roster = cluster.roster().clone();
    let keys = cosi_keys(&roster);
    let f = (n - 1) / 3;
    let groups = tree::groups(n, 0);

    // Success over the client API.
    let msg = format!("statement signed by {n} nodes").into_bytes();
    let resp = ws_sign(&cluster, 0, &msg, Some(&roster), None).unwrap();
    assert_eq!(resp.signed, (0..n as u32).collect::<Vec<_>>());
    assert_eq!(resp.mask, full_mask(n, &[]));
    assert_eq!(resp.required as usize, n - f);
    assert!(resp.refused.is_empty() && resp.timed_out.is_empty() && resp.invalid.is_empty());
    cosi::verify(&msg, &resp.signature, &resp.mask, &keys, Policy::Default).unwrap();
    cosi::verify(&msg, &resp.signature, &resp.mask, &keys, Policy::Threshold(n)).unwrap();

    // Tampering is caught by the pure verifier.
    let mut sig = resp.signature.clone();
    sig[50] ^= 0x01;
    assert!(cosi::verify(&msg, &sig, &resp.mask, &keys, Policy::Default).is_err(), "tampered signature");
    let mut mask = resp.mask.clone();
    mask[(n - 1) / 8] ^= 1 << ((n - 1) % 8);
    assert!(cosi::verify(&msg, &resp.signature, &mask, &keys, Policy::Default).is_err(), "tampered mask");
    let mut wrong = keys.clone();
    wrong[n / 2] = BlsKeyPair::generate().public();
    assert!(cosi::verify(&msg, &resp.signature, &resp.mask, &wrong, Policy::Default).is_err(), "wrong roster");
    assert!(cosi::verify(&msg, &resp.signature, &resp.mask, &keys[1..], Policy::Default).is_err(), "shorter roster");
    assert!(
        cosi::verify(b"another statement", &resp.signature, &resp.mask, &keys, Policy::Default).is_err(),
        "other statement"
    );

    // A leaf answering with garbage: its sub-leader excludes and reports it.
    let leaf = groups.iter().find_map(|g| g.leaves.first().copied()).unwrap();
    svc(&cluster, leaf).set_fault(CosiFault::Garbage);
    let out = rust_sign(&cluster, b"garbage leaf", Policy::Default).unwrap();
    assert_eq!(indices(&out.report.invalid), vec![leaf], "{:?}", out.report);
    assert_eq!(out.mask, full_mask(n, &[leaf]));
    cosi::verify(b"garbage leaf", &out.signature.to_bytes(), &out.mask, &keys, Policy::Default).unwrap();
    svc(&cluster, leaf).set_fault(CosiFault::None);

    // A leaf signing another message: its sub-leader adds it up unchecked (only the root verifies);
    // the total fails, the root asks that group's members directly, finds the leaf and excludes it
    // alone (the honest sub-leader is not blamed).
    let liar = groups.iter().find_map(|g| g.leaves.last().copied()).unwrap();
    svc(&cluster, liar).set_fault(CosiFault::WrongMessage);
    let out = rust_sign(&cluster, b"lying leaf", Policy::Default).unwrap();
    assert_eq!(indices(&out.report.invalid), vec![liar], "{:?}", out.report);
    assert_eq!(out.mask, full_mask(n, &[liar]));
    cosi::verify(b"lying leaf", &out.signature.to_bytes(), &out.mask, &keys, Policy::Default).unwrap();
    svc(&cluster, liar).set_fault(CosiFault::None);

    // A sub-leader signing another message: the root asks its group directly and finds it.
    let leader = groups[0].leader;
    svc(&cluster, leader).set_fault(CosiFault::WrongMessage);
    let out = rust_sign(&cluster, b"lying sub-leader", Policy::Default).unwrap();
    assert_eq!(indices(&out.report.invalid), vec![leader], "{:?}", out.report);
    assert_eq!(out.mask, full_mask(n, &[leader]));
    cosi::verify(b"lying sub-leader", &out.signature.to_bytes(), &out.mask, &keys, Policy::Default).unwrap();
    svc(&cluster, leader).set_fault(CosiFault::None);

    // f nodes down, one of them a sub-leader: still signs, with the right mask.
    let mut down = vec![leader];
    let mut k = n - 1;
    while down.len() < f {
        if !down.contains(&k) {
            down.push(k);
        }
        k -= 2;
    }
    for &i in &down {
        cluster.stop(i).unwrap();
    }
    let t = Instant::now();
    let resp = ws_sign(&cluster, 0, b"with f nodes down", Some(&roster), None).unwrap();
    let mut sorted = down.clone();
    sorted.sort();
    assert_eq!(resp.mask, full_mask(n, &down));
    assert_eq!(resp.timed_out.iter().map(|e| e.index as usize).collect::<Vec<_>>(), sorted, "{resp:?}");
    cosi::verify(b"with f nodes down", &resp.signature, &resp.mask, &keys, Policy::Default).unwrap();
    assert!(t.elapsed() < LEVEL * 4, "per-level timeouts bound the round: {:?}", t.elapsed());

    // f + 1 down: a clear error naming the missing nodes.
    let extra = (1..n).find(|i| !down.contains(i)).unwrap();
    cluster.stop(extra).unwrap();
    down.push(extra);
    down.sort();
    let err = ws_sign(&cluster, 0, b"with f+1 nodes down", Some(&roster), None).unwrap_err();
    assert!(err.to_string().contains("threshold not reached"), "{err}");
    // The code and the missing members cross the wire as data, not as text to parse.
    let client::ClientError::Service { error, .. } = &err else { panic!("not a service error: {err}") };
    assert_eq!(error.code, conode_core::client_api::ErrorCode::Threshold);
    // The round ends as soon as the threshold is out of reach (plus a short grace): on a loaded
    // machine, live members still on their way then are reported missing too. Every stopped
    // member is, and every member is either counted as signed or named.
    let names_the_stopped = |missing: &[usize], signed: usize| {
        down.iter().all(|d| missing.contains(d)) && signed < n - f && signed + missing.len() == n
    };
    let missing = error.numbers("missing");
    let signed = error.number("signed").unwrap_or(usize::MAX);
    assert!(names_the_stopped(&missing, signed), "{err}");
    assert_eq!(error.number("required"), Some(n - f));
    match rust_sign(&cluster, b"with f+1 nodes down", Policy::Default) {
        Err(CosiError::ThresholdNotReached { signed, required, missing: named, .. }) => {
            assert_eq!(required, n - f);
            let missing: Vec<usize> = named.iter().map(|(_, e)| e.index).collect();
            assert!(names_the_stopped(&missing, signed), "signed {signed}, missing {missing:?}");
            // Every one of them timed out: none refused or sent a bad signature, and the root signed.
            assert!(!missing.contains(&0), "the root is named: {named:?}");
            for (kind, e) in &named {
                assert_eq!(*kind, ExclusionKind::TimedOut, "{e:?}");
            }
        }
        other => panic!("expected ThresholdNotReached, got {other:?}"),
    }
    // A lower threshold chosen per request still signs.
    let resp = ws_sign(&cluster, 0, b"lower threshold", Some(&roster), Some((n - f - 1) as u32)).unwrap();
    cosi::verify(b"lower threshold", &resp.signature, &resp.mask, &keys, Policy::Threshold(n - f - 1)).unwrap();
    assert!(cosi::verify(b"lower threshold", &resp.signature, &resp.mask, &keys, Policy::Default).is_err());
    eprintln!("cosi scenario with {n} nodes took {:?}", started.elapsed());
}

#[test]
fn four_nodes() {
    scenario(4);
}

#[test]
fn seven_nodes() {
    scenario(7);
}

#[test]
fn sixteen_nodes() {
    scenario(16);
}

#[test]
fn open_signing_is_opt_in() {
    let mut opts = ClusterOptions::new(3);
    opts.allow_open_signing = false;
    let cluster = LocalCluster::with_options(opts).unwrap();
    let roster = cluster.roster().clone();
    let err = ws_sign(&cluster, 0, b"x", Some(&roster), None).unwrap_err().to_string();
    assert!(err.contains("refused: open signing is disabled"), "{err}");
    // Nor through the Rust API with the open purpose.
    match rust_sign(&cluster, b"x", Policy::Default) {
        Err(CosiError::Refused(r)) => assert!(r.contains("open signing is disabled"), "{r}"),
        other => panic!("expected Refused, got {other:?}"),
    }
}

#[test]
fn hooks_decide_per_purpose() {
    let mut opts = ClusterOptions::new(4);
    opts.allow_open_signing = false;
    let cluster = LocalCluster::with_options(opts).unwrap();
    let roster = cluster.roster().clone();
    let keys = cosi_keys(&roster);
    for i in 0..4 {
        svc(&cluster, i)
            .hook(
                "Test",
                Arc::new(
                    |s: &[u8], extra: &[u8]| {
                        if s.starts_with(b"ok") && extra == b"ctx" {
                            Ok(())
                        } else {
                            Err("not ok".into())
                        }
                    },
                ),
            )
            .unwrap();
    }
    assert!(svc(&cluster, 0).hook("Cosi", Arc::new(|_: &[u8], _: &[u8]| Ok(()))).is_err(), "open purpose is reserved");
    svc(&cluster, 3).hook("Test", Arc::new(|_: &[u8], _: &[u8]| Err("node 3 disagrees".into()))).unwrap();
    svc(&cluster, 2).remove_hook("Test");
    let s0 = svc(&cluster, 0);
    let rt = cluster.runtime();
    let sign = |msg: &[u8], policy| rt.block_on(s0.sign_with_timeout(&roster, msg, "Test", b"ctx", policy, LEVEL));
    let out = sign(b"ok 1", Policy::Threshold(2)).unwrap();
    assert_eq!(out.report.signed, vec![0, 1]);
    let refused: Vec<(usize, String)> = out.report.refused.iter().map(|e| (e.index, e.reason.clone())).collect();
    assert_eq!(refused.len(), 2, "{refused:?}");
    assert!(refused[0].0 == 2 && refused[0].1.contains("no verification hook for purpose `Test`"), "{refused:?}");
    assert!(refused[1].0 == 3 && refused[1].1.contains("node 3 disagrees"), "{refused:?}");
    cosi::verify(b"ok 1", &out.signature.to_bytes(), &out.mask, &keys, Policy::Threshold(2)).unwrap();
    // Members sign while their hook checks; the signature of a refused statement never left
    // node 3 (above): it was computed for nothing and counted. Node 2 has no hook for the purpose:
    // it signed nothing early.
    let wasted = |i: usize| svc(&cluster, i).early_signatures_wasted();
    assert_eq!((wasted(1), wasted(2), wasted(3)), (0, 0, 1));
    // The default policy needs 3 of 4.
    assert!(matches!(
        sign(b"ok 2", Policy::Default),
        Err(CosiError::ThresholdNotReached { signed: 2, required: 3, .. })
    ));
    // The root checks first: it will not ask others to sign what it refuses.
    assert!(matches!(sign(b"bad", Policy::Default), Err(CosiError::Refused(r)) if r.contains("not ok")));
}

/// A leaf whose hook is quick checks the statement first and then signs (on its own worker): a
/// refused statement costs it no signature. One whose hook is slow signs while the hook runs: a
/// refused statement was signed for nothing, and counted.
#[test]
fn leaves_with_a_quick_hook_sign_only_what_it_approves() {
    let cluster = LocalCluster::new(2).unwrap();
    let roster = cluster.roster().clone();
    let keys = cosi_keys(&roster);
    let (root, leaf) = (svc(&cluster, 0), svc(&cluster, 1));
    root.hook("Test", Arc::new(|_: &[u8], _: &[u8]| Ok(()))).unwrap();
    let approve_ok = |s: &[u8]| if s.starts_with(b"ok") { Ok(()) } else { Err("not ok".to_string()) };
    leaf.hook("Test", Arc::new(move |s: &[u8], _: &[u8]| approve_ok(s))).unwrap();
    let rt = cluster.runtime();
    let sign = |msg: &[u8]| rt.block_on(root.sign_with_timeout(&roster, msg, "Test", b"", Policy::Threshold(2), LEVEL));
    let refused_by_the_leaf = |msg: &[u8]| match sign(msg) {
        Err(CosiError::ThresholdNotReached { signed: 1, .. }) => {}
        other => panic!("expected the leaf to refuse {msg:?}, got {other:?}"),
    };
    let signed = |msg: &[u8]| {
        let out = sign(msg).unwrap();
        assert_eq!(out.report.signed, vec![0, 1]);
        cosi::verify(msg, &out.signature.to_bytes(), &out.mask, &keys, Policy::Threshold(2)).unwrap();
    };
    let counts = |worker, after_check, while_checking| cosi::PartialSignatureCounts {
        on_worker: worker,
        on_pool_after_check: after_check,
        on_pool_while_checking: while_checking,
    };
    // The hook never ran: the leaf signs while it runs (early), and a refusal wastes that.
    refused_by_the_leaf(b"bad 1");
    assert_eq!(leaf.early_signatures_wasted(), 1);
    assert_eq!(leaf.partial_signatures(), counts(0, 0, 0), "a refused signature is not given");
    // Now known to be quick: checked first, nothing signed for a refused statement.
    signed(b"ok 1");
    refused_by_the_leaf(b"bad 2");
    refused_by_the_leaf(b"bad 3");
    signed(b"ok 2");
    assert_eq!(leaf.partial_signatures(), counts(2, 0, 0), "signed on the leaf's worker");
    // A long statement goes to the crypto pool, checked first all the same.
    let long = [&b"ok "[..], &[7u8; 4000]].concat();
    signed(&long);
    refused_by_the_leaf(&[&b"bad "[..], &[7u8; 4000]].concat());
    assert_eq!(leaf.early_signatures_wasted(), 1, "a quick hook is checked before the leaf signs");
    assert_eq!(leaf.partial_signatures(), counts(2, 1, 0));
    // A slow hook (a millisecond, 20 times the quick bound) runs while the leaf signs.
    leaf.hook(
        "Test",
        Arc::new(move |s: &[u8], _: &[u8]| {
            std::thread::sleep(Duration::from_millis(1));
            approve_ok(s)
        }),
    )
    .unwrap();
    signed(b"ok 3");
    signed(b"ok 4");
    refused_by_the_leaf(b"bad 4");
    assert_eq!(leaf.early_signatures_wasted(), 2, "a slow hook runs while the leaf signs");
    assert_eq!(leaf.partial_signatures(), counts(2, 1, 2));
    // The counts are on `/metrics` too.
    let url = cluster.client_url(1).unwrap().replace("ws://", "http://");
    let text = rt.block_on(async { reqwest::get(format!("{url}/metrics")).await?.text().await }).unwrap();
    for line in [
        r#"conode_cosi_partial_signatures_total{on="worker"} 2"#,
        r#"conode_cosi_partial_signatures_total{on="pool_after_check"} 1"#,
        r#"conode_cosi_partial_signatures_total{on="pool_while_checking"} 2"#,
        "conode_cosi_early_signatures_wasted_total 2",
    ] {
        assert!(text.lines().any(|l| l == line), "no `{line}` in /metrics:\n{text}");
    }
}

#[test]
fn silent_and_refusing_nodes_are_reported() {
    let cluster = LocalCluster::new(4).unwrap();
    let roster = cluster.roster().clone();
    let keys = cosi_keys(&roster);
    // Root 0: groups [1, 2] and [3].
    svc(&cluster, 3).set_fault(CosiFault::Silent);
    svc(&cluster, 2).set_fault(CosiFault::Refuse);
    let s0 = svc(&cluster, 0);
    let t = Instant::now();
    let short = Duration::from_millis(300);
    let out = cluster
        .runtime()
        .block_on(s0.sign_with_timeout(&roster, b"quiet", cosi::OPEN_SIGNING_PURPOSE, &[], Policy::Threshold(2), short))
        .unwrap();
    assert!(t.elapsed() < short * 2 + Duration::from_millis(500), "{:?}", t.elapsed());
    assert_eq!(out.report.signed, vec![0, 1]);
    assert_eq!(indices(&out.report.timed_out), vec![3]);
    assert_eq!(indices(&out.report.refused), vec![2]);
    assert!(out.report.refused[0].reason.contains("reported by #1"), "{:?}", out.report.refused);
    cosi::verify(b"quiet", &out.signature.to_bytes(), &out.mask, &keys, Policy::Threshold(2)).unwrap();
}

#[test]
fn a_prepared_roster_is_checked_and_its_tree_connected_before_the_first_round() {
    let cluster = LocalCluster::new(16).unwrap();
    let roster = cluster.roster().clone();
    let svc0 = svc(&cluster, 0);
    let net0 = cluster.node(0).network().unwrap();
    // A bad proof of possession is refused, naming the member.
    let mut bad_pop = roster.clone();
    bad_pop.servers[5].services.get_mut(COSI_SERVICE).unwrap().pop = BlsKeyPair::generate().pop();
    match cluster.runtime().block_on(svc0.prepare(&bad_pop)) {
        Err(CosiError::BadRoster(e)) => assert!(e.contains("roster member #5") && e.contains("possession"), "{e}"),
        other => panic!("expected BadRoster, got {other:?}"),
    }
    cluster.runtime().block_on(svc0.prepare(&roster)).unwrap();
    // Every PoP is checked, the root measured its round-trip time to the others (the tree's
    // shape follows it), and it holds a link to each of its sub-leaders.
    let pops = svc0.checked_pops();
    for m in &roster.servers {
        let s = &m.services[COSI_SERVICE];
        assert!(pops.is_checked(&s.public, &s.pop));
    }
    let rtt = roster.servers[1..].iter().filter_map(|s| net0.health().rtt(&s.public)).min();
    assert!(rtt.is_some(), "preparing a roster measures the round-trip time");
    let connected = net0.connected_peers();
    let groups = tree::groups_shaped(16, 0, |_| true, rtt);
    assert_eq!(groups.len(), tree::shape(15, rtt).1);
    for g in &groups {
        assert!(connected.contains(&roster.servers[g.leader].public), "sub-leader {} not connected", g.leader);
        // And each sub-leader was asked to open its links to its leaves.
        let sub = cluster.node(g.leader).network().unwrap().connected_peers();
        for &l in &g.leaves {
            assert!(sub.contains(&roster.servers[l].public), "sub-leader {} not linked to leaf {l}", g.leader);
        }
    }
    let out = rust_sign(&cluster, b"after prepare", Policy::Default).unwrap();
    assert_eq!(out.report.signed.len(), 16);
}

#[test]
fn bad_requests_are_refused_clearly() {
    let cluster = LocalCluster::new(2).unwrap();
    let roster = cluster.roster().clone();
    let url = cluster.client_url(0).unwrap();
    let call = |body: Vec<u8>| {
        cluster
            .runtime()
            .block_on(client::call(&url, "Cosi", "Sign", body, Duration::from_secs(10)))
            .unwrap_err()
            .to_string()
    };
    assert!(call(vec![0xff, 0xff, 0xff]).contains("bad request: undecodable SignRequest"));
    let no_roster = SignRequest { message: b"m".to_vec(), ..Default::default() };
    assert!(call(no_roster.encode_to_vec()).contains("no roster"));
    let too_high = SignRequest {
        message: b"m".to_vec(),
        roster_toml: Some(roster.to_toml()),
        threshold: Some(3),
        timeout_ms: None,
    };
    assert!(call(too_high.encode_to_vec()).contains("threshold 3 exceeds the roster size 2"));
    // A roster this node is not part of.
    let other = Roster::new(vec![roster.servers[1].clone()]);
    let foreign =
        SignRequest { message: b"m".to_vec(), roster_toml: Some(other.to_toml()), threshold: None, timeout_ms: None };
    assert!(call(foreign.encode_to_vec()).contains("is not in the roster"));
    // A roster with a bad proof of possession: the round may run beside the (batch) PoP check,
    // but no signature comes out of it; the good roster still signs afterwards.
    let mut bad_pop = roster.clone();
    bad_pop.servers[1].services.get_mut(COSI_SERVICE).unwrap().pop = BlsKeyPair::generate().pop();
    let svc0 = svc(&cluster, 0);
    match cluster.runtime().block_on(svc0.sign(&bad_pop, b"m", cosi::OPEN_SIGNING_PURPOSE, &[], Policy::Default)) {
        Err(CosiError::BadRoster(e)) => assert!(e.contains("roster member #1") && e.contains("possession"), "{e}"),
        other => panic!("expected BadRoster, got {other:?}"),
    }
    rust_sign(&cluster, b"good roster", Policy::Default).unwrap();
    // Client rosters are parsed once per text: the same text signs again from the cache, and a
    // text that differs in one proof of possession is parsed (and refused) anew.
    let good = SignRequest {
        message: b"twice".to_vec(),
        roster_toml: Some(roster.to_toml()),
        threshold: None,
        timeout_ms: None,
    };
    for _ in 0..2 {
        let reply = cluster
            .runtime()
            .block_on(client::call(&url, "Cosi", "Sign", good.encode_to_vec(), Duration::from_secs(10)))
            .unwrap();
        let resp = SignResponse::decode(reply.as_slice()).unwrap();
        cosi::verify(b"twice", &resp.signature, &resp.mask, &cosi_keys(&roster), Policy::Default).unwrap();
    }
    let bad_pop_toml = SignRequest { roster_toml: Some(bad_pop.to_toml()), ..good.clone() };
    let refused = call(bad_pop_toml.encode_to_vec());
    assert!(refused.contains("servers[1].Services.Cosi.Pop"), "{refused}");
    let bad_toml = SignRequest {
        message: b"m".to_vec(),
        roster_toml: Some("[[servers]]\nAddress = 1".into()),
        threshold: None,
        timeout_ms: None,
    };
    assert!(call(bad_toml.encode_to_vec()).contains("roster_toml"));
    // The default roster, once set, is used when a request carries none.
    svc(&cluster, 0).set_default_roster(Some(roster.clone()));
    let url2 = cluster.client_url(0).unwrap();
    let reply = cluster
        .runtime()
        .block_on(client::call(&url2, "Cosi", "Sign", no_roster.encode_to_vec(), Duration::from_secs(10)))
        .unwrap();
    let resp = SignResponse::decode(reply.as_slice()).unwrap();
    cosi::verify(b"m", &resp.signature, &resp.mask, &cosi_keys(&roster), Policy::Default).unwrap();
    // Garbage on the node-to-node port is answered with an error, not a panic.
    let net1 = cluster.node(1).network().unwrap();
    let err = cluster
        .runtime()
        .block_on(net1.request(
            &roster.servers[0],
            COSI_SERVICE,
            cosi::PROTOCOL_ANNOUNCE,
            b"r",
            vec![0xff; 64],
            Duration::from_secs(5),
        ))
        .unwrap_err()
        .to_string();
    assert!(err.contains("undecodable announcement"), "{err}");
}

/// A root's verified total is a passed check for the whole process: the members of a cluster in
/// one process that check the same collective signature again (storing the links it signs) find
/// it there instead of running the pairing. Only that exact check: the same statement with a
/// smaller key set, another statement or another signature is not vouched for.
#[test]
fn the_roots_verified_total_is_known_to_the_process_and_nothing_else_is() {
    use conode_core::crypto::bls::hash_to_g2;
    use conode_core::crypto::checked_once;
    use conode_core::verify::skipchain_batch::pairing_fingerprint;
    let c = LocalCluster::new(4).unwrap();
    let msg = b"one collective signature, checked once in this process";
    let out = rust_sign(&c, msg, Policy::Default).unwrap();
    let keys = cosi_keys(c.roster());
    let mask = cosi::Mask::from_bytes(keys.len(), &out.mask).unwrap();
    let signers: Vec<&BlsPublicKey> = mask.indices().into_iter().map(|i| &keys[i]).collect();
    let total = BlsPublicKey::aggregate(&signers).unwrap();
    let sig = out.signature.to_bytes();
    let known = |statement: &[u8], key: &BlsPublicKey, sig: &[u8; 96]| {
        checked_once::passed_in_process(&pairing_fingerprint(&hash_to_g2(statement), &key.to_bytes(), sig))
    };
    assert!(known(msg, &total, &sig), "the root's verified total is a passed check");
    assert!(!known(b"another statement", &total, &sig));
    let fewer = BlsPublicKey::aggregate(&signers[1..]).unwrap();
    assert!(!known(msg, &fewer, &sig), "another key set is another check");
    let other = BlsKeyPair::generate().sign(msg).to_bytes();
    assert!(!known(msg, &total, &other), "another signature is another check");
}
