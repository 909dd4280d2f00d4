//! A small client of the client port: one protobuf request over WebSocket, and JSON over HTTP.
//! Used by `conode check`, the bindings and tests.

use futures_util::{SinkExt, StreamExt};
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{url}: cannot connect: {reason}")]
    Connect { url: String, reason: String },
    #[error("{url}: timed out after {after:?}")]
    Timeout { url: String, after: Duration },
    #[error("{url}: service error: {reason}")]
    Service { url: String, reason: String },
    #[error("{url}: protocol error: {reason}")]
    Protocol { url: String, reason: String },
}

/// Sends one request to `base/<service>/<method>` (base like `ws://host:port`) and returns the reply.
pub async fn call(
    base: &str,
    service: &str,
    method: &str,
    body: Vec<u8>,
    timeout: Duration,
) -> Result<Vec<u8>, ClientError> {
    let url = format!("{}/{service}/{method}", base.trim_end_matches('/'));
    match tokio::time::timeout(timeout, call_inner(&url, body)).await {
        Ok(r) => r,
        Err(_) => Err(ClientError::Timeout { url, after: timeout }),
    }
}

async fn call_inner(url: &str, body: Vec<u8>) -> Result<Vec<u8>, ClientError> {
    let (mut ws, _) = tokio_tungstenite::connect_async(url)
        .await
        .map_err(|e| ClientError::Connect { url: url.to_string(), reason: e.to_string() })?;
    let proto = |reason: String| ClientError::Protocol { url: url.to_string(), reason };
    ws.send(Message::Binary(body)).await.map_err(|e| proto(e.to_string()))?;
    while let Some(msg) = ws.next().await {
        match msg.map_err(|e| proto(e.to_string()))? {
            Message::Binary(b) => {
                let _ = ws.close(None).await;
                return Ok(b.to_vec());
            }
            Message::Close(Some(frame)) => {
                return Err(ClientError::Service { url: url.to_string(), reason: frame.reason.to_string() })
            }
            Message::Close(None) => return Err(proto("closed without reply".into())),
            _ => continue,
        }
    }
    Err(proto("closed without reply".into()))
}
