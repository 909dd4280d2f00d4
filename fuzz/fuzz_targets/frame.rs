//! The node port's first decoders: the route read from a frame's first bytes, the envelope, and
//! the roster an introduction names (all reached by any TLS peer, known or not).
#![no_main]
use conode_core::network::{admission, frame};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let route = frame::peek_route(data);
    let _ = admission::stranger_frame_limit(route, 16 << 20);
    let _ = admission::peer_frame_limit(route, 16 << 20);
    if let Ok(env) = frame::decode(data) {
        let _ = admission::introduced_keys(&env.service, &env.protocol, &env.payload);
        // What was decoded re-encodes to a frame that decodes to the same envelope.
        let again = frame::encode(&env);
        assert_eq!(frame::decode(&again[4..]).ok(), Some(env));
    }
});
