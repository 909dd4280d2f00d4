//! Stable error codes of the client port. A service error closes the WebSocket with code 4100 (the
//! cothority convention, so Go clients still show the text) and the reason
//! `[<code> key=value …] <message>`; clients decode the bracketed head once (here) and map the
//! code to their own error types, never the message text.

use std::collections::BTreeMap;
use std::fmt;

/// Close code of every service error (cothority convention).
pub const WS_ERROR_CODE: u16 = 4100;
/// Longest close reason the WebSocket protocol allows.
pub const MAX_CLOSE_REASON: usize = 123;

/// What kind of failure a client-port request met. The names are part of the wire contract.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// No such service or method.
    UnknownMethod,
    /// The request does not decode, is too large or has invalid fields.
    BadRequest,
    /// The node will not do it (policy, not an owner, signature does not verify).
    Refused,
    /// No such chain, block, round or beacon chain (or not yet).
    NotFound,
    /// Too few members took part; fields `signed`, `required`, `n`, `missing` (roster indices).
    Threshold,
    /// The request conflicts with the node's state (a DKG is running, a chain exists already).
    Conflict,
    /// The node is stopping or a part of it is unavailable; try again or elsewhere.
    Unavailable,
    /// Anything else (including replies of nodes that send no code).
    Internal,
}

impl ErrorCode {
    pub const ALL: [ErrorCode; 8] = [
        ErrorCode::UnknownMethod,
        ErrorCode::BadRequest,
        ErrorCode::Refused,
        ErrorCode::NotFound,
        ErrorCode::Threshold,
        ErrorCode::Conflict,
        ErrorCode::Unavailable,
        ErrorCode::Internal,
    ];

    /// The name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::UnknownMethod => "unknown_method",
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::Refused => "refused",
            ErrorCode::NotFound => "not_found",
            ErrorCode::Threshold => "threshold",
            ErrorCode::Conflict => "conflict",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::Internal => "internal",
        }
    }

    pub fn from_name(name: &str) -> Option<ErrorCode> {
        ErrorCode::ALL.into_iter().find(|c| c.as_str() == name)
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A service error as it crosses the client port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WireError {
    pub code: ErrorCode,
    /// Machine-readable details (e.g. `signed`, `missing` for `Threshold`).
    pub fields: BTreeMap<String, String>,
    /// For people.
    pub message: String,
}

impl WireError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self { code, fields: BTreeMap::new(), message: message.into() }
    }

    pub fn with(mut self, key: &str, value: impl ToString) -> Self {
        self.fields.insert(key.to_string(), value.to_string());
        self
    }

    /// A numeric field.
    pub fn number(&self, key: &str) -> Option<usize> {
        self.fields.get(key)?.parse().ok()
    }

    /// A comma-separated list of numbers (e.g. `missing`).
    pub fn numbers(&self, key: &str) -> Vec<usize> {
        self.fields.get(key).map(|v| v.split(',').filter_map(|t| t.parse().ok()).collect()).unwrap_or_default()
    }

    /// The close reason: the head `[code k=v …]` then the message, cut to the protocol's limit (at
    /// a character boundary). A list field that does not fit is shortened and `truncated=1` added.
    pub fn to_close_reason(&self) -> String {
        let mut fields = self.fields.clone();
        let mut head = head_of(self.code, &fields);
        while head.len() > MAX_CLOSE_REASON - 8 {
            // Shorten the longest field (a list) by one item and say so.
            let Some((k, v)) = fields.iter().max_by_key(|(_, v)| v.len()).map(|(k, v)| (k.clone(), v.clone())) else {
                break;
            };
            let shorter = match v.rsplit_once(',') {
                Some((rest, _)) => rest.to_string(),
                None => String::new(),
            };
            if shorter == v {
                break;
            }
            fields.insert(k, shorter);
            fields.insert("truncated".into(), "1".into());
            head = head_of(self.code, &fields);
        }
        let mut reason = format!("{head} {}", self.message);
        while reason.len() > MAX_CLOSE_REASON {
            reason.pop();
        }
        reason
    }

    /// Decodes a close reason. A reason without a head (an older node, another server) is
    /// `Internal` with the whole text as message.
    pub fn from_close_reason(reason: &str) -> Self {
        let parsed = reason.strip_prefix('[').and_then(|r| r.split_once(']')).and_then(|(head, message)| {
            let mut parts = head.split(' ');
            let code = ErrorCode::from_name(parts.next()?)?;
            let mut fields = BTreeMap::new();
            for part in parts {
                let (k, v) = part.split_once('=')?;
                fields.insert(k.to_string(), v.to_string());
            }
            Some(Self { code, fields, message: message.trim_start().to_string() })
        });
        parsed.unwrap_or_else(|| Self::new(ErrorCode::Internal, reason))
    }
}

fn head_of(code: ErrorCode, fields: &BTreeMap<String, String>) -> String {
    let mut head = format!("[{code}");
    for (k, v) in fields {
        head.push_str(&format!(" {k}={v}"));
    }
    head.push(']');
    head
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_round_trips_through_a_close_reason() {
        for code in ErrorCode::ALL {
            let e = WireError::new(code, "something happened");
            let back = WireError::from_close_reason(&e.to_close_reason());
            assert_eq!(back, e);
        }
    }

    #[test]
    fn threshold_fields_survive_and_long_lists_are_cut_and_marked() {
        let e = WireError::new(ErrorCode::Threshold, "threshold not reached")
            .with("signed", 3)
            .with("required", 5)
            .with("missing", "1,4");
        let back = WireError::from_close_reason(&e.to_close_reason());
        assert_eq!((back.number("signed"), back.number("required")), (Some(3), Some(5)));
        assert_eq!(back.numbers("missing"), vec![1, 4]);
        let many: Vec<String> = (0..200).map(|i| i.to_string()).collect();
        let e = WireError::new(ErrorCode::Threshold, "x".repeat(300)).with("missing", many.join(","));
        let reason = e.to_close_reason();
        assert!(reason.len() <= MAX_CLOSE_REASON, "{}", reason.len());
        let back = WireError::from_close_reason(&reason);
        assert_eq!(back.code, ErrorCode::Threshold);
        assert_eq!(back.fields.get("truncated").map(String::as_str), Some("1"));
        let got = back.numbers("missing");
        assert!(!got.is_empty() && got.iter().enumerate().all(|(i, v)| i == *v), "{got:?}");
    }

    #[test]
    fn a_reason_without_a_head_is_internal() {
        let e = WireError::from_close_reason("refused: something");
        assert_eq!(e.code, ErrorCode::Internal);
        assert_eq!(e.message, "refused: something");
        assert_eq!(WireError::from_close_reason("[nonsense] x").code, ErrorCode::Internal);
    }
}
