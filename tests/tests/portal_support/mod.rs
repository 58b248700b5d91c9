//! Shared helpers for the Security info page tests: chromedriver and
//! headless Chromium, screenshots, the QR decoded with zbarimg, codes from
//! oathtool, the `twostep` CLI, and a plain HTTP client with a cookie jar.
#![allow(dead_code)]

use fantoccini::{Client, ClientBuilder, Locator};
use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use twostep_e2e::{bin, free_tcp_port, now, oathtool_code, Registry};

/// The page password the tests choose.
pub const PASSWORD: &str = "correct horse battery staple";

// ---- browser -----------------------------------------------------------------

/// A `chromedriver` on 127.0.0.1 for this test.
pub struct Driver {
    child: Option<Child>,
    port: u16,
}

impl Driver {
    pub fn start() -> Driver {
        Self::start_in(None)
    }

    /// A chromedriver whose browsers run with `HOME=home` (their NSS
    /// certificate database is `home/.pki/nssdb`).
    pub fn start_with_home(home: &std::path::Path) -> Driver {
        Self::start_in(Some(home))
    }

    fn start_in(home: Option<&std::path::Path>) -> Driver {
        let port = free_tcp_port();
        let mut cmd = Command::new("chromedriver");
        if let Some(h) = home {
            cmd.env("HOME", h);
        }
        let child = cmd
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("run chromedriver (apt-get install chromium-driver)");
        let d = Driver {
            child: Some(child),
            port,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
        d
    }

    /// Its WebDriver port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A new browser (its own profile: its own cookies) with JavaScript off.
    pub async fn browser(&self) -> Client {
        self.browser_js(false).await
    }

    /// A new browser (its own profile), JavaScript on or off.
    pub async fn browser_js(&self, javascript: bool) -> Client {
        let caps = serde_json::json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--window-size=1366,900",
                         "--hide-scrollbars", "--force-device-scale-factor=1"],
                "prefs": { "profile.managed_default_content_settings.javascript": if javascript { 1 } else { 2 } }
            }
        });
        let caps = caps.as_object().expect("object").clone();
        ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{}", self.port))
            .await
            .expect("a chromium session")
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

pub fn screenshot_dir() -> PathBuf {
    let d = twostep_e2e::target_dir()
        .parent()
        .expect("target")
        .join("portal-screenshots");
    std::fs::create_dir_all(&d).expect("screenshot dir");
    d
}

/// Saves the page as `NAME-laptop.png` (1366×900) and `NAME-phone.png`
/// (390×844).
pub async fn shot(c: &Client, name: &str) {
    for (w, h, tag) in [(390, 844, "phone"), (1366, 900, "laptop")] {
        // The window is larger than the page's viewport by the browser's
        // own frame: size it so that the viewport is w×h.
        c.set_window_size(w, h).await.expect("window size");
        let mut png = c.screenshot().await.expect("screenshot");
        let (pw, ph) = png_size(&png);
        if (pw, ph) != (w, h) {
            c.set_window_size(2 * w - pw, 2 * h - ph)
                .await
                .expect("window size");
            png = c.screenshot().await.expect("screenshot");
        }
        std::fs::write(screenshot_dir().join(format!("{name}-{tag}.png")), png).expect("write png");
    }
}

/// Width and height of a PNG image (its IHDR chunk).
pub fn png_size(png: &[u8]) -> (u32, u32) {
    let be = |i: usize| u32::from_be_bytes(png[i..i + 4].try_into().expect("4 bytes"));
    (be(16), be(20))
}

/// The page's text. A document replaced while it is read (a redirect
/// still landing) is read again, at most 20 times 100 ms apart.
pub async fn text(c: &Client) -> String {
    let mut tries = 0;
    loop {
        let read = match c.find(Locator::Css("body")).await {
            Ok(body) => body.text().await,
            Err(e) => Err(e),
        };
        match read {
            Ok(t) => return t,
            Err(e) if tries < 20 => {
                tries += 1;
                let _ = e;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("text: {e}"),
        }
    }
}

/// Clicks the link or button whose text is `label` and waits (at most
/// 10 s) for the next page: until the old document is gone.
pub async fn click(c: &Client, label: &str) {
    let old = c.find(Locator::Css("html")).await.expect("html");
    press(c, label).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while old.tag_name().await.is_ok() {
        assert!(Instant::now() < deadline, "{label:?} led to no new page");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Clicks the element `css` finds and waits (at most 10 s) for the next
/// page (for the reset choices, whose text is a title and a sentence).
pub async fn click_css(c: &Client, css: &str) {
    let old = c.find(Locator::Css("html")).await.expect("html");
    c.find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("no {css}: {e}"))
        .click()
        .await
        .expect("click");
    let deadline = Instant::now() + Duration::from_secs(10);
    while old.tag_name().await.is_ok() {
        assert!(Instant::now() < deadline, "{css} led to no new page");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Clicks the link, button or summary whose text is `label`.
pub async fn press(c: &Client, label: &str) {
    let xpath =
        format!("//*[self::a or self::button or self::summary][normalize-space()=\"{label}\"]");
    c.find(Locator::XPath(&xpath))
        .await
        .unwrap_or_else(|e| panic!("no link or button {label:?}: {e}"))
        .click()
        .await
        .expect("click");
}

pub async fn fill(c: &Client, id: &str, value: &str) {
    let e = c
        .find(Locator::Id(id))
        .await
        .unwrap_or_else(|e| panic!("no #{id}: {e}"));
    e.clear().await.expect("clear");
    e.send_keys(value).await.expect("type");
}

pub async fn session_cookie(c: &Client) -> String {
    c.get_named_cookie("twostep-session")
        .await
        .expect("session cookie")
        .value()
        .to_owned()
}

pub async fn path(c: &Client) -> String {
    c.current_url().await.expect("url").path().to_owned()
}

// ---- codes -------------------------------------------------------------------

/// A code for the oldest time step newer than `*last` that the registry
/// accepts now (skew 1), waiting for the clock when there is none yet;
/// `*last` becomes that step.
pub fn next_code(secret: &str, last: &mut u64) -> String {
    loop {
        let t = now();
        let step = t / 30;
        let candidate = (*last + 1).max(step);
        if candidate <= step + 1 {
            *last = candidate;
            return oathtool_code(secret, candidate * 30);
        }
        std::thread::sleep(Duration::from_secs((step + 1) * 30 - t + 1));
    }
}

/// The secret of an `otpauth://` URI.
pub fn secret_of(uri: &str) -> String {
    uri.split(['?', '&'])
        .find_map(|kv| kv.strip_prefix("secret="))
        .unwrap_or_else(|| panic!("no secret in {uri}"))
        .to_owned()
}

/// Decodes the QR code image the page shows, with zbarimg.
pub async fn read_qr(c: &Client) -> String {
    let png = c
        .find(Locator::Css("svg.qr"))
        .await
        .expect("QR image")
        .screenshot()
        .await
        .expect("QR screenshot");
    let file = screenshot_dir().join("qr-element.png");
    std::fs::write(&file, png).expect("write QR");
    let out = Command::new("zbarimg")
        .args(["--raw", "-q"])
        .arg(&file)
        .output()
        .expect("run zbarimg (apt-get install zbar-tools)");
    assert!(out.status.success(), "zbarimg found no QR code: {out:?}");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

// ---- CLI ---------------------------------------------------------------------

pub fn cli(reg: &Registry, args: &[&str], stdin: Option<&str>) -> String {
    use std::io::Write;
    let mut child = Command::new(bin("twostep"))
        .arg("--config")
        .arg(&reg.config_path)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run twostep");
    {
        let mut i = child.stdin.take().expect("stdin");
        if let Some(s) = stdin {
            i.write_all(s.as_bytes()).expect("write stdin");
        }
    }
    let out = twostep_e2e::wait_bounded(child, Duration::from_secs(30));
    assert!(
        out.status.success(),
        "twostep {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn method_count(reg: &Registry, user: &str) -> usize {
    twostep_e2e::block_on(reg.admin_client().user(user))
        .expect("user")
        .methods
        .len()
}

// ---- plain HTTP client with a cookie jar ---------------------------------------

pub struct Web {
    pub http: reqwest::Client,
    pub base: String,
    pub jar: Mutex<HashMap<String, String>>,
}

pub struct Answer {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: String,
}

impl Web {
    pub fn new(base: &str, ca: Option<&std::path::Path>) -> Web {
        let mut b = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none());
        if let Some(ca) = ca {
            let pem = std::fs::read(ca).expect("CA");
            b = b
                .add_root_certificate(reqwest::Certificate::from_pem(&pem).expect("CA pem"))
                .tls_built_in_root_certs(false);
        }
        Web {
            http: b.build().expect("client"),
            base: base.to_owned(),
            jar: Mutex::new(HashMap::new()),
        }
    }

    pub fn cookie_header(&self) -> String {
        let jar = self.jar.lock().expect("jar");
        jar.iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    pub async fn answer(&self, resp: reqwest::Response) -> Answer {
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        for sc in headers.get_all(reqwest::header::SET_COOKIE) {
            let sc = sc.to_str().expect("ascii cookie");
            let (kv, attrs) = sc.split_once(';').unwrap_or((sc, ""));
            let (k, v) = kv.split_once('=').expect("name=value");
            let mut jar = self.jar.lock().expect("jar");
            if attrs.contains("Max-Age=0") {
                jar.remove(k);
            } else {
                jar.insert(k.to_owned(), v.to_owned());
            }
        }
        Answer {
            status,
            headers,
            body: resp.text().await.expect("body"),
        }
    }

    pub async fn get(&self, path: &str) -> Answer {
        let resp = self
            .http
            .get(format!("{}{path}", self.base))
            .header("cookie", self.cookie_header())
            .send()
            .await
            .expect("GET");
        self.answer(resp).await
    }

    pub async fn post(&self, path: &str, fields: &[(&str, &str)]) -> Answer {
        let resp = self
            .http
            .post(format!("{}{path}", self.base))
            .header("cookie", self.cookie_header())
            .form(fields)
            .send()
            .await
            .expect("POST");
        self.answer(resp).await
    }

    /// Signs in with a password (user without a method); returns the
    /// CSRF token of the signed-in session's pages.
    pub async fn sign_in(&self, user: &str, password: &str) -> Answer {
        let page = self.get("/my/").await;
        let csrf = csrf(&page.body);
        self.post(
            "/my/sign-in",
            &[("csrf", &csrf), ("username", user), ("password", password)],
        )
        .await
    }
}

pub fn csrf(body: &str) -> String {
    let at = body
        .find("name=\"csrf\" value=\"")
        .unwrap_or_else(|| panic!("no CSRF token in {body}"));
    body[at + 19..at + 19 + 64].to_owned()
}

pub fn location(a: &Answer) -> &str {
    a.headers
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}
