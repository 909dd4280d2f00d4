//! Helpers for the process tests: the built `conode` binary, free ports, readiness polls with
//! deadlines, and guards that stop every conode process a test started, even when it panics.

use conode_core::cluster::allocate_port_pair;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The `conode` binary under test; `CONODE_TEST_BIN` names another build (to measure a baseline).
pub fn conode() -> Command {
    let bin = std::env::var_os("CONODE_TEST_BIN").unwrap_or_else(|| env!("CARGO_BIN_EXE_conode").into());
    let mut cmd = Command::new(bin);
    die_with_parent(&mut cmd);
    cmd
}

/// Children die with the test that started them, even if it is killed.
pub fn die_with_parent(cmd: &mut Command) {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::process::CommandExt;
        // SAFETY: prctl is async-signal-safe and touches only the child being started.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = cmd;
}

pub fn free_port() -> u16 {
    let (a, _b) = allocate_port_pair().unwrap();
    a.local_addr().unwrap().port()
}

/// A base port P such that P .. P + 2n are free (for `run-nodes --port-base`).
pub fn free_port_base(nodes: usize) -> u16 {
    loop {
        let p = free_port();
        if (p as usize) + 2 * nodes < 65000
            && (2..2 * nodes as u16).all(|k| std::net::TcpListener::bind(("127.0.0.1", p + k)).is_ok())
        {
            return p;
        }
    }
}

pub fn is_root() -> bool {
    // SAFETY: no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Runs a command to completion and returns its output.
pub fn run(cmd: &mut Command) -> Output {
    cmd.stdin(Stdio::null()).output().expect("running conode")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Runs `conode <args>` and asserts success; returns stdout.
pub fn ok(cmd: &mut Command) -> String {
    let o = run(cmd);
    assert!(o.status.success(), "{cmd:?} failed:\n{}{}", stdout(&o), stderr(&o));
    stdout(&o)
}

/// Runs `conode <args>` and asserts a non-zero exit; returns stderr.
pub fn fails(cmd: &mut Command) -> String {
    let o = run(cmd);
    assert!(!o.status.success(), "{cmd:?} should have failed:\n{}{}", stdout(&o), stderr(&o));
    assert_ne!(o.status.code(), None, "{cmd:?} died from a signal");
    stderr(&o)
}

/// Parses the single JSON object a command printed.
pub fn json(s: &str) -> serde_json::Value {
    serde_json::from_str(s.trim()).unwrap_or_else(|e| panic!("not one JSON object ({e}): {s}"))
}

/// Reads lines until one contains `needle`; panics at the deadline or end of output.
pub fn wait_line(reader: &mut impl BufRead, needle: &str, deadline: Instant) -> String {
    let mut seen = String::new();
    let mut line = String::new();
    while Instant::now() < deadline {
        line.clear();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            break;
        }
        seen.push_str(&line);
        if line.contains(needle) {
            return seen;
        }
    }
    panic!("`{needle}` not printed in time; output so far:\n{seen}");
}

/// Polls `f` every 50 ms until it holds; panics with `what` at the deadline.
pub fn wait_until(what: &str, within: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Whether `GET /ok` on a client port (host:port) answers 200.
pub fn http_ok(addr: &str) -> bool {
    let Ok(mut s) = std::net::TcpStream::connect(addr) else { return false };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let req = format!("GET /ok HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    let mut resp = String::new();
    s.write_all(req.as_bytes()).is_ok() && s.read_to_string(&mut resp).is_ok() && resp.starts_with("HTTP/1.1 200")
}

fn sigterm_and_wait(child: &mut Child, within: Duration) {
    // SAFETY: signalling a child this test started (and has not reaped yet).
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// `conode run-nodes` in a temporary folder; stopped with SIGINT when dropped.
pub struct RunNodes {
    pub dir: tempfile::TempDir,
    pub roster: PathBuf,
    child: Child,
    pub out: BufReader<ChildStdout>,
}

impl RunNodes {
    pub fn start(n: usize, extra: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let base = free_port_base(n);
        let mut child = conode()
            .args(["run-nodes", "-n", &n.to_string(), "-v", "0", "--port-base", &base.to_string()])
            .args(extra)
            .arg("-d")
            .arg(dir.path())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        wait_line(&mut out, &format!("cothority of {n} conodes running"), Instant::now() + Duration::from_secs(60));
        let roster = dir.path().join("public.toml");
        RunNodes { dir, roster, child, out }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// SIGINT, then waits for every conode to be stopped.
    pub fn stop(mut self) -> std::process::ExitStatus {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.pid(), libc::SIGINT) };
        wait_line(&mut self.out, "all conodes stopped", Instant::now() + Duration::from_secs(30));
        self.child.wait().unwrap()
    }
}

impl Drop for RunNodes {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            // SAFETY: signalling our own child; it stops its conodes.
            unsafe { libc::kill(self.child.id() as i32, libc::SIGINT) };
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline && matches!(self.child.try_wait(), Ok(None)) {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// One `conode server` process per member, each set up with `conode setup --non-interactive`.
pub struct Servers {
    pub dir: tempfile::TempDir,
    pub roster: PathBuf,
    pub nodes: Vec<ServerNode>,
}

pub struct ServerNode {
    pub folder: PathBuf,
    pub private: PathBuf,
    /// host:port of the client port.
    pub client: String,
    child: Option<Child>,
}

impl ServerNode {
    pub fn url(&self) -> String {
        format!("ws://{}", self.client)
    }
}

impl Servers {
    /// Sets up `n` members on free port pairs and writes their roster; starts none.
    pub fn setup(n: usize) -> Self {
        let dir = tempfile::tempdir().unwrap();
        // Hold every pair until all are chosen so no two members get the same ports.
        let pairs: Vec<_> = (0..n).map(|_| allocate_port_pair().unwrap()).collect();
        let ports: Vec<u16> = pairs.iter().map(|(a, _)| a.local_addr().unwrap().port()).collect();
        drop(pairs);
        let mut roster_text = String::new();
        let mut nodes = Vec::new();
        for (i, port) in ports.iter().enumerate() {
            let folder = dir.path().join(format!("co{}", i + 1));
            ok(conode()
                .args(["setup", "--non-interactive", "--port", &port.to_string(), "--description"])
                .arg(format!("node {i}"))
                .arg("--folder")
                .arg(&folder));
            roster_text.push_str(&std::fs::read_to_string(folder.join("public.toml")).unwrap());
            roster_text.push('\n');
            nodes.push(ServerNode {
                private: folder.join("private.toml"),
                folder,
                client: format!("127.0.0.1:{}", port + 1),
                child: None,
            });
        }
        let roster = dir.path().join("roster.toml");
        std::fs::write(&roster, roster_text).unwrap();
        Servers { dir, roster, nodes }
    }

    /// Starts member `i` (output appended to its `server.log`) and waits for its client port.
    pub fn start(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        assert!(node.child.is_none(), "node {i} already running");
        let log = std::fs::OpenOptions::new().create(true).append(true).open(node.folder.join("server.log")).unwrap();
        let child = conode()
            .arg("-c")
            .arg(&node.private)
            .args(["server", "--allow-root"])
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        node.child = Some(child);
        let client = node.client.clone();
        let deadline = Instant::now() + Duration::from_secs(30);
        while !http_ok(&client) {
            if let Some(Ok(Some(status))) = self.nodes[i].child.as_mut().map(|c| c.try_wait()) {
                panic!("node {i} exited ({status}):\n{}", self.log(i));
            }
            assert!(Instant::now() < deadline, "node {i} not ready in time:\n{}", self.log(i));
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    pub fn start_all(&mut self) {
        for i in 0..self.nodes.len() {
            self.start(i);
        }
    }

    /// SIGKILL: no chance to flush or close anything.
    pub fn sigkill(&mut self, i: usize) {
        let mut child = self.nodes[i].child.take().expect("node not running");
        child.kill().unwrap();
        let status = child.wait().unwrap();
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(libc::SIGKILL));
    }

    /// SIGTERM (a graceful stop) and wait for the process to exit.
    pub fn stop(&mut self, i: usize) {
        if let Some(mut child) = self.nodes[i].child.take() {
            sigterm_and_wait(&mut child, Duration::from_secs(20));
        }
    }

    /// Process id of running member `i`.
    pub fn pid(&self, i: usize) -> u32 {
        self.nodes[i].child.as_ref().expect("node not running").id()
    }

    pub fn url(&self, i: usize) -> String {
        self.nodes[i].url()
    }

    pub fn log(&self, i: usize) -> String {
        let bytes = std::fs::read(self.nodes[i].folder.join("server.log")).unwrap_or_default();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `conode skipchain create` on this roster (base height 2, max 6) with a new owner key in
    /// `owner.toml`; returns the key file and the genesis id in hex.
    pub fn create_chain(&self) -> (PathBuf, String) {
        self.create_chain_owned_by("owner.toml")
    }

    /// A chain on the roster whose owner key is written to `key_file` in the test's folder.
    pub fn create_chain_owned_by(&self, key_file: &str) -> (PathBuf, String) {
        let key = self.path(key_file);
        let created = json(&ok(conode()
            .args(["skipchain", "create", "--base-height", "2", "--max-height", "6"])
            .arg("--roster")
            .arg(&self.roster)
            .arg("--key")
            .arg(&key)));
        (key, created["genesis"].as_str().unwrap().to_string())
    }
}

impl Drop for Servers {
    fn drop(&mut self) {
        for n in &mut self.nodes {
            if let Some(mut c) = n.child.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
        // A failed test shows what every member logged (its folder is deleted next), at most
        // the last 200 lines of each.
        if std::thread::panicking() {
            for i in 0..self.nodes.len() {
                let log = self.log(i);
                let lines: Vec<&str> = log.lines().collect();
                let tail = lines[lines.len().saturating_sub(200)..].join("\n");
                eprintln!("---- server.log of member {i} (last 200 lines) ----\n{tail}");
            }
        }
    }
}

/// Writes a file with mode 0600 (as key files must be).
pub fn write_private(path: &Path, text: &str) {
    conode_core::config::write_file_atomic(path, text.as_bytes(), 0o600, true).unwrap();
}

/// The owner key an `owner.toml` written by `conode skipchain create --key` holds.
pub fn owner_key(path: &Path) -> conode_core::crypto::IdentityKeyPair {
    let text = std::fs::read_to_string(path).unwrap();
    let private = text.lines().find_map(|l| l.strip_prefix("Private = ")).unwrap().trim_matches('"');
    conode_core::crypto::IdentityKeyPair::from_secret_hex(private).unwrap()
}

/// Appends blocks 1, 2, … through `url` until `stop` is set or an append fails; `on_ack` gets
/// every acknowledged block's (index, hash). Returns "stopped", or what ended the loop.
pub fn append_loop(
    url: String,
    genesis: Vec<u8>,
    owner: conode_core::crypto::IdentityKeyPair,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    mut on_ack: impl FnMut(u64, Vec<u8>),
) -> String {
    use conode_core::services::skipchain::messages::{Append, BlockReply};
    use prost::Message;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let mut index = 1;
    while !stop.load(std::sync::atomic::Ordering::SeqCst) {
        let req = Append::signed(&owner, &genesis, index, format!("block {index}").into_bytes(), None).unwrap();
        let call =
            conode_core::api::client::call(&url, "Skipchain", "Append", req.encode_to_vec(), Duration::from_secs(10));
        match rt.block_on(call) {
            Ok(reply) => {
                let block = BlockReply::decode(reply.as_slice()).unwrap().block.unwrap();
                if block.index != index {
                    return format!("block {index} stored at index {}", block.index);
                }
                on_ack(index, block.hash);
                index += 1;
            }
            Err(e) => return format!("append {index}: {e}"),
        }
    }
    "stopped".into()
}

/// GET `path` at a node's client port `addr` (host:port): the status code and the body, or `None`
/// when nothing answers.
pub fn http_get(addr: &str, path: &str) -> Option<(u16, String)> {
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").ok()?;
    let mut resp = String::new();
    s.read_to_string(&mut resp).ok()?;
    let code = resp.split(' ').nth(1)?.parse().ok()?;
    let body = resp.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    Some((code, body))
}

/// `conode -c <node proposer> propose remove-node --public <node target's identity key>`: the
/// proposal as JSON.
pub fn propose_remove(servers: &Servers, proposer: usize, target: usize) -> serde_json::Value {
    let public = conode_core::config::Roster::load(&servers.nodes[target].folder.join("public.toml")).unwrap().servers
        [0]
    .public
    .to_hex();
    json(&ok(conode().arg("-c").arg(&servers.nodes[proposer].private).args([
        "propose",
        "remove-node",
        "--public",
        &public,
    ])))
}

/// `conode -c <private.toml> beacon approve --roster <roster> <args>` for each member: every
/// operator approves the beacon group (with the `--period`, `--scheme`, `--threshold` that
/// `beacon init` is then given) before it can start.
pub fn approve_beacon<P: AsRef<Path>>(privates: impl IntoIterator<Item = P>, roster: &Path, args: &[&str]) {
    for private in privates {
        let out =
            ok(conode().arg("-c").arg(private.as_ref()).args(["beacon", "approve", "--roster"]).arg(roster).args(args));
        assert!(out.contains("approved on this node"), "{out}");
    }
}
