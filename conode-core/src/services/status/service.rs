//! Builds the status map (Generic, Db, Conode) and serves `/Status/Request`. The smallest service:
//! copy it to add one. A request costs no signature and no database scan: the node's identity
//! (with its proofs of possession) is encoded once at start, the database counts its entries.

use super::messages::{server_identity_proto, ServerIdentityProto, Status, StatusRequest, StatusResponse};
use crate::network::PeerMessage;
use crate::services::{stop_service, Service, ServiceContext, ServiceError, StartError};
use prost::Message;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Section → key → value, ordered for stable JSON.
pub type StatusMap = BTreeMap<String, BTreeMap<String, String>>;

/// Go-style duration text (`1h2m3.5s`).
fn go_duration(d: std::time::Duration) -> String {
    let secs = d.as_secs_f64();
    let h = (secs / 3600.0).floor();
    let m = ((secs - h * 3600.0) / 60.0).floor();
    let s = secs - h * 3600.0 - m * 60.0;
    match (h as u64, m as u64) {
        (0, 0) => format!("{s:.3}s"),
        (0, m) => format!("{m}m{s:.3}s"),
        (h, m) => format!("{h}h{m}m{s:.3}s"),
    }
}

/// The current status of the node. It is public (the client port serves it): no filesystem path
/// and no host detail beyond what public.toml publishes (address, description).
pub fn status_map(ctx: &ServiceContext) -> StatusMap {
    let version = env!("CARGO_PKG_VERSION").to_string();
    let mut generic = BTreeMap::new();
    generic.insert("Available_Services".into(), ctx.clients.names().join(","));
    generic.insert("TX_bytes".into(), ctx.network.tx_bytes().to_string());
    generic.insert("Refused_peer_requests".into(), ctx.network.refused_requests().to_string());
    generic.insert("RX_bytes".into(), ctx.network.rx_bytes().to_string());
    generic.insert("Uptime".into(), go_duration(ctx.started.elapsed()));
    generic.insert("Host".into(), ctx.config.address.host.clone());
    generic.insert("Port".into(), ctx.config.address.port.to_string());
    generic.insert("Description".into(), ctx.config.description.clone());
    generic.insert("ConnType".into(), "tls".into());
    generic.insert("ClientScheme".into(), ctx.client_scheme.into());
    generic.insert("Connections".into(), ctx.network.connection_count().to_string());
    generic.insert("Version".into(), version.clone());
    let stats = ctx.storage.stats();
    let mut db = BTreeMap::new();
    db.insert("Size".into(), stats.size_on_disk.to_string());
    db.insert("Trees".into(), stats.trees.join(","));
    db.insert("Entries".into(), stats.entries.to_string());
    let mut conode = BTreeMap::new();
    conode.insert("version".into(), version);
    conode.insert("id".into(), ctx.config.node_id());
    let mut map = StatusMap::new();
    map.insert("Generic".into(), generic);
    map.insert("Db".into(), db);
    map.insert("Conode".into(), conode);
    for (section, fields) in ctx.status.sections() {
        map.insert(section, fields.into_iter().collect());
    }
    map
}

/// Name of the client service.
pub const SERVICE: &str = "Status";

/// Handle on a node's status service.
#[derive(Clone)]
pub struct StatusService {
    ctx: ServiceContext,
    /// The response's identity field (with the PoPs), encoded once at start: a protobuf message
    /// is the concatenation of its fields, so each response is the status fields plus these bytes.
    identity_field: Arc<Vec<u8>>,
}

impl Service for StatusService {
    const NAME: &'static str = SERVICE;
    type Deps = ();

    fn start(ctx: &ServiceContext, _: ()) -> Result<Self, StartError> {
        let ctx = ctx.for_service();
        let identity: ServerIdentityProto = server_identity_proto(&ctx.config.server_identity());
        let identity_field =
            Arc::new(StatusResponse { status: Default::default(), serveridentity: Some(identity) }.encode_to_vec());
        let svc = StatusService { ctx: ctx.clone(), identity_field };
        let s = svc.clone();
        ctx.clients.register(
            SERVICE,
            Arc::new(move |method, body| {
                let s = s.clone();
                Box::pin(async move { s.client_request(method, body) })
            }),
        );
        let peer_ctx = ctx.clone();
        ctx.network.register(
            SERVICE,
            Arc::new(move |msg: PeerMessage| {
                let r = super::roster::handle_peer(&peer_ctx, &msg);
                Box::pin(async move { r })
            }),
        );
        let probe = Arc::new(super::roster::RosterProbe::default());
        let route_ctx = ctx.clone();
        ctx.http.add_router(axum::Router::new().route(
            "/roster/status",
            axum::routing::get(move || {
                let (probe, ctx) = (probe.clone(), route_ctx.clone());
                async move {
                    let v = probe.status(&ctx).await;
                    ([(axum::http::header::CACHE_CONTROL, "no-store")], axum::Json((*v).clone()))
                }
            }),
        ));
        Ok(svc)
    }

    async fn stop(&self) {
        stop_service(&self.ctx, SERVICE).await;
    }
}

impl StatusService {
    /// The node's current status.
    pub fn status(&self) -> StatusMap {
        status_map(&self.ctx)
    }

    fn client_request(&self, method: String, body: Vec<u8>) -> Result<Vec<u8>, ServiceError> {
        if method != "Request" {
            return Err(ServiceError::UnknownMethod { service: SERVICE.into(), method });
        }
        StatusRequest::decode(body.as_slice()).map_err(|e| ServiceError::BadRequest(e.to_string()))?;
        let response = StatusResponse {
            status: self.status().into_iter().map(|(k, v)| (k, Status { field: v.into_iter().collect() })).collect(),
            serveridentity: None,
        };
        let mut out = Vec::with_capacity(response.encoded_len() + self.identity_field.len());
        response.encode(&mut out).map_err(|e| ServiceError::Failed(e.to_string()))?;
        out.extend_from_slice(&self.identity_field);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_bytes_appended_decode_as_the_field() {
        let config = crate::config::NodeConfig::generate(
            crate::config::NodeAddress { host: "127.0.0.1".into(), port: 7770 },
            "status",
        );
        let id = server_identity_proto(&config.server_identity());
        let field = StatusResponse { status: Default::default(), serveridentity: Some(id.clone()) }.encode_to_vec();
        let mut status = std::collections::HashMap::new();
        status.insert("Db".to_string(), Status { field: [("Entries".to_string(), "3".to_string())].into() });
        let mut out = StatusResponse { status: status.clone(), serveridentity: None }.encode_to_vec();
        out.extend_from_slice(&field);
        let back = StatusResponse::decode(out.as_slice()).unwrap();
        assert_eq!(back, StatusResponse { status, serveridentity: Some(id) });
    }

    #[test]
    fn durations_like_go() {
        use std::time::Duration;
        assert_eq!(go_duration(Duration::from_millis(1500)), "1.500s");
        assert_eq!(go_duration(Duration::from_secs(3725)), "1h2m5.000s");
    }
}
