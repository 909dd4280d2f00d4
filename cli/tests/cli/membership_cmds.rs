//! Membership by vote with real processes: four `conode server`s found a network chain
//! (`conode network create` on each, through its admin socket: a node follows the network only
//! once its own operator founded it), a fifth joins through `[Join]` in its private.toml, is killed with
//! SIGKILL while pending and keeps its request, is voted in with `conode vote` (a second ballot
//! of one member refused), then a founder is removed by `propose remove-node` and retires; a
//! member killed with SIGKILL comes back in the same state. States are read from `/node/state`.
//! A second flow: separate governance member keys (`conode member keygen`, `network create
//! --members`, `--member-key`), bad key and members files refused by name, a node's own key and a
//! non-member refused, and a removal voted by the member keys that leaves the members as they are.

use crate::support::{conode, fails, json, ok, propose_remove, wait_until, write_private, Servers};
use std::io::{Read, Write};
use std::time::Duration;

/// GET `path` on a client port (host:port); the JSON body.
fn get(addr: &str, path: &str) -> serde_json::Value {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let body = resp.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or_default();
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{path}: not JSON ({e}): {resp}"))
}

fn state(servers: &Servers, i: usize) -> String {
    get(&servers.nodes[i].client, "/node/state")["state"].as_str().unwrap_or_default().to_string()
}

/// `conode -c <node i> vote id yes|no`, retried while node i has not received the proposal yet.
fn vote(servers: &Servers, i: usize, id: &str, choice: &str) -> serde_json::Value {
    vote_with(servers, i, id, choice, &[])
}

/// `vote` with extra arguments (e.g. `--member-key FILE`).
fn vote_with(servers: &Servers, i: usize, id: &str, choice: &str, extra: &[&std::ffi::OsStr]) -> serde_json::Value {
    let mut out = None;
    wait_until("the proposal reaches the voter", Duration::from_secs(20), || {
        let o =
            conode().arg("-c").arg(&servers.nodes[i].private).args(["vote", id, choice]).args(extra).output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr).to_string();
        if o.status.success() {
            out = Some(json(&String::from_utf8_lossy(&o.stdout)));
            return true;
        }
        assert!(err.contains("unknown proposal"), "vote failed: {err}");
        false
    });
    out.unwrap()
}

#[test]
fn join_vote_remove_with_processes_and_sigkill() {
    let mut servers = Servers::setup(5);
    let mut roster4 = String::new();
    for n in &servers.nodes[..4] {
        roster4.push_str(&std::fs::read_to_string(n.folder.join("public.toml")).unwrap());
        roster4.push('\n');
    }
    let roster4_path = servers.path("roster4.toml");
    std::fs::write(&roster4_path, roster4).unwrap();
    for i in 0..4 {
        servers.start(i);
    }
    let create = |i: usize| {
        let mut cmd = conode();
        cmd.arg("-c").arg(&servers.nodes[i].private).args(["network", "create", "--roster"]).arg(&roster4_path);
        cmd
    };
    let created = json(&ok(&mut create(0)));
    let network = created["network"].as_str().unwrap().to_string();
    assert_eq!((created["members"].as_u64(), created["state"].as_str()), (Some(4), Some("PartOfNetwork")));
    // The others hold the genesis but follow it only once their operators found it too.
    assert_eq!(get(&servers.nodes[0].client, "/node/state")["founding"], network.as_str());
    let waiting = get(&servers.nodes[1].client, "/node/state");
    assert_eq!((waiting["state"].as_str(), waiting["founding"].as_str()), (Some("Initialized"), None));
    for i in 1..4 {
        let founded = json(&ok(&mut create(i)));
        assert_eq!((founded["network"].as_str(), founded["state"].as_str()), (Some(&*network), Some("PartOfNetwork")));
    }
    let err = fails(create(0).args(["--threshold", "4"]));
    assert!(err.contains("already"), "{err}");

    // The fifth node joins through [Join] in its private.toml.
    let joiner = &servers.nodes[4];
    std::fs::write(joiner.folder.join("data.json"), r#"{"host":"rack-9"}"#).unwrap();
    let mut private = std::fs::read_to_string(&joiner.private).unwrap();
    private.push_str(&format!(
        "\n[Join]\nTarget = \"{}\"\nNetwork = \"{network}\"\nRetryTimeout = 0.2\nNodeData = \"data.json\"\n",
        servers.url(0)
    ));
    write_private(&joiner.private, &private);
    servers.start(4);
    wait_until("a proposal for the joiner", Duration::from_secs(20), || {
        !ok(conode().arg("-c").arg(&servers.nodes[0].private).arg("proposals")).trim().is_empty()
    });
    assert_eq!(state(&servers, 4), "Pending");
    let listed = ok(conode().arg("-c").arg(&servers.nodes[0].private).arg("proposals"));
    let proposal = json(listed.lines().next().unwrap());
    let id = proposal["id"].as_str().unwrap().to_string();
    assert_eq!(proposal["state"], "open");
    assert_eq!(proposal["needed"], 3);

    // Killed while pending: it comes back pending with the same request.
    servers.sigkill(4);
    servers.start(4);
    assert_eq!(state(&servers, 4), "Pending");
    assert_eq!(get(&servers.nodes[4].client, "/node/state")["join"]["proposal"], id.as_str());

    assert_eq!(vote(&servers, 0, &id, "yes")["state"], "open");
    assert_eq!(vote(&servers, 1, &id, "yes")["state"], "open");
    let err = fails(conode().arg("-c").arg(&servers.nodes[1].private).args(["vote", &id, "no"]));
    assert!(err.contains("already voted"), "{err}");
    vote(&servers, 2, &id, "yes");
    wait_until("the joiner is part of the network", Duration::from_secs(30), || state(&servers, 4) == "PartOfNetwork");
    let net = get(&servers.nodes[4].client, "/node/network");
    assert_eq!(net["roster_size"], 5);
    assert_eq!(net["network"], network.as_str());
    assert_eq!(net["node_data"][0]["node_data"]["host"], "rack-9");
    let nodes = get(&servers.nodes[0].client, "/node/network/nodes");
    assert_eq!(nodes.as_array().unwrap().len(), 5);

    // A member killed with SIGKILL comes back in the same state and roster.
    servers.sigkill(0);
    servers.start(0);
    assert_eq!(state(&servers, 0), "PartOfNetwork");
    assert_eq!(get(&servers.nodes[0].client, "/node/network")["roster_size"], 5);

    // Remove node 1 (4 of 5 yes needed), proposed by node 4, the newcomer.
    let proposed = propose_remove(&servers, 4, 1);
    let rid = proposed["id"].as_str().unwrap().to_string();
    assert_eq!(proposed["needed"], 4);
    for i in [4, 0, 2, 3] {
        vote(&servers, i, &rid, "yes");
    }
    wait_until("node 1 retired", Duration::from_secs(30), || state(&servers, 1) == "Retired");
    wait_until("node 3 sees 4 nodes", Duration::from_secs(30), || {
        get(&servers.nodes[3].client, "/node/network")["roster_size"] == 4
    });
    let err = fails(conode().arg("-c").arg(&servers.nodes[1].private).args(["propose", "set-threshold", "2"]));
    assert!(err.contains("not a governance member"), "{err}");
}

/// `conode -c <node i> vote id yes --member-key key`, retried while node i has not received the
/// proposal yet.
fn member_vote(servers: &Servers, i: usize, key: &std::path::Path, id: &str) -> serde_json::Value {
    vote_with(servers, i, id, "yes", &["--member-key".as_ref(), key.as_os_str()])
}

#[test]
fn separate_member_keys_with_processes() {
    use std::os::unix::fs::PermissionsExt;
    let mut servers = Servers::setup(3);
    servers.start_all();
    let (k1, k2) = (servers.path("m1.toml"), servers.path("m2.toml"));
    let g1 = json(&ok(conode().args(["--json", "member", "keygen", "--out"]).arg(&k1)));
    let g2 = json(&ok(conode().args(["--json", "member", "keygen", "--out"]).arg(&k2)));
    assert_eq!(std::fs::metadata(&k1).unwrap().permissions().mode() & 0o777, 0o600);
    let before = std::fs::read(&k1).unwrap();
    let err = fails(conode().args(["member", "keygen", "--out"]).arg(&k1));
    assert!(err.contains("m1.toml") && err.contains("refusing to overwrite"), "{err}");
    assert_eq!(std::fs::read(&k1).unwrap(), before);
    let (p1, p2) = (g1["public"].as_str().unwrap().to_string(), g2["public"].as_str().unwrap().to_string());
    assert!(!String::from_utf8_lossy(&before).contains("members"), "a key file is not a members file");

    // Bad members files are refused naming the file and field; nothing is created.
    let members = servers.path("members.toml");
    let create_on = |i: usize, file: &std::path::Path| {
        let mut cmd = conode();
        cmd.arg("-c").arg(&servers.nodes[i].private);
        cmd.args(["network", "create", "--roster"]).arg(&servers.roster).arg("--members").arg(file);
        cmd
    };
    let create = |file: &std::path::Path| create_on(0, file);
    std::fs::write(&members, format!("[[members]]\nPublic = \"{p1}\"\n[[members]]\nPublic = \"zz\"\n")).unwrap();
    let err = fails(&mut create(&members));
    assert!(err.contains("members.toml: members[1].Public"), "{err}");
    let err = fails(&mut create(&k1));
    assert!(err.contains("m1.toml") && err.contains("secret key"), "{err}");
    std::fs::write(&members, format!("[[members]]\nPublic = \"{p1}\"\n\n[[members]]\nPublic = \"{p2}\"\n")).unwrap();
    let err = fails(create(&members).args(["--threshold", "3"]));
    assert!(err.contains("--threshold 3"), "{err}");
    let created = json(&ok(create(&members).args(["--threshold", "2"])));
    assert_eq!((created["members"].as_u64(), created["members_follow_roster"].as_bool()), (Some(2), Some(false)));
    for i in 1..3 {
        ok(create_on(i, &members).args(["--threshold", "2"]));
    }
    for i in 0..3 {
        wait_until("founders part of the network", Duration::from_secs(20), || state(&servers, i) == "PartOfNetwork");
    }
    let net = get(&servers.nodes[0].client, "/node/network");
    assert_eq!(net["members"], serde_json::json!([p1, p2]));
    assert_eq!(net["members_follow_roster"], false);

    // The node's own key is no member; a group-readable member key is refused by name.
    let node = |i: usize| {
        let mut cmd = conode();
        cmd.arg("-c").arg(&servers.nodes[i].private);
        cmd
    };
    let err = fails(node(0).args(["propose", "set-threshold", "1"]));
    assert!(err.contains("not a governance member"), "{err}");
    std::fs::set_permissions(&k1, std::fs::Permissions::from_mode(0o640)).unwrap();
    let err = fails(node(0).args(["propose", "set-threshold", "1", "--member-key"]).arg(&k1));
    assert!(err.contains("m1.toml") && err.contains("chmod 600"), "{err}");
    std::fs::set_permissions(&k1, std::fs::Permissions::from_mode(0o600)).unwrap();

    // Remove node 2 by the member keys' votes; the members stay.
    let public2 = conode_core::config::Roster::load(&servers.nodes[2].folder.join("public.toml")).unwrap().servers[0]
        .public
        .to_hex();
    let proposed = json(&ok(node(0).args(["propose", "remove-node", "--public", &public2, "--member-key"]).arg(&k1)));
    let id = proposed["id"].as_str().unwrap().to_string();
    assert_eq!((proposed["needed"].as_u64(), proposed["members"].as_u64()), (Some(2), Some(2)));
    let err = fails(node(1).args(["vote", &id, "yes"]));
    assert!(err.contains("not a governance member") || err.contains("unknown proposal"), "{err}");
    assert_eq!(member_vote(&servers, 0, &k1, &id)["state"], "open");
    assert_eq!(member_vote(&servers, 1, &k2, &id)["state"], "accepted");
    wait_until("node 2 retired", Duration::from_secs(30), || state(&servers, 2) == "Retired");
    let net = get(&servers.nodes[1].client, "/node/network");
    assert_eq!(net["roster_size"], 2);
    assert_eq!(net["members"], serde_json::json!([p1, p2]), "a roster change changed the members");

    // The removed node asks to join again: node 0 keeps the request (it is no member), and a
    // member proposes add_node for it with `--pending`.
    let err = fails(node(0).args(["propose", "add-node", "--pending", &public2, "--member-key"]).arg(&k1));
    assert!(err.contains("no join request"), "{err}");
    let network = net["network"].as_str().unwrap().to_string();
    servers.stop(2);
    let mut private = std::fs::read_to_string(&servers.nodes[2].private).unwrap();
    private
        .push_str(&format!("\n[Join]\nTarget = \"{}\"\nNetwork = \"{network}\"\nRetryTimeout = 0.2\n", servers.url(0)));
    write_private(&servers.nodes[2].private, &private);
    servers.start(2);
    wait_until("the request waits at node 0", Duration::from_secs(20), || {
        get(&servers.nodes[0].client, "/node/network/nodes").as_array().unwrap().iter().any(|n| n["state"] == "Pending")
    });
    let node = |i: usize| {
        let mut cmd = conode();
        cmd.arg("-c").arg(&servers.nodes[i].private);
        cmd
    };
    let proposed = json(&ok(node(0).args(["propose", "add-node", "--pending", &public2, "--member-key"]).arg(&k2)));
    let id = proposed["id"].as_str().unwrap().to_string();
    assert_eq!(member_vote(&servers, 0, &k2, &id)["state"], "open");
    assert_eq!(member_vote(&servers, 1, &k1, &id)["state"], "accepted");
    wait_until("node 2 is part of the network again", Duration::from_secs(30), || {
        state(&servers, 2) == "PartOfNetwork"
    });
}
