//! HTTP + WebSocket server of the client port. Each WebSocket at `/<Service>/<Method>` carries
//! protobuf requests as binary messages and gets one binary reply each; an error closes the socket
//! with code 4100 and the reason, as the Go cothority does.

use crate::services::{status::status_map, ClientRegistry, ServiceContext, Tasks};
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tracing::{debug, warn};

/// Largest accepted WebSocket message.
pub const MAX_WS_MESSAGE: usize = 16 * 1024 * 1024;
pub use crate::client_api::WS_ERROR_CODE;
use crate::client_api::{ErrorCode, WireError};

#[derive(Clone)]
pub struct ApiState {
    pub ctx: ServiceContext,
    pub clients: ClientRegistry,
}

fn router(state: ApiState) -> Router {
    let extra = state.ctx.http.routers();
    let mut app = Router::new()
        .route("/ok", get(|| async { "ok" }))
        .route("/status", get(status_json))
        .route(
            "/metrics",
            get(|State(s): State<Arc<ApiState>>| async move { super::operator::metrics_response(&s.ctx) }),
        )
        .route("/", get(|State(s): State<Arc<ApiState>>| async move { super::operator::status_page_response(&s.ctx) }))
        .route("/:service/:method", get(websocket))
        .with_state(Arc::new(state));
    for r in extra {
        app = app.merge(r);
    }
    app
}

async fn status_json(State(s): State<Arc<ApiState>>) -> impl IntoResponse {
    Json(status_map(&s.ctx))
}

async fn websocket(
    Path((service, method)): Path<(String, String)>,
    ws: Option<WebSocketUpgrade>,
    State(s): State<Arc<ApiState>>,
) -> Response {
    let Some(ws) = ws else {
        // A plain GET on a two-segment path: a service's HTTP route (e.g. /{chainhash}/info).
        return s
            .ctx
            .http
            .fallback(&service, &method)
            .unwrap_or_else(|| (axum::http::StatusCode::NOT_FOUND, "not found").into_response());
    };
    let Some(handler) = s.clients.get(&service) else {
        return (axum::http::StatusCode::NOT_FOUND, format!("no service `{service}` on this node")).into_response();
    };
    ws.max_message_size(MAX_WS_MESSAGE).on_upgrade(move |socket| serve_socket(socket, handler, service, method))
}

async fn serve_socket(mut socket: WebSocket, handler: crate::services::ClientHandler, service: String, method: String) {
    while let Some(msg) = socket.recv().await {
        let body = match msg {
            Ok(Message::Binary(b)) => b.to_vec(),
            Ok(Message::Close(_)) | Err(_) => break,
            Ok(Message::Ping(_)) | Ok(Message::Pong(_)) => continue,
            Ok(Message::Text(_)) => {
                let e = WireError::new(ErrorCode::BadRequest, "expected a binary protobuf message");
                let _ = close_with(&mut socket, &e).await;
                break;
            }
        };
        match handler(method.clone(), body).await {
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
    let app = router(state);
    let acceptor = tls.map(TlsAcceptor::from);
    let connections = connections.clone();
    accepting.spawn(async move {
        loop {
            let (tcp, remote) = match listener.accept().await {
                Ok(a) => a,
                Err(e) => {
                    warn!(error = %e, "client port: accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let _ = tcp.set_nodelay(true);
            let app = app.clone();
            let acceptor = acceptor.clone();
            connections.spawn(async move {
                let service = TowerToHyperService::new(app);
                let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                let served = async {
                    match acceptor {
                        Some(acc) => match tokio::time::timeout(Duration::from_secs(10), acc.accept(tcp)).await {
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
                if let Err(e) = served.await {
                    debug!(%remote, error = %e, "client connection ended with error");
                }
            });
        }
    });
}
