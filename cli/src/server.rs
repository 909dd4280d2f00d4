//! `conode server`: runs the node from private.toml until SIGINT/SIGTERM, then stops gracefully.
//! Refuses to run as root unless `--allow-root`.

use anyhow::{bail, Context, Result};
use conode_core::config::paths;
use conode_core::NodeBuilder;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct ServerArgs {
    /// Run even when started as root (not recommended).
    #[arg(long)]
    allow_root: bool,
}

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

pub fn run(config: Option<PathBuf>, args: ServerArgs) -> Result<()> {
    run_with(config, args.allow_root, crate::membership::join_from_config)
}

/// Runs the node until a signal; `started` runs once it is up (e.g. to start a join).
pub fn run_with(
    config: Option<PathBuf>,
    allow_root: bool,
    started: impl FnOnce(&std::path::Path, &conode_core::Node) -> Result<()>,
) -> Result<()> {
    if is_root() && !allow_root {
        bail!("refusing to run as root: a conode needs no privileges. Run it as an ordinary user, or pass --allow-root if you really must");
    }
    let explicit = config.is_some();
    let path = config.unwrap_or_else(paths::default_private_toml);
    if !path.exists() {
        return Err(crate::output::missing_config(&path, explicit));
    }
    let mut node = NodeBuilder::from_file(&path)?.build()?;
    // Signals are caught from before "running" is printed: a supervisor may stop the node at once.
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let signals = {
        let _in_rt = rt.enter();
        Signals::new()?
    };
    node.start().with_context(|| format!("starting the node of {}", path.display()))?;
    let si = node.server_identity();
    outln!(
        "conode {} running: node port {} ({}), client port {}",
        &si.public.node_id()[..16],
        node.node_addr().map(|a| a.to_string()).unwrap_or_default(),
        si.address,
        node.client_url().unwrap_or_default()
    );
    started(&path, &node)?;
    let signal = rt.block_on(signals.wait());
    outln!("received {signal}, stopping");
    node.stop()?;
    outln!("stopped");
    Ok(())
}

/// SIGTERM and SIGINT, caught from creation on (needs a runtime context).
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> Result<Self> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Self { term: signal(SignalKind::terminate())?, int: signal(SignalKind::interrupt())? })
    }

    async fn wait(mut self) -> &'static str {
        tokio::select! {
            _ = self.term.recv() => "SIGTERM",
            _ = self.int.recv() => "SIGINT",
        }
    }
}
