//! The registry: does it answer, and does it accept this host's API key.

use super::report::{Finding, Status};
use twostep_common::client::{ClientError, RegistryClient};
use twostep_config::{Config, Secret};

/// Username asked about to test the host key; any answer but 401/403 means
/// the key is accepted.
pub const PROBE_USER: &str = "twostep-doctor-probe";

/// What to do when `GET /v1/health` at `url` failed with `e`: the
/// registry down only when nothing answered.
fn health_fix(e: &ClientError, url: &str) -> String {
    match e {
        ClientError::Tls(_) => format!(
            "a TLS handshake with {url:?} failed: if the registry serves plain HTTP, the url starts with http://; otherwise set [registry] ca_file to the CA that signed its certificate"
        ),
        ClientError::Api { status: 404, .. }
        | ClientError::Refused { status: 404, .. }
        | ClientError::Protocol(_) => format!(
            "no twostep registry API answers at {url:?}: the url is the registry's address without a path (https://registry.example.com:8443); check the port"
        ),
        ClientError::Transport(_) => format!(
            "the connection to {url:?} broke: if the registry serves TLS, the url starts with https://; check a proxy or load balancer in between"
        ),
        _ => format!(
            "start the registry (systemctl start twostep-api) or correct [registry] url = {url:?}; check firewalls and, for https, ca_file"
        ),
    }
}

/// The registry's health, then the host key (a registrations query for
/// [`PROBE_USER`]).
pub fn check_registry(c: &Config) -> Vec<Finding> {
    let check = "registry";
    let Some(reg) = &c.registry else {
        return vec![Finding::new(
            Status::Warn,
            check,
            "the config has no [registry] table: pam_twostep.so and twostep-radiusd cannot reach the registry",
            "add [registry] with url and api_key_file",
        )];
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            return vec![Finding::new(
                Status::Fail,
                check,
                format!("cannot start the async runtime: {e}"),
                "check the process limits",
            )]
        }
    };
    let mut out = Vec::new();
    let anon = match RegistryClient::new(reg, Secret::new(b"none".to_vec())) {
        Ok(c) => c,
        Err(e) => {
            return vec![Finding::new(
                Status::Fail,
                check,
                e.to_string(),
                "correct [registry] url, ca_file or proxy",
            )]
        }
    };
    match rt.block_on(anon.health()) {
        Ok(h) if h.status == "ok" => {
            out.push(Finding::ok(
                check,
                format!("{} answers, version {}", reg.url, h.version),
            ));
            if let Some(o) = h.clock_offset_seconds {
                out.push(clock_finding(o));
            }
        }
        Ok(h) => out.push(Finding::new(
            Status::Fail,
            check,
            format!("{} reports status {:?}", reg.url, h.status),
            "check the registry's log and its database (journalctl -u twostep-api)",
        )),
        Err(e) => {
            let fix = health_fix(&e, &reg.url);
            out.push(Finding::new(Status::Fail, check, e.to_string(), fix));
            return out;
        }
    }
    let Some(key_file) = &reg.api_key_file else {
        out.push(Finding::new(
            Status::Warn,
            check,
            "[registry] has no api_key_file: this host cannot ask the registry",
            "run `twostep host add NAME` on the registry and write the key to a root-only file named by api_key_file",
        ));
        return out;
    };
    let client = match RegistryClient::for_host(reg) {
        Ok(c) => c,
        // Owner and mode problems are reported by the file checks.
        Err(ClientError::Config(_)) => return out,
        Err(e) => {
            out.push(Finding::new(
                Status::Fail,
                check,
                e.to_string(),
                "correct [registry]",
            ));
            return out;
        }
    };
    let fix_key = format!(
        "run `twostep host add NAME` on the registry and write the key it prints over the old one in {} (mode 0600; `host add --key-file` refuses an existing file, remove it first)",
        key_file.display()
    );
    match rt.block_on(client.registrations(PROBE_USER)) {
        Ok(_) => out.push(Finding::ok(
            check,
            format!(
                "the registry accepts the host key in {}",
                key_file.display()
            ),
        )),
        Err(ClientError::Refused {
            status: 403,
            message,
            ..
        }) => out.push(Finding::new(
            Status::Fail,
            check,
            format!(
                "the host key in {} is revoked: {message}",
                key_file.display()
            ),
            fix_key,
        )),
        Err(ClientError::Refused {
            status, message, ..
        }) => out.push(Finding::new(
            Status::Fail,
            check,
            format!(
                "the registry refused the host key in {} ({status}): {message}",
                key_file.display()
            ),
            fix_key,
        )),
        Err(e) => out.push(Finding::new(
            Status::Fail,
            check,
            format!("asking the registry with the host key: {e}"),
            "check the registry's log (journalctl -u twostep-api)",
        )),
    }
    out
}

/// What the registry's clock offset from its database says: nodes sharing
/// a database that disagree by more than 2 s judge codes differently.
fn clock_finding(offset: i64) -> Finding {
    let check = "registry clock";
    if offset.abs() > 2 {
        Finding::new(
            Status::Warn,
            check,
            format!("the registry's clock is {offset} s off its database server's"),
            "synchronise the clocks of the registry nodes and the database server (chrony, systemd-timesyncd)",
        )
    } else {
        Finding::ok(
            check,
            format!("within {} s of its database server", offset.abs()),
        )
    }
}

#[cfg(test)]
mod clock_tests {
    use super::*;

    #[test]
    fn offsets_over_two_seconds_warn() {
        assert_eq!(clock_finding(0).status, Status::Ok);
        assert_eq!(clock_finding(-2).status, Status::Ok);
        assert_eq!(clock_finding(3).status, Status::Warn);
        assert_eq!(clock_finding(-30).status, Status::Warn);
        assert!(clock_finding(-30).message.contains("-30 s"));
    }

    #[test]
    fn a_failed_health_check_is_told_by_what_answered() {
        let url = "https://r.example:8443/v1";
        let fix = |e: ClientError| health_fix(&e, url);
        assert!(fix(ClientError::Tls("corrupt message".into()))
            .contains("if the registry serves plain HTTP, the url starts with http://"));
        assert!(fix(ClientError::Api {
            status: 404,
            code: "not_found".into(),
            message: "no such route".into()
        })
        .contains("without a path"));
        assert!(fix(ClientError::Transport("frame size".into()))
            .contains("if the registry serves TLS, the url starts with https://"));
        assert!(fix(ClientError::Unreachable("refused".into())).starts_with("start the registry"));
    }
}
