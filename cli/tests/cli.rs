//! The `conode` binary as an operator uses it: setup (interactive over stdin and non-interactive),
//! refusals on bad input, `check` against a live and a partly stopped roster, `server` and
//! `run-nodes`; and, in the modules below, the client commands against live local cothorities.

#[path = "cli/backup_restore.rs"]
mod backup_restore;
#[path = "cli/bad_input.rs"]
mod bad_input;
#[path = "cli/beacon_cmds.rs"]
mod beacon_cmds;
#[path = "cli/bench_cmds.rs"]
mod bench_cmds;
#[path = "cli/conflicting_appends.rs"]
mod conflicting_appends;
#[path = "cli/edge.rs"]
mod edge;
#[path = "cli/fabric.rs"]
mod fabric;
#[path = "cli/membership_cmds.rs"]
mod membership_cmds;
#[path = "cli/output.rs"]
mod output;
#[path = "cli/partition.rs"]
mod partition;
#[path = "cli/relay.rs"]
mod relay;
#[path = "cli/reshare_process.rs"]
mod reshare_process;
#[path = "cli/sigkill.rs"]
mod sigkill;
#[path = "cli/sign_verify.rs"]
mod sign_verify;
#[path = "cli/skipchain_cmds.rs"]
mod skipchain_cmds;
#[path = "cli/support.rs"]
mod support;
#[path = "cli/wan.rs"]
mod wan;
#[path = "cli/watch.rs"]
mod watch;

use conode_core::cluster::LocalCluster;
use conode_core::config::{NodeConfig, Roster};
use std::io::{BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::{conode, free_port, free_port_base, is_root, wait_line};

#[test]
fn setup_non_interactive_writes_configs_and_never_overwrites() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("node");
    let out = conode()
        .args(["setup", "--non-interactive", "--host", "node.example", "--port", "7790", "--description", "nightly"])
        .arg("--folder")
        .arg(&folder)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let private = folder.join("private.toml");
    let config = NodeConfig::load(&private).unwrap();
    assert_eq!(config.address.to_string(), "tls://node.example:7790");
    assert_eq!(config.description, "nightly");
    let public = Roster::load(&folder.join("public.toml")).unwrap();
    assert_eq!(public.servers[0].public, config.identity.public());
    let before = std::fs::read(&private).unwrap();

    let out =
        conode().args(["setup", "--non-interactive", "--port", "7790"]).arg("--folder").arg(&folder).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("private.toml") && err.contains("refusing to overwrite"), "{err}");
    assert_eq!(std::fs::read(&private).unwrap(), before, "private.toml was changed");
}

fn run_interactive(answers: &str) -> std::process::Output {
    let mut child =
        conode().arg("setup").stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    child.stdin.take().unwrap().write_all(answers.as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn setup_interactive_dialogue_over_stdin() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("co1");
    let out = run_interactive(&format!("0.0.0.0:7800\nconode.example.org\nMy conode\n{}\n", folder.display()));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("[address:]PORT") && stdout.contains("reachable") && stdout.contains("folder"), "{stdout}");
    let config = NodeConfig::load(&folder.join("private.toml")).unwrap();
    assert_eq!(config.address.to_string(), "tls://conode.example.org:7800");
    assert_eq!(config.listen_address.as_deref(), Some("0.0.0.0:7800"));
    assert_eq!(config.description, "My conode");
    let before = std::fs::read(folder.join("private.toml")).unwrap();

    // Declining the overwrite keeps the file and exits non-zero.
    let out = run_interactive(&format!("7800\n\nOther\n{}\nn\n", folder.display()));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("already exists"));
    assert_eq!(std::fs::read(folder.join("private.toml")).unwrap(), before);

    // Accepting it replaces the keys.
    let out = run_interactive(&format!("7802\n\nOther\n{}\ny\n", folder.display()));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let again = NodeConfig::load(&folder.join("private.toml")).unwrap();
    assert_ne!(again.identity.public(), config.identity.public());
    assert_eq!(again.address.port, 7802);

    // A bad port is refused.
    let out = run_interactive("notaport\n");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a port number"));
}

#[test]
fn check_passes_on_live_roster_and_fails_on_stopped_node() {
    let mut cluster = LocalCluster::new(3).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let roster_path = dir.path().join("roster.toml");
    cluster.roster().save(&roster_path, false).unwrap();
    let out = conode().arg("check").arg(&roster_path).args(["--timeout", "5"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(stdout.lines().filter(|l| l.starts_with("ok ")).count(), 3, "{stdout}");

    cluster.stop(1).unwrap();
    let out = conode().arg("check").arg(&roster_path).args(["--timeout", "1"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success());
    let stopped = cluster.roster().servers[1].public.to_hex();
    let fail: Vec<_> = stdout.lines().filter(|l| l.starts_with("FAIL")).collect();
    assert_eq!(fail.len(), 1, "{stdout}");
    assert!(fail[0].contains(&stopped[..16]), "{stdout}");
    assert_eq!(stdout.lines().filter(|l| l.starts_with("ok ")).count(), 2, "{stdout}");
}

#[test]
fn check_and_server_refuse_bad_files() {
    let dir = tempfile::tempdir().unwrap();
    let roster = dir.path().join("dup.toml");
    let c = NodeConfig::generate(conode_core::config::NodeAddress::parse("tls://a:1").unwrap(), "a");
    std::fs::write(&roster, Roster::new(vec![c.server_identity(), c.server_identity()]).to_toml()).unwrap();
    let out = conode().arg("check").arg(&roster).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("dup.toml") && err.contains("servers[1].Public") && err.contains("duplicate"), "{err}");

    let missing = dir.path().join("nope/private.toml");
    let out = conode().arg("-c").arg(&missing).args(["server", "--allow-root"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nope/private.toml"));
}

fn setup_node(folder: &Path, port: u16) {
    let out = conode()
        .args(["setup", "--non-interactive", "--port", &port.to_string()])
        .arg("--folder")
        .arg(folder)
        .output()
        .unwrap();
    assert!(out.status.success());
}

#[test]
fn server_runs_until_sigterm_and_refuses_root_without_flag() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("n");
    setup_node(&folder, free_port());
    let private = folder.join("private.toml");
    if is_root() {
        let out = conode().arg("-c").arg(&private).arg("server").output().unwrap();
        assert_eq!(out.status.code(), Some(1));
        assert!(String::from_utf8_lossy(&out.stderr).contains("refusing to run as root"));
    }
    let mut child =
        conode().arg("-c").arg(&private).args(["server", "--allow-root"]).stdout(Stdio::piped()).spawn().unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    wait_line(&mut out, "running", Instant::now() + Duration::from_secs(20));
    let roster = folder.join("public.toml");
    let check = conode().arg("check").arg(&roster).output().unwrap();
    assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stdout));
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    wait_line(&mut out, "stopped", Instant::now() + Duration::from_secs(20));
    assert!(child.wait().unwrap().success());
}

fn pids_of(pattern: &str) -> Vec<i32> {
    let out = Command::new("pgrep").arg("-f").arg(pattern).output().unwrap();
    String::from_utf8_lossy(&out.stdout).lines().filter_map(|l| l.trim().parse().ok()).collect()
}

#[test]
fn run_nodes_restarts_a_crashed_node_and_stops_all() {
    let dir = tempfile::tempdir().unwrap();
    // Two consecutive port pairs starting at a free base.
    let base = free_port_base(2);
    let mut child = conode()
        .args(["run-nodes", "-n", "2", "-v", "0", "--port-base", &base.to_string(), "-d"])
        .arg(dir.path())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    wait_line(&mut out, "cothority of 2 conodes running", Instant::now() + Duration::from_secs(60));
    let roster_path = dir.path().join("public.toml");
    assert_eq!(Roster::load(&roster_path).unwrap().len(), 2);

    // Kill conode 2 the hard way; run-nodes must bring it back.
    let pattern = format!("{} server", dir.path().join("co2/private.toml").display());
    let pid = *pids_of(&pattern).first().expect("conode 2 process");
    // SAFETY: killing a process this test started.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let restarted = pids_of(&pattern).iter().any(|p| *p != pid);
        if restarted
            && conode().arg("check").arg(&roster_path).args(["--timeout", "2"]).output().unwrap().status.success()
        {
            break;
        }
        assert!(Instant::now() < deadline, "conode 2 was not restarted");
        std::thread::sleep(Duration::from_millis(200));
    }
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    wait_line(&mut out, "all conodes stopped", Instant::now() + Duration::from_secs(30));
    assert!(child.wait().unwrap().success());
    assert!(pids_of(&pattern).is_empty(), "conode 2 still running after stop");
}
