//! Members in their own network namespaces on a virtual bridge, shared by the process tests that
//! need a real network between members: the silent partition test (iptables rules between
//! namespaces) and the WAN simulation (a delaying relay in the root namespace, reached through each
//! member's `overrides.toml`). Needs root and `ip netns`; `Fabric::build` says why when it cannot.

use crate::support::{conode, die_with_parent, http_ok, is_root, ok, write_private};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

pub const NODE_PORT: u16 = 7770;

/// Namespaces `cp<tag>n<i>` joined by veth pairs to bridge `cp<tag>br`, addresses 10.213.<net>.<i+1>;
/// the bridge itself (the root namespace, where the test's clients run) is 10.213.<net>.254.
pub struct Fabric {
    tag: String,
    net: u8,
    n: usize,
}

pub fn sh(args: &[&str]) -> Result<(), String> {
    let out = Command::new(args[0]).args(&args[1..]).output().map_err(|e| format!("{}: {e}", args[0]))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("`{}` failed: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()))
    }
}

impl Fabric {
    /// `n` namespaces on a fresh bridge; `iptables` when the test filters packets between them.
    pub fn build(n: usize, iptables: bool) -> Result<Fabric, String> {
        if !is_root() {
            return Err("needs root".into());
        }
        if iptables && Command::new("iptables").arg("-V").output().map(|o| !o.status.success()).unwrap_or(true) {
            return Err("iptables is not installed (test.sh installs it where apt-get works)".into());
        }
        // Tag and subnet from the pid and the caller's purpose: two fabric tests may run at once.
        let salt = if iptables { 0 } else { 101 };
        let tag = format!("{}{}", std::process::id() % 100_000, if iptables { "p" } else { "w" });
        let net = ((std::process::id() + salt) % 200) as u8 + 20;
        let mut fabric = Fabric { tag, net, n: 0 };
        let bridge = fabric.bridge();
        sh(&["ip", "link", "add", &bridge, "type", "bridge"])?;
        sh(&["ip", "addr", "add", &format!("10.213.{net}.254/24"), "dev", &bridge])?;
        sh(&["ip", "link", "set", &bridge, "up"])?;
        for i in 0..n {
            let ns = fabric.ns(i);
            let veth = format!("cp{}v{i}", fabric.tag);
            sh(&["ip", "netns", "add", &ns])?;
            fabric.n = i + 1;
            sh(&["ip", "link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns", &ns])?;
            sh(&["ip", "link", "set", &veth, "master", &bridge, "up"])?;
            sh(&["ip", "-n", &ns, "addr", "add", &format!("{}/24", fabric.addr(i)), "dev", "eth0"])?;
            sh(&["ip", "-n", &ns, "link", "set", "eth0", "up"])?;
            sh(&["ip", "-n", &ns, "link", "set", "lo", "up"])?;
            if iptables {
                sh(&["ip", "netns", "exec", &ns, "iptables", "-L", "INPUT", "-n"])?;
            }
        }
        Ok(fabric)
    }

    pub fn len(&self) -> usize {
        self.n
    }

    fn bridge(&self) -> String {
        format!("cp{}br", self.tag)
    }

    pub fn ns(&self, i: usize) -> String {
        format!("cp{}n{i}", self.tag)
    }

    pub fn addr(&self, i: usize) -> String {
        format!("10.213.{}.{}", self.net, i + 1)
    }

    /// The root namespace's address on the bridge (where relays listen).
    pub fn bridge_addr(&self) -> String {
        format!("10.213.{}.254", self.net)
    }

    /// Silently drops every packet between members of different groups (the test's own clients,
    /// on the bridge address, still reach everyone).
    pub fn partition(&self, groups: &[&[usize]]) {
        self.heal();
        for (g, group) in groups.iter().enumerate() {
            for (h, other) in groups.iter().enumerate() {
                if g == h {
                    continue;
                }
                for &i in group.iter() {
                    for &j in other.iter() {
                        sh(&[
                            "ip",
                            "netns",
                            "exec",
                            &self.ns(i),
                            "iptables",
                            "-A",
                            "INPUT",
                            "-s",
                            &self.addr(j),
                            "-j",
                            "DROP",
                        ])
                        .unwrap();
                    }
                }
            }
        }
    }

    pub fn heal(&self) {
        for i in 0..self.n {
            sh(&["ip", "netns", "exec", &self.ns(i), "iptables", "-F", "INPUT"]).unwrap();
        }
    }
}

impl Drop for Fabric {
    fn drop(&mut self) {
        for i in 0..self.n {
            let _ = sh(&["ip", "netns", "del", &self.ns(i)]);
        }
        let _ = sh(&["ip", "link", "del", &self.bridge()]);
    }
}

/// One member: its folder and its server process inside its namespace.
pub struct Member {
    pub log: PathBuf,
    pub client: String,
    child: Option<Child>,
}

impl Drop for Member {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Sets up one member per namespace in `dir` (open signing allowed, client requests not limited);
/// returns their folders and the roster file.
pub fn setup_members(fabric: &Fabric, dir: &Path) -> (Vec<PathBuf>, PathBuf) {
    let mut roster = String::new();
    let mut folders = Vec::new();
    for i in 0..fabric.len() {
        let folder = dir.join(format!("co{i}"));
        ok(conode()
            .args(["setup", "--non-interactive", "--host", &fabric.addr(i), "--port", &NODE_PORT.to_string()])
            .args(["--description", &format!("member {i}"), "--folder"])
            .arg(&folder));
        let private = folder.join("private.toml");
        let text = std::fs::read_to_string(&private).unwrap();
        // The harness polls the members from one address (the bridge's): no rate limit on it.
        let limits = "\n[Limits]\nClientRequestsPerSecond = 1000000\nClientRequestBurst = 1000000\n";
        write_private(&private, &format!("AllowOpenSigning = true\n{text}{limits}"));
        roster.push_str(&std::fs::read_to_string(folder.join("public.toml")).unwrap());
        roster.push('\n');
        folders.push(folder);
    }
    let roster_path = dir.join("roster.toml");
    std::fs::write(&roster_path, roster).unwrap();
    (folders, roster_path)
}

/// Starts the member of each folder in its namespace and waits until every one serves.
pub fn start_members(fabric: &Fabric, folders: &[PathBuf]) -> Vec<Member> {
    let mut members = Vec::new();
    for (i, folder) in folders.iter().enumerate() {
        let log = folder.join("server.log");
        let out = std::fs::File::create(&log).unwrap();
        // `ip netns exec` execs the server itself, so the parent-death signal holds for it.
        let program = conode().get_program().to_owned();
        let mut cmd = Command::new("ip");
        die_with_parent(&mut cmd);
        cmd.args(["netns", "exec", &fabric.ns(i)])
            .arg(program)
            .arg("-c")
            .arg(folder.join("private.toml"))
            .args(["server", "--allow-root"])
            .stdout(out.try_clone().unwrap())
            .stderr(out);
        let child = cmd.spawn().unwrap();
        members.push(Member { log, client: format!("{}:{}", fabric.addr(i), NODE_PORT + 1), child: Some(child) });
    }
    for (i, m) in members.iter().enumerate() {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !http_ok(&m.client) {
            assert!(Instant::now() < deadline, "member {i} not ready:\n{}", std::fs::read_to_string(&m.log).unwrap());
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    members
}
