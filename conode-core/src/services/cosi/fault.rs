//! Fault injection for tests and benchmarks: make a node misbehave in a signing round the way a
//! broken or malicious member would (garbage partial, signature over another message, refusal,
//! silence, slowness). Honest nodes must exclude it, report it, and still produce a valid signature.

/// How this node misbehaves when asked to sign (never as the root of a round).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CosiFault {
    /// Behaves correctly.
    #[default]
    None,
    /// Answers with random bytes instead of its signature (as a sub-leader: instead of the aggregate).
    Garbage,
    /// Signs another message; as a sub-leader it adds that partial to its aggregate unchecked.
    WrongMessage,
    /// Refuses to sign as if its verification hook rejected the statement.
    Refuse,
    /// Never answers (waits past the caller's timeout, then drops the request).
    Silent,
    /// Answers correctly, but only after waiting this long (an overloaded or distant member);
    /// as a sub-leader, it waits before it asks its leaves.
    Slow(std::time::Duration),
    /// Both `Slow` and `WrongMessage`: answers only after waiting this long, and then with a
    /// partial over another message (an overloaded member that is also broken or malicious).
    LateWrongMessage(std::time::Duration),
}

impl CosiFault {
    /// The statement a node with this fault signs instead of `statement`.
    pub fn tampered_statement(statement: &[u8]) -> Vec<u8> {
        let mut m = statement.to_vec();
        m.extend_from_slice(b"/tampered");
        m
    }

    /// 96 random bytes standing in for a signature.
    pub fn garbage() -> Vec<u8> {
        let mut g = vec![0u8; 96];
        rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut g);
        g
    }
}
