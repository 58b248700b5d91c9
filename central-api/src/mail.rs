//! Email from the registry (`[api.smtp]`): the code that proves a new
//! password-reset address and the code of a password reset, over SMTP
//! with lettre, STARTTLS on rustls (ring) required unless configured off.
//!
//! The SMTP password is read from `password_file` at each message (a
//! secret file: group- or world-readable files are refused), so replacing
//! the file needs no restart. Nothing here logs a code.

use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use std::time::Duration;
use twostep_config::SmtpConfig;

/// Why a message was not sent.
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    /// `[api.smtp]` or one of its files is not usable.
    #[error("[api.smtp]: {0}")]
    Config(String),
    /// The server refused the message, or could not be reached.
    #[error("SMTP: {0}")]
    Smtp(String),
}

/// Sends mail as `[api.smtp]` says.
#[derive(Debug, Clone)]
pub struct Mailer {
    config: SmtpConfig,
}

impl Mailer {
    /// The mailer of `[api.smtp]`.
    pub fn new(config: &SmtpConfig) -> Self {
        Self {
            config: config.clone(),
        }
    }

    fn transport(&self) -> Result<AsyncSmtpTransport<Tokio1Executor>, MailError> {
        let c = &self.config;
        let mut b = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(c.host.as_str())
            .port(c.port)
            .timeout(Some(Duration::from_secs(c.timeout)));
        if c.starttls {
            let mut tls = TlsParameters::builder(c.host.clone());
            if let Some(ca) = &c.ca_file {
                let pem = std::fs::read(ca)
                    .map_err(|e| MailError::Config(format!("ca_file {}: {e}", ca.display())))?;
                let cert = Certificate::from_pem(&pem)
                    .map_err(|e| MailError::Config(format!("ca_file {}: {e}", ca.display())))?;
                tls = tls.add_root_certificate(cert);
            }
            let params = tls
                .build_rustls()
                .map_err(|e| MailError::Config(format!("TLS: {e}")))?;
            b = b.tls(Tls::Required(params));
        } else {
            b = b.tls(Tls::None);
        }
        if let (Some(user), Some(file)) = (&c.username, &c.password_file) {
            let pw = twostep_config::read_secret_file(file)
                .map_err(|e| MailError::Config(e.to_string()))?;
            let pw = pw
                .expose_str()
                .ok_or_else(|| MailError::Config("password_file is not UTF-8".into()))?;
            b = b.credentials(Credentials::new(user.clone(), pw.to_owned()));
        }
        Ok(b.build())
    }

    /// Sends a plain-text message to `to`.
    ///
    /// # Errors
    /// [`MailError`] when the message cannot be built or the server does
    /// not take it within `timeout`.
    pub async fn send(&self, to: &str, subject: &str, body: String) -> Result<(), MailError> {
        let from: Mailbox = self
            .config
            .from
            .parse()
            .map_err(|e| MailError::Config(format!("from: {e}")))?;
        let to: Mailbox = to
            .parse()
            .map_err(|e| MailError::Smtp(format!("recipient: {e}")))?;
        let msg = Message::builder()
            .from(from)
            .to(to)
            .subject(subject)
            .header(lettre::message::header::ContentType::TEXT_PLAIN)
            .body(body)
            .map_err(|e| MailError::Smtp(e.to_string()))?;
        self.transport()?
            .send(msg)
            .await
            .map(|_| ())
            .map_err(|e| MailError::Smtp(twostep_common::error_chain(&e)))
    }
}
