//! One URL type for a conode's client port, shared by every client (CLI, C, Python, the uniffi
//! light client): it accepts `ws://`, `wss://`, `http://`, `https://` (the WebSocket and HTTP APIs
//! share the port) and a node address `tls://host:P` (whose client port is P+1), and gives both
//! bases without a trailing slash.

use std::fmt;

/// Why a text is not a client-port URL.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{url}` is not a client-port URL: {why}")]
pub struct UrlError {
    pub url: String,
    pub why: String,
}

/// The client port of one conode.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ClientUrl {
    secure: bool,
    /// `host:port` or `host` (default port of the scheme), `[v6]:port` for IPv6.
    authority: String,
}

impl ClientUrl {
    /// Parses `ws|wss|http|https://host[:port]` or `tls://host:port` (a node address: client port
    /// is port + 1, plain WebSocket).
    pub fn parse(text: &str) -> Result<Self, UrlError> {
        let url = text.trim().trim_end_matches('/');
        let bad = |why: &str| UrlError { url: url.to_string(), why: why.to_string() };
        let (scheme, rest) = url.split_once("://").ok_or_else(|| bad("no scheme (use ws://host:port)"))?;
        if rest.is_empty() {
            return Err(bad("no host"));
        }
        if rest.contains(['/', '?', '#', '@']) || rest.chars().any(char::is_whitespace) {
            return Err(bad("expected scheme://host:port without a path, query or user"));
        }
        let secure = match scheme.to_ascii_lowercase().as_str() {
            "ws" | "http" => false,
            "wss" | "https" => true,
            "tls" => {
                let (host, port) = split_port(rest).ok_or_else(|| bad("a node address needs a port"))?;
                let port = port.checked_add(1).ok_or_else(|| bad("no client port above 65535"))?;
                return Ok(Self { secure: false, authority: format!("{host}:{port}") });
            }
            other => return Err(bad(&format!("unsupported scheme `{other}` (use ws, wss, http, https or tls)"))),
        };
        if rest.starts_with(':') {
            return Err(bad("no host"));
        }
        if rest.rsplit_once(':').is_some_and(|(h, _)| !h.ends_with(']') && h.contains(':')) {
            return Err(bad("write an IPv6 host in brackets"));
        }
        if let Some((_, port)) = rest.rsplit_once(':').filter(|(h, _)| !h.is_empty() && !rest.ends_with(']')) {
            port.parse::<u16>().map_err(|_| bad("the port is not a number up to 65535"))?;
        }
        Ok(Self { secure, authority: rest.to_string() })
    }

    /// The client port of a node reachable at `host:node_port` (plain WebSocket on node_port + 1).
    pub fn for_node(host: &str, node_port: u16) -> Result<Self, UrlError> {
        Self::parse(&format!("tls://{host}:{node_port}"))
    }

    pub fn is_secure(&self) -> bool {
        self.secure
    }

    /// `ws://host:port` or `wss://host:port`.
    pub fn ws_base(&self) -> String {
        format!("{}://{}", if self.secure { "wss" } else { "ws" }, self.authority)
    }

    /// `http://host:port` or `https://host:port`.
    pub fn http_base(&self) -> String {
        format!("{}://{}", if self.secure { "https" } else { "http" }, self.authority)
    }

    /// `ws(s)://host:port/<service>/<method>`.
    pub fn method(&self, service: &str, method: &str) -> String {
        format!("{}/{service}/{method}", self.ws_base())
    }
}

/// `host` and `port` of `host:port` / `[v6]:port`.
fn split_port(authority: &str) -> Option<(&str, u16)> {
    let (host, port) = authority.rsplit_once(':')?;
    if host.is_empty() || (host.contains(':') && !host.ends_with(']')) {
        return None;
    }
    Some((host, port.parse().ok()?))
}

impl fmt::Display for ClientUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.ws_base())
    }
}

impl std::str::FromStr for ClientUrl {
    type Err = UrlError;
    fn from_str(s: &str) -> Result<Self, UrlError> {
        Self::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_form_gives_both_bases() {
        for (text, ws, http) in [
            ("ws://127.0.0.1:7771", "ws://127.0.0.1:7771", "http://127.0.0.1:7771"),
            ("http://127.0.0.1:7771/", "ws://127.0.0.1:7771", "http://127.0.0.1:7771"),
            ("WSS://conode.example.org", "wss://conode.example.org", "https://conode.example.org"),
            ("https://conode.example.org:8443", "wss://conode.example.org:8443", "https://conode.example.org:8443"),
            ("tls://10.0.0.5:7770", "ws://10.0.0.5:7771", "http://10.0.0.5:7771"),
            ("ws://[::1]:7771", "ws://[::1]:7771", "http://[::1]:7771"),
            ("tls://[::1]:7770", "ws://[::1]:7771", "http://[::1]:7771"),
        ] {
            let u = ClientUrl::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!((u.ws_base().as_str(), u.http_base().as_str()), (ws, http), "{text}");
        }
        assert_eq!(ClientUrl::parse("ws://h:1").unwrap().method("Status", "Request"), "ws://h:1/Status/Request");
    }

    #[test]
    fn bad_urls_are_refused_with_a_reason() {
        for text in [
            "127.0.0.1:7771",
            "ftp://h:1",
            "ws://",
            "ws://h:1/path",
            "ws://h:1?x=1",
            "ws://h:notaport",
            "ws://h:70000",
            "tls://h",
            "tls://h:65535",
            "ws://::1:80",
            "ws://user@h:1",
        ] {
            let e = ClientUrl::parse(text).expect_err(text);
            assert!(!e.why.is_empty(), "{text}");
        }
    }
}
