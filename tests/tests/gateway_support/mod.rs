//! A text-message / phone-call gateway for the tests: a small HTTP/1.1
//! server on 127.0.0.1 that records each request the registry makes to
//! it, and the `[api.sms]` / `[api.voice]` tables pointing at it.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use twostep_common::phone::{Channel, EnrolPhone};
use twostep_e2e::{block_on, write_secret, Registry};

/// One request the gateway got.
#[derive(Debug, Clone)]
pub struct Got {
    pub method: String,
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Got {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The 6 digits of the message (a form body's `Body`, a JSON body's
    /// `say`, spaced or not).
    pub fn code(&self) -> String {
        let text = if self.body.starts_with('{') {
            let v: serde_json::Value = serde_json::from_str(&self.body).expect("JSON body");
            v["say"].as_str().expect("say").to_owned()
        } else {
            self.body
                .split('&')
                .find_map(|kv| kv.strip_prefix("Body="))
                .expect("Body field")
                .to_owned()
        };
        let digits: String = text
            .split("is")
            .nth(1)
            .unwrap_or("")
            .chars()
            .filter(char::is_ascii_digit)
            .take(6)
            .collect();
        assert_eq!(digits.len(), 6, "a code in {text:?}");
        digits
    }
}

/// The gateway: an HTTP/1.1 server on 127.0.0.1 answering every request
/// with `status`, recording them.
pub struct Gateway {
    pub port: u16,
    got: Arc<Mutex<Vec<Got>>>,
    pub status: Arc<AtomicU16>,
}

impl Gateway {
    pub fn start(status: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind gateway");
        let port = listener.local_addr().expect("addr").port();
        let got = Arc::new(Mutex::new(Vec::new()));
        let status = Arc::new(AtomicU16::new(status));
        let (g, s) = (Arc::clone(&got), Arc::clone(&status));
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                let mut reader = BufReader::new(conn.try_clone().expect("clone"));
                let mut line = String::new();
                if reader.read_line(&mut line).is_err() {
                    continue;
                }
                let mut parts = line.split_whitespace();
                let method = parts.next().unwrap_or("").to_owned();
                let target = parts.next().unwrap_or("").to_owned();
                let mut headers = Vec::new();
                loop {
                    let mut h = String::new();
                    if reader.read_line(&mut h).is_err() || h.trim().is_empty() {
                        break;
                    }
                    if let Some((n, v)) = h.trim_end().split_once(':') {
                        headers.push((n.trim().to_owned(), v.trim().to_owned()));
                    }
                }
                let len = headers
                    .iter()
                    .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
                    .and_then(|(_, v)| v.parse::<usize>().ok())
                    .unwrap_or(0);
                let mut body = vec![0u8; len];
                let _ = reader.read_exact(&mut body);
                g.lock().unwrap().push(Got {
                    method,
                    target,
                    headers,
                    body: String::from_utf8_lossy(&body).into_owned(),
                });
                let code = s.load(Ordering::SeqCst);
                let _ = write!(
                    conn,
                    "HTTP/1.1 {code} X\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
                );
            }
        });
        Self { port, got, status }
    }

    pub fn requests(&self) -> Vec<Got> {
        self.got.lock().unwrap().clone()
    }

    pub fn last(&self) -> Got {
        self.requests()
            .last()
            .cloned()
            .expect("a request at the gateway")
    }
}

/// The `[api.sms]` and `[api.voice]` tables: a Twilio-style form post to
/// `sms_port` with the token in a Basic header, a JSON post to
/// `voice_port`.
pub fn gateways_toml(dir: &Path, sms_port: u16, voice_port: u16) -> String {
    let token = dir.join("sms.token");
    write_secret(&token, "QUMxMjM6c2VjcmV0\n");
    format!(
        "[api.sms]\nurl = \"http://127.0.0.1:{sms_port}/2010-04-01/Accounts/AC123/Messages.json\"\n\
         headers = {{ Authorization = \"Basic {{{{token}}}}\" }}\ntoken_file = {:?}\n\
         body = \"To={{{{phone}}}}&From=%2B15550000000&Body={{{{message}}}}\"\ntimeout = 3\n\
         [api.voice]\nurl = \"http://127.0.0.1:{voice_port}/calls\"\ncontent_type = \"application/json\"\n\
         body = '{{\"to\":\"{{{{phone}}}}\",\"say\":\"{{{{message}}}}\"}}'\ntimeout = 3\n",
        token.display().to_string()
    )
}

/// Gives `user` a phone method for `channel` (through the admin API).
pub fn phone(reg: &Registry, user: &str, channel: Channel, number: &str, default: bool) {
    block_on(reg.admin_client().enrol_phone(
        user,
        &EnrolPhone {
            channel,
            number: number.into(),
            default,
        },
    ))
    .unwrap_or_else(|e| panic!("phone for {user}: {e}"));
}
