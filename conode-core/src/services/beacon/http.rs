//! drand's HTTP API on the client port, with drand's JSON shapes and cache headers:
//! `/info`, `/public/latest`, `/public/{round}`, `/chains`, `/health`, and the same under
//! `/{chainhash}/…`. The two-segment `/{chainhash}/info` and `/{chainhash}/health` collide with the
//! `/<Service>/<Method>` WebSocket route, so they are answered by the client port's fallback.
//!
//! Headers follow drand's `http/server.go`: every answer carries `Server`, `Content-Type:
//! application/json` and `Access-Control-Allow-Origin: *`; past rounds and the chain info are
//! `public, max-age=604800, immutable` with `Expires` one week ahead and `Last-Modified` the round
//! (genesis) time; `/public/latest` expires when the next round is due; a round more than a period
//! in the future is a 404 with `max-age` until it is due; a round about to be produced is waited for.

use super::{beacon_json, info_json, unix_now_ms, BeaconService};
use crate::services::HttpFallback;
use axum::extract::Path;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use std::sync::Arc;
use std::time::Duration;

const IMMUTABLE: &str = "public, max-age=604800, immutable";
const WEEK_SECS: i64 = 7 * 24 * 3600;

/// RFC 7231 IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`) of a UNIX time.
pub fn http_date(unix: i64) -> String {
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    const WD: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MO: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    format!(
        "{}, {:02} {} {:04} {:02}:{:02}:{:02} GMT",
        WD[days.rem_euclid(7) as usize],
        d,
        MO[(m - 1) as usize],
        y,
        secs / 3600,
        (secs % 3600) / 60,
        secs % 60
    )
}

fn respond(status: StatusCode, body: String, headers: &[(header::HeaderName, String)]) -> Response {
    let mut r = (status, body).into_response();
    let h = r.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&format!("conode/{}", crate::VERSION)) {
        h.insert(header::SERVER, v);
    }
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    for (k, v) in headers {
        if let Ok(v) = HeaderValue::from_str(v) {
            h.insert(k.clone(), v);
        }
    }
    r
}

fn not_found(msg: &str) -> Response {
    respond(StatusCode::NOT_FOUND, serde_json::json!({ "error": msg }).to_string(), &[])
}

/// `Some(404)` when `ch` is given and is not this node's chain hash (hex), `Some(400)` if not hex.
fn check_chain(svc: &BeaconService, ch: Option<&str>) -> Option<Response> {
    let ch = ch?;
    if hex::decode(ch).is_err() {
        return Some(respond(
            StatusCode::BAD_REQUEST,
            serde_json::json!({ "error": format!("unable to decode chain hash {ch}") }).to_string(),
            &[],
        ));
    }
    match svc.chain_info() {
        Some(info) if info.hash_hex().eq_ignore_ascii_case(ch) => None,
        _ => Some(not_found("unknown chain hash")),
    }
}

fn info(svc: &BeaconService, ch: Option<&str>) -> Response {
    if let Some(r) = check_chain(svc, ch) {
        return r;
    }
    let Some(info) = svc.chain_info() else { return not_found("group not found") };
    respond(
        StatusCode::OK,
        info_json(&info),
        &[
            (header::CACHE_CONTROL, IMMUTABLE.into()),
            (header::EXPIRES, http_date(unix_now_ms() / 1000 + WEEK_SECS)),
            (header::LAST_MODIFIED, http_date(info.genesis_time)),
        ],
    )
}

fn latest(svc: &BeaconService, ch: Option<&str>) -> Response {
    if let Some(r) = check_chain(svc, ch) {
        return r;
    }
    let (Some(info), Some(b)) = (svc.chain_info(), svc.latest()) else { return not_found("no beacon yet") };
    let now_ms = unix_now_ms();
    let round_time = info.time_of_round(b.round).unwrap_or(info.genesis_time);
    let next_ms = info.time_of_round(b.round + 1).map(|t| t.saturating_mul(1000)).unwrap_or(i64::MAX);
    let next_ms = if next_ms > now_ms { next_ms } else { now_ms + i64::from(info.period) * 500 };
    let remaining = next_ms - now_ms;
    let mut headers =
        vec![(header::EXPIRES, http_date(next_ms.div_euclid(1000))), (header::LAST_MODIFIED, http_date(round_time))];
    if remaining > 0 && remaining < i64::from(info.period) * 1000 {
        headers.push((header::CACHE_CONTROL, format!("max-age={}, public", (remaining + 999) / 1000)));
    }
    respond(StatusCode::OK, beacon_json(&b), &headers)
}

async fn round(svc: BeaconService, ch: Option<String>, round: String) -> Response {
    if let Some(r) = check_chain(&svc, ch.as_deref()) {
        return r;
    }
    let Ok(n) = round.parse::<u64>() else {
        return respond(
            StatusCode::BAD_REQUEST,
            serde_json::json!({ "error": "round is not a number" }).to_string(),
            &[],
        );
    };
    if n == 0 {
        return latest(&svc, ch.as_deref());
    }
    let Some(info) = svc.chain_info() else { return not_found("group not found") };
    let now_ms = unix_now_ms();
    let Some(expected) = info.time_of_round(n) else { return not_found("round out of range") };
    let period_ms = i64::from(info.period) * 1000;
    // Saturating: a round far in the future has a time near i64::MAX seconds.
    let expected_ms = expected.saturating_mul(1000);
    if expected_ms > now_ms.saturating_add(period_ms) {
        let secs = expected_ms.saturating_sub(now_ms) / 1000;
        let mut r =
            respond(StatusCode::NOT_FOUND, serde_json::json!({ "error": "round in the future" }).to_string(), &[]);
        if let Ok(v) = HeaderValue::from_str(&format!("public, must-revalidate, max-age={secs}")) {
            r.headers_mut().insert(header::CACHE_CONTROL, v);
        }
        return r;
    }
    let b = match svc.get(n) {
        Some(b) => Some(b),
        None => {
            // About to be produced (or being caught up): wait for it a little, as drand does.
            let wait = (expected_ms - now_ms).max(0) + period_ms.min(5000) + 500;
            svc.wait_for_round(n, Duration::from_millis(wait as u64)).await
        }
    };
    match b {
        Some(b) => respond(
            StatusCode::OK,
            beacon_json(&b),
            &[
                (header::CACHE_CONTROL, IMMUTABLE.into()),
                (header::EXPIRES, http_date(unix_now_ms() / 1000 + WEEK_SECS)),
                (header::LAST_MODIFIED, http_date(expected)),
            ],
        ),
        None => {
            let mut r = not_found("round not available yet");
            r.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("must-revalidate, no-cache, max-age=0"));
            r
        }
    }
}

fn chains(svc: &BeaconService) -> Response {
    let list: Vec<String> = svc.chain_info().map(|i| i.hash_hex()).into_iter().collect();
    respond(
        StatusCode::OK,
        serde_json::to_string(&list).unwrap_or_else(|_| "[]".into()),
        &[(header::CACHE_CONTROL, "max-age=300".into())],
    )
}

fn health(svc: &BeaconService, ch: Option<&str>) -> Response {
    if let Some(r) = check_chain(svc, ch) {
        return r;
    }
    let headers = [(header::CACHE_CONTROL, "no-cache".to_string())];
    let Some(info) = svc.chain_info() else {
        return respond(StatusCode::SERVICE_UNAVAILABLE, r#"{"current":0,"expected":0}"#.into(), &headers);
    };
    let current = svc.stats().latest_round;
    let expected = info.current_round(unix_now_ms().div_euclid(1000));
    let ok = current == expected || current + 1 == expected;
    respond(
        if ok { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE },
        serde_json::json!({ "current": current, "expected": expected }).to_string(),
        &headers,
    )
}

/// The drand routes (state captured in the closures).
pub fn router(svc: BeaconService) -> Router {
    let (s1, s2, s3, s4, s5, s6, s7) =
        (svc.clone(), svc.clone(), svc.clone(), svc.clone(), svc.clone(), svc.clone(), svc);
    Router::new()
        .route("/info", get(move || async move { info(&s1, None) }))
        .route("/public/latest", get(move || async move { latest(&s2, None) }))
        .route("/public/:round", get(move |Path(r): Path<String>| async move { round(s3, None, r).await }))
        .route("/chains", get(move || async move { chains(&s4) }))
        .route("/health", get(move || async move { health(&s5, None) }))
        // The parameter is named like the WebSocket route's first one (`/:service/:method`),
        // which the router requires for routes sharing that position.
        .route("/:service/public/latest", get(move |Path(ch): Path<String>| async move { latest(&s6, Some(&ch)) }))
        .route(
            "/:service/public/:round",
            get(move |Path((ch, r)): Path<(String, String)>| async move { round(s7, Some(ch), r).await }),
        )
}

/// Answers `/{chainhash}/info` and `/{chainhash}/health` (plain GETs on two-segment paths).
pub fn fallback(svc: BeaconService) -> HttpFallback {
    Arc::new(move |a: &str, b: &str| {
        if a.len() != 64 || !a.bytes().all(|c| c.is_ascii_hexdigit()) {
            return None;
        }
        match b {
            "info" => Some(info(&svc, Some(a))),
            "health" => Some(health(&svc, Some(a))),
            _ => None,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::http_date;
    #[test]
    fn imf_fixdate() {
        assert_eq!(http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(http_date(784111777), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(http_date(1595431050), "Wed, 22 Jul 2020 15:17:30 GMT");
        assert_eq!(http_date(951782400), "Tue, 29 Feb 2000 00:00:00 GMT");
    }
}
