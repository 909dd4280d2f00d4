//! Verification hooks: a node signs a statement only when the service that asked for the round has
//! registered a hook for its purpose on this node and the hook approves it. There is no open
//! signing oracle, except the `Cosi` purpose on nodes whose config sets `allow_open_signing`.
//! The registry also keeps how long each hook took lately: a member whose hook is quick signs
//! after it on its own worker (see `inline_signing`), one whose hook is slow signs while it runs.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

/// Purpose of `/Cosi/Sign` requests: accepted only when the node allows open signing.
pub const OPEN_SIGNING_PURPOSE: &str = "Cosi";

/// A hook whose recent run time is below this is quick: checking first and signing after costs
/// a round no more than signing while the hook runs (the hand-off to the crypto pool costs about
/// as much).
pub(super) const QUICK_HOOK: Duration = Duration::from_micros(50);

/// Checks `(statement, extra data)` before this node signs; `Err(reason)` refuses. Hooks run on the
/// node's runtime and must be quick (no blocking I/O).
pub type VerifyHook = Arc<dyn Fn(&[u8], &[u8]) -> Result<(), String> + Send + Sync>;

/// The hooks registered on one node, by purpose.
#[derive(Clone, Default)]
pub struct HookRegistry {
    hooks: Arc<RwLock<HashMap<String, VerifyHook>>>,
    /// While set, this node signs nothing at all, for the reason given (a restored node catching
    /// up from its peers).
    hold: Arc<RwLock<Option<String>>>,
    /// Per registered purpose, a moving average of its hook's run time (see [`Self::is_quick`]).
    run_times: Arc<Mutex<HashMap<String, Duration>>>,
}

impl HookRegistry {
    /// Registers (or replaces) the hook of `purpose`. The open-signing purpose cannot be hooked.
    pub fn set(&self, purpose: &str, hook: VerifyHook) -> Result<(), String> {
        if purpose == OPEN_SIGNING_PURPOSE {
            return Err(format!("purpose `{OPEN_SIGNING_PURPOSE}` is reserved for open signing"));
        }
        self.hooks.write().unwrap_or_else(|p| p.into_inner()).insert(purpose.to_string(), hook);
        crate::sync::lock(&self.run_times).remove(purpose);
        Ok(())
    }

    pub fn remove(&self, purpose: &str) {
        self.hooks.write().unwrap_or_else(|p| p.into_inner()).remove(purpose);
        crate::sync::lock(&self.run_times).remove(purpose);
    }

    /// Whether the check of `purpose` is known to be quick: open signing (nothing runs), or a hook
    /// that ran in less than [`QUICK_HOOK`] on average lately. A hook that never ran is not.
    pub fn is_quick(&self, purpose: &str, allow_open_signing: bool) -> bool {
        if purpose == OPEN_SIGNING_PURPOSE {
            return allow_open_signing;
        }
        crate::sync::lock(&self.run_times).get(purpose).is_some_and(|&t| t < QUICK_HOOK)
    }

    /// Counts one run of the hook of `purpose` into its moving average: an eighth of the weight
    /// to the newest run, counted as at most twice [`QUICK_HOOK`], so that one run stretched by
    /// the scheduler does not make a quick hook slow, while one that became slow is seen as such
    /// after a few runs.
    fn ran(&self, purpose: &str, took: Duration) {
        let took = took.min(QUICK_HOOK * 2);
        let mut times = crate::sync::lock(&self.run_times);
        match times.get_mut(purpose) {
            Some(t) => *t = (*t * 7 + took) / 8,
            None => {
                times.insert(purpose.to_string(), took);
            }
        }
    }

    /// Whether this node would consider signing for `purpose` at all.
    pub fn knows(&self, purpose: &str, allow_open_signing: bool) -> bool {
        if purpose == OPEN_SIGNING_PURPOSE {
            return allow_open_signing;
        }
        self.hooks.read().unwrap_or_else(|p| p.into_inner()).contains_key(purpose)
    }

    /// Refuses every signature (any purpose) until [`Self::release`], saying `reason`.
    pub fn hold(&self, reason: &str) {
        *self.hold.write().unwrap_or_else(|p| p.into_inner()) = Some(reason.to_string());
    }

    /// Whether this node signs nothing at the moment (see [`Self::hold`]).
    pub fn on_hold(&self) -> bool {
        self.hold.read().unwrap_or_else(|p| p.into_inner()).is_some()
    }

    pub fn release(&self) {
        *self.hold.write().unwrap_or_else(|p| p.into_inner()) = None;
    }

    /// Approves or refuses signing `statement` for `purpose`.
    pub fn check(&self, purpose: &str, statement: &[u8], extra: &[u8], allow_open_signing: bool) -> Result<(), String> {
        if let Some(reason) = self.hold.read().unwrap_or_else(|p| p.into_inner()).as_ref() {
            return Err(reason.clone());
        }
        if purpose == OPEN_SIGNING_PURPOSE {
            return if allow_open_signing { Ok(()) } else { Err("open signing is disabled on this node".into()) };
        }
        let hook = self.hooks.read().unwrap_or_else(|p| p.into_inner()).get(purpose).cloned();
        match hook {
            Some(h) => {
                let started = Instant::now();
                let verdict = h(statement, extra);
                self.ran(purpose, started.elapsed());
                verdict
            }
            None => Err(format!("no verification hook for purpose `{purpose}` on this node")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn purposes() {
        let r = HookRegistry::default();
        assert!(r.check("Cosi", b"x", b"", true).is_ok());
        assert!(r.check("Cosi", b"x", b"", false).unwrap_err().contains("disabled"));
        assert!(r.check("Skip", b"x", b"", true).unwrap_err().contains("no verification hook"));
        assert!(r.set("Cosi", Arc::new(|_: &[u8], _: &[u8]| Ok(()))).is_err());
        r.set("Skip", Arc::new(|s: &[u8], _: &[u8]| if s == b"ok" { Ok(()) } else { Err("bad block".into()) }))
            .unwrap();
        assert!(r.check("Skip", b"ok", b"", false).is_ok());
        assert_eq!(r.check("Skip", b"no", b"", false), Err("bad block".into()));
        assert!(r.knows("Skip", false) && !r.knows("Cosi", false));
        r.hold("catching up");
        assert_eq!(r.check("Skip", b"ok", b"", false), Err("catching up".into()));
        assert_eq!(r.check("Cosi", b"x", b"", true), Err("catching up".into()));
        r.release();
        assert!(r.check("Skip", b"ok", b"", false).is_ok());
    }

    #[test]
    fn hooks_are_quick_once_seen_quick_and_slow_ones_are_not() {
        let r = HookRegistry::default();
        assert!(r.is_quick("Cosi", true) && !r.is_quick("Cosi", false), "open signing runs nothing");
        r.set("Fast", Arc::new(|_: &[u8], _: &[u8]| Ok(()))).unwrap();
        r.set(
            "Slow",
            Arc::new(|_: &[u8], _: &[u8]| {
                std::thread::sleep(QUICK_HOOK * 4);
                Ok(())
            }),
        )
        .unwrap();
        assert!(!r.is_quick("Fast", false), "a hook that never ran is not known to be quick");
        assert!(!r.is_quick("Missing", false));
        for _ in 0..3 {
            r.check("Fast", b"x", b"", false).unwrap();
            r.check("Slow", b"x", b"", false).unwrap();
        }
        assert!(r.is_quick("Fast", false));
        assert!(!r.is_quick("Slow", false));
        // One run stretched (the thread preempted) does not make a quick hook slow; a hook that
        // stays slow is seen as slow within a few runs.
        r.ran("Fast", Duration::from_millis(20));
        assert!(r.is_quick("Fast", false));
        let runs_until_slow = (1..100).find(|_| {
            r.ran("Fast", QUICK_HOOK * 10);
            !r.is_quick("Fast", false)
        });
        assert!(runs_until_slow.is_some_and(|k| k <= 8), "{runs_until_slow:?}");
        // A replaced hook is timed anew.
        r.set("Fast", Arc::new(|_: &[u8], _: &[u8]| Ok(()))).unwrap();
        assert!(!r.is_quick("Fast", false));
        r.check("Fast", b"x", b"", false).unwrap();
        r.remove("Fast");
        assert!(!r.is_quick("Fast", false));
        assert!(crate::sync::lock(&r.run_times).len() == 1, "only registered purposes are timed");
    }
}
