//! Operator pages of the client port: `/metrics` in the Prometheus text format (scraped by the
//! monitoring an operator already runs) and a human status page at `/`. Both read the same live
//! numbers as `/status`; neither exposes anything secret.

use crate::services::status::status_map;
use crate::services::{MetricsWriter, ServiceContext};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use std::fmt::Write;

/// Content type of the Prometheus text exposition format.
const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The node's metrics in the Prometheus text format: the node's own series, then every source the
/// services registered.
pub fn metrics_text(ctx: &ServiceContext) -> String {
    let mut w = MetricsWriter::default();
    w.info(
        "conode_info",
        "Version and identity of this conode.",
        &[("version", crate::VERSION), ("id", &ctx.config.node_id()), ("address", &ctx.config.address.to_string())],
    );
    w.metric("conode_uptime_seconds", "gauge", "Seconds since the node started.", ctx.started.elapsed().as_secs_f64());
    w.metric("conode_network_sent_bytes_total", "counter", "Bytes sent to peers.", ctx.network.tx_bytes());
    w.metric("conode_network_received_bytes_total", "counter", "Bytes received from peers.", ctx.network.rx_bytes());
    w.metric(
        "conode_network_peer_connections",
        "gauge",
        "Live TLS connections to peers.",
        ctx.network.connection_count(),
    );
    w.metric("conode_db_size_bytes", "gauge", "Size of the node database on disk.", ctx.storage.size_on_disk());
    let mut out = w.finish();
    out.push_str(&ctx.metrics.render());
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
        assert_eq!(html("<a href=\"x\">&</a>"), "&lt;a href=&quot;x&quot;&gt;&amp;&lt;/a&gt;");
    }
}
