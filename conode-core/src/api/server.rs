//! HTTP + WebSocket server of the client port. Each WebSocket at `/<Service>/<Method>` carries
//! protobuf requests as binary messages and gets one binary reply each; an error closes the socket
//! with code 4100 and the reason, as the Go cothority does. The limits of `[Limits]` apply: header
//! and idle deadlines, connection caps (see `edge`), the largest WebSocket message (close 1009),
//! and requests per source (see `rate`: 429, or the `unavailable` close with `retry_after_ms`).

use super::edge;
use super::operator::ClientMetrics;
use super::rate::{ceil_ms, over_rate, request_source, RateLimiter, Source};
use crate::services::{status::status_map, ClientRegistry, ServiceContext, Tasks};
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tracing::{debug, warn};

/// WebSocket close code of a message above the limit ("message too big", RFC 6455).
pub const WS_TOO_BIG: u16 = 1009;
pub use crate::client_api::WS_ERROR_CODE;
use crate::client_api::{ErrorCode, WireError};

#[derive(Clone)]
pub struct ApiState {
    pub ctx: ServiceContext,
    pub clients: ClientRegistry,
}

fn router(state: ApiState, metrics: ClientMetrics) -> Router {
    let extra = state.ctx.http.routers();
    let mut app = Router::new()
        .route("/ok", get(|| async { "ok" }))
        .route("/status", get(status_json))
        .route(
            "/metrics",
            get(|State(s): State<Arc<ApiState>>, headers: axum::http::HeaderMap| async move {
                super::operator::metrics_response(&s.ctx, &headers)
            }),
        )
        .route("/", get(|| async { super::operator::status_page_response() }))
        .route("/:service/:method", get(websocket))
        .layer(axum::Extension(metrics.clone()))
        .with_state(Arc::new(state));
    for r in extra {
        app = app.merge(r);
    }
    app.route_layer(axum::middleware::from_fn_with_state(metrics, super::operator::track_http))
}

async fn status_json(State(s): State<Arc<ApiState>>) -> impl IntoResponse {
    Json(status_map(&s.ctx))
}

/// Takes a token of the request's source (set per connection at accept) for every HTTP request,
/// WebSocket upgrades included; without one the answer is 429 with `Retry-After` (seconds).
async fn limit_rate(
    State(limiter): State<Arc<RateLimiter>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let Some(Source(ip)) = req.extensions().get::<Source>().copied() else { return next.run(req).await };
    match limiter.take(ip) {
        Ok(()) => next.run(req).await,
        Err(wait) => {
            debug!(source = %ip, ?wait, "client port: request over the rate limit");
            let secs = ceil_ms(wait).div_ceil(1000);
            let body = format!("{} (Limits.ClientRequestsPerSecond)", over_rate(ip, wait, "requests"));
            (axum::http::StatusCode::TOO_MANY_REQUESTS, [(axum::http::header::RETRY_AFTER, secs.to_string())], body)
                .into_response()
        }
    }
}

async fn websocket(
    Path((service, method)): Path<(String, String)>,
    ws: Option<WebSocketUpgrade>,
    State(s): State<Arc<ApiState>>,
    axum::Extension(metrics): axum::Extension<ClientMetrics>,
    source: Option<axum::Extension<Source>>,
    limiter: Option<axum::Extension<Arc<RateLimiter>>>,
) -> Response {
    let Some(ws) = ws else {
        // A plain GET on a two-segment path: a service's HTTP route (e.g. /{chainhash}/info).
        return s
            .ctx
            .http
            .fallback(&service, &method)
            .unwrap_or_else(|| (axum::http::StatusCode::NOT_FOUND, "not found").into_response());
    };
    if let Some(handler) = s.ctx.streams.get(&service, &method) {
        let (max, idle) = (s.ctx.config.limits.client_max_message, s.ctx.config.limits.client_idle_timeout);
        let stop = s.ctx.tasks.token().clone();
        return ws
            .max_message_size(max)
            .max_frame_size(max)
            .on_upgrade(move |socket| super::subscribe::serve(socket, handler, idle, stop));
    }
    let Some(handler) = s.clients.get(&service) else {
        return (axum::http::StatusCode::NOT_FOUND, format!("no service `{service}` on this node")).into_response();
    };
    let limits = &s.ctx.config.limits;
    let (max, idle) = (limits.client_max_message, limits.client_idle_timeout);
    let rate = limiter.zip(source).map(|(axum::Extension(limiter), axum::Extension(Source(ip)))| (limiter, ip));
    ws.max_message_size(max)
        .max_frame_size(max)
        .on_upgrade(move |socket| serve_socket(socket, handler, service, method, idle, metrics, rate))
}

/// Whether a WebSocket read failed because a message or frame exceeded the limit.
fn too_big(e: &axum::Error) -> bool {
    use std::error::Error;
    let mut source: Option<&(dyn Error + 'static)> = e.source();
    while let Some(err) = source {
        if let Some(tokio_tungstenite::tungstenite::Error::Capacity(_)) = err.downcast_ref() {
            return true;
        }
        source = err.source();
    }
    false
}

async fn serve_socket(
    mut socket: WebSocket,
    handler: crate::services::ClientHandler,
    service: String,
    method: String,
    idle: Duration,
    metrics: ClientMetrics,
    rate: Option<(Arc<RateLimiter>, std::net::IpAddr)>,
) {
    loop {
        let msg = match tokio::time::timeout(idle, socket.recv()).await {
            Ok(Some(m)) => m,
            Ok(None) => break,
            Err(_) => {
                debug!(%service, %method, ?idle, "closing idle WebSocket");
                let close = CloseFrame { code: axum::extract::ws::close_code::NORMAL, reason: "idle".into() };
                let _ = socket.send(Message::Close(Some(close))).await;
                break;
            }
        };
        let body = match msg {
            Ok(Message::Binary(b)) => b.to_vec(),
            Err(e) if too_big(&e) => {
                debug!(%service, %method, error = %e, "WebSocket message above the limit");
                let close = CloseFrame { code: WS_TOO_BIG, reason: "message too big".into() };
                let _ = socket.send(Message::Close(Some(close))).await;
                linger(&mut socket).await;
                break;
            }
            Ok(Message::Close(_)) | Err(_) => break,
            Ok(Message::Ping(_)) | Ok(Message::Pong(_)) => continue,
            Ok(Message::Text(_)) => {
                let e = WireError::new(ErrorCode::BadRequest, "expected a binary protobuf message");
                let _ = close_with(&mut socket, &e).await;
                break;
            }
        };
        if let Some((ip, Err(wait))) = rate.as_ref().map(|(limiter, ip)| (*ip, limiter.take(*ip))) {
            debug!(%service, %method, source = %ip, ?wait, "client port: WebSocket message over the rate limit");
            let _ = close_with(&mut socket, &over_rate(ip, wait, "requests").to_wire()).await;
            // Messages the client sent meanwhile are read and dropped: the close reaches it.
            linger(&mut socket).await;
            break;
        }
        // In flight per service; counts and latency per method, once the service knew it (method
        // names are the client's: unknown ones share one label).
        let flight = metrics.in_flight(&format!("/{service}/*"));
        let start = std::time::Instant::now();
        let call = handler(method.clone(), body);
        let result = match &rate {
            Some((_, ip)) => super::rate::with_source(*ip, call).await,
            None => call.await,
        };
        drop(flight);
        let known = !matches!(result, Err(crate::services::ServiceError::UnknownMethod { .. }));
        let route = if known { format!("/{service}/{method}") } else { format!("/{service}/?") };
        metrics.record(&route, start.elapsed(), result.is_err());
        match result {
            Ok(reply) => {
                if socket.send(Message::Binary(reply)).await.is_err() {
                    break;
                }
            }
            Err(e) => {
                debug!(%service, %method, error = %e, "client request failed");
                let _ = close_with(&mut socket, &e.to_wire()).await;
                break;
            }
        }
    }
}

/// After closing because of an oversized message (or a message over the rate), reads and drops
/// what the client still sends for a moment, so the close frame reaches it instead of a reset (the
/// rest of the message, or more messages, may be in flight).
async fn linger(socket: &mut WebSocket) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    for _ in 0..4096 {
        match tokio::time::timeout_at(deadline, socket.recv()).await {
            Ok(Some(Ok(Message::Close(_)))) | Ok(None) | Err(_) => return,
            Ok(Some(Err(e))) if !too_big(&e) && is_closed(&e) => return,
            Ok(Some(_)) => {}
        }
    }
}

fn is_closed(e: &axum::Error) -> bool {
    use std::error::Error;
    use tokio_tungstenite::tungstenite::Error as WsError;
    let mut source: Option<&(dyn Error + 'static)> = e.source();
    while let Some(err) = source {
        if let Some(WsError::ConnectionClosed | WsError::AlreadyClosed | WsError::Io(_)) = err.downcast_ref() {
            return true;
        }
        source = err.source();
    }
    false
}

async fn close_with(socket: &mut WebSocket, error: &WireError) -> Result<(), axum::Error> {
    let reason = error.to_close_reason();
    socket.send(Message::Close(Some(CloseFrame { code: WS_ERROR_CODE, reason: reason.into() }))).await
}

/// Serves the client port on `listener` (with TLS when `tls` is set): accepting runs in
/// `accepting`, connections in `connections`; each stops when its set is cancelled.
pub fn serve(
    listener: TcpListener,
    state: ApiState,
    tls: Option<Arc<rustls::ServerConfig>>,
    accepting: &Tasks,
    connections: &Tasks,
) {
    let limits = state.ctx.config.limits.clone();
    let metrics = ClientMetrics::new();
    let ctx = state.ctx.clone();
    let rate = Arc::new(RateLimiter::new(
        limits.client_requests_per_second,
        limits.client_request_burst,
        limits.client_rate_limit_loopback,
    ));
    let app = router(state, metrics.clone())
        .layer(axum::Extension(rate.clone()))
        .layer(axum::middleware::from_fn_with_state(rate.clone(), limit_rate));
    let acceptor = tls.map(TlsAcceptor::from);
    let connections = connections.clone();
    // Keep file descriptors for the database, the node port and its peers.
    let files = edge::raise_open_files(limits.max_open_files);
    let max_total = match files {
        Some(f) if (f as usize).saturating_sub(256) < limits.client_max_connections => {
            let capped = (f as usize).saturating_sub(256).max(16);
            warn!(
                configured = limits.client_max_connections,
                capped,
                open_files = f,
                "client port: connection cap lowered to fit the open-files limit"
            );
            capped
        }
        _ => limits.client_max_connections,
    };
    let limiter = edge::ConnLimiter::new(max_total, limits.client_max_connections_per_address);
    let open = limiter.clone();
    metrics.register(&ctx, Arc::new(move || open.open()), rate);
    accepting.spawn(async move {
        let mut backoff = edge::AcceptBackoff::new();
        loop {
            let (tcp, remote) = match listener.accept().await {
                Ok(a) => {
                    backoff.succeeded();
                    a
                }
                Err(e) => {
                    let (wait, log) = backoff.failed();
                    if log {
                        warn!(error = %e, ?wait, "client port: accept failed, backing off");
                    }
                    tokio::time::sleep(wait).await;
                    continue;
                }
            };
            let guard = match limiter.try_admit(remote.ip()) {
                Ok(g) => g,
                Err(why) => {
                    debug!(%remote, ?why, open = limiter.open(), "client port: connection refused at the cap");
                    continue;
                }
            };
            let _ = tcp.set_nodelay(true);
            let app = app.clone();
            let acceptor = acceptor.clone();
            let limits = limits.clone();
            connections.spawn(async move {
                let activity = edge::Activity::new();
                let tcp = edge::Tracked::new(tcp, activity.clone(), guard);
                let ip = remote.ip();
                let app = tower::ServiceExt::map_request(app, move |mut req: axum::http::Request<_>| {
                    let source = request_source(ip, req.headers());
                    req.extensions_mut().insert(Source(source));
                    req
                });
                let service = TowerToHyperService::new(app);
                let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                builder.http1().timer(TokioTimer::new()).header_read_timeout(limits.client_header_timeout);
                builder.http2().timer(TokioTimer::new());
                let served = async {
                    match acceptor {
                        Some(acc) => match tokio::time::timeout(limits.client_header_timeout, acc.accept(tcp)).await {
                            Ok(Ok(tls)) => builder.serve_connection_with_upgrades(TokioIo::new(tls), service).await,
                            Ok(Err(e)) => {
                                debug!(%remote, error = %e, "client port: TLS handshake failed");
                                Ok(())
                            }
                            Err(_) => Ok(()),
                        },
                        None => builder.serve_connection_with_upgrades(TokioIo::new(tcp), service).await,
                    }
                };
                tokio::select! {
                    r = served => {
                        if let Err(e) = r {
                            debug!(%remote, error = %e, "client connection ended with error");
                        }
                    }
                    _ = activity.idle(limits.client_idle_timeout) => {
                        debug!(%remote, "client port: idle connection closed");
                    }
                }
            });
        }
    });
}
