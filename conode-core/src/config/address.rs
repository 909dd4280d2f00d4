//! Node addresses as written in cothority configs: `tls://host:port`. The host may be a DNS name; it
//! is resolved at every dial so a roster can follow a moved IP. The client port is `port + 1`.

use std::fmt;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct NodeAddress {
    pub host: String,
    pub port: u16,
}

impl NodeAddress {
    /// Parses `tls://host:port` (the scheme may be omitted; `[v6]:port` is accepted).
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let rest = match s.split_once("://") {
            Some(("tls", rest)) => rest,
            Some((scheme, _)) => return Err(format!("unsupported scheme `{scheme}://` (use tls://host:port)")),
            None => s,
        };
        let (host, port) = rest.rsplit_once(':').ok_or_else(|| format!("`{s}` has no port (use tls://host:port)"))?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            return Err(format!("`{s}` has no host"));
        }
        let port: u16 = port.parse().map_err(|_| format!("`{port}` is not a port number"))?;
        Ok(Self { host: host.to_string(), port })
    }
    /// The client (WebSocket/HTTP) port: node port + 1.
    pub fn client_port(&self) -> u16 {
        self.port.wrapping_add(1)
    }
    /// `host:port` suitable for DNS resolution.
    pub fn host_port(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
    /// `host:port+1`.
    pub fn client_host_port(&self) -> String {
        NodeAddress { host: self.host.clone(), port: self.client_port() }.host_port()
    }
}

impl fmt::Display for NodeAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "tls://{}", self.host_port())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn parses() {
        let a = NodeAddress::parse("tls://example.com:7770").unwrap();
        assert_eq!((a.host.as_str(), a.port, a.client_port()), ("example.com", 7770, 7771));
        assert_eq!(a.to_string(), "tls://example.com:7770");
        let v6 = NodeAddress::parse("tls://[::1]:80").unwrap();
        assert_eq!(v6.host_port(), "[::1]:80");
        assert!(NodeAddress::parse("tcp://a:1").is_err());
        assert!(NodeAddress::parse("tls://a").is_err());
        assert!(NodeAddress::parse("tls://a:99999").is_err());
    }
}
