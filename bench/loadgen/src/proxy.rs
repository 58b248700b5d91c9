//! A delaying HTTP proxy in front of the registry: requests whose path or
//! body holds a marker (a user name prefix) are held for a while, the
//! others are passed on at once. With it, a `twostep-radiusd` holds many
//! pending requests (a slow registry for some users) while code logins of
//! the others go through, to measure its memory and their latency
//! meanwhile. A held request is answered 503 after its delay, never passed
//! on.
//!
//! It speaks what the registry speaks on one port, HTTP/1.1 and HTTP/2
//! (prior knowledge), with hyper; upstream it multiplexes over HTTP/2 as
//! `twostep-radiusd` does.

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::header::HeaderName;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

struct Ctx {
    upstream: String,
    marker: Vec<u8>,
    delay: Duration,
    client: reqwest::Client,
}

/// Headers of one hop only (RFC 9110 §7.6.1), which HTTP/2 forbids too.
fn hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "transfer-encoding"
            | "upgrade"
            | "te"
            | "host"
            | "content-length"
            | "proxy-connection"
    )
}

fn status(code: StatusCode) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::new()));
    *r.status_mut() = code;
    r
}

async fn handle(
    req: Request<Incoming>,
    ctx: Arc<Ctx>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (parts, body) = req.into_parts();
    let Ok(body) = body.collect().await.map(|b| b.to_bytes()) else {
        return Ok(status(StatusCode::BAD_REQUEST));
    };
    let path = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    let marked = |b: &[u8]| {
        b.windows(ctx.marker.len())
            .any(|w| w == ctx.marker.as_slice())
    };
    if marked(path.as_bytes()) || marked(&body) {
        tokio::time::sleep(ctx.delay).await;
        return Ok(status(StatusCode::SERVICE_UNAVAILABLE));
    }
    let mut up = ctx
        .client
        .request(parts.method, format!("http://{}{path}", ctx.upstream))
        .body(body);
    for (k, v) in &parts.headers {
        if !hop_by_hop(k) {
            up = up.header(k, v);
        }
    }
    let Ok(answer) = up.send().await else {
        return Ok(status(StatusCode::BAD_GATEWAY));
    };
    let code = answer.status();
    let headers = answer.headers().clone();
    let Ok(bytes) = answer.bytes().await else {
        return Ok(status(StatusCode::BAD_GATEWAY));
    };
    let mut r = Response::new(Full::new(bytes));
    *r.status_mut() = code;
    for (k, v) in &headers {
        if !hop_by_hop(k) {
            r.headers_mut().append(k, v.clone());
        }
    }
    Ok(r)
}

/// Listens on `listen`, passes requests on to `upstream` (HOST:PORT), and
/// holds for `delay` those whose bytes contain `marker`. Runs until killed.
///
/// # Errors
/// When `listen` cannot be bound, or the HTTP client cannot be built.
pub async fn run(
    listen: &str,
    upstream: &str,
    marker: &str,
    delay: Duration,
) -> std::io::Result<()> {
    let client = reqwest::Client::builder()
        .no_proxy()
        .http2_prior_knowledge()
        .build()
        .map_err(std::io::Error::other)?;
    let ctx = Arc::new(Ctx {
        upstream: upstream.to_owned(),
        marker: marker.as_bytes().to_vec(),
        delay,
        client,
    });
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(65_536);
    let builder = Arc::new(builder);
    let l = TcpListener::bind(listen).await?;
    loop {
        let (c, _) = l.accept().await?;
        let _ = c.set_nodelay(true);
        let ctx = Arc::clone(&ctx);
        let builder = Arc::clone(&builder);
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req| handle(req, Arc::clone(&ctx)));
            let _ = builder.serve_connection(TokioIo::new(c), svc).await;
        });
    }
}
