//! What operators see of a running cothority: `/roster/status` lists every member of the beacon
//! group and of a followed skipchain with its state as seen over the node port (reachable,
//! version, latest round, height), shows a stopped member unreachable within seconds and a new
//! round without anything else changing; `/metrics` carries the series the dashboards use.

use conode_core::api::client;
use conode_core::cluster::LocalCluster;
use conode_core::crypto::IdentityKeyPair;
use conode_core::services::beacon::messages::InitRequest;
use conode_core::services::skipchain::messages::Append;
use conode_core::verify::beacon::Scheme;
use prost::Message;
use serde_json::Value;
use std::time::{Duration, Instant};

fn get_json(base: &str, path: &str) -> Value {
    let url = format!("{base}{path}");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async { reqwest::get(url).await.unwrap().json().await.unwrap() })
}

fn get_text(base: &str, path: &str) -> String {
    let url = format!("{base}{path}");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async { reqwest::get(url).await.unwrap().text().await.unwrap() })
}

/// Polls `/roster/status` until `ok` holds for it (or panics after `secs`).
fn wait_status(base: &str, secs: u64, what: &str, ok: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let v = get_json(base, "/roster/status");
        if ok(&v) {
            return v;
        }
        assert!(Instant::now() < deadline, "{what} not seen within {secs} s: {v:#}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn roster<'a>(v: &'a Value, kind: &str) -> &'a Value {
    v["rosters"].as_array().unwrap().iter().find(|r| r["kind"] == kind).unwrap_or_else(|| panic!("no {kind}: {v:#}"))
}

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with([' ', '{']))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in\n{text}"))
}

/// The sum of every sample of `name` (over its labels).
fn sum(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with([' ', '{']))
        .filter_map(|l| l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()))
        .sum()
}

#[test]
fn roster_status_and_metrics_follow_the_cothority() {
    let mut cluster = LocalCluster::new(4).unwrap();
    let base = cluster.client_url(0).unwrap().replace("ws://", "http://");
    let rt = cluster.runtime().handle().clone();

    // A beacon group of all four and a skipchain of all four, both known to node 0.
    let req = InitRequest {
        roster_toml: cluster.roster().to_toml(),
        scheme: Scheme::BlsUnchainedG1Rfc9380.id().into(),
        period_secs: 1,
        threshold: 0,
        phase_timeout_ms: 2000,
        genesis_time: 0,
        genesis_delay_ms: 1000,
        beacon_id: String::new(),
    };
    cluster.approve_beacon(&req).unwrap();
    let url = cluster.client_url(0).unwrap();
    rt.block_on(client::call(&url, "Beacon", "Init", req.encode_to_vec(), Duration::from_secs(60))).unwrap();
    let info = cluster.node(0).beacon().unwrap().chain_info().unwrap();
    let owner = IdentityKeyPair::generate();
    let sc = cluster.node(0).skipchain().unwrap();
    let genesis = rt.block_on(sc.create_chain(cluster.roster(), 2, 8, vec![owner.public()], b"g".to_vec())).unwrap();
    let append = Append::signed(&owner, &genesis.hash, 1, b"one".to_vec(), None).unwrap();
    rt.block_on(sc.append(append)).unwrap();

    let keys: Vec<String> = cluster.roster().servers.iter().map(|s| s.public.to_hex()).collect();
    let v = wait_status(&base, 20, "every member reachable with a round", |v| {
        let Some(rs) = v["rosters"].as_array() else { return false };
        rs.iter().any(|r| r["kind"] == "beacon")
            && rs.iter().all(|r| {
                r["members"].as_array().unwrap().iter().all(|m| {
                    m["reachable"] == true
                        && m["version"].is_string()
                        && (r["kind"] != "beacon" || m["latest_round"].as_u64() > Some(0))
                })
            })
    });
    assert_eq!(v["node"]["public"], keys[0]);
    let beacon = roster(&v, "beacon");
    assert_eq!(beacon["facts"]["chain_hash"], info.hash_hex());
    assert_eq!(beacon["facts"]["period_s"], "1");
    assert_eq!(beacon["facts"]["threshold"], "3");
    let listed: Vec<&str> =
        beacon["members"].as_array().unwrap().iter().map(|m| m["public"].as_str().unwrap()).collect();
    assert_eq!(listed, keys.iter().map(String::as_str).collect::<Vec<_>>());
    let chain = roster(&v, "skipchain");
    assert_eq!(chain["members"].as_array().unwrap().len(), 4);
    assert!(chain["members"].as_array().unwrap().iter().all(|m| m["height"] == 1), "{chain:#}");
    assert!(
        v["activity"].as_array().unwrap().iter().any(|a| a["text"].as_str().unwrap().contains("block 1 appended")),
        "{v:#}"
    );
    // Viewers share one probe per interval (1.5 s): of three requests in a row (milliseconds apart,
    // so at most one interval boundary between them) two get the same snapshot.
    let at: Vec<Value> = (0..3).map(|_| get_json(&base, "/roster/status")["generated_unix_ms"].clone()).collect();
    assert!(at[0] == at[1] || at[1] == at[2], "a probe per request: {at:?}");
    let text = v.to_string();
    assert!(!text.contains(&*cluster.node(0).data_dir().to_string_lossy()), "no path in {text}");

    // A new round shows up, and a stopped member is shown unreachable within a few seconds.
    let round = beacon["facts"]["latest_round"].as_str().unwrap().parse::<u64>().unwrap();
    wait_status(&base, 10, "a newer round", |v| {
        roster(v, "beacon")["facts"]["latest_round"].as_str().and_then(|r| r.parse::<u64>().ok()) > Some(round)
    });
    cluster.stop(3).unwrap();
    let stopped = Instant::now();
    let v = wait_status(&base, 10, "member 3 unreachable", |v| roster(v, "beacon")["members"][3]["reachable"] == false);
    assert!(stopped.elapsed() < Duration::from_secs(6), "took {:?}", stopped.elapsed());
    assert!(roster(&v, "beacon")["members"][3]["reason"].is_string(), "{v:#}");
    assert_eq!(roster(&v, "beacon")["members"][1]["reachable"], true);

    // The series the issue lists.
    let m = get_text(&base, "/metrics");
    assert_eq!(metric(&m, "conode_beacon_group_size"), 4.0);
    assert_eq!(metric(&m, "conode_beacon_group_threshold"), 3.0);
    assert!(m.contains("conode_dkg_state{state=\"done\"} 1"), "{m}");
    assert!(metric(&m, "conode_beacon_lag_seconds_count") >= 1.0);
    assert!(metric(&m, "conode_beacon_chain_last_round") >= 1.0);
    assert!(m.contains("conode_beacon_member_partials_received_total{member=\"1\"}"), "{m}");
    assert!(metric(&m, "conode_skipchain_appends_total") >= 1.0);
    assert!(metric(&m, "conode_skipchain_append_duration_seconds_count") >= 1.0);
    assert!(m.contains("conode_skipchain_blocks_stored_total{how=\"appended\"} 1"), "{m}");
    // The append's rounds: one (fast) or two.
    assert!(sum(&m, "conode_cosi_rounds_total") >= 1.0);
    assert!(sum(&m, "conode_cosi_round_duration_seconds_count") >= 1.0);
    assert!(m.lines().any(|l| l.starts_with("conode_cosi_hedges_total ")), "the hedge counter is exported: {m}");
    assert!(m.lines().any(|l| l == "conode_cosi_rounds_busy_total 0"), "the busy counter is exported: {m}");
    let peer3 = &keys[3][..16];
    assert!(m.contains(&format!("conode_network_peer_up{{peer=\"{peer3}\"}} 0")), "{m}");
    assert!(m.contains(&format!("conode_network_peer_connected{{peer=\"{peer3}\"}} 0")), "{m}");
    assert!(metric(&m, &format!("conode_network_dial_failures_total{{peer=\"{peer3}\"}}")) >= 1.0);
    assert!(metric(&m, "conode_client_requests_total{route=\"/roster/status\"}") >= 1.0);
    assert!(metric(&m, "conode_client_requests_total{route=\"/Beacon/Init\"}") >= 1.0);
    assert!(metric(&m, "process_resident_memory_bytes") > 0.0);
    assert!(metric(&m, "process_open_fds") > 0.0);
    // OpenMetrics for scrapers that ask for it.
    let om = rt.block_on(async {
        reqwest::Client::new()
            .get(format!("{base}/metrics"))
            .header("accept", "application/openmetrics-text; version=1.0.0")
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    });
    assert!(om.ends_with("# EOF\n") && om.contains("# TYPE conode_cosi_rounds counter"), "{om}");
}
