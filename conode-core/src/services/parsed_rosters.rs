//! Roster texts that clients send (`/Cosi/Sign`, `/Skipchain/CreateChain`, a roster change in
//! `/Skipchain/Append`) are parsed off the runtime's workers, because parsing checks every key and
//! proof of possession (seconds for thousands of members), and remembered by the hash of their
//! text, failures included: a client that sends the same roster again, good or bad, costs one hash.

use super::tasks::Tasks;
use crate::config::Roster;
use crate::kept::KeptMap;
use std::path::Path;
use std::sync::Mutex;

/// Longest roster text a client may send.
pub const MAX_ROSTER_TOML: usize = 1024 * 1024;

/// The memo of parsed client rosters (a few: clients reuse one roster).
pub struct ParsedRosters {
    kept: Mutex<KeptMap<[u8; 32], Result<Roster, String>>>,
}

impl ParsedRosters {
    /// Keeps the last `budget` rosters parsed.
    pub fn new(budget: usize) -> Self {
        Self { kept: Mutex::new(KeptMap::new(budget)) }
    }

    /// The roster in `text` (`field` names it in errors), parsed on a blocking thread of `tasks`
    /// unless this text was parsed lately.
    pub async fn parse(&self, tasks: &Tasks, field: &'static str, text: &str) -> Result<Roster, String> {
        if text.len() > MAX_ROSTER_TOML {
            return Err(format!("{field} of {} bytes exceeds the limit of {MAX_ROSTER_TOML}", text.len()));
        }
        let digest = crate::crypto::sha256(&[text.as_bytes()]);
        if let Some(known) = crate::sync::lock(&self.kept).get(&digest).cloned() {
            return known;
        }
        let owned = text.to_string();
        let parsed = tasks
            .spawn_blocking(move || Roster::from_toml_str(Path::new(field), &owned).map_err(|e| e.to_string()))
            .await
            .map_err(|e| format!("parsing {field} failed: {e}"))?;
        crate::sync::lock(&self.kept).insert(digest, parsed.clone());
        parsed
    }

    /// How many parsed rosters are remembered (for tests).
    pub fn len(&self) -> usize {
        crate::sync::lock(&self.kept).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{NodeAddress, NodeConfig};

    #[tokio::test]
    async fn rosters_are_parsed_once_good_or_bad() {
        let tasks = Tasks::new();
        let members = (0..3)
            .map(|i| NodeConfig::generate(NodeAddress { host: "127.0.0.1".into(), port: 7000 + i }, "t"))
            .map(|c| c.server_identity())
            .collect();
        let good = Roster::new(members).to_toml();
        let parsed = ParsedRosters::new(4);
        assert_eq!(parsed.parse(&tasks, "roster", &good).await.unwrap().len(), 3);
        assert_eq!(parsed.parse(&tasks, "roster", &good).await.unwrap().len(), 3);
        assert_eq!(parsed.len(), 1);
        // A damaged proof of possession: refused by field, and remembered as refused.
        let pop = good.find("Pop = \"").expect("a PoP in the roster text") + 7;
        let mut bad = good.clone().into_bytes();
        bad[pop] = if bad[pop] == b'a' { b'b' } else { b'a' };
        let bad = String::from_utf8(bad).unwrap();
        let err = parsed.parse(&tasks, "roster", &bad).await.unwrap_err();
        assert!(err.contains("roster"), "{err}");
        assert_eq!(parsed.parse(&tasks, "roster", &bad).await.unwrap_err(), err);
        assert_eq!(parsed.len(), 2);
        // Too long: refused before any work, nothing kept.
        let long = "#".repeat(MAX_ROSTER_TOML + 1);
        assert!(parsed.parse(&tasks, "new_roster", &long).await.unwrap_err().contains("new_roster of"));
        assert_eq!(parsed.len(), 2);
        // The budget holds: the oldest go first.
        for i in 0..5 {
            let _ = parsed.parse(&tasks, "roster", &format!("# {i}\n{good}")).await;
        }
        assert_eq!(parsed.len(), 4);
    }
}
