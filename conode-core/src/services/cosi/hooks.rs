//! Verification hooks: a node signs a statement only when the service that asked for the round has
//! registered a hook for its purpose on this node and the hook approves it. There is no open
//! signing oracle, except the `Cosi` purpose on nodes whose config sets `allow_open_signing`.
//! The registry also keeps how long each hook took lately: a member whose hook is quick signs
//! after it on its own worker (see `inline_signing`), one whose hook is slow signs while it runs.
//! Only a hook known to be quick runs as a plain call on the runtime's worker; any other runs in
//! `block_in_place` (`sync::may_block`), so a hook that blocks, or hangs, holds a thread of its
//! own and not one of the few workers every task of the node shares.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

/// Purpose of `/Cosi/Sign` requests: accepted only when the node allows open signing.
pub const OPEN_SIGNING_PURPOSE: &str = "Cosi";

/// A hook whose recent run time is below this is quick: checking first and signing after costs
/// a round no more than signing while the hook runs (the hand-off to the crypto pool costs about
/// as much).
pub(super) const QUICK_HOOK: Duration = Duration::from_micros(50);

/// Checks `(statement, extra data)` before this node signs; `Err(reason)` refuses. A hook may block
/// (a lookup, a durable write): until it is seen to be quick it runs in `block_in_place`. One that
/// never returns keeps its thread and this node's answer in that round (the round's leader gives up
/// on the node at its deadline), not the node.
pub type VerifyHook = Arc<dyn Fn(&[u8], &[u8]) -> Result<(), String> + Send + Sync>;

/// The hooks registered on one node, by purpose.
#[derive(Clone, Default)]
pub struct HookRegistry {
    hooks: Arc<RwLock<HashMap<String, VerifyHook>>>,
    /// While set, this node signs nothing at all, for the reason given (a restored node catching
    /// up from its peers).
    hold: Arc<RwLock<Option<String>>>,
    /// Per registered purpose, how its hook ran lately (see [`Self::is_quick`]).
    run_times: Arc<Mutex<HashMap<String, RunTimes>>>,
}

/// How the hook of one registered purpose ran lately.
#[derive(Default)]
struct RunTimes {
    /// Moving average of its run time (`None` until a run ended).
    average: Option<Duration>,
    /// Runs under way: one that does not end may be one that hangs.
    running: usize,
}

impl RunTimes {
    fn is_quick(&self) -> bool {
        self.running == 0 && self.average.is_some_and(|t| t < QUICK_HOOK)
    }
}

/// One run of a hook, timed into its purpose's [`RunTimes`] when it ends (or unwinds).
struct Run<'a> {
    registry: &'a HookRegistry,
    purpose: &'a str,
    started: Instant,
}

impl Drop for Run<'_> {
    fn drop(&mut self) {
        self.registry.ran(self.purpose, self.started.elapsed());
    }
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
    /// that ran in less than [`QUICK_HOOK`] on average lately and is not running at the moment
    /// (a run that has not ended may hang). A hook that never ran is not.
    pub fn is_quick(&self, purpose: &str, allow_open_signing: bool) -> bool {
        if purpose == OPEN_SIGNING_PURPOSE {
            return allow_open_signing;
        }
        crate::sync::lock(&self.run_times).get(purpose).is_some_and(RunTimes::is_quick)
    }

    /// A run of the hook of `purpose` starts; returns whether the hook was known to be quick.
    fn start(&self, purpose: &str) -> bool {
        let mut times = crate::sync::lock(&self.run_times);
        if let Some(t) = times.get_mut(purpose) {
            let quick = t.is_quick();
            t.running += 1;
            return quick;
        }
        times.insert(purpose.to_string(), RunTimes { average: None, running: 1 });
        false
    }

    /// Counts one run of the hook of `purpose` into its moving average: an eighth of the weight
    /// to the newest run, counted as at most twice [`QUICK_HOOK`], so that one run stretched by
    /// the scheduler does not make a quick hook slow, while one that became slow is seen as such
    /// after a few runs. (A purpose removed meanwhile is not timed again.)
    fn ran(&self, purpose: &str, took: Duration) {
        let took = took.min(QUICK_HOOK * 2);
        if let Some(t) = crate::sync::lock(&self.run_times).get_mut(purpose) {
            t.running = t.running.saturating_sub(1);
            t.average = Some(t.average.map_or(took, |average| (average * 7 + took) / 8));
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
                let quick = self.start(purpose);
                // Timed inside `block_in_place`: the hand-off of the worker is not the hook's.
                let run = || {
                    let _run = Run { registry: self, purpose, started: Instant::now() };
                    h(statement, extra)
                };
                if quick {
                    run()
                } else {
                    crate::sync::may_block(run)
                }
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
        // A run under way may be one that hangs: the hook is not quick while it lasts.
        assert!(r.start("Fast"), "quick when this run started");
        assert!(!r.is_quick("Fast", false), "a run is under way");
        assert!(!r.start("Fast"), "a second run starts while the first has not ended");
        r.ran("Fast", Duration::from_micros(1));
        r.ran("Fast", Duration::from_micros(1));
        assert!(r.is_quick("Fast", false), "both ended");
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
