//! `conode bench cosi|skipchain --processes`: the degraded runs with every member a real
//! `conode server` process on loopback, reached over its client port as a user would. A member
//! taken down is killed (connections refused); a hung member is stopped with SIGSTOP: its kernel
//! still accepts connections and acknowledges bytes, but nothing answers — the case TCP keepalive
//! cannot see and only the node's own deadlines and pings find.

use anyhow::{bail, Context, Result};
use conode_core::api::client::Client;
use conode_core::client_api::ClientUrl;
use conode_core::cluster::allocate_port_pair;
use conode_core::crypto::IdentityKeyPair;
use conode_core::services::cosi::bench::{degraded_run, DegradedResult, Members};
use conode_core::services::cosi::messages::SignRequest;
use conode_core::services::skipchain::messages::{Append, CreateChain};
use std::cell::Cell;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// N `conode server` processes set up in a scratch folder (removed when dropped, with the processes).
pub struct ProcessCluster {
    dir: PathBuf,
    roster_toml: String,
    children: Vec<Option<Child>>,
    hung: Vec<u32>,
    clients: Vec<Client>,
    rt: tokio::runtime::Runtime,
}

impl ProcessCluster {
    pub fn start(n: usize) -> Result<Self> {
        let exe = std::env::current_exe().context("finding the conode binary")?;
        let dir = std::env::temp_dir().join(format!("conode-bench-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
        let mut cluster = ProcessCluster {
            dir,
            roster_toml: String::new(),
            children: Vec::new(),
            hung: Vec::new(),
            clients: Vec::new(),
            rt,
        };
        // Hold every port pair until all are chosen so no two members get the same ports.
        let pairs = (0..n).map(|_| allocate_port_pair()).collect::<std::io::Result<Vec<_>>>()?;
        let ports: Vec<u16> = pairs.iter().map(|(a, _)| a.local_addr().map(|a| a.port())).collect::<Result<_, _>>()?;
        drop(pairs);
        let mut folders = Vec::new();
        for (i, port) in ports.iter().enumerate() {
            let folder = cluster.dir.join(format!("co{i}"));
            let out = Command::new(&exe)
                .args(["setup", "--non-interactive", "--port", &port.to_string(), "--description"])
                .arg(format!("bench member {i}"))
                .arg("--folder")
                .arg(&folder)
                .output()?;
            if !out.status.success() {
                bail!("setting up member {i}: {}", String::from_utf8_lossy(&out.stderr));
            }
            let private = folder.join("private.toml");
            let text = std::fs::read_to_string(&private)?;
            let text = format!("AllowOpenSigning = true\n{text}");
            conode_core::config::write_file_atomic(&private, text.as_bytes(), 0o600, true)?;
            cluster.roster_toml.push_str(&std::fs::read_to_string(folder.join("public.toml"))?);
            cluster.roster_toml.push('\n');
            folders.push(folder);
        }
        for (i, folder) in folders.iter().enumerate() {
            let log = std::fs::File::create(folder.join("server.log"))?;
            let mut cmd = Command::new(&exe);
            cmd.arg("-c").arg(folder.join("private.toml")).args(["server", "--allow-root"]);
            cmd.stdin(Stdio::null()).stdout(log.try_clone()?).stderr(log);
            die_with_parent(&mut cmd);
            cluster.children.push(Some(cmd.spawn().with_context(|| format!("starting member {i}"))?));
            let url = ClientUrl::parse(&format!("ws://127.0.0.1:{}", ports[i] + 1)).map_err(anyhow::Error::msg)?;
            cluster.clients.push(Client::new(url, Duration::from_secs(30)));
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        for (i, c) in cluster.clients.iter().enumerate() {
            while cluster.rt.block_on(c.status()).is_err() {
                if Instant::now() > deadline {
                    bail!("member {i} not ready; see {}", folders[i].join("server.log").display());
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        Ok(cluster)
    }

    fn signal(&self, i: usize, sig: i32) -> Result<(), String> {
        let child = self.children[i].as_ref().ok_or(format!("member {i} is not running"))?;
        // SAFETY: signalling a child this process started and has not reaped.
        match unsafe { libc::kill(child.id() as i32, sig) } {
            0 => Ok(()),
            _ => Err(format!("signalling member {i}: {}", std::io::Error::last_os_error())),
        }
    }
}

impl Members for ProcessCluster {
    fn size(&self) -> usize {
        self.children.len()
    }

    fn take_down(&mut self, i: usize) -> Result<(), String> {
        let mut child = self.children[i].take().ok_or(format!("member {i} is not running"))?;
        child.kill().and_then(|_| child.wait()).map(|_| ()).map_err(|e| format!("killing member {i}: {e}"))
    }

    fn hang(&mut self, i: usize) -> Result<(), String> {
        self.signal(i, libc::SIGSTOP)?;
        self.hung.push(i as u32);
        Ok(())
    }
}

impl Drop for ProcessCluster {
    fn drop(&mut self) {
        for &i in &self.hung {
            let _ = self.signal(i as usize, libc::SIGCONT);
        }
        for child in self.children.iter_mut().flatten() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Children die with the bench, even if it is killed.
pub(crate) fn die_with_parent(cmd: &mut Command) {
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

/// Collective signatures requested from member 0's client port.
pub fn cosi(n: usize, rounds: usize, down: usize, hung: usize) -> Result<DegradedResult> {
    let mut cluster = ProcessCluster::start(n)?;
    degraded_run(
        "cosi_degraded_processes",
        &mut cluster,
        rounds,
        down,
        hung,
        |_| Ok(()),
        |c: &ProcessCluster, _: &(), i| {
            let req = SignRequest {
                message: format!("bench round {i}").into_bytes(),
                roster_toml: Some(c.roster_toml.clone()),
                ..Default::default()
            };
            c.rt.block_on(c.clients[0].sign(&req)).map(|_| ()).map_err(|e| e.to_string())
        },
    )
    .map_err(anyhow::Error::msg)
}

/// Skipchain appends sent to member 0's client port.
pub fn skipchain(n: usize, appends: usize, down: usize, hung: usize) -> Result<DegradedResult> {
    let mut cluster = ProcessCluster::start(n)?;
    struct Chain {
        owner: IdentityKeyPair,
        genesis: Vec<u8>,
        next: Cell<u64>,
    }
    degraded_run(
        "skipchain_degraded_processes",
        &mut cluster,
        appends,
        down,
        hung,
        |c: &ProcessCluster| {
            let owner = IdentityKeyPair::generate();
            let req = CreateChain {
                roster_toml: c.roster_toml.clone(),
                base_height: 4,
                maximum_height: 32,
                owners: vec![owner.public().as_bytes().to_vec()],
                data: vec![],
            };
            let genesis = c.rt.block_on(c.clients[0].create_chain(&req)).map_err(|e| e.to_string())?;
            Ok(Chain { owner, genesis: genesis.hash, next: Cell::new(1) })
        },
        |c, chain: &Chain, i| {
            let index = chain.next.get();
            let append = Append::signed(&chain.owner, &chain.genesis, index, i.to_be_bytes().to_vec(), None)
                .map_err(|e| e.to_string())?;
            match c.rt.block_on(c.clients[0].append(&append)) {
                Ok(block) => {
                    chain.next.set(block.index + 1);
                    Ok(())
                }
                Err(e) => {
                    // The block may have been committed anyway: go on after the newest one.
                    if let Ok(proof) = c.rt.block_on(c.clients[0].update_chain(&chain.genesis)) {
                        chain.next.set(proof.last().map_or(index, |b| b.index + 1));
                    }
                    Err(e.to_string())
                }
            }
        },
    )
    .map_err(anyhow::Error::msg)
}
