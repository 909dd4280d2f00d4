//! Which conode a client command talks to: a member of `--roster R` chosen with `--node I`, or an
//! explicit `--url ws://host:port`; plus the small runtime those one-shot commands run on.

use anyhow::{bail, Context, Result};
use conode_core::api::client::{self, ClientError, Trust};
use conode_core::config::Roster;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

/// The trust anchors of this run (`--cacert`, besides the platform's store and SSL_CERT_FILE).
static TRUST: OnceLock<Trust> = OnceLock::new();

/// Reads `--cacert FILE` once, before any client command runs; a bad file is an error naming it.
pub fn set_trust(cacert: Option<&Path>) -> Result<()> {
    let trust = Trust::from_optional_file(cacert)?;
    let _ = TRUST.set(trust);
    Ok(())
}

/// The trust anchors for `wss://` and `https://` URLs.
pub fn trust() -> Trust {
    TRUST.get().cloned().unwrap_or_default()
}

/// One request to a client port (plain only for `ws://`), trusting [`trust`].
pub async fn call(
    base: &str,
    service: &str,
    method: &str,
    body: Vec<u8>,
    timeout: Duration,
) -> Result<Vec<u8>, ClientError> {
    client::call_with(&trust(), base, service, method, body, timeout).await
}

/// An HTTP client for the drand routes, trusting [`trust`] for `https://`.
pub fn http_client(timeout: Duration) -> Result<reqwest::Client> {
    let tls = trust().client_config()?;
    Ok(reqwest::Client::builder().timeout(timeout).use_preconfigured_tls((*tls).clone()).build()?)
}

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
