//! Every file a configuration names, in one list ([`Config::files`]), so
//! the registry's start and `--check` ([`Config::check_files`]) and
//! `twostep doctor` judge the same files.

use crate::{Config, ConfigError, WebhookHeader};
use std::path::{Path, PathBuf};

/// What a file named by a `*_file` key holds, and so which rule applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// A secret: must exist, be a regular file owned by root or its reader,
    /// with no group or other permission bits, and not be empty.
    Secret,
    /// A secret the service creates on first start when it is missing
    /// (`[api] secret_key_file`, `[api] admin_token_file`).
    SecretCreated,
    /// Public material (certificates): must exist and be readable.
    Public,
}

/// The program that reads a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileReader {
    /// `twostep-api`, the registry.
    Api,
    /// `twostep-radiusd`.
    Radius,
    /// A client of the registry with a host API key: `pam_twostep.so` (as
    /// root) or, when the file also has `[radius]`, `twostep-radiusd`.
    Host,
    /// The `twostep` admin CLI (run by an admin, usually root).
    Admin,
}

/// Where in the TOML file a [`ConfigFile`] is set, for errors placed at
/// its line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Place {
    /// `key` inside the table whose header is `table` (e.g. `[api.sms]`).
    Key {
        /// The table header.
        table: &'static str,
        /// The key.
        key: &'static str,
    },
    /// The webhook header `name` (`[api.push] webhook_headers`).
    WebhookHeader(String),
    /// Somewhere the line search does not reach (tables of arrays).
    Elsewhere,
}

/// One file named by the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigFile {
    /// The key that names it, as errors and `twostep doctor` print it:
    /// `[api.sms] token_file`, `[[radius.client]] vpn secret_file`.
    pub key: String,
    /// The file.
    pub path: PathBuf,
    /// Secret or public.
    pub kind: FileKind,
    /// Who reads it.
    pub reader: FileReader,
    pub(crate) place: Place,
}

impl ConfigFile {
    fn new(key: String, path: &Path, kind: FileKind, reader: FileReader, place: Place) -> Self {
        Self {
            key,
            path: path.to_owned(),
            kind,
            reader,
            place,
        }
    }

    fn at(
        table: &'static str,
        key: &'static str,
        path: &Path,
        kind: FileKind,
        reader: FileReader,
    ) -> Self {
        Self::new(
            format!("{table} {key}"),
            path,
            kind,
            reader,
            Place::Key { table, key },
        )
    }
}

impl Config {
    /// Every file the configuration names (`*_file` keys and the webhook
    /// headers' `value_file`s), each with its key, kind and reader, in the
    /// order of the file's tables.
    pub fn files(&self) -> Vec<ConfigFile> {
        use FileKind::{Public, Secret, SecretCreated};
        use FileReader::{Admin, Api, Host, Radius};
        let mut out = Vec::new();
        if let Some(api) = &self.api {
            out.push(ConfigFile::at(
                "[api]",
                "secret_key_file",
                &api.secret_key_file,
                SecretCreated,
                Api,
            ));
            out.push(ConfigFile::at(
                "[api]",
                "admin_token_file",
                &api.admin_token_file,
                SecretCreated,
                Api,
            ));
            if let Some(p) = &api.tls_key_file {
                out.push(ConfigFile::at("[api]", "tls_key_file", p, Secret, Api));
            }
            if let Some(p) = &api.tls_cert_file {
                out.push(ConfigFile::at("[api]", "tls_cert_file", p, Public, Api));
            }
            for (name, value) in &api.push.webhook_headers {
                if let WebhookHeader::File(f) = value {
                    out.push(ConfigFile::new(
                        format!("[api.push] webhook_headers {name:?} value_file"),
                        &f.value_file,
                        Secret,
                        Api,
                        Place::WebhookHeader(name.clone()),
                    ));
                }
            }
            if let Some(smtp) = &api.smtp {
                if let Some(p) = &smtp.password_file {
                    out.push(ConfigFile::at(
                        "[api.smtp]",
                        "password_file",
                        p,
                        Secret,
                        Api,
                    ));
                }
                if let Some(p) = &smtp.ca_file {
                    out.push(ConfigFile::at("[api.smtp]", "ca_file", p, Public, Api));
                }
            }
            for (table, gateway) in [("[api.sms]", &api.sms), ("[api.voice]", &api.voice)] {
                if let Some(p) = gateway.as_ref().and_then(|g| g.token_file.as_ref()) {
                    out.push(ConfigFile::at(table, "token_file", p, Secret, Api));
                }
            }
        }
        if let Some(reg) = &self.registry {
            if let Some(p) = &reg.api_key_file {
                out.push(ConfigFile::at(
                    "[registry]",
                    "api_key_file",
                    p,
                    Secret,
                    Host,
                ));
            }
            if let Some(p) = &reg.admin_token_file {
                out.push(ConfigFile::at(
                    "[registry]",
                    "admin_token_file",
                    p,
                    Secret,
                    Admin,
                ));
            }
            if let Some(p) = &reg.ca_file {
                out.push(ConfigFile::at("[registry]", "ca_file", p, Public, Host));
            }
        }
        if let Some(r) = &self.radius {
            out.push(ConfigFile::at(
                "[radius]",
                "state_key_file",
                &r.state_key_file,
                Secret,
                Radius,
            ));
            for cl in &r.clients {
                out.push(ConfigFile::new(
                    format!("[[radius.client]] {} secret_file", cl.name),
                    &cl.secret_file,
                    Secret,
                    Radius,
                    Place::Elsewhere,
                ));
            }
            for up in &r.upstreams {
                if let Some(file) = &up.secret_file {
                    out.push(ConfigFile::new(
                        format!("[[radius.upstream]] {} secret_file", up.name),
                        file,
                        Secret,
                        Radius,
                        Place::Elsewhere,
                    ));
                }
                if let Some(rs) = &up.radsec {
                    for (key, file, kind) in [
                        ("key_file", &rs.key_file, Secret),
                        ("cert_file", &rs.cert_file, Public),
                        ("ca_file", &rs.ca_file, Public),
                    ] {
                        out.push(ConfigFile::new(
                            format!("[radius.upstream.radsec] {} {key}", up.name),
                            file,
                            kind,
                            Radius,
                            Place::Elsewhere,
                        ));
                    }
                }
            }
            if let Some(rs) = &r.radsec {
                out.push(ConfigFile::at(
                    "[radius.radsec]",
                    "key_file",
                    &rs.key_file,
                    Secret,
                    Radius,
                ));
                out.push(ConfigFile::at(
                    "[radius.radsec]",
                    "cert_file",
                    &rs.cert_file,
                    Public,
                    Radius,
                ));
                out.push(ConfigFile::at(
                    "[radius.radsec]",
                    "ca_file",
                    &rs.ca_file,
                    Public,
                    Radius,
                ));
            }
        }
        out
    }

    /// Checks, under the secret-file rule ([`crate::read_secret_file`]),
    /// the secrets of [`Config::files`] that the registry reads while it
    /// runs rather than at start (kind [`FileKind::Secret`], reader
    /// [`FileReader::Api`], not `tls_key_file`, which the TLS setup reads):
    /// the webhook headers' `value_file`s, `[api.smtp] password_file`,
    /// `[api.sms]` / `[api.voice]` `token_file`. Errors are placed at the
    /// key's FILE:LINE:COL of `path` (read again for the positions) and
    /// name the key. The registry runs it at start and with `--check`.
    ///
    /// # Errors
    /// [`ConfigError::Io`] when `path` cannot be read; [`ConfigError::Parse`]
    /// naming the key and why its file is refused.
    pub fn check_files(&self, path: &Path) -> Result<(), ConfigError> {
        let checked: Vec<ConfigFile> = self
            .files()
            .into_iter()
            .filter(|f| {
                f.kind == FileKind::Secret
                    && f.reader == FileReader::Api
                    && f.key != "[api] tls_key_file"
            })
            .collect();
        if checked.is_empty() {
            return Ok(());
        }
        let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Io {
            path: path.to_owned(),
            error,
        })?;
        for f in checked {
            if let Err(e) = crate::read_secret_file(&f.path) {
                let message = format!("{}: {e}", f.key);
                return Err(match &f.place {
                    Place::Key { table, key } => {
                        crate::gateway::table_key_error(path, &text, table, key, message)
                    }
                    Place::WebhookHeader(name) => {
                        crate::push::header_at(path, &text, name, message)
                    }
                    Place::Elsewhere => ConfigError::at_key(path, &text, "", message),
                });
            }
        }
        Ok(())
    }
}
