//! Output for scripts and people: `--json` gives one JSON document on stdout, `check` prints a
//! table, errors print once on stderr, log lines carry no colour when stderr is not a terminal, a
//! missing default config asks for `conode setup`, and a client pointed at a node port is told to
//! use the client port.

use crate::support::{conode, fails, run, stderr, stdout, wait_line};
use conode_core::cluster::LocalCluster;
use std::io::{BufReader, Read};
use std::process::Stdio;
use std::time::{Duration, Instant};

/// Lines of stderr that report an error (`main` prints each failure once as `error: …`).
fn errors_in(err: &str) -> usize {
    err.lines().filter(|l| l.starts_with("error:") || l.contains(" ERROR ")).count()
}

#[test]
fn check_table_and_json() {
    let mut cluster = LocalCluster::new(3).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let roster = dir.path().join("roster.toml");
    cluster.roster().save(&roster, false).unwrap();

    let o = run(conode().arg("check").arg(&roster).args(["--timeout", "5"]));
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    let head = out.lines().next().unwrap();
    for col in ["#", "address", "id", "description", "tls", "client port"] {
        assert!(head.contains(col), "table header without {col}: {out}");
    }
    assert!(out.trim_end().ends_with("all 3 nodes ok"), "{out}");

    let o = run(conode().args(["--json", "check"]).arg(&roster).args(["--timeout", "5"]));
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("one JSON document on stdout");
    assert_eq!(v["ok"], true);
    let results = v["results"].as_array().unwrap();
    assert_eq!(results.len(), 3);
    assert!(results.iter().all(|r| r["ok"] == true && r["tls_ms"].is_number() && r["client_ms"].is_number()));

    // A stopped member: JSON still on stdout, the error once on stderr, non-zero exit.
    cluster.stop(1).unwrap();
    let o = run(conode().arg("check").arg(&roster).args(["--timeout", "1", "--json"]));
    assert_eq!(o.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["failed"], 1);
    assert_eq!(v["results"][1]["ok"], false);
    assert!(v["results"][1]["tls_error"].is_string());
    let err = stderr(&o);
    assert_eq!(errors_in(&err), 1, "{err}");
    assert!(err.contains("1 of 3 nodes failed"), "{err}");
}

#[test]
fn missing_default_config_asks_for_setup() {
    let home = tempfile::tempdir().unwrap();
    let o = run(conode()
        .env("HOME", home.path())
        .env("XDG_CONFIG_HOME", home.path().join("config"))
        .env("XDG_DATA_HOME", home.path().join("data"))
        .args(["server", "--allow-root"]));
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(err.contains("run `conode setup` first"), "{err}");
    assert_eq!(errors_in(&err), 1, "{err}");
}

#[test]
fn client_at_the_node_port_is_told_so() {
    let cluster = LocalCluster::new(1).unwrap();
    let node_port = cluster.node(0).node_addr().unwrap().port();
    let client_port = cluster.node(0).client_addr().unwrap().port();
    let genesis = "00".repeat(32);
    let err = fails(conode().args(["-d", "3", "skipchain", "get", "--index", "0", "--genesis", &genesis]).args([
        "--timeout",
        "5",
        "--url",
        &format!("ws://127.0.0.1:{node_port}"),
    ]));
    assert!(err.contains("node port") && err.contains(&format!("ws://127.0.0.1:{client_port}")), "{err}");
    assert_eq!(errors_in(&err), 1, "{err}");

    // The client port itself gets no such hint (the chain is simply unknown).
    let err = fails(
        conode()
            .args(["skipchain", "get", "--index", "0", "--genesis", &genesis])
            .args(["--url", &format!("ws://127.0.0.1:{client_port}")]),
    );
    assert!(!err.contains("node port"), "{err}");
    assert_eq!(errors_in(&err), 1, "{err}");
}

#[test]
fn log_lines_have_no_colour_on_a_pipe_and_file_errors_print_once() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("n");
    let port = crate::support::free_port();
    let o =
        run(conode().args(["setup", "--non-interactive", "--port", &port.to_string()]).arg("--folder").arg(&folder));
    assert!(o.status.success(), "{}", stderr(&o));
    let mut child = conode()
        .args(["-d", "2", "-c"])
        .arg(folder.join("private.toml"))
        .args(["server", "--allow-root"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // stderr is read all along, so the node never blocks on a full pipe.
    let mut stderr_pipe = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut err = String::new();
        let _ = stderr_pipe.read_to_string(&mut err);
        err
    });
    let mut out = BufReader::new(child.stdout.take().unwrap());
    wait_line(&mut out, "running", Instant::now() + Duration::from_secs(20));
    // Right after "running": the signal is caught, the node stops gracefully.
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    wait_line(&mut out, "stopped", Instant::now() + Duration::from_secs(20));
    let err = reader.join().unwrap();
    assert!(child.wait().unwrap().success());
    assert!(err.contains("INFO") || err.contains("DEBUG"), "no log lines to look at: {err}");
    assert!(!err.contains('\u{1b}'), "colour codes in log lines written to a pipe: {err:?}");

    // A file that is not there: its name and the reason, once.
    let err = fails(conode().arg("check").arg(dir.path().join("nope.toml")));
    assert_eq!(errors_in(&err), 1, "{err}");
    assert_eq!(err.matches("No such file").count(), 1, "{err}");
}

#[test]
fn setup_and_run_nodes_report_json() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("n");
    let port = crate::support::free_port();
    let o = run(conode()
        .args(["--json", "setup", "--non-interactive", "--host", "h.example", "--port", &port.to_string()])
        .arg("--folder")
        .arg(&folder));
    assert!(o.status.success(), "{}", stderr(&o));
    let v = crate::support::json(&stdout(&o));
    assert_eq!(v["address"], format!("tls://h.example:{port}"));
    assert!(v["private"].as_str().unwrap().ends_with("private.toml"));
    assert_eq!(v["node_id"].as_str().unwrap().len(), 64);
    assert!(v["roster_entry"].as_str().unwrap().contains("[[servers]]"));

    let base = crate::support::free_port_base(2);
    let mut child = conode()
        .args(["--json", "run-nodes", "-n", "2", "-v", "0", "--port-base", &base.to_string(), "-d"])
        .arg(dir.path().join("local"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let first = wait_line(&mut out, "\"running\"", Instant::now() + Duration::from_secs(60));
    let ready = crate::support::json(first.lines().last().unwrap());
    assert_eq!(ready["running"], 2);
    assert!(ready["roster"].as_str().unwrap().ends_with("public.toml"));
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    assert!(child.wait().unwrap().success());
    // Nothing but JSON went to stdout.
    let mut rest = String::new();
    out.read_to_string(&mut rest).unwrap();
    assert!(first.lines().chain(rest.lines()).all(|l| l.trim().is_empty() || l.starts_with('{')), "{first}{rest}");
}

/// A reader that goes away (`conode … | head -1`) is no error: the command ends as it would have,
/// quietly (`println!` panicked there, exit code 101 with a backtrace).
#[test]
fn a_reader_that_closes_stdout_early_is_no_error() {
    let mut child = conode()
        .args(["bench", "cosi", "--nodes", "4,5", "--rounds", "2"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The reader goes away before the first line.
    drop(child.stdout.take());
    let o = child.wait_with_output().unwrap();
    let err = stderr(&o);
    assert!(o.status.success(), "{:?}: {err}", o.status);
    assert!(!err.contains("panicked") && !err.contains("Broken pipe"), "{err}");
}

/// Any other failure to write the result (here a full disk: /dev/full) fails the command, naming
/// stdout, with no panic.
#[test]
fn a_result_that_cannot_be_written_fails_the_command() {
    let full = std::fs::OpenOptions::new().write(true).open("/dev/full").unwrap();
    let o = conode().args(["bench", "cosi", "--nodes", "4", "--rounds", "2"]).stdout(full).output().unwrap();
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("error: writing the result to stdout"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}
