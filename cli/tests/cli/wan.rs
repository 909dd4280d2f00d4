//! Issue 18's WAN simulation: `conode server` processes, each in its own network namespace with its
//! own address on a bridge, reach each other only through a delaying relay (one-way delay, jitter,
//! chunk loss; see `relay.rs`) named in every member's `overrides.toml`. Measured per loss setting,
//! as JSON lines: cosi rounds and skipchain appends through member 0, and the beacon's tick →
//! served time at member 0 (the test's clients sit on the bridge and reach members directly).
//!
//! The short variant (4 members, a few rounds) runs with the other process tests; `tests/wan/run.sh`
//! runs the long one (16 members) through the same test with `CONODE_WAN_*` settings:
//! `MEMBERS`, `DELAY_MS` (50), `JITTER_MS` (5), `LOSS` (percent per chunk, comma-separated: "0,1"),
//! `RTO_MS` (200), `ROUNDS` (cosi rounds and appends per setting), `BEACONS` (ticks per setting).
//! `KEEP_LOG` (a path) keeps member 0's log (with `RUST_LOG`, e.g. `conode_core::services::cosi=debug`).
//! Needs root and `ip netns`; without them the test says so and does nothing.

use crate::fabric::{setup_members, start_members, Fabric, NODE_PORT};
use crate::relay::{Link, SharedLink};
use crate::support::{conode, json, ok, owner_key};
use conode_core::api::client::Client;
use conode_core::client_api::ClientUrl;
use conode_core::config::Roster;
use conode_core::crypto::{BlsKeyPair, BlsSignature};
use conode_core::services::cosi::messages::SignRequest;
use conode_core::services::skipchain::messages::Append;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

fn env<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(format!("CONODE_WAN_{name}")).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn percentile(v: &[f64], p: f64) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    s[((s.len() - 1) as f64 * p).round() as usize]
}

/// Depth of the cosi tree the root picks for n members when every link has round-trip time
/// `rtt` (cosi/tree.rs `shape`: a star across a WAN, two levels of about √n on a LAN). The relay
/// adds `rtt` = 2 × the one-way delay to every link, and the root's pings measure it.
fn tree_depth(n: usize, rtt: Duration) -> usize {
    if n < 2 {
        return 0;
    }
    conode_core::services::cosi::tree::shape(n - 1, Some(rtt)).0
}

/// The physical limit of a round on this machine (issue 18): n signatures over the cores plus
/// one aggregate verification, timed here.
fn physical_limit_ms(n: usize) -> f64 {
    let keys: Vec<BlsKeyPair> = (0..n).map(|_| BlsKeyPair::generate()).collect();
    let t = Instant::now();
    let sigs: Vec<BlsSignature> = keys.iter().map(|k| k.sign(b"wan")).collect();
    let sign_ms = t.elapsed().as_secs_f64() * 1e3 / n as f64;
    let agg = BlsSignature::aggregate(&sigs.iter().collect::<Vec<_>>()).unwrap();
    let pk = conode_core::crypto::BlsPublicKey::aggregate(
        &keys.iter().map(|k| k.public()).collect::<Vec<_>>().iter().collect::<Vec<_>>(),
    )
    .unwrap();
    let t = Instant::now();
    assert!(pk.verify(b"wan", &agg));
    let verify_ms = t.elapsed().as_secs_f64() * 1e3;
    let cores = std::thread::available_parallelism().map(|c| c.get()).unwrap_or(1) as f64;
    n as f64 * sign_ms / cores + verify_ms
}

fn unix_now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs_f64()
}

#[test]
fn wan_simulation_cosi_appends_and_beacon() {
    let n: usize = env("MEMBERS", 4);
    let delay = Duration::from_millis(env("DELAY_MS", 50));
    let jitter = Duration::from_millis(env("JITTER_MS", 5));
    let rto = Duration::from_millis(env("RTO_MS", 200));
    let rounds: usize = env("ROUNDS", 5);
    let beacons: usize = env("BEACONS", 3);
    let losses: Vec<f64> = env::<String>("LOSS", "0,1".into())
        .split(',')
        .map(|l| l.trim().parse().expect("CONODE_WAN_LOSS: percents, comma-separated"))
        .collect();
    let fabric = match Fabric::build(n, false) {
        Ok(f) => f,
        Err(why) => {
            eprintln!("SKIPPED WAN simulation: {why} (network namespaces are needed)");
            return;
        }
    };
    let dir = tempfile::tempdir().unwrap();
    let (folders, roster_path) = setup_members(&fabric, dir.path());
    let roster = Roster::load(&roster_path).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let link: SharedLink = Arc::new(RwLock::new(Link { delay, jitter, loss: 0.0, rto }));
    // One relay per member; every member dials the others through them.
    let relay_ports: Vec<u16> = (0..n)
        .map(|i| {
            let target = format!("{}:{NODE_PORT}", fabric.addr(i)).parse().unwrap();
            rt.block_on(crate::relay::spawn(&fabric.bridge_addr(), target, link.clone())).unwrap()
        })
        .collect();
    for (i, folder) in folders.iter().enumerate() {
        let mut text = String::new();
        for (j, m) in roster.servers.iter().enumerate().filter(|(j, _)| *j != i) {
            text.push_str(&format!(
                "[[override]]\nPublic = \"{}\"\nAddress = \"tls://{}:{}\"\n\n",
                m.public.to_hex(),
                fabric.bridge_addr(),
                relay_ports[j]
            ));
        }
        std::fs::write(folder.join("overrides.toml"), text).unwrap();
    }
    let members = start_members(&fabric, &folders);
    let key = dir.path().join("owner.toml");
    let created = json(&ok(conode()
        .args(["skipchain", "create", "--base-height", "2", "--max-height", "8", "--roster"])
        .arg(&roster_path)
        .arg("--key")
        .arg(&key)));
    let genesis = hex::decode(created["genesis"].as_str().unwrap()).unwrap();
    let owner = owner_key(&key);
    crate::support::approve_beacon(folders.iter().map(|f| f.join("private.toml")), &roster_path, &["--period", "1"]);
    let out = ok(conode()
        .args(["beacon", "init", "--period", "1", "--phase-timeout", "10", "--genesis-delay", "2", "--roster"])
        .arg(&roster_path));
    assert!(out.contains("DKG done"), "{out}");
    let client =
        Client::new(ClientUrl::parse(&format!("ws://{}", members[0].client)).unwrap(), Duration::from_secs(20));
    let roster_toml = std::fs::read_to_string(&roster_path).unwrap();
    let info = rt.block_on(client.beacon_info()).unwrap();
    let depth = tree_depth(n, delay * 2);
    let physical = physical_limit_ms(n);
    let one_way_ms = delay.as_secs_f64() * 1e3;
    let mut index = 0u64;
    for loss in losses {
        link.write().unwrap().loss = loss / 100.0;
        // One unmeasured round first: connections through the relay are made (TLS handshakes
        // over the delayed link) before the clock runs.
        let warm = SignRequest {
            message: format!("wan warm-up {loss}").into_bytes(),
            roster_toml: Some(roster_toml.clone()),
            timeout_ms: Some(10_000),
            ..Default::default()
        };
        rt.block_on(client.sign(&warm)).unwrap_or_else(|e| panic!("warm-up round at {loss} % loss: {e}"));
        let mut cosi = Vec::new();
        let mut signers = Vec::new();
        for r in 0..rounds {
            let req = SignRequest {
                message: format!("wan {loss} {r}").into_bytes(),
                roster_toml: Some(roster_toml.clone()),
                timeout_ms: Some(10_000),
                ..Default::default()
            };
            let t = Instant::now();
            let out = rt.block_on(client.sign(&req)).unwrap_or_else(|e| panic!("cosi round at {loss} % loss: {e}"));
            cosi.push(t.elapsed().as_secs_f64() * 1e3);
            signers.push(out.signed.len());
        }
        let mut appends = Vec::new();
        for _ in 0..rounds {
            index += 1;
            let req = Append::signed(&owner, &genesis, index, index.to_be_bytes().to_vec(), None).unwrap();
            let t = Instant::now();
            rt.block_on(client.append(&req)).unwrap_or_else(|e| panic!("append {index} at {loss} % loss: {e}"));
            appends.push(t.elapsed().as_secs_f64() * 1e3);
        }
        // Tick → served: poll member 0 from just before each tick until it serves that round.
        let mut served = Vec::new();
        let period = f64::from(info.period);
        for _ in 0..beacons {
            let now = unix_now();
            let next = ((now - info.genesis_time as f64) / period).floor() as u64 + 2;
            let tick = info.genesis_time as f64 + (next - 1) as f64 * period;
            std::thread::sleep(Duration::from_secs_f64((tick - unix_now() - 0.005).max(0.0)));
            let give_up = Instant::now() + Duration::from_secs(10);
            loop {
                if rt.block_on(client.beacon(None)).is_ok_and(|b| b.round >= next) {
                    served.push((unix_now() - tick) * 1e3);
                    break;
                }
                assert!(Instant::now() < give_up, "round {next} not served within 10 s at {loss} % loss");
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        let line = serde_json::json!({
            "bench": "wan",
            "members": n,
            "one_way_delay_ms": one_way_ms,
            "jitter_ms": jitter.as_secs_f64() * 1e3,
            "loss_pct": loss,
            "rto_ms": rto.as_secs_f64() * 1e3,
            "cosi_tree_depth": depth,
            "cosi_p50_ms": percentile(&cosi, 0.5),
            "cosi_p90_ms": percentile(&cosi, 0.9),
            "cosi_rounds_ms": cosi.iter().map(|ms| (ms * 10.0).round() / 10.0).collect::<Vec<f64>>(),
            // Who the root left out (slow or lost answers once the threshold was met).
            "cosi_signers_mean": signers.iter().sum::<usize>() as f64 / signers.len().max(1) as f64,
            "cosi_rounds_all_signed": signers.iter().filter(|&&s| s == n).count(),
            "cosi_physical_limit_ms": physical,
            "cosi_goal_ms": (2.0 * depth as f64 * one_way_ms + physical) * 1.1,
            "append_p50_ms": percentile(&appends, 0.5),
            "append_p90_ms": percentile(&appends, 0.9),
            "beacon_tick_to_served_p50_ms": percentile(&served, 0.5),
            "beacon_tick_to_served_max_ms": percentile(&served, 1.0),
            "beacon_goal_ms": 2.0 * one_way_ms + 20.0,
        });
        println!("{line}");
        // The relay really holds traffic: a round crosses the tree down and up at least once.
        assert!(
            percentile(&cosi, 0.5) >= 2.0 * (one_way_ms - jitter.as_secs_f64() * 1e3),
            "cosi rounds faster than one round trip through the relay: {line}"
        );
    }
    if let Ok(to) = std::env::var("CONODE_WAN_KEEP_LOG") {
        // For diagnosis: member 0 (the root of every round) logs with RUST_LOG.
        let _ = std::fs::copy(&members[0].log, to);
    }
    drop(members);
}
