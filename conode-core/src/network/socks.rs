//! A minimal SOCKS5 client (RFC 1928, no authentication, CONNECT by domain name so the proxy
//! resolves it, as Tor wants) for members whose `overrides.toml` entry says `Via = "socks5://…"`.
//! Replies are read with fixed, bounded sizes.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Opens a TCP stream to `host:port` through the SOCKS5 proxy at `proxy` (`host:port`).
pub async fn connect(proxy: &str, host: &str, port: u16) -> Result<TcpStream, String> {
    let mut s = TcpStream::connect(proxy).await.map_err(|e| format!("SOCKS5 proxy {proxy}: {e}"))?;
    let _ = s.set_nodelay(true);
    let io = |e: std::io::Error| format!("SOCKS5 proxy {proxy}: {e}");
    s.write_all(&[5, 1, 0]).await.map_err(io)?;
    let mut method = [0u8; 2];
    s.read_exact(&mut method).await.map_err(io)?;
    if method != [5, 0] {
        return Err(format!("SOCKS5 proxy {proxy}: no acceptable authentication method (answered {method:?})"));
    }
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let mut req = vec![5, 1, 0];
    match host.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(ip)) => {
            req.push(1);
            req.extend_from_slice(&ip.octets());
        }
        Ok(std::net::IpAddr::V6(ip)) => {
            req.push(4);
            req.extend_from_slice(&ip.octets());
        }
        Err(_) => {
            let name = host.as_bytes();
            if name.is_empty() || name.len() > 255 {
                return Err(format!("SOCKS5: host name `{host}` cannot be sent"));
            }
            req.push(3);
            req.push(name.len() as u8);
            req.extend_from_slice(name);
        }
    }
    req.extend_from_slice(&port.to_be_bytes());
    s.write_all(&req).await.map_err(io)?;
    let mut head = [0u8; 4];
    s.read_exact(&mut head).await.map_err(io)?;
    if head[0] != 5 {
        return Err(format!("SOCKS5 proxy {proxy}: not a SOCKS5 answer"));
    }
    if head[1] != 0 {
        return Err(format!("SOCKS5 proxy {proxy}: CONNECT to {host}:{port} refused (code {})", head[1]));
    }
    // The bound address: skipped, its length fixed by its type.
    let skip = match head[3] {
        1 => 4 + 2,
        4 => 16 + 2,
        3 => {
            let mut n = [0u8; 1];
            s.read_exact(&mut n).await.map_err(io)?;
            n[0] as usize + 2
        }
        t => return Err(format!("SOCKS5 proxy {proxy}: unknown address type {t}")),
    };
    let mut rest = vec![0u8; skip];
    s.read_exact(&mut rest).await.map_err(io)?;
    Ok(s)
}
