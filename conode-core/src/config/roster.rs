//! Public identities and rosters: `public.toml` holds one `[[servers]]` entry; a roster file is the
//! concatenation of public.toml files. Loading checks keys, addresses, every PoP and duplicates.

use super::fields::{optional, parse_toml, read_toml, required};
use super::{write_file_atomic, ConfigError, NodeAddress};
use crate::crypto::{bls, sha256, BlsPublicKey, BlsSignature, IdentityPublicKey};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};
use std::path::Path;

/// A service's public BLS key and its proof of possession.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServicePublic {
    pub suite: String,
    pub public: BlsPublicKey,
    pub pop: BlsSignature,
}

/// A roster member: the public half of a node's config.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerIdentity {
    pub address: NodeAddress,
    pub public: IdentityPublicKey,
    pub description: String,
    pub url: Option<String>,
    pub services: BTreeMap<String, ServicePublic>,
}

impl ServerIdentity {
    /// The BLS key for `service`, if the member publishes one.
    pub fn service_key(&self, service: &str) -> Option<&BlsPublicKey> {
        self.services.get(service).map(|s| &s.public)
    }

    /// The member's client port: its published `URL` when it has one, else the port after its
    /// node port (plain WebSocket).
    pub fn client_url(&self) -> Result<crate::client_api::ClientUrl, crate::client_api::UrlError> {
        match &self.url {
            Some(u) => crate::client_api::ClientUrl::parse(u),
            None => crate::client_api::ClientUrl::for_node(&self.address.host, self.address.port),
        }
    }
}

/// A roster member that publishes no key for a service the caller needs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("servers[{index}] ({address}) has no Services.{service} key")]
pub struct MissingServiceKey {
    pub index: usize,
    pub address: String,
    pub service: String,
}

/// An ordered list of members. Index i is bit i of collective-signature masks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Roster {
    pub servers: Vec<ServerIdentity>,
}

#[derive(Serialize, Deserialize, Default)]
struct RawRoster {
    #[serde(default)]
    servers: Vec<RawServer>,
}

#[derive(Serialize, Deserialize, Default)]
struct RawServer {
    #[serde(rename = "Address")]
    address: Option<String>,
    #[serde(rename = "Suite")]
    suite: Option<String>,
    #[serde(rename = "Public")]
    public: Option<String>,
    #[serde(rename = "Description")]
    description: Option<String>,
    #[serde(rename = "URL", skip_serializing_if = "Option::is_none")]
    url: Option<String>,
    #[serde(rename = "Services", default)]
    services: BTreeMap<String, RawServicePublic>,
}

#[derive(Serialize, Deserialize, Default)]
struct RawServicePublic {
    #[serde(rename = "Public")]
    public: Option<String>,
    #[serde(rename = "Suite")]
    suite: Option<String>,
    #[serde(rename = "Pop")]
    pop: Option<String>,
}

impl Roster {
    pub fn new(servers: Vec<ServerIdentity>) -> Self {
        Self { servers }
    }

    pub fn len(&self) -> usize {
        self.servers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.servers.is_empty()
    }

    /// Every member's key for `service`, in roster order (index i is mask bit i); fails naming the
    /// first member that publishes none.
    pub fn service_keys(&self, service: &str) -> Result<Vec<BlsPublicKey>, MissingServiceKey> {
        self.servers
            .iter()
            .enumerate()
            .map(|(index, s)| {
                s.service_key(service).copied().ok_or_else(|| MissingServiceKey {
                    index,
                    address: s.address.to_string(),
                    service: service.to_string(),
                })
            })
            .collect()
    }

    /// Index of the member with this identity key.
    pub fn index_of(&self, key: &IdentityPublicKey) -> Option<usize> {
        self.servers.iter().position(|s| &s.public == key)
    }

    /// A stable id of the roster: sha256 over every member's identity and cosi service key.
    pub fn id(&self) -> [u8; 32] {
        let mut parts: Vec<Vec<u8>> = Vec::new();
        for s in &self.servers {
            parts.push(s.public.as_bytes().to_vec());
            for (name, svc) in &s.services {
                parts.push(name.as_bytes().to_vec());
                parts.push(svc.public.to_bytes().to_vec());
            }
        }
        let refs: Vec<&[u8]> = parts.iter().map(|p| p.as_slice()).collect();
        sha256(&refs)
    }

    /// Loads a roster (or a single public.toml) and checks it.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let raw: RawRoster = read_toml(path)?;
        Self::from_raw(path, raw)
    }

    /// Parses roster TOML; `origin` names it in errors.
    pub fn from_toml_str(origin: &Path, text: &str) -> Result<Self, ConfigError> {
        let raw: RawRoster = parse_toml(origin, text)?;
        Self::from_raw(origin, raw)
    }

    fn from_raw(path: &Path, raw: RawRoster) -> Result<Self, ConfigError> {
        if raw.servers.is_empty() {
            return Err(ConfigError::field(path, "servers", "no [[servers]] entry"));
        }
        let mut servers = Vec::with_capacity(raw.servers.len());
        // Proofs of possession are checked together at the end, as one batch (same verdicts).
        let mut pops: Vec<(String, BlsPublicKey, BlsSignature)> = Vec::new();
        let mut keys = HashSet::new();
        let mut addresses = HashSet::new();
        for (i, s) in raw.servers.iter().enumerate() {
            let f = |field: &str| format!("servers[{i}].{field}");
            let suite = required(path, &f("Suite"), &s.suite)?;
            if suite != "Ed25519" {
                return Err(ConfigError::field(
                    path,
                    f("Suite"),
                    format!("`{suite}` is not supported (use \"Ed25519\")"),
                ));
            }
            let public = IdentityPublicKey::from_hex(required(path, &f("Public"), &s.public)?)
                .map_err(|e| ConfigError::field(path, f("Public"), e))?;
            if !keys.insert(public) {
                return Err(ConfigError::field(
                    path,
                    f("Public"),
                    format!("duplicate key {public}: it appears twice in the roster"),
                ));
            }
            let address = NodeAddress::parse(required(path, &f("Address"), &s.address)?)
                .map_err(|e| ConfigError::field(path, f("Address"), e))?;
            if !addresses.insert(address.clone()) {
                return Err(ConfigError::field(path, f("Address"), format!("duplicate address {address}")));
            }
            let mut services = BTreeMap::new();
            for (name, svc) in &s.services {
                let g = |field: &str| format!("servers[{i}].Services.{name}.{field}");
                let suite = required(path, &g("Suite"), &svc.suite)?;
                if suite != bls::SUITE {
                    // Services of other suites (e.g. Go's bn256) are kept out: we cannot check them.
                    tracing::debug!(file = %path.display(), service = %name, suite, "skipping service key of unknown suite");
                    continue;
                }
                let key = BlsPublicKey::from_hex(required(path, &g("Public"), &svc.public)?)
                    .map_err(|e| ConfigError::field(path, g("Public"), e))?;
                let pop = BlsSignature::from_hex(required(path, &g("Pop"), &svc.pop)?)
                    .map_err(|e| ConfigError::field(path, g("Pop"), e))?;
                pops.push((g("Pop"), key, pop));
                services.insert(name.clone(), ServicePublic { suite: suite.to_string(), public: key, pop });
            }
            servers.push(ServerIdentity {
                address,
                public,
                description: s.description.clone().unwrap_or_default(),
                url: optional(&s.url),
                services,
            });
        }
        let pairs: Vec<(&BlsPublicKey, &BlsSignature)> = pops.iter().map(|(_, k, p)| (k, p)).collect();
        for ((field, _, _), verdict) in pops.iter().zip(crate::crypto::verify_pops(&pairs)) {
            verdict.map_err(|e| ConfigError::field(path, field.clone(), e))?;
        }
        Ok(Self { servers })
    }

    /// The roster as TOML (`[[servers]]` entries).
    pub fn to_toml(&self) -> String {
        let raw = RawRoster {
            servers: self
                .servers
                .iter()
                .map(|s| RawServer {
                    address: Some(s.address.to_string()),
                    suite: Some("Ed25519".into()),
                    public: Some(s.public.to_hex()),
                    description: Some(s.description.clone()),
                    url: s.url.clone(),
                    services: s
                        .services
                        .iter()
                        .map(|(n, svc)| {
                            (
                                n.clone(),
                                RawServicePublic {
                                    public: Some(svc.public.to_hex()),
                                    suite: Some(svc.suite.clone()),
                                    pop: Some(svc.pop.to_hex()),
                                },
                            )
                        })
                        .collect(),
                })
                .collect(),
        };
        toml::to_string(&raw).unwrap_or_default()
    }

    /// Writes the roster (mode 0644), atomically.
    pub fn save(&self, path: &Path, overwrite: bool) -> Result<(), ConfigError> {
        write_file_atomic(path, self.to_toml().as_bytes(), 0o644, overwrite)
    }
}
