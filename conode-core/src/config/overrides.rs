//! Optional local `overrides.toml`: per roster member (by public key), another address to dial (a
//! LAN address instead of the public one) and/or how to connect (`direct`, or through a SOCKS5
//! proxy such as Tor), after Tahoe-LAFS' per-server connection overrides (ticket 2759). With
//! `Anonymous = true` in private.toml the node never dials a member directly unless that member's
//! entry says `Via = "direct"`.
//!
//! ```toml
//! [[override]]
//! Public = "<hex ed25519 key>"
//! Address = "tls://10.0.0.5:7770"     # optional
//! Via = "socks5://127.0.0.1:9050"     # optional: "direct" or "socks5://host:port"
//! ```

use super::fields::{read_toml, required};
use super::{ConfigError, NodeAddress};
use crate::crypto::IdentityPublicKey;
use serde::Deserialize;
use std::collections::HashMap;
use std::path::Path;

/// How to reach one member.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Route {
    /// TCP to the member's address.
    Direct,
    /// Through a SOCKS5 proxy at `host:port`; the proxy resolves the member's name.
    Socks5(String),
}

impl Route {
    /// `direct` or `socks5://host:port`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let t = text.trim();
        if t.eq_ignore_ascii_case("direct") {
            return Ok(Route::Direct);
        }
        let Some(proxy) = t.strip_prefix("socks5://").or_else(|| t.strip_prefix("socks5h://")) else {
            return Err(format!("`{t}`: expected `direct` or `socks5://host:port`"));
        };
        let proxy = proxy.trim_end_matches('/');
        let port_ok =
            proxy.rsplit_once(':').is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p > 0));
        if !port_ok || proxy.contains(['/', '@']) {
            return Err(format!("`{t}`: expected socks5://host:port"));
        }
        Ok(Route::Socks5(proxy.to_string()))
    }
}

#[derive(Clone, Debug, Default)]
struct Entry {
    address: Option<NodeAddress>,
    via: Option<Route>,
}

#[derive(Clone, Debug, Default)]
pub struct AddressOverrides {
    map: HashMap<IdentityPublicKey, Entry>,
    /// `Anonymous = true`: no direct dial without an explicit `Via = "direct"`.
    anonymous: bool,
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
    #[serde(rename = "Via")]
    via: Option<String>,
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
            let address = e
                .address
                .as_deref()
                .map(|a| {
                    NodeAddress::parse(a).map_err(|err| ConfigError::field(path, format!("override[{i}].Address"), err))
                })
                .transpose()?;
            let via = e
                .via
                .as_deref()
                .map(|v| Route::parse(v).map_err(|err| ConfigError::field(path, format!("override[{i}].Via"), err)))
                .transpose()?;
            if address.is_none() && via.is_none() {
                return Err(ConfigError::field(path, format!("override[{i}]"), "give Address, Via or both"));
            }
            map.insert(key, Entry { address, via });
        }
        Ok(Self { map, anonymous: false })
    }

    pub fn insert(&mut self, key: IdentityPublicKey, addr: NodeAddress) {
        self.map.entry(key).or_default().address = Some(addr);
    }

    /// Sets how `key` is reached.
    pub fn set_route(&mut self, key: IdentityPublicKey, route: Route) {
        self.map.entry(key).or_default().via = Some(route);
    }

    /// `Anonymous = true` of private.toml.
    pub fn set_anonymous(&mut self, on: bool) {
        self.anonymous = on;
    }

    pub fn is_anonymous(&self) -> bool {
        self.anonymous
    }

    /// The address to dial for `key`: the override if any, else `default`.
    pub fn resolve<'a>(&'a self, key: &IdentityPublicKey, default: &'a NodeAddress) -> &'a NodeAddress {
        self.map.get(key).and_then(|e| e.address.as_ref()).unwrap_or(default)
    }

    /// How to reach `key`: its `Via`, else direct — unless the node is anonymous, which never
    /// dials directly without an explicit `Via = "direct"` (then the reason is the error).
    pub fn route(&self, key: &IdentityPublicKey) -> Result<Route, String> {
        match self.map.get(key).and_then(|e| e.via.clone()) {
            Some(r) => Ok(r),
            None if self.anonymous => {
                Err("Anonymous = true and overrides.toml gives this member no Via (a socks5:// proxy, or direct)"
                    .into())
            }
            None => Ok(Route::Direct),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::IdentityKeyPair;

    #[test]
    fn routes_and_anonymous() {
        assert_eq!(Route::parse("direct"), Ok(Route::Direct));
        assert_eq!(Route::parse("socks5://127.0.0.1:9050"), Ok(Route::Socks5("127.0.0.1:9050".into())));
        assert!(Route::parse("socks5://nohost").is_err());
        assert!(Route::parse("http://x:1").is_err());
        let dir = tempfile::tempdir().unwrap();
        let (a, b, c) = (
            IdentityKeyPair::generate().public(),
            IdentityKeyPair::generate().public(),
            IdentityKeyPair::generate().public(),
        );
        let path = dir.path().join("overrides.toml");
        std::fs::write(
            &path,
            format!(
                "[[override]]\nPublic = \"{}\"\nVia = \"socks5://127.0.0.1:9050\"\n\n[[override]]\nPublic = \"{}\"\nAddress = \"tls://10.0.0.5:7770\"\nVia = \"direct\"\n",
                a.to_hex(),
                b.to_hex()
            ),
        )
        .unwrap();
        let mut o = AddressOverrides::load_optional(&path).unwrap();
        assert_eq!(o.route(&a), Ok(Route::Socks5("127.0.0.1:9050".into())));
        assert_eq!(o.route(&c), Ok(Route::Direct));
        o.set_anonymous(true);
        assert!(o.route(&c).unwrap_err().contains("Anonymous"));
        assert_eq!(o.route(&b), Ok(Route::Direct));
        let d = NodeAddress::parse("tls://example.org:7770").unwrap();
        assert_eq!(o.resolve(&b, &d).to_string(), "tls://10.0.0.5:7770");
        assert_eq!(o.resolve(&a, &d), &d);
        std::fs::write(&path, format!("[[override]]\nPublic = \"{}\"\nVia = \"carrier pigeon\"\n", a.to_hex()))
            .unwrap();
        let e = AddressOverrides::load_optional(&path).unwrap_err().to_string();
        assert!(e.contains("Via") && e.contains("overrides.toml"), "{e}");
    }
}
