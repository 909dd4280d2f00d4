//! Protobuf messages of the Go cothority's status service (`status.proto`, `onet.proto`,
//! `network.proto`), written by hand so the wire bytes match what cothority clients decode.
//! Points inside a ServerIdentity carry kyber's 8-byte marshal id (`ed.point`) before the key.

use std::collections::HashMap;

/// kyber's marshal id of an Ed25519 point.
pub const ED25519_MARSHAL_ID: &[u8; 8] = b"ed.point";
/// Namespace of ServerIdentity ids in onet.
pub const ONET_NAMESPACE_URL: &str = "https://dedis.epfl.ch/";

/// status.Request (empty).
#[derive(Clone, PartialEq, prost::Message)]
pub struct StatusRequest {}

/// onet.Status: a map of strings.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Status {
    #[prost(map = "string, string", tag = "1")]
    pub field: HashMap<String, String>,
}

/// status.Response.
#[derive(Clone, PartialEq, prost::Message)]
pub struct StatusResponse {
    #[prost(map = "string, message", tag = "1")]
    pub status: HashMap<String, Status>,
    #[prost(message, optional, tag = "2")]
    pub serveridentity: Option<ServerIdentityProto>,
}

/// network.ServerIdentity.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ServerIdentityProto {
    #[prost(bytes = "vec", tag = "1")]
    pub public: Vec<u8>,
    #[prost(message, repeated, tag = "2")]
    pub service_identities: Vec<ServiceIdentityProto>,
    #[prost(bytes = "vec", tag = "3")]
    pub id: Vec<u8>,
    #[prost(string, tag = "4")]
    pub address: String,
    #[prost(string, tag = "5")]
    pub description: String,
    #[prost(string, optional, tag = "7")]
    pub url: Option<String>,
}

/// network.ServiceIdentity.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ServiceIdentityProto {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub suite: String,
    #[prost(bytes = "vec", tag = "3")]
    pub public: Vec<u8>,
}

/// onet's ServerIdentity id: UUIDv5(URL namespace, "https://dedis.epfl.ch/id/" + hex public key).
pub fn server_identity_id(public: &crate::crypto::IdentityPublicKey) -> [u8; 16] {
    let name = format!("{ONET_NAMESPACE_URL}id/{}", public.to_hex());
    *uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_URL, name.as_bytes()).as_bytes()
}

/// The Go wire form of a ServerIdentity. Service keys are left out: Go clients decode every point
/// through kyber's suite registry, which has no BLS12-381 min_pk suite, and would reject the message.
pub fn server_identity_proto(si: &crate::config::ServerIdentity) -> ServerIdentityProto {
    let mut public = ED25519_MARSHAL_ID.to_vec();
    public.extend_from_slice(si.public.as_bytes());
    ServerIdentityProto {
        public,
        service_identities: Vec::new(),
        id: server_identity_id(&si.public).to_vec(),
        address: si.address.to_string(),
        description: si.description.clone(),
        url: si.url.clone(),
    }
}

/// The Ed25519 key of a Go-encoded ServerIdentity, checking the marshal id.
pub fn public_of(si: &ServerIdentityProto) -> Result<crate::crypto::IdentityPublicKey, String> {
    let key = si
        .public
        .strip_prefix(ED25519_MARSHAL_ID.as_slice())
        .ok_or("ServerIdentity.public lacks the `ed.point` marshal id")?;
    crate::crypto::IdentityPublicKey::from_bytes(key).map_err(|e| e.to_string())
}
