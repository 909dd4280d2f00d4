//! Pure light-client verification (no tokio, no sled, no sockets): what a phone needs to check a
//! cothority's output. Collective signatures, skipchain proofs and beacons land here.

pub mod batch_tree;
pub mod beacon;
pub mod cosi;
pub mod follow;
pub mod skipchain;
pub mod skipchain_batch;
pub mod skipchain_wire;

pub use cosi::{verify as verify_cosi, CosiVerifyError, Mask, Policy};
