//! Pure light-client verification (no tokio, no sled, no sockets): what a phone needs to check a
//! cothority's output. Collective signatures, skipchain proofs and beacons land here.
