//! The registry client's push calls (routes in [`crate::push`]): hosts
//! start, wait for and cancel challenges; admins create activations and
//! disable or enable methods; devices activate, poll and answer with
//! signed requests and no bearer credential.

use super::{ClientError, RegistryClient};
use crate::api::paths::{self, fill};
use crate::api::Method;
use crate::push::{
    ActivateDevice, Activation, AnswerAccepted, CreateActivation, DeviceActivated, DeviceAnswer,
    DevicePoll, PendingChallenges, PushOutcome, PushStarted, StartPush, MAX_WAIT_SECS,
};
use reqwest::Method as HttpMethod;
use std::path::Path;
use std::time::Duration;
use twostep_config::{RegistryClientConfig, Secret};

/// Time a long-poll's HTTP request is given beyond the wait it asks for,
/// for the answer to travel back: 5 s.
pub const LONG_POLL_MARGIN: Duration = Duration::from_secs(5);

/// Connect timeout of a device's client, in seconds.
pub const DEVICE_CONNECT_TIMEOUT_SECS: u64 = 5;

/// Request deadline of a device's calls other than the poll, in seconds.
pub const DEVICE_TIMEOUT_SECS: u64 = 10;

impl RegistryClient {
    /// A client for a push device: no bearer credential (its requests are
    /// signed), the registry at `url` (plain `http://` only to a loopback
    /// host), the CA certificates in `ca_file` trusted instead of the
    /// system roots when given; connect timeout
    /// [`DEVICE_CONNECT_TIMEOUT_SECS`], request deadline
    /// [`DEVICE_TIMEOUT_SECS`] (a poll gets its wait on top).
    ///
    /// # Errors
    /// As [`RegistryClient::new`].
    pub fn for_device(url: &str, ca_file: Option<&Path>) -> Result<Self, ClientError> {
        let cfg = RegistryClientConfig {
            url: url.to_owned(),
            api_key_file: None,
            admin_token_file: None,
            ca_file: ca_file.map(Path::to_owned),
            allow_plain_http: false,
            proxy: None,
            connect_timeout: DEVICE_CONNECT_TIMEOUT_SECS,
            timeout: DEVICE_TIMEOUT_SECS,
        };
        Self::new(&cfg, Secret::new(Vec::new()))
    }

    async fn long_poll<B: serde::Serialize, T: serde::de::DeserializeOwned>(
        &self,
        method: HttpMethod,
        path: &str,
        body: Option<&B>,
        wait: Duration,
    ) -> Result<T, ClientError> {
        let wait = wait.min(Duration::from_secs(MAX_WAIT_SECS));
        self.send_timed(method, path, body, Some(wait + LONG_POLL_MARGIN))
            .await?
            .ok_or_else(|| ClientError::Protocol(format!("{path}: empty answer")))
    }

    // ---- host calls -------------------------------------------------------

    /// Starts a push challenge for a user (`POST /v1/host/push`). A
    /// refusal (rate limited, blocked, not enrolled...) is an `Ok` answer
    /// whose `result` says why.
    ///
    /// # Errors
    /// See [`ClientError`].
    pub async fn start_push(&self, req: &StartPush) -> Result<PushStarted, ClientError> {
        self.post(paths::HOST_PUSH, req).await
    }

    /// The state of a challenge this host started, waiting up to `wait`
    /// (at most [`MAX_WAIT_SECS`]) for an answer; the HTTP request gets
    /// [`LONG_POLL_MARGIN`] more. `pending` when the wait ran out. A final
    /// state is handed out once.
    ///
    /// # Errors
    /// See [`ClientError`]; `Api { status: 404, code: "unknown_challenge" }`
    /// for a challenge that does not exist, was started by another host, or
    /// whose final state was handed out already.
    pub async fn push_outcome(
        &self,
        challenge_id: &str,
        wait: Duration,
    ) -> Result<PushOutcome, ClientError> {
        let secs = wait.min(Duration::from_secs(MAX_WAIT_SECS)).as_secs();
        self.long_poll::<(), _>(
            HttpMethod::GET,
            &format!(
                "{}?wait={secs}",
                fill(paths::HOST_PUSH_CHALLENGE, &[challenge_id])
            ),
            None,
            wait,
        )
        .await
    }

    /// Cancels a challenge this host started (the login was abandoned).
    ///
    /// # Errors
    /// See [`ClientError`]; 404 `unknown_challenge` as for [`RegistryClient::push_outcome`].
    pub async fn cancel_push(&self, challenge_id: &str) -> Result<(), ClientError> {
        self.delete(&fill(paths::HOST_PUSH_CHALLENGE, &[challenge_id]))
            .await
    }

    // ---- admin calls ------------------------------------------------------

    /// Creates a one-time device activation for `username`; the answer
    /// holds the code, this once.
    ///
    /// # Errors
    /// See [`ClientError`]; 404 `unknown_user`.
    pub async fn create_activation(
        &self,
        username: &str,
        req: &CreateActivation,
    ) -> Result<Activation, ClientError> {
        self.post(&fill(paths::USER_PUSH, &[username]), req).await
    }

    /// Disables a method (a lost device); the user's open challenges sent
    /// to it are cancelled at once.
    ///
    /// # Errors
    /// See [`ClientError`]; 404 `unknown_method`.
    pub async fn disable_method(&self, id: i64) -> Result<Method, ClientError> {
        self.post(&fill(paths::METHOD_DISABLE, &[&id.to_string()]), &())
            .await
    }

    /// Enables a disabled method again.
    ///
    /// # Errors
    /// See [`ClientError`]; 404 `unknown_method`.
    pub async fn enable_method(&self, id: i64) -> Result<Method, ClientError> {
        self.post(&fill(paths::METHOD_ENABLE, &[&id.to_string()]), &())
            .await
    }

    // ---- device calls (use a client from `for_device`) -----------------------

    /// Registers this device with an activation code.
    ///
    /// # Errors
    /// See [`ClientError`]; `Api` 404 `unknown_activation`, 409
    /// `activation_used`, 410 `activation_expired`, 400 `invalid_public_key`.
    pub async fn activate(&self, req: &ActivateDevice) -> Result<DeviceActivated, ClientError> {
        self.post(paths::DEVICE_ACTIVATE, req).await
    }

    /// The device's open challenges, waiting up to `poll.wait` seconds (at
    /// most [`MAX_WAIT_SECS`]) for one to be created; the HTTP request gets
    /// [`LONG_POLL_MARGIN`] more.
    ///
    /// # Errors
    /// See [`ClientError`]; a bad signature, unknown device, replayed nonce
    /// or timestamp out of the window is `Refused { status: 401 }`, a
    /// disabled device `Refused { status: 403 }`, each with its code
    /// ([`ClientError::api_code`]).
    pub async fn poll(&self, poll: &DevicePoll) -> Result<PendingChallenges, ClientError> {
        self.long_poll(
            HttpMethod::POST,
            paths::DEVICE_POLL,
            Some(poll),
            Duration::from_secs(poll.wait),
        )
        .await
    }

    /// Sends the device's signed answer to a challenge.
    ///
    /// # Errors
    /// See [`ClientError`]; `Refused` 401 for a bad signature or unknown
    /// device, 403 for a disabled device; `Api` 404 `unknown_challenge`
    /// (also another user's), 409 `challenge_closed` (answered, cancelled:
    /// a replay), 410 `challenge_expired`, 400 `number_required`.
    pub async fn answer(&self, answer: &DeviceAnswer) -> Result<AnswerAccepted, ClientError> {
        self.post(paths::DEVICE_ANSWER, answer).await
    }
}
