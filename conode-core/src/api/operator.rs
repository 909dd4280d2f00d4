//! Operator pages of the client port: `/metrics` in the Prometheus text format (scraped by the
//! monitoring an operator already runs) and a human status page at `/`. Both read the same live
//! numbers as `/status`; neither exposes anything secret.

use crate::services::beacon::BeaconService;
use crate::services::status::status_map;
use crate::services::ServiceContext;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use std::fmt::Write;

/// Content type of the Prometheus text exposition format.
const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Escapes a Prometheus label value.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

fn metric(out: &mut String, name: &str, kind: &str, help: &str, value: impl std::fmt::Display) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}");
}

/// The node's metrics in the Prometheus text format.
pub fn metrics_text(ctx: &ServiceContext) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# HELP conode_info Version and identity of this conode.\n# TYPE conode_info gauge\n\
         conode_info{{version=\"{}\",id=\"{}\",address=\"{}\"}} 1",
        label(crate::VERSION),
        label(&ctx.config.node_id()),
        label(&ctx.config.address.to_string()),
    );
    metric(
        &mut out,
        "conode_uptime_seconds",
        "gauge",
        "Seconds since the node started.",
        ctx.started.elapsed().as_secs_f64(),
    );
    metric(&mut out, "conode_network_sent_bytes_total", "counter", "Bytes sent to peers.", ctx.network.tx_bytes());
    metric(
        &mut out,
        "conode_network_received_bytes_total",
        "counter",
        "Bytes received from peers.",
        ctx.network.rx_bytes(),
    );
    metric(
        &mut out,
        "conode_network_peer_connections",
        "gauge",
        "Live TLS connections to peers.",
        ctx.network.connection_count(),
    );
    metric(&mut out, "conode_db_size_bytes", "gauge", "Size of the node database on disk.", ctx.storage.size_on_disk());
    if let Some(beacon) = BeaconService::of(ctx) {
        let s = beacon.stats();
        metric(&mut out, "conode_beacon_latest_round", "gauge", "Newest beacon round stored.", s.latest_round);
        metric(
            &mut out,
            "conode_beacon_recovered_total",
            "counter",
            "Beacons recovered here from partials.",
            s.recovered,
        );
        metric(
            &mut out,
            "conode_beacon_received_total",
            "counter",
            "Verified beacons received from peers.",
            s.received,
        );
        metric(&mut out, "conode_beacon_partials_received_total", "counter", "Partials received.", s.partials_received);
        metric(&mut out, "conode_beacon_invalid_partials_total", "counter", "Partials rejected.", s.invalid_partials);
    }
    out
}

/// Escapes text for HTML.
fn html(v: &str) -> String {
    v.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// A small HTML page with the status map.
pub fn status_page(ctx: &ServiceContext) -> String {
    let mut body = String::new();
    for (section, fields) in status_map(ctx) {
        let _ = write!(body, "<h2>{}</h2><table>", html(&section));
        for (k, v) in fields {
            let _ = write!(body, "<tr><th>{}</th><td>{}</td></tr>", html(&k), html(&v));
        }
        body.push_str("</table>");
    }
    format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>conode {id}</title><style>\
         body{{font-family:sans-serif;margin:2em}}th{{text-align:left;padding-right:1em}}</style></head>\
         <body><h1>conode {desc}</h1><p>{addr} · id {id}</p>{body}\
         <p><a href=\"/metrics\">metrics</a> · <a href=\"/status\">status JSON</a></p></body></html>",
        id = html(&ctx.config.node_id()[..16]),
        desc = html(&ctx.config.description),
        addr = html(&ctx.config.address.to_string()),
    )
}

pub(super) fn metrics_response(ctx: &ServiceContext) -> Response {
    ([(header::CONTENT_TYPE, PROMETHEUS_TEXT)], metrics_text(ctx)).into_response()
}

pub(super) fn status_page_response(ctx: &ServiceContext) -> Response {
    axum::response::Html(status_page(ctx)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping() {
        assert_eq!(label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
        assert_eq!(html("<a href=\"x\">&</a>"), "&lt;a href=&quot;x&quot;&gt;&amp;&lt;/a&gt;");
    }
}
