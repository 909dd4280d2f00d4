//! The light-client surface exported through uniffi to Kotlin and Swift: roster parsing and the
//! pure verifiers, plus a small blocking client that fetches from a conode's client port and
//! verifies what it gets. Nothing here runs a node.

use conode_core::config::Roster;
use std::path::Path;

/// Why a light-client call failed.
#[derive(Debug, thiserror::Error, uniffi::Error)]
pub enum LightError {
    /// The input could not be decoded (names the field).
    #[error("invalid input: {reason}")]
    InvalidInput { reason: String },
    /// The input decoded but does not verify.
    #[error("verification failed: {reason}")]
    VerificationFailed { reason: String },
    /// The conode could not be reached or answered nonsense.
    #[error("network: {reason}")]
    Network { reason: String },
}

impl LightError {
    pub(crate) fn invalid(m: impl ToString) -> Self {
        LightError::InvalidInput { reason: m.to_string() }
    }
    pub(crate) fn failed(m: impl ToString) -> Self {
        LightError::VerificationFailed { reason: m.to_string() }
    }
    pub(crate) fn network(m: impl ToString) -> Self {
        LightError::Network { reason: m.to_string() }
    }
}

/// A roster member as apps see it.
#[derive(Debug, Clone, uniffi::Record)]
pub struct RosterMember {
    /// `tls://host:port` of the node port.
    pub address: String,
    /// Hex Ed25519 identity key.
    pub public_key: String,
    pub description: String,
    /// Public URL of the client port, if the member advertises one.
    pub url: Option<String>,
    /// Hex BLS12-381 (G1) key used for collective signatures, if published.
    pub cosi_public_key: Option<String>,
}

pub(crate) fn parse(roster_toml: &str) -> Result<Roster, LightError> {
    Roster::from_toml_str(Path::new("roster"), roster_toml).map_err(LightError::invalid)
}

/// Parses a roster (`[[servers]]` TOML, the concatenation of public.toml files), checking every key
/// and proof of possession.
#[uniffi::export]
pub fn parse_roster(roster_toml: String) -> Result<Vec<RosterMember>, LightError> {
    Ok(parse(&roster_toml)?
        .servers
        .into_iter()
        .map(|s| RosterMember {
            address: s.address.to_string(),
            public_key: s.public.to_hex(),
            description: s.description.clone(),
            url: s.url.clone(),
            cosi_public_key: s.service_key(conode_core::config::COSI_SERVICE).map(|k| k.to_hex()),
        })
        .collect())
}

/// Version of the conode library.
#[uniffi::export]
pub fn library_version() -> String {
    conode_core::VERSION.to_string()
}
