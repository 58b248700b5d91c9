//! The RADIUS server's Prometheus metrics (prometheus-client), served in
//! the OpenMetrics text format on `[radius.metrics] listen`
//! (`GET /metrics`, plain HTTP).
//!
//! Each counter is moved at the one place its decision is made:
//!
//! - requests by client and reply: [`crate::auth::Authenticator::handle`],
//!   once per Access-Request answered (a retransmission answered from the
//!   reply cache is not a new request);
//! - drops: `crate::server::handle_packet`, from
//!   [`crate::inbound::classify`]'s verdict and the `max_in_flight` bound;
//! - retransmissions: `crate::server::handle_packet`, from
//!   [`crate::cache::ReplyCache::begin`]'s answer;
//! - call latency: [`crate::auth::Authenticator::handle`], around each
//!   primary check and registry call the flow asks for.

use crate::inbound::DropKind;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// Path of the metrics on the metrics listener.
pub const METRICS_PATH: &str = "/metrics";

/// The `Content-Type` of the answer (OpenMetrics text 1.0.0).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Upper bounds of the call latency buckets, in seconds (a push's
/// long-poll waits up to 30 s).
pub const CALL_BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// What an Access-Request was answered with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// Access-Accept.
    Accept,
    /// Access-Reject.
    Reject,
    /// Access-Challenge.
    Challenge,
}

impl Answer {
    /// From a reply's RADIUS code; `None` for a code no login answers with.
    pub fn from_code(code: u8) -> Option<Self> {
        match code {
            crate::wire::code::ACCESS_ACCEPT => Some(Self::Accept),
            crate::wire::code::ACCESS_REJECT => Some(Self::Reject),
            crate::wire::code::ACCESS_CHALLENGE => Some(Self::Challenge),
            _ => None,
        }
    }

    /// The label value: `accept`, `reject`, `challenge`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Accept => "accept",
            Self::Reject => "reject",
            Self::Challenge => "challenge",
        }
    }
}

/// Why a packet was dropped without an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// Its source address belongs to no `[[radius.client]]`.
    UnknownClient,
    /// Not a well-formed RADIUS packet.
    Malformed,
    /// A packet code this server does not serve (accounting, replies).
    UnsupportedCode,
    /// Message-Authenticator wrong (usually a shared secret mismatch).
    BadMessageAuthenticator,
    /// Message-Authenticator missing where it is required.
    NoMessageAuthenticator,
    /// `max_in_flight` requests were being worked on already.
    MaxInFlight,
}

impl DropReason {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::UnknownClient => "unknown_client",
            Self::Malformed => "malformed",
            Self::UnsupportedCode => "unsupported_code",
            Self::BadMessageAuthenticator => "bad_message_authenticator",
            Self::NoMessageAuthenticator => "no_message_authenticator",
            Self::MaxInFlight => "max_in_flight",
        }
    }
}

impl From<DropKind> for DropReason {
    fn from(k: DropKind) -> Self {
        match k {
            DropKind::Malformed => Self::Malformed,
            DropKind::Code => Self::UnsupportedCode,
            DropKind::BadMessageAuthenticator => Self::BadMessageAuthenticator,
            DropKind::MissingMessageAuthenticator => Self::NoMessageAuthenticator,
        }
    }
}

/// A retransmission the reply cache absorbed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retransmission {
    /// The first copy is still being worked on: dropped.
    InProgress,
    /// Answered again with the cached reply.
    Replayed,
}

/// A call the login flow makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Call {
    /// The primary password check at the upstream RADIUS server.
    Primary,
    /// The registry: the user's registrations.
    Registrations,
    /// The registry: a code verification.
    Verify,
    /// The registry: start a push.
    PushStart,
    /// The registry: wait for a push's answer (a long-poll).
    PushOutcome,
    /// The registry: cancel a push.
    PushCancel,
    /// The registry: send a code by text message or call.
    SendCode,
}

impl Call {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Primary => "primary",
            Self::Registrations => "registrations",
            Self::Verify => "verify",
            Self::PushStart => "push_start",
            Self::PushOutcome => "push_outcome",
            Self::PushCancel => "push_cancel",
            Self::SendCode => "send_code",
        }
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    client: String,
    result: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    call: &'static str,
}

/// The RADIUS server's metrics.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    dropped: Family<ReasonLabels, Counter>,
    retransmissions: Family<KindLabels, Counter>,
    calls: Family<CallLabels, Histogram, fn() -> Histogram>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

fn call_histogram() -> Histogram {
    Histogram::new(CALL_BUCKETS)
}

impl Metrics {
    /// Every metric registered, all at zero.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("twostep_radiusd");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "requests",
            "Access-Requests answered, by [[radius.client]] name and reply (accept, reject, challenge)",
            requests.clone(),
        );
        let dropped = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "dropped",
            "Packets dropped without an answer, by reason",
            dropped.clone(),
        );
        let retransmissions = Family::<KindLabels, Counter>::default();
        registry.register(
            "retransmissions",
            "Retransmitted Access-Requests absorbed by the reply cache: in_progress (dropped while the first copy is worked on) or replayed (the cached reply sent again)",
            retransmissions.clone(),
        );
        let calls = Family::<CallLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            call_histogram,
        );
        registry.register_with_unit(
            "call_duration",
            "Time of each upstream (primary) and registry call of a login, by call",
            Unit::Seconds,
            calls.clone(),
        );
        Self {
            registry,
            requests,
            dropped,
            retransmissions,
            calls,
        }
    }

    /// An Access-Request of `client` answered with `answer`.
    pub fn answered(&self, client: &str, answer: Answer) {
        self.requests
            .get_or_create(&RequestLabels {
                client: client.to_owned(),
                result: answer.as_str(),
            })
            .inc();
    }

    /// A packet dropped for `why`.
    pub fn dropped(&self, why: DropReason) {
        self.dropped
            .get_or_create(&ReasonLabels {
                reason: why.as_str(),
            })
            .inc();
    }

    /// A retransmission absorbed.
    pub fn retransmission(&self, kind: Retransmission) {
        let kind = match kind {
            Retransmission::InProgress => "in_progress",
            Retransmission::Replayed => "replayed",
        };
        self.retransmissions
            .get_or_create(&KindLabels { kind })
            .inc();
    }

    /// `call` took `elapsed`.
    pub fn call(&self, call: Call, elapsed: Duration) {
        self.calls
            .get_or_create(&CallLabels {
                call: call.as_str(),
            })
            .observe(elapsed.as_secs_f64());
    }

    /// The text of every metric.
    ///
    /// # Errors
    /// Never in practice (formatting into a `String`).
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)?;
        Ok(text)
    }
}

async fn scrape(
    axum::extract::State(m): axum::extract::State<Arc<Metrics>>,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    match m.encode() {
        Ok(text) => ([(axum::http::header::CONTENT_TYPE, CONTENT_TYPE)], text).into_response(),
        Err(_) => axum::http::StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// A bound metrics listener.
#[derive(Debug)]
pub struct Listener(tokio::net::TcpListener);

impl Listener {
    /// Binds `listen` (`[radius.metrics] listen`).
    ///
    /// # Errors
    /// [`crate::Error::Config`] when the address cannot be bound.
    pub async fn bind(listen: SocketAddr) -> Result<Self, crate::Error> {
        tokio::net::TcpListener::bind(listen)
            .await
            .map(Self)
            .map_err(|e| {
                crate::Error::Config(format!(
                    "cannot listen on {listen} ([radius.metrics] listen): {e}"
                ))
            })
    }

    /// The bound address.
    ///
    /// # Errors
    /// [`crate::Error::Io`].
    pub fn local_addr(&self) -> Result<SocketAddr, crate::Error> {
        Ok(self.0.local_addr()?)
    }

    /// Serves `GET /metrics` from `metrics` until the listener fails.
    ///
    /// # Errors
    /// [`crate::Error::Io`].
    pub async fn serve(self, metrics: Arc<Metrics>) -> Result<(), crate::Error> {
        let app = axum::Router::new()
            .route(METRICS_PATH, axum::routing::get(scrape))
            .with_state(metrics);
        axum::serve(self.0, app).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_names_labels_and_units() {
        let m = Metrics::new();
        m.answered("vpn", Answer::Accept);
        m.answered("vpn", Answer::Reject);
        m.answered("vpn", Answer::Reject);
        m.dropped(DropKind::BadMessageAuthenticator.into());
        m.dropped(DropReason::MaxInFlight);
        m.retransmission(Retransmission::Replayed);
        m.call(Call::Verify, Duration::from_millis(20));
        let text = m.encode().unwrap();
        for line in [
            "twostep_radiusd_requests_total{client=\"vpn\",result=\"accept\"} 1",
            "twostep_radiusd_requests_total{client=\"vpn\",result=\"reject\"} 2",
            "twostep_radiusd_dropped_total{reason=\"bad_message_authenticator\"} 1",
            "twostep_radiusd_dropped_total{reason=\"max_in_flight\"} 1",
            "twostep_radiusd_retransmissions_total{kind=\"replayed\"} 1",
            "# UNIT twostep_radiusd_call_duration_seconds seconds",
            "twostep_radiusd_call_duration_seconds_count{call=\"verify\"} 1",
            "twostep_radiusd_call_duration_seconds_bucket{le=\"0.025\",call=\"verify\"} 1",
            "twostep_radiusd_call_duration_seconds_bucket{le=\"0.01\",call=\"verify\"} 0",
            "# EOF",
        ] {
            assert!(text.lines().any(|l| l == line), "no {line:?} in\n{text}");
        }
        assert_eq!(
            Answer::from_code(crate::wire::code::ACCESS_CHALLENGE),
            Some(Answer::Challenge)
        );
    }
}
