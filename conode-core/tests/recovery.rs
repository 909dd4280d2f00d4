//! Backup and recovery on a LocalCluster: node 1 is backed up through its admin socket while
//! appends go on, stopped, restored into a new data dir and started again. It signs nothing until
//! it has caught up from a quorum (shown in its `Recovery` status section), then holds every
//! acknowledged block and signs again; and a minority restored to an old backup cannot rewrite
//! the chain.

mod support;

use conode_core::admin::{request_backup, socket_path};
use conode_core::backup::restore;
use conode_core::cluster::{ClusterOptions, LocalCluster};
use conode_core::config::Roster;
use conode_core::crypto::IdentityKeyPair;
use conode_core::services::skipchain::messages::Append;
use conode_core::services::skipchain::SkipchainService;
use conode_core::verify::cosi::Policy;
use conode_core::verify::skipchain::{verify_proof, SkipBlock};
use conode_core::{Node, NodeBuilder};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn svc(node: &Node) -> SkipchainService {
    node.skipchain().expect("skipchain service")
}

fn recovery_state(node: &Node) -> Option<String> {
    let sections = node.context()?.status.sections();
    sections.into_iter().find(|(name, _)| name == "Recovery").and_then(|(_, s)| s.get("State").cloned())
}

/// `GET /node/state` of a node's client port.
fn node_state(c: &LocalCluster, node: &Node) -> serde_json::Value {
    let url = format!("{}/node/state", node.client_url().unwrap().replacen("ws://", "http://", 1));
    c.runtime().block_on(async { reqwest::get(url).await.unwrap().json().await.unwrap() })
}

fn wait(what: &str, ok: impl FnMut() -> bool) {
    support::wait_until(Duration::from_secs(60), what, ok);
}

/// Node `i`'s backup, taken through its admin socket.
fn backup(node: &Node, file: &Path) {
    let id = node.config().node_id();
    let out = std::fs::File::create(file).unwrap();
    let mut calls = 0;
    let m = request_backup(&socket_path(node.data_dir(), &id), out, |_, _| calls += 1).unwrap();
    assert_eq!(m.node_id, id);
    assert!(m.entries > 0 && calls > 0);
}

/// Node `i` started again from `dir` with its own identity and advertised address (its old
/// ports, now free), open signing on so the test can ask it for a signature directly.
fn start_restored(c: &LocalCluster, i: usize, dir: &Path) -> Node {
    let mut config = (**c.node(i).config()).clone();
    config.allow_open_signing = true;
    let mut node = NodeBuilder::new(config).data_dir(dir).runtime(c.runtime().handle().clone()).build().unwrap();
    node.start().unwrap();
    node
}

/// A signature of `node` alone (open signing): refused while it holds signing.
fn sign_alone(c: &LocalCluster, node: &Node) -> Result<(), String> {
    let roster = Roster::new(vec![node.server_identity()]);
    c.runtime()
        .block_on(node.cosi().unwrap().sign(&roster, b"hello", "Cosi", &[], Policy::Default))
        .map(|_| ())
        .map_err(|e| e.to_string())
}

fn append(
    leader: &SkipchainService,
    rt: &tokio::runtime::Runtime,
    owner: &IdentityKeyPair,
    g: &SkipBlock,
    i: u64,
) -> Result<SkipBlock, String> {
    let req = Append::signed(owner, &g.hash, i, format!("block {i}").into_bytes(), None).unwrap();
    rt.block_on(leader.append(req)).map_err(|e| e.to_string())
}

#[test]
fn restored_node_keeps_every_acknowledged_block_and_signs_only_after_catching_up() {
    let mut c = LocalCluster::with_options(ClusterOptions::new(4)).unwrap();
    let owner = IdentityKeyPair::generate();
    let leader = svc(c.node(0));
    let genesis =
        c.runtime().block_on(leader.create_chain(c.roster(), 2, 8, vec![owner.public()], b"genesis".to_vec())).unwrap();

    // Continuous appends through node 0, acknowledged ones recorded.
    let acked: Arc<Mutex<Vec<SkipBlock>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let appender = {
        let (leader, owner, genesis, acked, stop) =
            (leader.clone(), owner.clone(), genesis.clone(), acked.clone(), stop.clone());
        c.runtime().spawn(async move {
            let mut i = 1;
            while !stop.load(Ordering::SeqCst) {
                let req = Append::signed(&owner, &genesis.hash, i, format!("block {i}").into_bytes(), None).unwrap();
                if let Ok(b) = leader.append(req).await {
                    acked.lock().unwrap().push(b);
                    i += 1;
                }
            }
        })
    };
    wait("a few appends", || acked.lock().unwrap().len() >= 10);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("node1.backup");
    let before = acked.lock().unwrap().len();
    backup(c.node(1), &file);
    // Appends went on during the backup, and node 1 keeps signing after it.
    wait("appends after the backup", || acked.lock().unwrap().len() >= before + 10);
    c.stop(1).unwrap();
    let at_stop = acked.lock().unwrap().len();
    wait("appends without node 1", || acked.lock().unwrap().len() >= at_stop + 3);
    stop.store(true, Ordering::SeqCst);
    c.runtime().block_on(appender).unwrap();
    let acked = acked.lock().unwrap().clone();
    let top = acked.last().unwrap().index;

    // Restore on a new data dir; with two of four members down there is no quorum to catch up from.
    let new_dir = dir.path().join("restored");
    let id = c.node(1).config().node_id();
    let (m, _) = restore(&file, &new_dir, Some(&id), false).unwrap();
    assert_eq!(m.node_id, id);
    c.stop(2).unwrap();
    c.stop(3).unwrap();
    let restored = start_restored(&c, 1, &new_dir);
    wait("the Recovery section", || recovery_state(&restored).is_some());
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(recovery_state(&restored).as_deref(), Some("recovering"));
    assert_eq!(node_state(&c, &restored)["recovery"]["State"], "recovering");
    let refused = sign_alone(&c, &restored).unwrap_err();
    assert!(refused.contains("catching up"), "{refused}");

    // The quorum is back: it catches up, then signs again.
    c.restart(2).unwrap();
    c.restart(3).unwrap();
    wait("recovery", || recovery_state(&restored).as_deref() == Some("caught up"));
    assert_eq!(node_state(&c, &restored)["recovery"]["State"], "caught up");
    let store = svc(&restored);
    assert!(store.store().latest_index(&genesis.hash) >= Some(top));
    for b in &acked {
        let held = store.store().block_at(&genesis.hash, b.index).expect("acknowledged block kept");
        assert_eq!(held.hash, b.hash, "block {}", b.index);
    }
    sign_alone(&c, &restored).unwrap();

    // The chain continues, with node 1 needed for the threshold (node 3 down: 3 of 4).
    c.stop(3).unwrap();
    let next = append(&leader, c.runtime(), &owner, &genesis, top + 1).unwrap();
    assert_eq!(next.index, top + 1);
    wait("node 1 stores the new block", || store.store().latest_index(&genesis.hash) == Some(top + 1));
    let proof = leader.update_chain(&genesis.hash).unwrap();
    assert_eq!(verify_proof(&genesis.hash, &proof, Policy::Default).unwrap().index, top + 1);
    // A restart of the caught-up node is an ordinary one (the marker is gone).
    drop((store, proof));
    let mut restored = restored;
    restored.stop().unwrap();
    restored.start().unwrap();
    assert!(recovery_state(&restored).is_none());
    restored.stop().unwrap();
}

#[test]
fn minority_restored_to_an_old_backup_cannot_rewrite_history() {
    let mut c = LocalCluster::with_options(ClusterOptions::new(4)).unwrap();
    let owner = IdentityKeyPair::generate();
    let leader = svc(c.node(0));
    let rt = c.runtime();
    let genesis =
        rt.block_on(leader.create_chain(c.roster(), 2, 8, vec![owner.public()], b"genesis".to_vec())).unwrap();
    for i in 1..=3 {
        append(&leader, rt, &owner, &genesis, i).unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("old.backup");
    backup(c.node(1), &file);
    let mut history = Vec::new();
    for i in 4..=8 {
        history.push(append(&leader, c.runtime(), &owner, &genesis, i).unwrap());
    }
    c.stop(1).unwrap();
    let new_dir = dir.path().join("old");
    restore(&file, &new_dir, None, false).unwrap();
    let restored = start_restored(&c, 1, &new_dir);
    wait("recovery", || recovery_state(&restored).as_deref() == Some("caught up"));
    let old = svc(&restored);
    // It caught up to the same history, instead of continuing its own from block 3.
    for b in &history {
        assert_eq!(old.store().block_at(&genesis.hash, b.index).unwrap().hash, b.hash);
    }
    // Led by the restored node, a new block 4 is refused; the chain stays as it was.
    let err = append(&old, c.runtime(), &owner, &genesis, 4).unwrap_err();
    assert!(!err.is_empty());
    assert_eq!(svc(c.node(2)).store().block_at(&genesis.hash, 4).unwrap().hash, history[0].hash);
    // And the next block, led by the restored node, extends the real history.
    let next = append(&old, c.runtime(), &owner, &genesis, 9).unwrap();
    assert_eq!(next.back_link_ids[0], history.last().unwrap().hash);
    let proof = svc(c.node(3)).update_chain(&genesis.hash).unwrap();
    assert_eq!(verify_proof(&genesis.hash, &proof, Policy::Default).unwrap().index, 9);
    drop(restored);
}

/// A Byzantine member lies to the restored node: it claims 1,000 blocks more than the chain has,
/// answers the catch-up with a forged history and reports a view far ahead. Recovery sets its claim aside (its blocks do
/// not verify) instead of waiting for blocks that do not exist: the restored node catches up to
/// the real chain from the honest members and signs again.
#[test]
fn a_member_lying_about_the_chain_does_not_keep_a_restored_node_from_recovering() {
    let mut c = LocalCluster::with_options(ClusterOptions::new(4)).unwrap();
    let owner = IdentityKeyPair::generate();
    let leader = svc(c.node(0));
    let genesis =
        c.runtime().block_on(leader.create_chain(c.roster(), 2, 8, vec![owner.public()], b"genesis".to_vec())).unwrap();
    for i in 1..=3 {
        append(&leader, c.runtime(), &owner, &genesis, i).unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("node1.backup");
    backup(c.node(1), &file);
    let mut history = Vec::new();
    for i in 4..=8 {
        history.push(append(&leader, c.runtime(), &owner, &genesis, i).unwrap());
    }
    c.stop(1).unwrap();
    svc(c.node(2)).set_lies_in_catch_up(true);
    let new_dir = dir.path().join("restored");
    restore(&file, &new_dir, None, false).unwrap();
    let restored = start_restored(&c, 1, &new_dir);
    wait("recovery despite the liar", || recovery_state(&restored).as_deref() == Some("caught up"));
    let node1 = svc(&restored);
    for b in &history {
        assert_eq!(node1.store().block_at(&genesis.hash, b.index).unwrap().hash, b.hash, "block {}", b.index);
    }
    assert_eq!(node1.store().latest_index(&genesis.hash), Some(8));
    // It signs again, also with the liar gone silent (it reported a view far ahead, which the
    // fence did not take: a fence there would keep the restored node, and every proposer that
    // believes its report, out of the slot): a block it leads goes through with the two honest
    // members and extends the real history.
    c.stop(2).unwrap();
    let next = append(&node1, c.runtime(), &owner, &genesis, 9).unwrap();
    assert_eq!(next.back_link_ids[0], history.last().unwrap().hash);
    drop(restored);
}

/// A chain created after the backup is unknown to the restored node, which may have voted on it
/// before it was lost. Once it learns the chain it signs nothing for it until it has fenced it from
/// a quorum, and that gate survives a restart (the restore marker is gone by then).
#[test]
fn a_chain_created_after_the_backup_is_fenced_before_the_restored_node_signs_for_it() {
    let mut c = LocalCluster::with_options(ClusterOptions::new(4)).unwrap();
    let owner = IdentityKeyPair::generate();
    let leader = svc(c.node(0));
    let old_chain = c
        .runtime()
        .block_on(leader.create_chain(c.roster(), 2, 8, vec![owner.public()], b"before the backup".to_vec()))
        .unwrap();
    append(&leader, c.runtime(), &owner, &old_chain, 1).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("node1.backup");
    backup(c.node(1), &file);
    // A new chain, on which node 1 votes after the backup was taken.
    let late = c
        .runtime()
        .block_on(leader.create_chain(c.roster(), 2, 8, vec![owner.public()], b"after the backup".to_vec()))
        .unwrap();
    for i in 1..=3 {
        append(&leader, c.runtime(), &owner, &late, i).unwrap();
    }
    c.stop(1).unwrap();
    let new_dir = dir.path().join("restored");
    restore(&file, &new_dir, None, false).unwrap();
    let mut restored = start_restored(&c, 1, &new_dir);
    wait("recovery", || recovery_state(&restored).as_deref() == Some("caught up"));
    let node1 = svc(&restored);
    assert!(node1.store().latest(&late.hash).is_none(), "the late chain is not in the backup");
    // A restart after recovery keeps the gate.
    drop(node1);
    restored.stop().unwrap();
    restored.start().unwrap();
    let node1 = svc(&restored);

    // It learns the late chain; with two members down nobody can fence it (no quorum), so it
    // refuses to sign for it and says why (an append it leads fails on its own refusal).
    let peer = c.roster().servers[0].clone();
    c.runtime().block_on(node1.catch_up(&late.hash, &peer)).unwrap();
    assert_eq!(node1.store().latest_index(&late.hash), Some(3));
    c.stop(2).unwrap();
    c.stop(3).unwrap();
    let refused = append(&node1, c.runtime(), &owner, &late, 4).unwrap_err();
    assert!(refused.contains("has not yet fenced chain"), "{refused}");

    // With the quorum back the fence completes and it signs again: an append that needs it (node
    // 3 stays down: 3 of 4) goes through, led by the restored node itself.
    c.restart(2).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let next = loop {
        match append(&node1, c.runtime(), &owner, &late, 4) {
            Ok(b) => break b,
            Err(e) => assert!(Instant::now() < deadline, "the restored node never fenced the late chain: {e}"),
        }
    };
    assert_eq!(next.index, 4);
    let proof = svc(c.node(2)).update_chain(&late.hash).unwrap();
    assert_eq!(verify_proof(&late.hash, &proof, Policy::Default).unwrap().index, 4);
    // The old chain, fenced during recovery, was never gated.
    append(&node1, c.runtime(), &owner, &old_chain, 2).unwrap();
    drop((node1, proof));
    restored.stop().unwrap();
}
