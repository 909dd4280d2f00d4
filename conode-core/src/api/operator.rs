//! Operator pages of the client port: `/metrics` (Prometheus text format 0.0.4, or OpenMetrics when
//! the scraper asks for it) for the monitoring an operator already runs, and the roster status
//! page at `/` (one self-contained HTML file that refreshes itself from `/roster/status`, served by
//! the status service). Neither exposes anything secret, nor a path or host detail beyond what
//! public.toml publishes.

use crate::services::metrics::{
    self as m, counters, gauge, gauges, info, labels, openmetrics_body, process_metrics, to_prometheus_text,
};
use crate::services::ServiceContext;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderMap};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::{Registry, Unit};
use std::sync::Arc;
use std::time::Instant;

/// Content type of the Prometheus text exposition format.
const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";
/// Content type of OpenMetrics.
const OPENMETRICS_TEXT: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The status page: one file, no external assets (works offline, on a phone).
const STATUS_PAGE: &str = include_str!("status_page/index.html");

/// The node's own series, then the process's, then every source the services registered.
fn registry(ctx: &ServiceContext) -> Registry {
    let mut reg = Registry::default();
    info(
        &mut reg,
        "conode_info",
        "Version and identity of this conode.",
        &[("version", crate::VERSION), ("id", &ctx.config.node_id()), ("address", &ctx.config.address.to_string())],
    );
    gauge(&mut reg, "conode_uptime_seconds", "Seconds since the node started.", ctx.started.elapsed().as_secs_f64());
    m::counter(&mut reg, "conode_network_sent_bytes", "Bytes sent to peers.", ctx.network.tx_bytes());
    m::counter(
        &mut reg,
        "conode_network_refused_peer_requests",
        "Peer requests answered with an error because that peer had too many in flight.",
        ctx.network.refused_requests(),
    );
    m::counter(&mut reg, "conode_network_received_bytes", "Bytes received from peers.", ctx.network.rx_bytes());
    gauge(
        &mut reg,
        "conode_network_peer_connections",
        "Live TLS connections to peers.",
        ctx.network.connection_count() as f64,
    );
    let connected = ctx.network.connected_peers();
    let report = ctx.network.health().report();
    let mut peers: Vec<_> = connected.iter().copied().chain(report.iter().map(|r| r.peer)).collect();
    peers.sort_by_key(|p| p.to_hex());
    peers.dedup();
    let peer = |p: &crate::crypto::IdentityPublicKey| labels(&[("peer", &p.to_hex()[..16])]);
    gauges(
        &mut reg,
        "conode_network_peer_connected",
        "1 when this node holds a live connection to the peer, else 0.",
        peers.iter().map(|p| (peer(p), if connected.contains(p) { 1.0 } else { 0.0 })),
    );
    gauges(
        &mut reg,
        "conode_network_peer_up",
        "0 while the transport holds the peer down (refused, unreachable or hung), else 1.",
        report.iter().map(|r| (peer(&r.peer), if r.down.is_some() { 0.0 } else { 1.0 })),
    );
    counters(
        &mut reg,
        "conode_network_dial_failures",
        "Failed dials to each peer.",
        report.iter().map(|r| (peer(&r.peer), r.dial_failures)),
    );
    counters(
        &mut reg,
        "conode_network_request_timeouts",
        "Requests a peer left unanswered on a live connection.",
        report.iter().map(|r| (peer(&r.peer), r.timeouts)),
    );
    gauges(
        &mut reg,
        "conode_network_peer_rtt_seconds",
        "Smoothed ping round-trip time to each peer.",
        report.iter().filter_map(|r| r.rtt.map(|t| (peer(&r.peer), t.as_secs_f64()))),
    );
    gauge(&mut reg, "conode_db_size_bytes", "Size of the node database on disk.", ctx.storage.size_on_disk() as f64);
    process_metrics(&mut reg);
    ctx.metrics.collect_into(&mut reg);
    reg
}

/// The node's metrics in the Prometheus text format 0.0.4.
pub fn metrics_text(ctx: &ServiceContext) -> String {
    to_prometheus_text(&openmetrics_body(&registry(ctx)))
}

/// The node's metrics in the OpenMetrics text format.
pub fn metrics_openmetrics(ctx: &ServiceContext) -> String {
    let mut out = openmetrics_body(&registry(ctx));
    out.push_str("# EOF\n");
    out
}

/// The self-refreshing roster status page.
pub fn status_page() -> &'static str {
    STATUS_PAGE
}

pub(super) fn metrics_response(ctx: &ServiceContext, headers: &HeaderMap) -> Response {
    let openmetrics = headers
        .get(header::ACCEPT)
        .and_then(|a| a.to_str().ok())
        .is_some_and(|a| a.contains("application/openmetrics-text"));
    if openmetrics {
        ([(header::CONTENT_TYPE, OPENMETRICS_TEXT)], metrics_openmetrics(ctx)).into_response()
    } else {
        ([(header::CONTENT_TYPE, PROMETHEUS_TEXT)], metrics_text(ctx)).into_response()
    }
}

pub(super) fn status_page_response() -> Response {
    ([(header::CACHE_CONTROL, "no-cache")], axum::response::Html(STATUS_PAGE)).into_response()
}

/// Client-port series: connections, and requests per route (HTTP routes by their pattern,
/// WebSocket requests by `/<Service>/<Method>` of a registered service).
#[derive(Clone)]
pub(super) struct ClientMetrics {
    requests: m::CounterFamily,
    errors: m::CounterFamily,
    in_flight: Family,
    latency: m::HistogramFamily,
}

type Family = prometheus_client::metrics::family::Family<m::Labels, Gauge<i64, std::sync::atomic::AtomicI64>>;

impl ClientMetrics {
    pub(super) fn new() -> Self {
        Self {
            requests: Default::default(),
            errors: Default::default(),
            in_flight: Default::default(),
            latency: m::seconds_histogram_family(),
        }
    }

    /// Registers the series (and the open-connections gauge read from `open`, the rate limiter's
    /// counts from `rate`) into `ctx.metrics`.
    pub(super) fn register(
        &self,
        ctx: &ServiceContext,
        open: Arc<dyn Fn() -> usize + Send + Sync>,
        rate: Arc<super::rate::RateLimiter>,
    ) {
        let me = self.clone();
        ctx.metrics.add(
            "client_port",
            Arc::new(move |reg: &mut Registry| {
                gauge(reg, "conode_client_connections", "Open client-port connections.", open() as f64);
                m::counter(
                    reg,
                    "conode_client_rate_limited",
                    "Client requests refused because their source was over its rate.",
                    rate.refused(),
                );
                gauge(
                    reg,
                    "conode_client_rate_sources",
                    "Sources with a rate bucket (client port).",
                    rate.sources() as f64,
                );
                reg.register("conode_client_requests", "Client requests per route", me.requests.clone());
                reg.register(
                    "conode_client_request_errors",
                    "Client requests per route that failed (HTTP status >= 400, or an error close)",
                    me.errors.clone(),
                );
                reg.register(
                    "conode_client_requests_in_flight",
                    "Client requests being served, per route",
                    me.in_flight.clone(),
                );
                reg.register_with_unit(
                    "conode_client_request_duration",
                    "Time to answer a client request, per route",
                    Unit::Seconds,
                    me.latency.clone(),
                );
            }),
        );
    }

    /// One request on `route` answered after `elapsed`.
    pub(super) fn record(&self, route: &str, elapsed: std::time::Duration, failed: bool) {
        let l = labels(&[("route", route)]);
        self.requests.get_or_create(&l).inc();
        if failed {
            self.errors.get_or_create(&l).inc();
        }
        self.latency.get_or_create(&l).observe(elapsed.as_secs_f64());
    }

    /// Counts a request in flight on `route` until the guard is dropped.
    pub(super) fn in_flight(&self, route: &str) -> InFlight {
        let l = labels(&[("route", route)]);
        self.in_flight.get_or_create(&l).inc();
        InFlight { family: self.in_flight.clone(), labels: l }
    }

    /// Starts timing a request on `route`; the guard records it when dropped.
    pub(super) fn start(&self, route: &str) -> RequestTimer {
        let l = labels(&[("route", route)]);
        self.in_flight.get_or_create(&l).inc();
        RequestTimer { metrics: self.clone(), labels: l, start: Instant::now(), failed: false }
    }
}

/// A request in flight (see [`ClientMetrics::in_flight`]).
pub(super) struct InFlight {
    family: Family,
    labels: m::Labels,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.family.get_or_create(&self.labels).dec();
    }
}

/// One request being served (see [`ClientMetrics::start`]).
pub(super) struct RequestTimer {
    metrics: ClientMetrics,
    labels: m::Labels,
    start: Instant,
    failed: bool,
}

impl RequestTimer {
    pub(super) fn failed(&mut self) {
        self.failed = true;
    }
}

impl Drop for RequestTimer {
    fn drop(&mut self) {
        let m = &self.metrics;
        m.in_flight.get_or_create(&self.labels).dec();
        m.requests.get_or_create(&self.labels).inc();
        if self.failed {
            m.errors.get_or_create(&self.labels).inc();
        }
        m.latency.get_or_create(&self.labels).observe(self.start.elapsed().as_secs_f64());
    }
}

/// Middleware timing plain HTTP requests by their route pattern (WebSocket upgrades are counted
/// per message in the socket loop instead).
pub(super) async fn track_http(State(metrics): State<ClientMetrics>, req: Request, next: Next) -> Response {
    let is_upgrade = req.headers().contains_key(header::UPGRADE);
    let route = req.extensions().get::<MatchedPath>().map(|p| p.as_str().to_string());
    match route {
        Some(route) if !is_upgrade => {
            let mut timer = metrics.start(&route);
            let resp = next.run(req).await;
            if resp.status().as_u16() >= 400 {
                timer.failed();
            }
            resp
        }
        _ => next.run(req).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_is_self_contained() {
        let page = status_page();
        assert!(page.contains("/roster/status"), "the page reads the JSON endpoint");
        for external in ["http://", "https://", "src=\"//", "href=\"//"] {
            assert!(!page.contains(external), "no external asset ({external})");
        }
        assert!(page.contains("name=\"viewport\""), "readable on a phone");
    }

    #[test]
    fn request_timer_counts_and_tracks_in_flight() {
        let m = ClientMetrics::new();
        let mut t = m.start("/status");
        assert_eq!(m.in_flight.get_or_create(&labels(&[("route", "/status")])).get(), 1);
        t.failed();
        drop(t);
        let l = labels(&[("route", "/status")]);
        assert_eq!(m.in_flight.get_or_create(&l).get(), 0);
        assert_eq!(m.requests.get_or_create(&l).get(), 1);
        assert_eq!(m.errors.get_or_create(&l).get(), 1);
    }
}
