//! `conode run-nodes`: like the Go run_nodes.sh. Sets up N conodes in `<dir>/co<i>` (reusing existing
//! configs), writes the roster to `<dir>/public.toml`, runs each as a child `conode server`,
//! restarts a child that dies, and stops all of them on Ctrl-C / SIGTERM. Meant for a local test
//! cothority: as root it warns and passes `--allow-root` to its children.

use crate::setup::{write_config, Answers};
use anyhow::{bail, Context, Result};
use conode_core::config::{NodeConfig, Roster};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

#[derive(clap::Args)]
pub struct RunNodesArgs {
    /// Number of conodes.
    #[arg(short = 'n', long = "nodes", default_value_t = 3)]
    nodes: usize,
    /// Folder of the cothority (one sub-folder per conode, the roster in public.toml).
    #[arg(short = 'd', long = "dir", default_value = "cothority")]
    dir: PathBuf,
    /// Debug level of the conodes (0..5).
    #[arg(short = 'v', long = "verbose", default_value_t = 1)]
    verbose: u8,
    /// Node port of the first conode; conode i uses port_base + 2i (and +1 for clients).
    #[arg(long, default_value_t = 7770)]
    port_base: u16,
    /// Let any client ask these conodes for collective signatures (`/Cosi/Sign`); a signing oracle
    /// for a local test cothority only. Off by default; existing configs are updated to match.
    #[arg(long)]
    allow_open_signing: bool,
}

struct Member {
    private: PathBuf,
    child: Option<Child>,
    restarts: u32,
    next_start: Instant,
}

fn spawn(exe: &Path, private: &Path, verbose: u8, allow_root: bool) -> Result<Child> {
    let mut cmd = Command::new(exe);
    cmd.arg("-d").arg(verbose.to_string()).arg("-c").arg(private).arg("server");
    if allow_root {
        cmd.arg("--allow-root");
    }
    if crate::output::json() {
        // stdout carries only JSON: the servers' own lines go to stderr.
        cmd.stdout(std::io::stderr());
    }
    cmd.spawn().with_context(|| format!("starting {} server", exe.display()))
}

fn terminate(child: &mut Child) {
    // SAFETY: sending a signal to our own child process id.
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Waits until every member's client port answers `/ok`.
fn wait_ready(roster: &Roster, deadline: Instant) -> bool {
    roster.servers.iter().all(|s| loop {
        let addr = s.address.client_host_port();
        if let Ok(mut stream) = std::net::TcpStream::connect(&addr) {
            use std::io::{Read, Write};
            let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
            let req = format!("GET /ok HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
            let mut resp = String::new();
            if stream.write_all(req.as_bytes()).is_ok()
                && stream.read_to_string(&mut resp).is_ok()
                && resp.starts_with("HTTP/1.1 200")
            {
                return true;
            }
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    })
}

pub fn run(args: RunNodesArgs) -> Result<()> {
    // A local throwaway cothority: as root, warn and let the children run (`server` alone refuses).
    let allow_root = crate::server::is_root();
    if allow_root {
        eprintln!("warning: running local conodes as root; use an ordinary user for anything but a test cothority");
    }
    if args.nodes == 0 {
        bail!("--nodes must be at least 1");
    }
    if (args.port_base as usize) + 2 * args.nodes >= u16::MAX as usize {
        bail!("--port-base {} leaves no room for {} nodes", args.port_base, args.nodes);
    }
    std::fs::create_dir_all(&args.dir).with_context(|| format!("creating {}", args.dir.display()))?;
    let mut servers = Vec::new();
    let mut members = Vec::new();
    for i in 0..args.nodes {
        let folder = args.dir.join(format!("co{}", i + 1));
        let private = folder.join("private.toml");
        let config = if private.exists() {
            let mut config = NodeConfig::load(&private)?;
            if config.allow_open_signing != args.allow_open_signing {
                config.allow_open_signing = args.allow_open_signing;
                config.save(&private, true)?;
                say(format!(
                    "conode {}: open signing {}",
                    i + 1,
                    if args.allow_open_signing { "turned on" } else { "turned off" }
                ));
            }
            config
        } else {
            let answers = Answers {
                listen: None,
                host: "127.0.0.1".into(),
                port: args.port_base + 2 * i as u16,
                description: format!("Conode_{}", i + 1),
                folder: folder.clone(),
                allow_open_signing: args.allow_open_signing,
                url: None,
            };
            write_config(&answers, false)?.1
        };
        servers.push(config.server_identity());
        members.push(Member { private, child: None, restarts: 0, next_start: Instant::now() });
    }
    let roster = Roster::new(servers);
    let roster_path = args.dir.join("public.toml");
    roster.save(&roster_path, true)?;
    let exe = std::env::current_exe().context("locating the conode binary")?;

    let stop = install_signal_flag()?;
    for m in &mut members {
        m.child = Some(spawn(&exe, &m.private, args.verbose, allow_root)?);
    }
    if wait_ready(&roster, Instant::now() + Duration::from_secs(30)) {
        if crate::output::json() {
            // Machine-readable readiness on stdout; the human lines go to stderr then.
            outln!("{}", serde_json::json!({ "running": args.nodes, "roster": roster_path.display().to_string() }));
        }
        say(format!("cothority of {} conodes running; roster in {}", args.nodes, roster_path.display()));
        if args.allow_open_signing {
            say("open signing is on: any client may ask for collective signatures".to_string());
        }
        say(format!("check it with: {} check {}", exe.display(), roster_path.display()));
        say("press Ctrl-C to stop".to_string());
    } else {
        eprintln!("warning: not every conode answered within 30 s; see the logs above");
    }
    while !stop.load(std::sync::atomic::Ordering::SeqCst) {
        for (i, m) in members.iter_mut().enumerate() {
            let exited = match m.child.as_mut().map(|c| c.try_wait()) {
                Some(Ok(Some(status))) => Some(status.to_string()),
                Some(Err(e)) => Some(e.to_string()),
                _ => None,
            };
            if let Some(status) = exited {
                m.restarts += 1;
                let delay = Duration::from_millis(500 * u64::from(m.restarts.min(20)));
                eprintln!("conode {} exited ({status}); restarting in {:.1} s", i + 1, delay.as_secs_f64());
                m.child = None;
                m.next_start = Instant::now() + delay;
            }
            if m.child.is_none() && Instant::now() >= m.next_start {
                match spawn(&exe, &m.private, args.verbose, allow_root) {
                    Ok(c) => m.child = Some(c),
                    Err(e) => eprintln!("conode {}: {e:#}", i + 1),
                }
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    say(format!("stopping {} conodes", members.len()));
    for m in &mut members {
        if let Some(c) = m.child.as_mut() {
            terminate(c);
        }
    }
    say("all conodes stopped".to_string());
    Ok(())
}

/// A flag set by SIGINT or SIGTERM.
fn install_signal_flag() -> Result<std::sync::Arc<std::sync::atomic::AtomicBool>> {
    let flag = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let f = flag.clone();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    std::thread::spawn(move || {
        rt.block_on(async {
            use tokio::signal::unix::{signal, SignalKind};
            let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else {
                return;
            };
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
            f.store(true, std::sync::atomic::Ordering::SeqCst);
        })
    });
    Ok(flag)
}

/// A line for the operator: stdout, or stderr with `--json` (stdout is then JSON only).
fn say(line: String) {
    if crate::output::json() {
        eprintln!("{line}");
    } else {
        outln!("{line}");
    }
}
