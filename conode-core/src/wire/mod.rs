//! The protobuf messages of every conode protocol, one module per package of `proto/*.proto`
//! (`wire::cosi`, `wire::skipchain`, `wire::beacon`, `wire::dkg`, `wire::status`,
//! `wire::network` for the node-to-node envelope, `wire::common` for shared messages).
//!
//! Why it exists: the `.proto` files are the one definition of the wire contract, for this crate
//! and for clients in other languages alike. build.rs generates these types from them at build
//! time (protox + prost-build, no `protoc` needed), so the Rust types cannot drift from the
//! published files. Services re-export what they use from their `messages` modules, next to their
//! constants and helpers. Pure data, no runtime: light clients use it without the `runtime`
//! feature. `tests/wire_contract.rs` pins the encodings.

// Generated code: doc comments come from the .proto files as written for every language, where
// `[[servers]]` (a TOML table) is text, not a rustdoc link.
#![allow(rustdoc::broken_intra_doc_links)]

include!(concat!(env!("OUT_DIR"), "/_wire.rs"));
include!(concat!(env!("OUT_DIR"), "/_proto_files.rs"));
