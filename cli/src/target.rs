//! Which conode a client command talks to: a member of `--roster R` chosen with `--node I`, or an
//! explicit `--url ws://host:port`; plus the small runtime those one-shot commands run on.

use anyhow::{bail, Context, Result};
use conode_core::config::Roster;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// `--node I | --url U`: the member whose client port a command uses.
#[derive(clap::Args, Clone, Debug)]
pub struct NodeChoice {
    /// Roster index of the member whose client port is used.
    #[arg(long, default_value_t = 0)]
    pub node: usize,
    /// Client URL (ws://host:port) to use instead of a roster member.
    #[arg(long, conflicts_with = "node")]
    pub url: Option<String>,
}

impl NodeChoice {
    /// The client base URL (`ws://host:port`) to call; `roster` is needed unless `--url` is given.
    pub fn base_url(&self, roster: Option<(&Path, &Roster)>) -> Result<String> {
        if let Some(u) = &self.url {
            let url = conode_core::client_api::ClientUrl::parse(u).with_context(|| format!("--url `{u}`"))?;
            return Ok(url.ws_base());
        }
        let Some((path, roster)) = roster else {
            bail!("give --roster (with --node) or --url to name the conode to ask");
        };
        let si = roster.servers.get(self.node).with_context(|| {
            format!("--node {}: the roster {} has only {} members", self.node, path.display(), roster.len())
        })?;
        Ok(crate::check::client_base(si))
    }
}

/// `--timeout SECS` as a duration (at least 0.1 s, at most a day).
pub fn seconds(secs: f64) -> Duration {
    Duration::from_secs_f64(if secs.is_finite() { secs.clamp(0.1, 86_400.0) } else { 60.0 })
}

/// Loads a roster file (every key and proof of possession is checked; errors name the file).
pub fn load_roster(path: &Path) -> Result<Roster> {
    Ok(Roster::load(path)?)
}

/// Loads `--roster` when given.
pub fn load_optional_roster(path: &Option<PathBuf>) -> Result<Option<(PathBuf, Roster)>> {
    path.as_ref().map(|p| Ok((p.clone(), load_roster(p)?))).transpose()
}

/// A small runtime for one-shot client commands.
pub fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread().enable_all().build()?)
}
