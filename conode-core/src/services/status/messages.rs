//! Protobuf messages of the Go cothority's status service (`status.proto`, `onet.proto`,
//! `network.proto`), generated from `proto/status.proto` (see [`crate::wire`]) whose tags and types
//! match what cothority clients decode; re-exported here under the names the node uses, with the
//! conversion from a node's identity. Points inside a ServerIdentity carry kyber's 8-byte marshal
//! id (`ed.point`) before the key.

pub use crate::wire::status::{
    Request as StatusRequest, Response as StatusResponse, ServerIdentity as ServerIdentityProto,
    ServiceIdentity as ServiceIdentityProto, Status,
};

/// kyber's marshal id of an Ed25519 point.
pub const ED25519_MARSHAL_ID: &[u8; 8] = b"ed.point";
/// Namespace of ServerIdentity ids in onet.
pub const ONET_NAMESPACE_URL: &str = "https://dedis.epfl.ch/";

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
