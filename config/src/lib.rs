//! The twostep configuration file, `/etc/twostep/twostep.toml`.
//!
//! One TOML file configures every component; each reads the tables it needs:
//!
//! | table        | read by                                   |
//! |--------------|-------------------------------------------|
//! | `[api]`      | `twostep-api`, the central registry       |
//! | `[registry]` | every client of the registry: `pam_twostep.so`, `twostep-radiusd`, `twostep` |
//! | `[pam]`      | `pam_twostep.so`                          |
//! | `[radius]`   | `twostep-radiusd`                         |
//!
//! Every table denies unknown keys. A wrong key, type or value is reported as
//! `FILE:LINE:COL: message` ([`ConfigError::Parse`]). Secrets are never in the
//! file itself: `*_file` keys name files that [`read_secret_file`] refuses when
//! they are group- or world-accessible or owned by someone other than root or
//! the running user ([`secret_file_problem`] is that rule, for `twostep
//! doctor` too). The file itself is refused by [`check_config_file`] when
//! anyone else could change it. [`radius::warnings`] lists what works in
//! `[radius]` but weakens the setup.
//!
//! A commented example lives in `packaging/twostep.toml`.

mod error;
mod files;
mod gateway;
mod push;
pub mod radius;
mod secret;
pub mod webauthn;

pub use error::ConfigError;
pub use files::{ConfigFile, FileKind, FileReader};
pub use gateway::{
    GatewayConfig, GatewayMethod, DEFAULT_FORM_BODY, DEFAULT_JSON_BODY, DEFAULT_SMS_MESSAGE,
    DEFAULT_VOICE_MESSAGE, FORM_CONTENT_TYPE, JSON_CONTENT_TYPE, MAX_GATEWAY_TIMEOUT,
};
pub use push::{
    render_webhook_body, PushConfig, WebhookHeader, WebhookHeaderFile, DEFAULT_WEBHOOK_BODY,
    MAX_CHALLENGE_LIFETIME,
};
pub use secret::{
    check_config_file, check_secret_file, read_secret_file, secret_file_problem, Secret,
    SecretFileProblem,
};

use ipnet::IpNet;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// Default path of the configuration file.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/twostep/twostep.toml";

/// The only configuration format version this build understands.
pub const CONFIG_VERSION: u32 = 1;

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Format version; must be [`CONFIG_VERSION`]. Optional only so that
    /// a file without it gets an error saying what to write.
    pub version: Option<u32>,
    /// The registry server (`twostep-api`).
    pub api: Option<ApiConfig>,
    /// How clients reach the registry.
    pub registry: Option<RegistryClientConfig>,
    /// The PAM module's policy.
    #[serde(default)]
    pub pam: PamConfig,
    /// The RADIUS server.
    pub radius: Option<RadiusConfig>,
}

/// `[api]`: the central registry server.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiConfig {
    /// Address and port to listen on, e.g. `"127.0.0.1:8443"`.
    pub listen: SocketAddr,
    /// Database URL: `sqlite:///var/lib/twostep/registry.db` (an absolute
    /// path, created if missing) or `postgres://user@host/db`.
    pub database: String,
    /// File with the 32-byte key that encrypts TOTP secrets at rest (AEAD).
    /// Created with random content and mode 0600 on first start if missing.
    pub secret_key_file: PathBuf,
    /// File holding the admin token (one line). Admin requests must present
    /// it as `Authorization: Bearer TOKEN`.
    pub admin_token_file: PathBuf,
    /// PEM certificate chain for HTTPS. Without `tls_cert_file` and
    /// `tls_key_file` the registry speaks plain HTTP, which is refused unless
    /// `listen` is a loopback address or `allow_plain_http = true`.
    pub tls_cert_file: Option<PathBuf>,
    /// PEM private key for HTTPS.
    pub tls_key_file: Option<PathBuf>,
    /// Allow plain HTTP on a non-loopback address. Default `false`.
    #[serde(default)]
    pub allow_plain_http: bool,
    /// Issuer shown in authenticator apps (`otpauth://` issuer). Default `"twostep"`.
    #[serde(default = "default_issuer")]
    pub issuer: String,
    /// Largest accepted request body, in bytes (at least 1024). Default 65536.
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: usize,
    /// TOTP verification parameters.
    #[serde(default)]
    pub totp: TotpConfig,
    /// Failure counting and lockout.
    #[serde(default)]
    pub lockout: LockoutConfig,
    /// The Security info web pages under `/my/`.
    #[serde(default)]
    pub portal: PortalConfig,
    /// Push approvals.
    #[serde(default)]
    pub push: PushConfig,
    /// `[api.metrics]`: the Prometheus `/metrics` endpoint on its own
    /// address. Absent: no metrics endpoint.
    #[serde(default)]
    pub metrics: Option<MetricsConfig>,
    /// `[api.smtp]`: the mail server that carries password-reset codes
    /// (the Security info page's "Email" method). Absent: no email codes,
    /// and the pages do not offer the Email method.
    #[serde(default)]
    pub smtp: Option<SmtpConfig>,
    /// `[api.sms]`: the gateway that sends one-time codes by text
    /// message. Absent: no text-message codes, and the pages do not offer
    /// the Phone method's text option.
    #[serde(default)]
    pub sms: Option<GatewayConfig>,
    /// `[api.voice]`: the gateway that reads one-time codes out in a
    /// phone call. Absent: no call codes.
    #[serde(default)]
    pub voice: Option<GatewayConfig>,
}

/// `[api.smtp]`: how the registry sends email (password-reset codes and
/// the code that proves a new address), over SMTP with STARTTLS.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpConfig {
    /// The mail server's host name (also the name its certificate must
    /// carry), e.g. `"smtp.example.com"`.
    pub host: String,
    /// TCP port. Default 587 (submission).
    #[serde(default = "default_smtp_port")]
    pub port: u16,
    /// Require STARTTLS (RFC 3207) before anything is sent; the server's
    /// certificate is checked against the web PKI roots or `ca_file`.
    /// Default `true`. `false` sends in clear text, which is refused with
    /// `username` (a password never crosses in clear).
    #[serde(default = "default_true")]
    pub starttls: bool,
    /// PEM CA certificate(s) that sign the mail server's certificate (a
    /// private CA), instead of the web PKI roots.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// The sender, `"twostep <no-reply@example.com>"` or a bare address.
    pub from: String,
    /// SMTP AUTH user name; with `password_file`.
    #[serde(default)]
    pub username: Option<String>,
    /// File holding the SMTP AUTH password (one line); a secret file:
    /// refused when group or others can read it.
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// Seconds one message may take to send. Default 10.
    #[serde(default = "default_smtp_timeout")]
    pub timeout: u64,
}

fn default_smtp_port() -> u16 {
    587
}
fn default_smtp_timeout() -> u64 {
    10
}

/// `[api.metrics]` / `[radius.metrics]`: a plain-HTTP listener that serves
/// only `GET /metrics` (OpenMetrics text, which Prometheus scrapes), without
/// authentication: bind it to loopback or to a management network that only
/// the scraper reaches. The counters hold no secret, but client, host and
/// result names.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// Address and port, e.g. `"127.0.0.1:9464"` (`twostep-api`) or
    /// `"127.0.0.1:9465"` (`twostep-radiusd`).
    pub listen: SocketAddr,
}

/// `[api.portal]`: the Security info pages users sign in to under `/my/`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortalConfig {
    /// Serve the pages. Default `true`.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Longest life of a signed-in page session, in seconds (60 to
    /// 604800). Default 28800 (8 h).
    #[serde(default = "default_session_lifetime")]
    pub session_lifetime: u64,
    /// A page session unused for this long ends, in seconds (60 to
    /// `session_lifetime`). Default 1800 (30 min).
    #[serde(default = "default_idle_timeout")]
    pub idle_timeout: u64,
    /// The registry's address as users' browsers reach it, e.g.
    /// `"https://registry.example.com:8443"`: the base of the setup links
    /// `twostep user invite` prints. Default: the URL the CLI uses.
    #[serde(default)]
    pub public_url: Option<String>,
    /// `[api.portal.webauthn]`: security keys (relying party, user
    /// verification). Security keys are offered when it or `public_url`
    /// gives an origin.
    #[serde(default)]
    pub webauthn: webauthn::WebauthnConfig,
}

impl Default for PortalConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            session_lifetime: default_session_lifetime(),
            idle_timeout: default_idle_timeout(),
            public_url: None,
            webauthn: webauthn::WebauthnConfig::default(),
        }
    }
}

fn default_session_lifetime() -> u64 {
    28_800
}
fn default_idle_timeout() -> u64 {
    1_800
}

fn default_issuer() -> String {
    "twostep".to_owned()
}

fn default_max_body_bytes() -> usize {
    65536
}

/// `[api.totp]`: RFC 6238 parameters for newly enrolled methods and the
/// verification window.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TotpConfig {
    /// Accepted time steps either side of the current one (RFC 6238 §6).
    /// Default 1 (±30 s with the default step).
    #[serde(default = "default_skew")]
    pub skew_steps: u8,
}

impl Default for TotpConfig {
    fn default() -> Self {
        Self {
            skew_steps: default_skew(),
        }
    }
}

fn default_skew() -> u8 {
    1
}

/// `[api.lockout]`: after `max_failures` failed verifications within
/// `window_seconds` a user is locked for `lock_seconds`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockoutConfig {
    /// Failures that trigger a lockout. Default 5.
    #[serde(default = "default_max_failures")]
    pub max_failures: u32,
    /// Window in which failures are counted, in seconds (at least 1). Default 600.
    #[serde(default = "default_window")]
    pub window_seconds: u64,
    /// Lockout duration, in seconds (at least 1). Default 300.
    #[serde(default = "default_lock")]
    pub lock_seconds: u64,
    /// Replayed codes (a code whose time step was used already) per user
    /// within `replay_window_seconds` that are taken for NAS
    /// retransmissions, retries and pool copies (at least 1). A replay is
    /// never a failure; past this many each further one is logged at
    /// warning level as a possible attack. Default 20.
    #[serde(default = "default_max_replays")]
    pub max_replays: u32,
    /// Window in which replays are counted, in seconds (at least 1).
    /// Default 600.
    #[serde(default = "default_window")]
    pub replay_window_seconds: u64,
}

impl Default for LockoutConfig {
    fn default() -> Self {
        Self {
            max_failures: default_max_failures(),
            window_seconds: default_window(),
            lock_seconds: default_lock(),
            max_replays: default_max_replays(),
            replay_window_seconds: default_window(),
        }
    }
}

fn default_max_failures() -> u32 {
    5
}
fn default_window() -> u64 {
    600
}
fn default_lock() -> u64 {
    300
}
fn default_max_replays() -> u32 {
    20
}

/// `[registry]`: how the PAM module, the RADIUS server and the CLI reach the
/// registry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistryClientConfig {
    /// Base URL, e.g. `"https://registry.example.com:8443"`. `http://` is
    /// accepted only for loopback hosts unless `allow_plain_http = true`.
    pub url: String,
    /// File holding this host's API key (one line), as printed once by
    /// `twostep host add`.
    pub api_key_file: Option<PathBuf>,
    /// File holding the admin token, for the `twostep` CLI. Defaults to
    /// `[api].admin_token_file` when the same file configures both.
    pub admin_token_file: Option<PathBuf>,
    /// PEM file with CA certificates to trust instead of the system roots
    /// (private CAs).
    pub ca_file: Option<PathBuf>,
    /// Allow `http://` to a non-loopback registry. Default `false`.
    #[serde(default)]
    pub allow_plain_http: bool,
    /// HTTP(S) proxy URL. Proxy environment variables are never used.
    pub proxy: Option<String>,
    /// TCP/TLS connect timeout, in seconds. Default 2.
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout: u64,
    /// Deadline for one whole request, in seconds. Default 5.
    #[serde(default = "default_request_timeout")]
    pub timeout: u64,
}

fn default_connect_timeout() -> u64 {
    2
}
fn default_request_timeout() -> u64 {
    5
}

/// What happens when the registry cannot be reached: connection refused or
/// network unreachable, DNS failure, timeout. Nothing else is unreachable:
/// a TLS failure (untrusted or expired certificate, wrong name), a
/// connection broken mid-request or a 5xx answer is always treated as
/// `Closed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum FailMode {
    /// Refuse the login (`PAM_AUTHINFO_UNAVAIL`, Access-Reject). The default.
    #[default]
    Closed,
    /// Let the login through without a second factor, logged at warning level.
    Open,
}

/// What a user with no registered method gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum UnenrolledPolicy {
    /// Refuse. The default.
    #[default]
    Deny,
    /// Step aside (`PAM_IGNORE`): the rest of the stack decides. For onboarding.
    Ignore,
}

/// `[pam]`: the PAM module's policy.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PamConfig {
    /// Prompt shown for the code. Default `"Verification code: "`.
    #[serde(default = "default_prompt")]
    pub prompt: String,
    /// Prompt shown in `forward_pass` mode. Default `"Password and verification code: "`.
    #[serde(default = "default_forward_prompt")]
    pub forward_pass_prompt: String,
    /// Prompts for a code before `PAM_MAXTRIES`. Default 3.
    #[serde(default = "default_max_tries")]
    pub max_tries: u32,
    /// If non-empty, only members of these groups must pass a second factor.
    #[serde(default)]
    pub require_groups: Vec<String>,
    /// Members of these groups are exempt (`PAM_IGNORE`).
    #[serde(default)]
    pub exempt_groups: Vec<String>,
    /// Logins from these networks (PAM_RHOST, CIDR) are exempt (`PAM_IGNORE`).
    #[serde(default)]
    pub exempt_networks: Vec<IpNet>,
    /// What unenrolled users get. Default `deny`.
    #[serde(default)]
    pub unenrolled: UnenrolledPolicy,
    /// What happens when the registry is unreachable. Default `closed`.
    #[serde(default)]
    pub fail_mode: FailMode,
    /// Deadline for the whole `pam_sm_authenticate` call, in seconds, prompts
    /// excluded. Default 15, well under sshd's LoginGraceTime (120 s).
    #[serde(default = "default_pam_total_timeout")]
    pub total_timeout: u64,
    /// Whether a user with a push device is offered a push. Default
    /// `prompt`.
    #[serde(default)]
    pub push: PamPush,
}

/// `[pam] push`: how the module offers a push to a user with a push device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum PamPush {
    /// The first prompt offers it: `Verification code, or press Enter for a
    /// push: ` (a push-only user: press Enter to send one). The default.
    #[default]
    Prompt,
    /// Send the push at once, without the first prompt; the number to
    /// type on the device still comes in a prompt.
    Auto,
    /// Never offer a push; codes only.
    Off,
}

impl Default for PamConfig {
    fn default() -> Self {
        Self {
            prompt: default_prompt(),
            forward_pass_prompt: default_forward_prompt(),
            max_tries: default_max_tries(),
            require_groups: Vec::new(),
            exempt_groups: Vec::new(),
            exempt_networks: Vec::new(),
            unenrolled: UnenrolledPolicy::default(),
            fail_mode: FailMode::default(),
            total_timeout: default_pam_total_timeout(),
            push: PamPush::default(),
        }
    }
}

fn default_prompt() -> String {
    "Verification code: ".to_owned()
}
fn default_forward_prompt() -> String {
    "Password and verification code: ".to_owned()
}
fn default_max_tries() -> u32 {
    3
}
fn default_pam_total_timeout() -> u64 {
    15
}

/// How a RADIUS client's Access-Request carries the second factor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RadiusMode {
    /// User-Password is the code; no primary password.
    OtpOnly,
    /// User-Password is `password<delimiter>code`, split on the last delimiter.
    Append,
    /// Password first, then Access-Challenge (State + Reply-Message) for the
    /// code, or `push` typed instead of it for a push approval.
    Challenge,
    /// Password first, then a push approval right away (its number in an
    /// Access-Challenge); a user without a push device gets the code
    /// Access-Challenge of `challenge`.
    AutoPush,
}

/// `[radius]`: the RADIUS server.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RadiusConfig {
    /// Address and port to listen on. Default `0.0.0.0:1812`.
    #[serde(default = "default_radius_listen")]
    pub listen: SocketAddr,
    /// File with the key that seals challenge State (AEAD). Servers of a pool
    /// share it.
    pub state_key_file: PathBuf,
    /// Lifetime of a challenge State, in seconds (at most 300). Default 120.
    #[serde(default = "default_state_lifetime")]
    pub state_lifetime: u64,
    /// Wrong codes (or replayed ones, or answers that are not codes) one
    /// challenge State takes (1 to 10); the last is answered "too many
    /// wrong codes, start again" and the State is ended. Default 3, as
    /// `[pam] max_tries`.
    #[serde(default = "default_challenge_max_tries")]
    pub challenge_max_tries: u32,
    /// Requests worked on at once; more are dropped (the NAS retransmits).
    /// Default 256.
    #[serde(default = "default_max_in_flight")]
    pub max_in_flight: usize,
    /// Push logins worked on at once beside `max_in_flight`: requests that
    /// start a push or wait for its answer (up to 30 s each, or the
    /// challenge's lifetime when held), and pushes whose number is shown in
    /// an Access-Challenge until they end. More are refused. Default 10000.
    #[serde(default = "default_max_pending_pushes")]
    pub max_pending_pushes: usize,
    /// What happens when the registry is unreachable. Default `closed`.
    #[serde(default)]
    pub fail_mode: FailMode,
    /// The NASes allowed to send requests.
    #[serde(default, rename = "client")]
    pub clients: Vec<RadiusClientConfig>,
    /// Upstream RADIUS servers that check primary passwords.
    #[serde(default, rename = "upstream")]
    pub upstreams: Vec<RadiusUpstreamConfig>,
    /// `[radius.radsec]`: RADIUS over TLS (RFC 6614) beside UDP. Absent:
    /// UDP only.
    #[serde(default)]
    pub radsec: Option<RadsecConfig>,
    /// `[radius.metrics]`: the Prometheus `/metrics` endpoint. Absent: no
    /// metrics endpoint.
    #[serde(default)]
    pub metrics: Option<MetricsConfig>,
}

/// `[radius.radsec]`: a RadSec listener (RADIUS over TLS, RFC 6614). A
/// connection is served when its source address belongs to a
/// `[[radius.client]]` (whose mode and primary apply) and its client
/// certificate is signed by `ca_file`; the shared secret is the fixed
/// `radsec` (RFC 6614 §2.3), the clients' `secret_file` is for UDP.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RadsecConfig {
    /// TCP address and port to listen on. Default `0.0.0.0:2083`.
    #[serde(default = "default_radsec_listen")]
    pub listen: SocketAddr,
    /// PEM certificate chain of this server.
    pub cert_file: PathBuf,
    /// PEM private key of `cert_file`; a secret file (owner only).
    pub key_file: PathBuf,
    /// PEM CA certificates that sign the clients' certificates; a client
    /// without such a certificate is refused at the TLS handshake.
    pub ca_file: PathBuf,
}

fn default_radsec_listen() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], 2083))
}

fn default_radius_listen() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], 1812))
}
fn default_state_lifetime() -> u64 {
    120
}
fn default_challenge_max_tries() -> u32 {
    3
}
fn default_max_in_flight() -> usize {
    256
}
fn default_max_pending_pushes() -> usize {
    10_000
}

/// An IP address (one host: the longest prefix) or a CIDR network, as
/// FreeRADIUS's `ipaddr` takes either. An IPv4-mapped IPv6 address
/// (`::ffff:192.0.2.10`, as a dual-stack socket shows an IPv4 peer) is its
/// IPv4 address: the daemon matches IPv4 peers that way. A network with
/// host bits set (`192.0.2.10/24`, as `ip addr` prints an address) is
/// refused: one host or the whole network, it cannot tell which was meant.
fn address_or_network<'de, D: serde::Deserializer<'de>>(d: D) -> Result<IpNet, D::Error> {
    use serde::de::Error as _;
    let text = String::deserialize(d)?;
    let text = text.trim();
    let net = match text.parse::<IpNet>() {
        Ok(net) => net,
        Err(_) => text
            .parse::<std::net::IpAddr>()
            .map(IpNet::from)
            .map_err(|_| {
                D::Error::custom(format!(
                    "{text:?} is not an IP address (192.0.2.10) or a network (192.0.2.0/24)"
                ))
            })?,
    };
    if net.addr() != net.network() {
        return Err(D::Error::custom(format!(
            "{text:?} has host bits set: write {} for the network, or {} for one host",
            net.trunc(),
            net.addr()
        )));
    }
    Ok(match net {
        IpNet::V6(v6) if v6.prefix_len() >= 96 => match v6.addr().to_ipv4_mapped() {
            Some(v4) => ipnet::Ipv4Net::new(v4, v6.prefix_len() - 96)
                .map(IpNet::V4)
                .unwrap_or(net),
            None => net,
        },
        other => other,
    })
}

/// `[[radius.client]]`: one NAS (or a network of them).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RadiusClientConfig {
    /// Name used in logs and audit records; unique among clients.
    pub name: String,
    /// Source address (`192.0.2.10`, taken as `/32`; `/128` for IPv6) or
    /// CIDR network (`192.0.2.0/24`) of the NAS; when networks of two
    /// clients overlap, the most specific (longest prefix) wins.
    #[serde(deserialize_with = "address_or_network")]
    pub address: IpNet,
    /// File holding the shared secret (RFC 2865 §3).
    pub secret_file: PathBuf,
    /// How the second factor arrives. Default `otp-only`.
    #[serde(default = "default_mode")]
    pub mode: RadiusMode,
    /// Delimiter between password and code in `append` mode; not empty and
    /// without digits (codes are digits). Default `","`.
    #[serde(default = "default_delimiter")]
    pub delimiter: String,
    /// Require Message-Authenticator on Access-Request (RFC 3579 §3.2).
    /// Default `true`; `false` marks a legacy NAS.
    #[serde(default = "default_true")]
    pub require_message_authenticator: bool,
    /// Name of the `[[radius.upstream]]` that checks the primary password, or
    /// `"none"`. Default `"none"`.
    #[serde(default = "default_primary")]
    pub primary: String,
    /// Whether this NAS shows an Access-Challenge's Reply-Message, so a
    /// push's number can be shown there. Default `true`; `false` (a NAS
    /// that cannot show a challenge) holds a push request until the answer
    /// and refuses pushes that need number matching.
    #[serde(default = "default_true")]
    pub push_number_matching: bool,
}

fn default_mode() -> RadiusMode {
    RadiusMode::OtpOnly
}
fn default_delimiter() -> String {
    ",".to_owned()
}
fn default_true() -> bool {
    true
}
fn default_primary() -> String {
    "none".to_owned()
}

/// `[[radius.upstream]]`: a RADIUS server that checks primary passwords (PAP proxy).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RadiusUpstreamConfig {
    /// Name that clients refer to in `primary`; unique among upstreams.
    pub name: String,
    /// Address and port, e.g. `"10.0.0.5:1812"`.
    pub address: SocketAddr,
    /// File holding the shared secret for this leg; required over UDP,
    /// refused with `radsec` (whose secret is the fixed `radsec`).
    #[serde(default)]
    pub secret_file: Option<PathBuf>,
    /// `[radius.upstream.radsec]`: reach this server over RadSec (RADIUS
    /// over TLS, RFC 6614) instead of UDP, one TLS connection per check.
    #[serde(default)]
    pub radsec: Option<UpstreamRadsecConfig>,
    /// Wait for one answer, in seconds (over RadSec: the whole check, TLS
    /// connection included, within `timeout * (retries + 1)`). Default 3.
    #[serde(default = "default_upstream_timeout")]
    pub timeout: u64,
    /// Retransmissions after the first try. Default 2.
    #[serde(default = "default_upstream_retries")]
    pub retries: u32,
    /// Require Message-Authenticator on this server's answers (RFC 3579
    /// §3.2, CVE-2024-3596). Default `true`; `false` only for an old server
    /// that cannot send it.
    #[serde(default = "default_true")]
    pub require_message_authenticator: bool,
}

/// `[radius.upstream.radsec]`: the TLS side of an upstream reached over
/// RadSec.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamRadsecConfig {
    /// PEM certificate chain this server presents as a TLS client.
    pub cert_file: PathBuf,
    /// PEM private key of `cert_file`; a secret file (owner only).
    pub key_file: PathBuf,
    /// PEM CA certificates that sign the upstream's server certificate.
    pub ca_file: PathBuf,
    /// Name the upstream's certificate must carry. Default: the IP address
    /// of `address` (a subjectAltName IP entry).
    #[serde(default)]
    pub server_name: Option<String>,
}

fn default_upstream_timeout() -> u64 {
    3
}
fn default_upstream_retries() -> u32 {
    2
}

impl SmtpConfig {
    fn validate(&self, at: &dyn Fn(&str, String) -> ConfigError) -> Result<(), ConfigError> {
        if self.host.is_empty() || self.host.contains(|c: char| c.is_whitespace() || c == '/') {
            return Err(at("host", "host must be a host name or address".into()));
        }
        if self.port == 0 {
            return Err(at("port", "port must be between 1 and 65535".into()));
        }
        let address = self
            .from
            .rsplit_once('<')
            .map_or(self.from.as_str(), |(_, a)| a.trim_end_matches('>'));
        match address.split_once('@') {
            Some((local, domain))
                if !local.is_empty()
                    && !domain.is_empty()
                    && !address.contains(char::is_whitespace) => {}
            _ => {
                return Err(at(
                    "from",
                    "from must be an email address, e.g. \"twostep <no-reply@example.com>\"".into(),
                ))
            }
        }
        if self.username.is_some() != self.password_file.is_some() {
            return Err(at(
                "username",
                "username and password_file must be set together".into(),
            ));
        }
        if self.username.is_some() && !self.starttls {
            return Err(at(
                "starttls",
                "starttls = false with username would send the SMTP password in clear text".into(),
            ));
        }
        if self.ca_file.is_some() && !self.starttls {
            return Err(at("ca_file", "ca_file needs starttls = true".into()));
        }
        if !(1..=120).contains(&self.timeout) {
            return Err(at(
                "timeout",
                "[api.smtp] timeout must be between 1 and 120 seconds".into(),
            ));
        }
        Ok(())
    }
}

impl Config {
    /// Checks with [`check_config_file`] that only root or the running user
    /// can change the file at `path`, then reads and validates it.
    ///
    /// # Errors
    /// [`ConfigError::Unsafe`] when someone else could change the file,
    /// [`ConfigError::Io`] when the file cannot be read, [`ConfigError::Parse`]
    /// (`FILE:LINE:COL: message`) for syntax, unknown keys, wrong types or
    /// values and for rules spanning several keys (placed at the first key).
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        check_config_file(path)?;
        let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Io {
            path: path.to_owned(),
            error,
        })?;
        Self::parse(&text, path)
    }

    /// Parses and validates `text`; `path` is used in error messages only.
    ///
    /// # Errors
    /// As [`Config::load`], less I/O.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let config: Config =
            toml::from_str(text).map_err(|e| ConfigError::from_toml(path, text, &e))?;
        config.validate(path, text)?;
        Ok(config)
    }

    fn validate(&self, path: &Path, text: &str) -> Result<(), ConfigError> {
        let at = |key: &str, message: String| ConfigError::at_key(path, text, key, message);
        match self.version {
            Some(CONFIG_VERSION) => {}
            None => {
                return Err(at(
                    "version",
                    format!("no `version`: the file starts with `version = {CONFIG_VERSION}`, the format this build reads"),
                ))
            }
            Some(v) => {
                return Err(at(
                    "version",
                    format!(
                        "unsupported config version {v} (this build reads version {CONFIG_VERSION})"
                    ),
                ))
            }
        }
        if let Some(api) = &self.api {
            if api.tls_cert_file.is_some() != api.tls_key_file.is_some() {
                return Err(at(
                    "tls_cert_file",
                    "tls_cert_file and tls_key_file must be set together".into(),
                ));
            }
            if let Some(reason) = sqlite_relative_path(&api.database) {
                return Err(at("database", reason));
            }
            if api.max_body_bytes < MIN_BODY_BYTES {
                return Err(at(
                    "max_body_bytes",
                    format!("max_body_bytes must be at least {MIN_BODY_BYTES}"),
                ));
            }
            if api.lockout.max_failures == 0 {
                return Err(at("max_failures", "max_failures must be at least 1".into()));
            }
            if api.lockout.window_seconds == 0 {
                return Err(at(
                    "window_seconds",
                    "window_seconds must be at least 1".into(),
                ));
            }
            if api.lockout.lock_seconds == 0 {
                return Err(at("lock_seconds", "lock_seconds must be at least 1".into()));
            }
            if api.lockout.max_replays == 0 {
                return Err(at("max_replays", "max_replays must be at least 1".into()));
            }
            if api.lockout.replay_window_seconds == 0 {
                return Err(at(
                    "replay_window_seconds",
                    "replay_window_seconds must be at least 1".into(),
                ));
            }
            if api.totp.skew_steps > 10 {
                return Err(at("skew_steps", "skew_steps must be at most 10".into()));
            }
            let portal = &api.portal;
            if !(60..=604_800).contains(&portal.session_lifetime) {
                return Err(at(
                    "session_lifetime",
                    "session_lifetime must be between 60 and 604800 seconds".into(),
                ));
            }
            if portal.idle_timeout < 60 || portal.idle_timeout > portal.session_lifetime {
                return Err(at(
                    "idle_timeout",
                    "idle_timeout must be at least 60 seconds and at most session_lifetime".into(),
                ));
            }
            if let Some(u) = &portal.public_url {
                if !(u.starts_with("https://") || u.starts_with("http://")) {
                    return Err(at(
                        "public_url",
                        "public_url must start with https:// or http://".into(),
                    ));
                }
            }
            // An origin or rp_id given must make a relying party; one only
            // derived from public_url (an IP address, plain http) leaves
            // security keys off, with a line in the registry's log.
            if portal.webauthn.is_explicit() {
                if let Err(p) = portal.webauthn.relying_party(portal.public_url.as_deref()) {
                    return Err(at(p.key, p.message));
                }
            }
            api.push.validate(path, text)?;
            if let Some(m) = &api.metrics {
                let (a, b) = (m.listen, api.listen);
                let same_ip =
                    a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified();
                if a.port() == b.port() && same_ip {
                    return Err(at(
                        "listen",
                        format!(
                            "[api.metrics] listen {a} is the address of [api] listen {b}: give the metrics a port of their own"
                        ),
                    ));
                }
            }
            if let Some(smtp) = &api.smtp {
                smtp.validate(&at)?;
            }
            if let Some(g) = &api.sms {
                g.validate("sms", path, text)?;
            }
            if let Some(g) = &api.voice {
                g.validate("voice", path, text)?;
            }
        }
        if let Some(reg) = &self.registry {
            if !(reg.url.starts_with("https://") || reg.url.starts_with("http://")) {
                return Err(at("url", "url must start with https:// or http://".into()));
            }
            if reg.connect_timeout == 0 || reg.timeout == 0 {
                return Err(at("timeout", "timeouts must be at least 1 second".into()));
            }
        }
        if self.pam.max_tries == 0 {
            return Err(at("max_tries", "max_tries must be at least 1".into()));
        }
        if self.pam.total_timeout == 0 {
            return Err(at(
                "total_timeout",
                "total_timeout must be at least 1".into(),
            ));
        }
        if let Some(radius) = &self.radius {
            if radius.state_lifetime == 0 || radius.state_lifetime > 300 {
                return Err(at(
                    "state_lifetime",
                    "state_lifetime must be between 1 and 300 seconds".into(),
                ));
            }
            if !(1..=10).contains(&radius.challenge_max_tries) {
                return Err(at(
                    "challenge_max_tries",
                    "challenge_max_tries must be between 1 and 10".into(),
                ));
            }
            if radius.max_in_flight == 0 {
                return Err(at(
                    "max_in_flight",
                    "max_in_flight must be at least 1".into(),
                ));
            }
            if radius.max_pending_pushes == 0 {
                return Err(at(
                    "max_pending_pushes",
                    "max_pending_pushes must be at least 1".into(),
                ));
            }
            let at_value = |table: &str, kv: (&str, &str), nth: usize, message: String| {
                ConfigError::at_value(path, text, table, kv, nth, message)
            };
            for (i, upstream) in radius.upstreams.iter().enumerate() {
                if radius.upstreams[..i]
                    .iter()
                    .any(|u| u.name == upstream.name)
                {
                    return Err(at_value(
                        "[[radius.upstream]]",
                        ("name", &upstream.name),
                        1,
                        format!("[[radius.upstream]] name {:?} is used twice", upstream.name),
                    ));
                }
                match (&upstream.secret_file, &upstream.radsec) {
                    (None, None) => {
                        return Err(at_value(
                            "[[radius.upstream]]",
                            ("name", &upstream.name),
                            0,
                            format!(
                                "upstream {:?}: secret_file is required (or [radius.upstream.radsec] for RADIUS over TLS)",
                                upstream.name
                            ),
                        ))
                    }
                    (Some(_), Some(_)) => {
                        return Err(at(
                            "secret_file",
                            format!(
                                "upstream {:?}: secret_file is not used over RadSec (the shared secret is \"radsec\", RFC 6614 §2.3); remove it",
                                upstream.name
                            ),
                        ))
                    }
                    _ => {}
                }
            }
            for (i, client) in radius.clients.iter().enumerate() {
                if radius.clients[..i].iter().any(|c| c.name == client.name) {
                    return Err(at_value(
                        "[[radius.client]]",
                        ("name", &client.name),
                        1,
                        format!("[[radius.client]] name {:?} is used twice", client.name),
                    ));
                }
                if client.delimiter.is_empty() {
                    return Err(at("delimiter", "delimiter must not be empty".into()));
                }
                if client.delimiter.bytes().any(|b| b.is_ascii_digit()) {
                    return Err(at_value(
                        "[[radius.client]]",
                        ("delimiter", &client.delimiter),
                        0,
                        format!(
                            "client {:?}: delimiter {:?} contains a digit; codes are digits, so password and code could not be told apart",
                            client.name, client.delimiter
                        ),
                    ));
                }
                if client.primary != "none"
                    && !radius.upstreams.iter().any(|u| u.name == client.primary)
                {
                    return Err(at(
                        "primary",
                        format!(
                            "client {:?}: primary {:?} names no [[radius.upstream]]",
                            client.name, client.primary
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    /// The `[api]` table, or an error naming it.
    ///
    /// # Errors
    /// [`ConfigError::Missing`] when the table is absent.
    pub fn api(&self) -> Result<&ApiConfig, ConfigError> {
        self.api.as_ref().ok_or(ConfigError::Missing("api"))
    }

    /// The `[registry]` table, or an error naming it.
    ///
    /// # Errors
    /// [`ConfigError::Missing`] when the table is absent.
    pub fn registry(&self) -> Result<&RegistryClientConfig, ConfigError> {
        self.registry
            .as_ref()
            .ok_or(ConfigError::Missing("registry"))
    }

    /// The `[radius]` table, or an error naming it.
    ///
    /// # Errors
    /// [`ConfigError::Missing`] when the table is absent.
    pub fn radius(&self) -> Result<&RadiusConfig, ConfigError> {
        self.radius.as_ref().ok_or(ConfigError::Missing("radius"))
    }
}

/// Smallest accepted `[api] max_body_bytes`: room for any well-formed request.
pub const MIN_BODY_BYTES: usize = 1024;

/// Why a `sqlite:` database URL is unusable (a relative path, which would
/// depend on the registry's working directory), or `None`.
fn sqlite_relative_path(url: &str) -> Option<String> {
    let rest = url.strip_prefix("sqlite:")?;
    let rest = rest.strip_prefix("//").unwrap_or(rest);
    let file = rest.split('?').next().unwrap_or("");
    if file == ":memory:" || file.starts_with('/') {
        return None;
    }
    Some(format!(
        "database {url:?} names the relative path {file:?}; use sqlite:///absolute/path (three slashes)"
    ))
}

#[cfg(test)]
mod tests;
