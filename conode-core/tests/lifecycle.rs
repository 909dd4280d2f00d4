//! Node lifecycle: after `stop()` no task of the node is still running and its database can be
//! reopened at once in the same process, also after the services were busy (a beacon round loop,
//! skipchain appends, cosi rounds); typed service handles exist only while the node runs.

use conode_core::cluster::LocalCluster;
use conode_core::crypto::IdentityKeyPair;
use conode_core::services::beacon::messages::InitRequest;
use conode_core::services::cosi::{Policy, OPEN_SIGNING_PURPOSE};
use conode_core::services::skipchain::messages::Append;
use conode_core::storage::Storage;
use conode_core::{NodeBuilder, NodeError};
use std::time::Duration;

#[test]
fn stopped_nodes_leave_no_task_and_release_their_database() {
    let mut c = LocalCluster::new(4).unwrap();
    let rt = c.runtime().handle().clone();
    // A beacon chain (round loop, partial exchange), a chain with appends, a cosi round.
    let beacon = c.node(0).beacon().unwrap();
    let req = InitRequest {
        roster_toml: c.roster().to_toml(),
        scheme: "pedersen-bls-chained".into(),
        period_secs: 1,
        phase_timeout_ms: 2000,
        genesis_delay_ms: 1500,
        ..Default::default()
    };
    c.approve_beacon(&req).unwrap();
    rt.block_on(beacon.init(req)).unwrap();
    assert!(rt.block_on(beacon.wait_for_round(1, Duration::from_secs(20))).is_some(), "no beacon round");
    let owner = IdentityKeyPair::generate();
    let chains = c.node(1).skipchain().unwrap();
    let genesis =
        rt.block_on(chains.create_chain(c.roster(), 2, 8, vec![owner.public()], b"genesis".to_vec())).unwrap();
    for i in 1..=3u64 {
        let append = Append::signed(&owner, &genesis.hash, i, format!("block {i}").into_bytes(), None).unwrap();
        rt.block_on(chains.append(append)).unwrap();
    }
    let cosi = c.node(2).cosi().unwrap();
    rt.block_on(cosi.sign(c.roster(), b"statement", OPEN_SIGNING_PURPOSE, &[], Policy::Default)).unwrap();
    // A handle keeps its service's state (and so the database) alive: let them go first.
    drop((beacon, chains, cosi));

    for i in 0..c.len() {
        assert!(c.node(i).running_tasks() > 0, "node {i} runs no task while running");
        c.stop(i).unwrap();
        let node = c.node(i);
        assert_eq!(node.running_tasks(), 0, "node {i} left tasks running after stop()");
        assert!(matches!(node.cosi(), Err(NodeError::NotRunning)));
        assert!(matches!(node.beacon(), Err(NodeError::NotRunning)));
        // The database is free at once: no retry, no wait.
        let db = Storage::open(node.data_dir(), &node.config().node_id())
            .unwrap_or_else(|e| panic!("node {i}: database still held after stop(): {e}"));
        drop(db);
    }

    // A new node with the same config and database starts in the same process and has the data.
    let config = (**c.node(1).config()).clone();
    let mut again = NodeBuilder::new(config).data_dir(c.node(1).data_dir()).build().unwrap();
    again.start().unwrap();
    let stored = again.skipchain().unwrap().store().latest_index(&genesis.hash);
    assert_eq!(stored, Some(3));
    assert!(again.beacon().unwrap().chain_info().is_some(), "the beacon group was not reloaded");
    again.stop().unwrap();
    assert_eq!(again.running_tasks(), 0);
}
