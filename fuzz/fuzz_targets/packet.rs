//! Fuzzes twostep-radiusd's packet handling: classification,
//! Message-Authenticator, then the real login flow (request parsing with
//! password decoding, State opening and sealing, decisions, pending push
//! logins) with scripted primary and registry answers (codes and pushes),
//! and reply assembly, for a strict and three legacy clients (append,
//! challenge, auto-push). Any panic is a finding; answers must be well-formed
//! replies.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::net::SocketAddr;
use std::sync::OnceLock;
use twostep_config::FailMode;
use twostep_radius::fuzzing::{clients, exercise_scripted, Outcome, Script};
use twostep_radius::settings::Client;
use twostep_radius::wire;

fn all_clients() -> &'static [Client] {
    static C: OnceLock<Vec<Client>> = OnceLock::new();
    C.get_or_init(clients)
}

fuzz_target!(|data: &[u8]| {
    let scripts = [
        (Script::wrong_code(), FailMode::Closed),
        (Script::registry_down(), FailMode::Open),
    ];
    for last in 1..=4u8 {
        let source = SocketAddr::from(([127, 0, 0, last], 1812));
        for (script, fail_mode) in &scripts {
            if let Outcome::Answered(reply) =
                exercise_scripted(all_clients(), data, source, script, *fail_mode)
            {
                let r = wire::parse(&reply).expect("our reply parses");
                assert_eq!(r.attrs[0].typ, wire::attr::MESSAGE_AUTHENTICATOR);
            }
        }
    }
});
