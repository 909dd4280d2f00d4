//! Hot backup and recovery on a new host, as real processes: four `conode server`s, appends in a
//! loop through node 0; `conode backup` of node 1 while they go on; node 1 killed (SIGKILL);
//! `conode restore` into a new data dir, node 1 started there on another listen address (the peers
//! reach it through an `overrides.toml` entry). It says in its log and `/status` that it catches
//! up before signing, then holds every acknowledged block, and the chain continues with it needed
//! for the threshold.

use crate::support::{conode, fails, free_port, http_get, json, ok, owner_key, Servers};
use conode_core::api::client;
use conode_core::services::skipchain::messages::{Append, BlockReply, GetBlock};
use conode_core::services::status::messages::{StatusRequest, StatusResponse};
use prost::Message;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn call(url: &str, service: &str, method: &str, body: Vec<u8>) -> Result<Vec<u8>, String> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(client::call(url, service, method, body, Duration::from_secs(10))).map_err(|e| e.to_string())
}

fn recovery_state(url: &str) -> Option<String> {
    let reply = call(url, "Status", "Request", StatusRequest {}.encode_to_vec()).ok()?;
    let resp = StatusResponse::decode(reply.as_slice()).ok()?;
    resp.status.get("Recovery").and_then(|s| s.field.get("State").cloned())
}

/// (index, hash) of every block node 0 acknowledged.
type Acknowledged = Arc<Mutex<Vec<(u64, Vec<u8>)>>>;

fn wait_acked(acked: &Mutex<Vec<(u64, Vec<u8>)>>, n: usize, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while acked.lock().unwrap().len() < n {
        assert!(Instant::now() < deadline, "{what}: only {} appends acknowledged", acked.lock().unwrap().len());
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn backup_during_appends_then_restore_on_a_new_data_dir_and_address() {
    let mut servers = Servers::setup(4);
    servers.start_all();
    let (key, genesis_hex) = servers.create_chain();
    let genesis = hex::decode(&genesis_hex).unwrap();

    let acked: Acknowledged = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let appender = {
        let (url, g, k, a, s) = (servers.url(0), genesis.clone(), owner_key(&key), acked.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut index = 1;
            while !s.load(Ordering::SeqCst) {
                let req = Append::signed(&k, &g, index, format!("block {index}").into_bytes(), None).unwrap();
                if let Ok(reply) = call(&url, "Skipchain", "Append", req.encode_to_vec()) {
                    let block = BlockReply::decode(reply.as_slice()).unwrap().block.unwrap();
                    a.lock().unwrap().push((index, block.hash));
                    index += 1;
                }
            }
        })
    };
    wait_acked(&acked, 5, "before the backup");
    let backup = servers.path("node1.backup");
    let out = ok(conode().arg("-c").arg(&servers.nodes[1].private).arg("backup").arg("--out").arg(&backup));
    assert!(out.contains("backup of node"), "{out}");
    // The file is the operator's only: mode 0600.
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&backup).unwrap().permissions().mode() & 0o777, 0o600);
    // The backup is counted on the node's metrics.
    let (_, metrics) = http_get(&servers.nodes[1].client, "/metrics").expect("node 1 serves /metrics");
    assert!(metrics.lines().any(|l| l == "conode_backup_runs_total 1"), "{metrics}");
    assert!(metrics.lines().any(|l| l == "conode_backup_failures_total 0"), "{metrics}");
    let after_backup = acked.lock().unwrap().len();
    wait_acked(&acked, after_backup + 5, "after the backup");
    servers.sigkill(1);
    let at_kill = acked.lock().unwrap().len();
    wait_acked(&acked, at_kill + 3, "without node 1");
    stop.store(true, Ordering::SeqCst);
    appender.join().unwrap();
    let acked = acked.lock().unwrap().clone();

    // A new host: new data dir, another listen address; the peers get an overrides.toml entry.
    let restored = servers.path("restored");
    let new_port = free_port();
    let private = servers.nodes[1].private.clone();
    let text = std::fs::read_to_string(&private).unwrap();
    let public = text.lines().find_map(|l| l.strip_prefix("Public = ")).unwrap().trim_matches('"').to_string();
    let text = text
        .lines()
        .map(|l| {
            if l.starts_with("DataDir = ") {
                format!("DataDir = {:?}", restored.display().to_string())
            } else if l.starts_with("Address = ") {
                format!("{l}\nListenAddress = \"127.0.0.1:{new_port}\"")
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    crate::support::write_private(&private, &text);
    let out = ok(conode().arg("-c").arg(&private).args(["restore", "--from"]).arg(&backup));
    assert!(out.contains("restored") && out.contains("catches up"), "{out}");
    // Never over an existing database without --force.
    let err = fails(conode().arg("-c").arg(&private).args(["restore", "--from"]).arg(&backup));
    assert!(err.contains("--force"), "{err}");
    for i in [0, 2, 3] {
        std::fs::write(
            servers.nodes[i].folder.join("overrides.toml"),
            format!("[[override]]\nPublic = \"{public}\"\nAddress = \"tls://127.0.0.1:{new_port}\"\n"),
        )
        .unwrap();
        servers.stop(i);
        servers.start(i);
    }
    servers.nodes[1].client = format!("127.0.0.1:{}", new_port + 1);
    servers.start(1);
    let url1 = servers.url(1);
    let deadline = Instant::now() + Duration::from_secs(60);
    while recovery_state(&url1).as_deref() != Some("caught up") {
        assert!(Instant::now() < deadline, "node 1 did not recover:\n{}", servers.log(1));
        std::thread::sleep(Duration::from_millis(50));
    }
    // Both ends of the hold are in its log (written before the status changes; the file may lag).
    let deadline = Instant::now() + Duration::from_secs(10);
    while !servers.log(1).contains("recovery done") {
        assert!(Instant::now() < deadline, "no `recovery done` in the log:\n{}", servers.log(1));
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(servers.log(1).contains("signs nothing until it has caught up"));

    for (index, hash) in &acked {
        let req = GetBlock { hash: vec![], genesis: genesis.clone(), index: *index };
        let reply = call(&url1, "Skipchain", "GetBlock", req.encode_to_vec())
            .unwrap_or_else(|e| panic!("acknowledged block {index} missing on the restored node: {e}"));
        assert_eq!(&BlockReply::decode(reply.as_slice()).unwrap().block.unwrap().hash, hash, "block {index}");
    }
    // The chain continues, node 1 needed for the threshold (node 3 down: 3 of 4 must sign).
    servers.stop(3);
    let next = json(&ok(conode()
        .args(["skipchain", "append", "--genesis", &genesis_hex, "--data", "after the restore"])
        .arg("--roster")
        .arg(&servers.roster)
        .arg("--key")
        .arg(&key)));
    let head = acked.last().unwrap().0;
    assert_eq!(next["index"].as_u64(), Some(head + 1), "{next}");
}
