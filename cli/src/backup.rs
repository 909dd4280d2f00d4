//! `conode backup` and `conode restore`: a hot, consistent backup of a running node's database
//! through its local admin channel (the Unix socket beside the database), and its restoration into
//! a data dir, which refuses corrupt or foreign files and never replaces a database without --force.

use anyhow::{bail, Context, Result};
use conode_core::config::{paths, NodeConfig};
use std::path::{Path, PathBuf};

#[derive(clap::Args)]
pub struct BackupArgs {
    /// File to write (written as FILE.partial, renamed when complete; mode 0600).
    #[arg(long)]
    out: PathBuf,
    /// Admin socket of the node (default: beside the database named by private.toml).
    #[arg(long)]
    socket: Option<PathBuf>,
    /// Replace FILE if it exists.
    #[arg(long)]
    force: bool,
    /// No progress on stderr.
    #[arg(long, short)]
    quiet: bool,
}

#[derive(clap::Args)]
pub struct RestoreArgs {
    /// Backup file written by `conode backup`.
    #[arg(long)]
    from: PathBuf,
    /// Data dir to restore into (default: DataDir of private.toml, else the OS data dir).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Replace an existing database (the old one is kept beside it as <id>.db.before-restore-<time>).
    #[arg(long)]
    force: bool,
}

/// The node config, when there is one to read (`-c`, else the default private.toml if present).
fn node_config(config: Option<&Path>) -> Result<Option<(PathBuf, NodeConfig)>> {
    let path = match config {
        Some(p) => p.to_path_buf(),
        None => {
            let p = paths::default_private_toml();
            if !p.exists() {
                return Ok(None);
            }
            p
        }
    };
    let cfg = NodeConfig::load(&path).with_context(|| format!("reading {}", path.display()))?;
    Ok(Some((path, cfg)))
}

/// The admin socket of the node of private.toml (`-c`, else the default one).
pub fn admin_socket(config: Option<&Path>) -> Result<PathBuf> {
    let Some((_, cfg)) = node_config(config)? else {
        bail!("no private.toml found: give -c PATH or --socket PATH");
    };
    let dir = cfg.data_dir.clone().unwrap_or_else(paths::default_data_dir);
    Ok(conode_core::admin::socket_path(&dir, &cfg.node_id()))
}

pub fn backup(config: Option<PathBuf>, a: BackupArgs) -> Result<()> {
    let socket = match a.socket {
        Some(s) => s,
        None => admin_socket(config.as_deref())?,
    };
    if a.out.exists() && !a.force {
        bail!("{} exists; give --force to replace it", a.out.display());
    }
    let partial = a.out.with_file_name(format!(
        "{}.partial",
        a.out.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "backup".into())
    ));
    let file = create_private(&partial)?;
    let started = std::time::Instant::now();
    let quiet = a.quiet;
    let result = conode_core::admin::request_backup(&socket, std::io::BufWriter::new(&file), |done, total| {
        if !quiet {
            let pct = (done.min(total) * 100).checked_div(total).unwrap_or(100);
            eprint!("\rbackup: {done}/{total} entries ({pct}%)   ");
        }
    });
    if !quiet {
        eprintln!();
    }
    let manifest = match result {
        Ok(m) => m,
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            return Err(e.into());
        }
    };
    file.sync_all().with_context(|| format!("syncing {}", partial.display()))?;
    std::fs::rename(&partial, &a.out)
        .with_context(|| format!("renaming {} to {}", partial.display(), a.out.display()))?;
    let size = std::fs::metadata(&a.out).map(|m| m.len()).unwrap_or(0);
    outln!(
        "backup of node {} written to {} ({} entries in {} trees, {size} bytes, {:.2} s, sha256 {})",
        &manifest.node_id[..16.min(manifest.node_id.len())],
        a.out.display(),
        manifest.entries,
        manifest.trees.len(),
        started.elapsed().as_secs_f64(),
        &manifest.sha256[..16.min(manifest.sha256.len())],
    );
    outln!(
        "the backup holds the database, including this node's beacon share: keep it as private as \
         private.toml (which it does not contain; back that up too)"
    );
    Ok(())
}

fn create_private(path: &Path) -> Result<std::fs::File> {
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
    o.open(path).with_context(|| format!("creating {}", path.display()))
}

pub fn restore(config: Option<PathBuf>, a: RestoreArgs) -> Result<()> {
    let node = node_config(config.as_deref())?;
    let dir = match (&a.data_dir, &node) {
        (Some(d), _) => d.clone(),
        (None, Some((_, cfg))) => cfg.data_dir.clone().unwrap_or_else(paths::default_data_dir),
        (None, None) => bail!("give --data-dir DIR (no private.toml found to take DataDir from)"),
    };
    let expected = node.as_ref().map(|(_, cfg)| cfg.node_id());
    let (manifest, db) = conode_core::backup::restore(&a.from, &dir, expected.as_deref(), a.force)
        .with_context(|| format!("restoring {}", a.from.display()))?;
    outln!(
        "restored {} entries of node {} (snapshot at Unix time {}, conode {}) into {}",
        manifest.entries,
        &manifest.node_id[..16.min(manifest.node_id.len())],
        manifest.created_unix,
        manifest.version,
        db.display()
    );
    outln!(
        "on start the node catches up from a quorum of its peers and signs nothing before (see the Recovery section of /status)"
    );
    Ok(())
}
