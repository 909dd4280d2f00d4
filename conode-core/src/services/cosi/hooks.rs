//! Verification hooks: a node signs a statement only when the service that asked for the round has
//! registered a hook for its purpose on this node and the hook approves it. There is no open
//! signing oracle, except the `Cosi` purpose on nodes whose config sets `allow_open_signing`.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

/// Purpose of `/Cosi/Sign` requests: accepted only when the node allows open signing.
pub const OPEN_SIGNING_PURPOSE: &str = "Cosi";

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
}

impl HookRegistry {
    /// Registers (or replaces) the hook of `purpose`. The open-signing purpose cannot be hooked.
    pub fn set(&self, purpose: &str, hook: VerifyHook) -> Result<(), String> {
        if purpose == OPEN_SIGNING_PURPOSE {
            return Err(format!("purpose `{OPEN_SIGNING_PURPOSE}` is reserved for open signing"));
        }
        self.hooks.write().unwrap_or_else(|p| p.into_inner()).insert(purpose.to_string(), hook);
        Ok(())
    }

    pub fn remove(&self, purpose: &str) {
        self.hooks.write().unwrap_or_else(|p| p.into_inner()).remove(purpose);
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
            Some(h) => h(statement, extra),
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
}
