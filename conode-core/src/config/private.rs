//! `private.toml`: the node's identity and service secrets, its address and options. Written with
//! mode 0600 and refused when group/world readable. Secrets never appear in Debug output or logs.

use super::fields::{optional, parse_toml, read_toml, required};
use super::limits::{Limits, RawLimits};
use super::{write_file_atomic, ConfigError, NodeAddress, ServerIdentity, ServicePublic};
use crate::crypto::{bls, BlsKeyPair, IdentityKeyPair};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Name of the BLS service key shared by collective signing and skipchains.
pub const COSI_SERVICE: &str = "Cosi";

#[derive(Serialize, Deserialize, Default)]
struct RawPrivate {
    #[serde(rename = "Suite")]
    suite: Option<String>,
    #[serde(rename = "Public")]
    public: Option<String>,
    #[serde(rename = "Private")]
    private: Option<String>,
    #[serde(rename = "Address")]
    address: Option<String>,
    #[serde(rename = "ListenAddress", skip_serializing_if = "Option::is_none")]
    listen_address: Option<String>,
    #[serde(rename = "Description")]
    description: Option<String>,
    #[serde(rename = "URL", skip_serializing_if = "Option::is_none")]
    url: Option<String>,
    #[serde(rename = "WebSocketTLSCertificate", skip_serializing_if = "Option::is_none")]
    ws_tls_cert: Option<String>,
    #[serde(rename = "WebSocketTLSCertificateKey", skip_serializing_if = "Option::is_none")]
    ws_tls_key: Option<String>,
    #[serde(rename = "DataDir", skip_serializing_if = "Option::is_none")]
    data_dir: Option<String>,
    #[serde(rename = "AllowOpenSigning", skip_serializing_if = "Option::is_none")]
    allow_open_signing: Option<bool>,
    #[serde(rename = "Anonymous", skip_serializing_if = "Option::is_none")]
    anonymous: Option<bool>,
    #[serde(rename = "SkipchainLinks", skip_serializing_if = "Option::is_none")]
    skipchain_links: Option<String>,
    #[serde(rename = "Services", default)]
    services: BTreeMap<String, RawServiceSecret>,
    #[serde(rename = "Limits", default, skip_serializing_if = "RawLimits::is_empty")]
    limits: RawLimits,
}

#[derive(Serialize, Deserialize, Default)]
struct RawServiceSecret {
    #[serde(rename = "Suite")]
    suite: Option<String>,
    #[serde(rename = "Public")]
    public: Option<String>,
    #[serde(rename = "Private")]
    private: Option<String>,
    #[serde(rename = "Pop")]
    pop: Option<String>,
}

/// The newest forward-link format this node signs (`SkipchainLinks` in private.toml). As a
/// proposer it falls back to older formats when members need them; with V1 or V2 it also refuses,
/// as a member, the batched link rounds of other proposers (it stores and serves no v3 link), and
/// below V4 it signs no fast view-1 prepare (that could become a v4 link it would store).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub enum SkipchainLinks {
    /// One cosi round per level (every light client checks these).
    V1,
    /// One round for all levels of a block (clients from before batched rounds check these).
    V2,
    /// Also a round shared by the appends of several chains waiting at this proposer.
    V3,
    /// Also the fast path: a view-1 prepare every member signed is the block's forward link (one
    /// round per append instead of two; clients from before it check v3 and older links only).
    /// The default.
    #[default]
    V4,
}

/// A validated node configuration (the content of private.toml).
#[derive(Clone, Debug)]
pub struct NodeConfig {
    pub identity: IdentityKeyPair,
    /// Address other nodes dial (`tls://host:port`); the client port is port + 1.
    pub address: NodeAddress,
    /// Where to bind instead of `address` (e.g. `0.0.0.0:7770` behind NAT).
    pub listen_address: Option<String>,
    pub description: String,
    /// Public URL of the client port, advertised in public.toml when set.
    pub url: Option<String>,
    pub ws_tls_certificate: Option<PathBuf>,
    pub ws_tls_certificate_key: Option<PathBuf>,
    /// Folder of the `<id>.db` database (default: the OS data dir).
    pub data_dir: Option<PathBuf>,
    /// Whether `/Cosi/Sign` may be used by any client (a signing oracle must be opt-in).
    pub allow_open_signing: bool,
    /// Never dial a member directly unless its `overrides.toml` entry says `Via = "direct"` (use a
    /// SOCKS5 proxy such as Tor for the others).
    pub anonymous: bool,
    /// The newest skipchain forward-link format this node signs as a proposer
    /// (`SkipchainLinks`), for light clients built before the newer ones existed.
    pub skipchain_links: SkipchainLinks,
    pub service_keys: BTreeMap<String, BlsKeyPair>,
    /// How much the node's ports give to any one client or peer (`[Limits]`).
    pub limits: Limits,
}

impl NodeConfig {
    /// A fresh identity and service keys for a node reachable at `address`.
    pub fn generate(address: NodeAddress, description: impl Into<String>) -> Self {
        let mut service_keys = BTreeMap::new();
        service_keys.insert(COSI_SERVICE.to_string(), BlsKeyPair::generate());
        Self {
            identity: IdentityKeyPair::generate(),
            address,
            listen_address: None,
            description: description.into(),
            url: None,
            ws_tls_certificate: None,
            ws_tls_certificate_key: None,
            data_dir: None,
            allow_open_signing: false,
            anonymous: false,
            skipchain_links: SkipchainLinks::default(),
            service_keys,
            limits: Limits::default(),
        }
    }

    /// The node id: hex(sha256(Ed25519 public key)).
    pub fn node_id(&self) -> String {
        self.identity.public().node_id()
    }

    /// The BLS key used by collective signing and skipchains.
    pub fn cosi_key(&self) -> Option<&BlsKeyPair> {
        self.service_keys.get(COSI_SERVICE)
    }

    /// The public identity of this node, as published in public.toml.
    pub fn server_identity(&self) -> ServerIdentity {
        ServerIdentity {
            address: self.address.clone(),
            public: self.identity.public(),
            description: self.description.clone(),
            url: self.url.clone(),
            services: self
                .service_keys
                .iter()
                .map(|(name, kp)| {
                    (name.clone(), ServicePublic { suite: bls::SUITE.to_string(), public: kp.public(), pop: kp.pop() })
                })
                .collect(),
        }
    }

    /// Loads and checks private.toml; refuses a file readable by group or others.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        check_private_permissions(path)?;
        let raw: RawPrivate = read_toml(path)?;
        Self::from_raw(path, raw)
    }

    /// Parses private.toml content (no permission check); `origin` names it in errors.
    pub fn from_toml_str(origin: &Path, text: &str) -> Result<Self, ConfigError> {
        let raw: RawPrivate = parse_toml(origin, text)?;
        Self::from_raw(origin, raw)
    }

    fn from_raw(path: &Path, raw: RawPrivate) -> Result<Self, ConfigError> {
        let suite = required(path, "Suite", &raw.suite)?;
        if suite != "Ed25519" {
            return Err(ConfigError::field(path, "Suite", format!("`{suite}` is not supported (use \"Ed25519\")")));
        }
        let identity = IdentityKeyPair::from_secret_hex(required(path, "Private", &raw.private)?)
            .map_err(|e| ConfigError::field(path, "Private", e))?;
        let public = crate::crypto::IdentityPublicKey::from_hex(required(path, "Public", &raw.public)?)
            .map_err(|e| ConfigError::field(path, "Public", e))?;
        if public != identity.public() {
            return Err(ConfigError::field(path, "Public", "does not match the private key"));
        }
        let address = NodeAddress::parse(required(path, "Address", &raw.address)?)
            .map_err(|e| ConfigError::field(path, "Address", e))?;
        let mut service_keys = BTreeMap::new();
        for (name, svc) in &raw.services {
            let f = |field: &str| format!("Services.{name}.{field}");
            let suite = required(path, &f("Suite"), &svc.suite)?;
            if suite != bls::SUITE {
                return Err(ConfigError::field(
                    path,
                    f("Suite"),
                    format!("`{suite}` is not supported (use \"{}\")", bls::SUITE),
                ));
            }
            let kp = BlsKeyPair::from_secret_hex(required(path, &f("Private"), &svc.private)?)
                .map_err(|e| ConfigError::field(path, f("Private"), e))?;
            let public = crate::crypto::BlsPublicKey::from_hex(required(path, &f("Public"), &svc.public)?)
                .map_err(|e| ConfigError::field(path, f("Public"), e))?;
            if public != kp.public() {
                return Err(ConfigError::field(path, f("Public"), "does not match the private key"));
            }
            if let Some(pop) = optional(&svc.pop) {
                let pop =
                    crate::crypto::BlsSignature::from_hex(&pop).map_err(|e| ConfigError::field(path, f("Pop"), e))?;
                public.verify_pop(&pop).map_err(|e| ConfigError::field(path, f("Pop"), e))?;
            }
            service_keys.insert(name.clone(), kp);
        }
        if !service_keys.contains_key(COSI_SERVICE) {
            return Err(ConfigError::field(path, format!("Services.{COSI_SERVICE}"), "missing"));
        }
        let ws_tls_certificate = optional(&raw.ws_tls_cert).map(PathBuf::from);
        let ws_tls_certificate_key = optional(&raw.ws_tls_key).map(PathBuf::from);
        if ws_tls_certificate.is_some() != ws_tls_certificate_key.is_some() {
            return Err(ConfigError::field(
                path,
                "WebSocketTLSCertificateKey",
                "WebSocketTLSCertificate and WebSocketTLSCertificateKey must be set together",
            ));
        }
        Ok(Self {
            identity,
            address,
            listen_address: optional(&raw.listen_address),
            description: raw.description.unwrap_or_default(),
            url: optional(&raw.url),
            ws_tls_certificate,
            ws_tls_certificate_key,
            data_dir: optional(&raw.data_dir).map(PathBuf::from),
            allow_open_signing: raw.allow_open_signing.unwrap_or(false),
            anonymous: raw.anonymous.unwrap_or(false),
            skipchain_links: match optional(&raw.skipchain_links).as_deref() {
                None | Some("v4") => SkipchainLinks::V4,
                Some("v3") => SkipchainLinks::V3,
                Some("v2") => SkipchainLinks::V2,
                Some("v1") => SkipchainLinks::V1,
                Some(other) => {
                    return Err(ConfigError::field(
                        path,
                        "SkipchainLinks",
                        format!("{other:?}: expected \"v1\", \"v2\", \"v3\" or \"v4\""),
                    ))
                }
            },
            service_keys,
            limits: Limits::from_raw(path, &raw.limits)?,
        })
    }

    /// The private.toml text for this config.
    pub fn to_toml(&self) -> String {
        let raw = RawPrivate {
            suite: Some("Ed25519".into()),
            public: Some(self.identity.public().to_hex()),
            private: Some(self.identity.secret_hex().to_string()),
            address: Some(self.address.to_string()),
            listen_address: self.listen_address.clone(),
            description: Some(self.description.clone()),
            url: self.url.clone(),
            ws_tls_cert: self.ws_tls_certificate.as_ref().map(|p| p.display().to_string()),
            ws_tls_key: self.ws_tls_certificate_key.as_ref().map(|p| p.display().to_string()),
            data_dir: self.data_dir.as_ref().map(|p| p.display().to_string()),
            allow_open_signing: self.allow_open_signing.then_some(true),
            anonymous: self.anonymous.then_some(true),
            skipchain_links: match self.skipchain_links {
                SkipchainLinks::V1 => Some("v1".to_string()),
                SkipchainLinks::V2 => Some("v2".to_string()),
                SkipchainLinks::V3 => Some("v3".to_string()),
                SkipchainLinks::V4 => None,
            },
            services: self
                .service_keys
                .iter()
                .map(|(name, kp)| {
                    (
                        name.clone(),
                        RawServiceSecret {
                            suite: Some(bls::SUITE.into()),
                            public: Some(kp.public().to_hex()),
                            private: Some(kp.secret_hex().to_string()),
                            pop: Some(kp.pop().to_hex()),
                        },
                    )
                })
                .collect(),
            limits: self.limits.to_raw(),
        };
        toml::to_string(&raw).unwrap_or_default()
    }

    /// Writes private.toml with mode 0600 (atomically; refuses to replace unless `overwrite`).
    pub fn save(&self, path: &Path, overwrite: bool) -> Result<(), ConfigError> {
        write_file_atomic(path, self.to_toml().as_bytes(), 0o600, overwrite)
    }
}

/// Refuses a private.toml that group or others can read.
pub fn check_private_permissions(path: &Path) -> Result<(), ConfigError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let meta = std::fs::metadata(path).map_err(|source| ConfigError::Read { file: path.to_path_buf(), source })?;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(ConfigError::Permissions { file: path.to_path_buf(), mode });
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}
