//! How commands report, the same way everywhere: a command's result goes to stdout, as text for
//! people or, with `--json`, as one JSON document for scripts; progress, warnings and errors go to
//! stderr (errors once, by `main`). Log lines have colour only when stderr is a terminal. Also the
//! hints for the usual mistakes: no config yet, a client pointed at a node port.

use anyhow::anyhow;
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

static JSON: AtomicBool = AtomicBool::new(false);

/// Switches every report to JSON (`--json`).
pub fn set_json(on: bool) {
    JSON.store(on, Ordering::Relaxed);
}

/// Whether results are printed as JSON.
pub fn json() -> bool {
    JSON.load(Ordering::Relaxed)
}

/// Prints a command's result: `value` with `--json`, else the text `text` makes.
pub fn report(value: serde_json::Value, text: impl FnOnce() -> String) {
    if json() {
        outln!("{value}");
    } else {
        outln!("{}", text());
    }
}

static STDOUT_GONE: AtomicBool = AtomicBool::new(false);
/// A failure to write the result other than its reader going away (a full disk, an I/O error).
static STDOUT_FAILED: std::sync::Mutex<Option<String>> = std::sync::Mutex::new(None);

/// Writes one line of a command's result to stdout (`outln!`). A reader that went away (`conode
/// proposals | head -1`) is no error: the rest of the result is dropped quietly, where `println!`
/// panics, and the command goes on to its end (a server still stops cleanly, an append still
/// finishes). Any other failure (a full disk) drops the rest too, and makes the command fail at
/// its end ([`stdout_failure`]). Returns whether stdout is still read: commands that only print (`watch`) end when
/// it is not.
pub fn line(args: std::fmt::Arguments<'_>) -> bool {
    if STDOUT_GONE.load(Ordering::Relaxed) {
        return false;
    }
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_fmt(args).and_then(|()| out.write_all(b"\n")).and_then(|()| out.flush()) {
        STDOUT_GONE.store(true, Ordering::Relaxed);
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            if let Ok(mut failed) = STDOUT_FAILED.lock() {
                failed.get_or_insert_with(|| e.to_string());
            }
        }
        return false;
    }
    true
}

/// The failure to write the result to stdout, if there was one besides its reader going away: the
/// command fails with it, its result being lost.
pub fn stdout_failure() -> Option<anyhow::Error> {
    let failed = STDOUT_FAILED.lock().ok()?.clone()?;
    Some(anyhow!("writing the result to stdout: {failed}"))
}

/// An error with its causes, each once: `a: b: c`, leaving out a cause whose text the message
/// before it already holds (library errors often repeat their source in their own text).
pub fn error_text(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

/// A progress or diagnostic line (stderr, so stdout stays the result).
pub fn progress(line: impl std::fmt::Display) {
    eprintln!("{line}");
}

/// Colour in log lines: only on a terminal, and never with `NO_COLOR` set.
pub fn log_colour() -> bool {
    use std::io::IsTerminal;
    std::io::stderr().is_terminal() && !matches!(std::env::var_os("NO_COLOR"), Some(v) if !v.is_empty())
}

/// The error of a config file that does not exist: the default one asks for `conode setup`.
pub fn missing_config(path: &Path, explicit: bool) -> anyhow::Error {
    if explicit {
        anyhow!(
            "{}: no such file (create a config with `conode setup --folder DIR`, then pass -c DIR/private.toml)",
            path.display()
        )
    } else {
        anyhow!(
            "no conode config at the default place {}: run `conode setup` first (or pass -c PATH/private.toml)",
            path.display()
        )
    }
}

/// `host:port` of a plain `ws://` / `http://` URL (no hint for TLS URLs: a node port speaks TLS too).
fn plain_host_port(url: &str) -> Option<(String, u16)> {
    let rest = url.strip_prefix("ws://").or_else(|| url.strip_prefix("http://"))?;
    let authority = rest.split('/').next()?;
    let (host, port) = authority.rsplit_once(':')?;
    Some((host.to_string(), port.parse().ok()?))
}

/// The first bytes a server answers to a plain HTTP request (empty when it closes at once).
fn http_probe(host: &str, port: u16, path: &str) -> Option<Vec<u8>> {
    let addr = (host.trim_start_matches('[').trim_end_matches(']'), port).to_socket_addrs().ok()?.next()?;
    let mut tcp = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    tcp.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    tcp.set_write_timeout(Some(Duration::from_secs(2))).ok()?;
    tcp.write_all(format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes()).ok()?;
    let mut buf = Vec::new();
    let _ = tcp.take(4096).read_to_end(&mut buf);
    Some(buf)
}

/// When `url` is a conode's node port rather than its client port, says so (and which URL to use).
pub fn node_port_hint(url: &str) -> Option<String> {
    let (host, port) = plain_host_port(url)?;
    let answer = http_probe(&host, port, "/ok")?;
    if answer.starts_with(b"HTTP/") {
        return None;
    }
    // Not HTTP (a TLS alert, or closed): a node port if the next port is a client port.
    let next = port.checked_add(1)?;
    let client = http_probe(&host, next, "/ok").unwrap_or_default();
    let ok = client.starts_with(b"HTTP/1.1 200") && client.ends_with(b"ok");
    Some(if ok {
        format!(
            "{host}:{port} is a conode's node port (members talk TLS there); clients use the client port, the next one: ws://{host}:{next}"
        )
    } else {
        format!(
            "{host}:{port} does not speak HTTP/WebSocket; if it is a conode's node port, its client port is the next one (ws://{host}:{next})"
        )
    })
}

/// Adds the node-port hint to the error of a call to `url`, when it applies.
pub fn explain(url: &str, e: anyhow::Error) -> anyhow::Error {
    match node_port_hint(url) {
        Some(hint) => e.context(hint),
        None => e,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn causes_print_once() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "No such file");
        let e = anyhow::Error::new(io).context("x.toml: cannot read: No such file").context("loading the roster");
        assert_eq!(error_text(&e), "loading the roster: x.toml: cannot read: No such file");
    }

    #[test]
    fn plain_urls_only() {
        assert_eq!(plain_host_port("ws://127.0.0.1:7771"), Some(("127.0.0.1".into(), 7771)));
        assert_eq!(plain_host_port("http://[::1]:80/x"), Some(("[::1]".into(), 80)));
        assert_eq!(plain_host_port("wss://h:443"), None);
    }

    #[test]
    fn missing_default_config_names_setup() {
        let e = missing_config(Path::new("/x/private.toml"), false).to_string();
        assert!(e.contains("conode setup") && e.contains("/x/private.toml"), "{e}");
    }
}
