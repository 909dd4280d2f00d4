//! Optional local `overrides.toml`: maps a roster member's public key to another address to dial
//! (a LAN address instead of the public one), after Tahoe-LAFS' per-server connection overrides.
//!
//! ```toml
//! [[override]]
//! Public = "<hex ed25519 key>"
//! Address = "tls://10.0.0.5:7770"
//! ```

use super::fields::{read_toml, required};
use super::{ConfigError, NodeAddress};
use crate::crypto::IdentityPublicKey;
use serde::Deserialize;
use std::collections::HashMap;
use std::path::Path;

#[derive(Clone, Debug, Default)]
pub struct AddressOverrides {
    map: HashMap<IdentityPublicKey, NodeAddress>,
}

#[derive(Deserialize, Default)]
struct RawOverrides {
    #[serde(rename = "override", default)]
    entries: Vec<RawOverride>,
}

#[derive(Deserialize)]
struct RawOverride {
    #[serde(rename = "Public")]
    public: Option<String>,
    #[serde(rename = "Address")]
    address: Option<String>,
}

impl AddressOverrides {
    /// Loads `path`; a missing file means no overrides.
    pub fn load_optional(path: &Path) -> Result<Self, ConfigError> {
        if !path.exists() {
            return Ok(Self::default());
        }
        let raw: RawOverrides = read_toml(path)?;
        let mut map = HashMap::new();
        for (i, e) in raw.entries.iter().enumerate() {
            let key = IdentityPublicKey::from_hex(required(path, &format!("override[{i}].Public"), &e.public)?)
                .map_err(|err| ConfigError::field(path, format!("override[{i}].Public"), err))?;
            let addr = NodeAddress::parse(required(path, &format!("override[{i}].Address"), &e.address)?)
                .map_err(|err| ConfigError::field(path, format!("override[{i}].Address"), err))?;
            map.insert(key, addr);
        }
        Ok(Self { map })
    }

    pub fn insert(&mut self, key: IdentityPublicKey, addr: NodeAddress) {
        self.map.insert(key, addr);
    }

    /// The address to dial for `key`: the override if any, else `default`.
    pub fn resolve<'a>(&'a self, key: &IdentityPublicKey, default: &'a NodeAddress) -> &'a NodeAddress {
        self.map.get(key).unwrap_or(default)
    }
}
