//! pam_twostep.so loaded into this very process by libpam (pam_start_confdir
//! with a private service directory): the calling process has the same
//! threads after pam_authenticate as before, on the success path (with a
//! name lookup through the runtime's blocking pool) and on the timeout
//! path; pam_setcred and pam_acct_mgmt give their documented results.
//!
//! The only test in this binary, so no other test's threads come and go
//! while it counts.

mod pam_support;

use libc::{c_char, c_int, c_void};
use pam_support::*;
use std::ffi::CString;
use std::time::{Duration, Instant};

#[repr(C)]
struct PamMessage {
    msg_style: c_int,
    msg: *const c_char,
}

#[repr(C)]
struct PamResponse {
    resp: *mut c_char,
    resp_retcode: c_int,
}

type ConvFn =
    extern "C" fn(c_int, *mut *const PamMessage, *mut *mut PamResponse, *mut c_void) -> c_int;

#[repr(C)]
struct PamConv {
    conv: ConvFn,
    appdata_ptr: *mut c_void,
}

const PAM_SUCCESS: c_int = 0;
const PAM_BUF_ERR: c_int = 5;
const PAM_AUTHINFO_UNAVAIL: c_int = 9;
const PAM_CONV_ERR: c_int = 19;
const PAM_IGNORE: c_int = 25;
const PAM_PROMPT_ECHO_OFF: c_int = 1;
const PAM_ESTABLISH_CRED: c_int = 0x2;

#[link(name = "pam")]
extern "C" {
    fn pam_start_confdir(
        service: *const c_char,
        user: *const c_char,
        conv: *const PamConv,
        confdir: *const c_char,
        pamh: *mut *mut c_void,
    ) -> c_int;
    fn pam_authenticate(pamh: *mut c_void, flags: c_int) -> c_int;
    fn pam_setcred(pamh: *mut c_void, flags: c_int) -> c_int;
    fn pam_acct_mgmt(pamh: *mut c_void, flags: c_int) -> c_int;
    fn pam_end(pamh: *mut c_void, status: c_int) -> c_int;
}

/// What the conversation answers, and what it saw.
struct Script {
    code: CString,
    /// Threads of this process while the module waited at its prompt.
    threads_at_prompt: std::cell::Cell<usize>,
}

/// Answers every echo-off prompt with the code in `appdata` (a [`Script`]).
extern "C" fn answer_code(
    n: c_int,
    msgs: *mut *const PamMessage,
    resp: *mut *mut PamResponse,
    appdata: *mut c_void,
) -> c_int {
    if n <= 0 || msgs.is_null() || resp.is_null() || appdata.is_null() {
        return PAM_CONV_ERR;
    }
    let n = n as usize;
    // SAFETY: calloc of n zeroed responses; libpam's caller frees them.
    let out = unsafe { libc::calloc(n, std::mem::size_of::<PamResponse>()) } as *mut PamResponse;
    if out.is_null() {
        return PAM_BUF_ERR;
    }
    // SAFETY: appdata is the Script we passed to pam_start_confdir and
    // outlives the PAM handle.
    let script = unsafe { &*(appdata as *const Script) };
    script.threads_at_prompt.set(threads());
    let code = &script.code;
    for i in 0..n {
        // SAFETY: libpam passes n valid message pointers (Linux-PAM layout:
        // an array of pointers).
        let m = unsafe { &**msgs.add(i) };
        if m.msg_style == PAM_PROMPT_ECHO_OFF {
            // SAFETY: strdup of a valid C string; freed by the module.
            unsafe { (*out.add(i)).resp = libc::strdup(code.as_ptr()) };
        }
    }
    // SAFETY: resp is a valid out pointer from libpam.
    unsafe { *resp = out };
    PAM_SUCCESS
}

fn threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .expect("/proc/self/task")
        .count()
}

/// One PAM transaction on `service` from `confdir`; returns the results of
/// pam_authenticate, then (after it) pam_setcred and pam_acct_mgmt, and
/// the thread counts around pam_authenticate.
fn transaction(confdir: &std::path::Path, service: &str, user: &str, code: &str) -> Outcome {
    let service = CString::new(service).unwrap();
    let user = CString::new(user).unwrap();
    let confdir = CString::new(confdir.as_os_str().as_encoded_bytes()).unwrap();
    let script = Script {
        code: CString::new(code).unwrap(),
        threads_at_prompt: std::cell::Cell::new(0),
    };
    let conv = PamConv {
        conv: answer_code,
        appdata_ptr: &script as *const Script as *mut c_void,
    };
    let mut pamh: *mut c_void = std::ptr::null_mut();
    // SAFETY: all pointers are valid C strings / structs that outlive the
    // handle, which pam_end releases below.
    let rc = unsafe {
        pam_start_confdir(
            service.as_ptr(),
            user.as_ptr(),
            &conv,
            confdir.as_ptr(),
            &mut pamh,
        )
    };
    assert_eq!(rc, PAM_SUCCESS, "pam_start_confdir");
    let before = threads();
    let start = Instant::now();
    // SAFETY: pamh is the live handle from pam_start_confdir.
    let auth = unsafe { pam_authenticate(pamh, 0) };
    let elapsed = start.elapsed();
    let after = threads();
    // SAFETY: as above.
    let setcred = unsafe { pam_setcred(pamh, PAM_ESTABLISH_CRED) };
    // SAFETY: as above.
    let acct = unsafe { pam_acct_mgmt(pamh, 0) };
    // SAFETY: as above; the handle is not used afterwards.
    unsafe { pam_end(pamh, auth) };
    Outcome {
        auth,
        setcred,
        acct,
        before,
        at_prompt: script.threads_at_prompt.get(),
        after,
        elapsed,
    }
}

#[derive(Debug)]
struct Outcome {
    auth: c_int,
    setcred: c_int,
    acct: c_int,
    before: usize,
    at_prompt: usize,
    after: usize,
    elapsed: Duration,
}

#[test]
fn no_thread_outlives_pam_authenticate() {
    let f = Fixture::new();
    let secret = f.enrolled("alice");
    // "localhost" makes reqwest resolve the name on the runtime's blocking
    // pool: a thread that must be gone when pam_authenticate returns.
    let by_name = f.reg.url.replace("127.0.0.1", "localhost");
    f.write_config(
        "by-name",
        &format!(
            "version = 1\n[registry]\nurl = {by_name:?}\napi_key_file = {:?}\n",
            f.key.display().to_string()
        ),
    );
    let port = black_hole();
    f.write_config(
        "hole",
        &format!(
            "version = 1\n[registry]\nurl = \"http://127.0.0.1:{port}\"\napi_key_file = {:?}\n[pam]\ntotal_timeout = 1\n",
            f.key.display().to_string()
        ),
    );
    // Only the module: its own results, not a stack's.
    f.service(
        "by-name",
        "auth required TWOSTEP CONFIG(by-name)\naccount required TWOSTEP CONFIG(by-name)\n",
    );
    f.service("hole", "auth required TWOSTEP CONFIG(hole)\n");

    let o = transaction(&f.svc_dir(), "by-name", "alice", &code(&secret));
    assert_eq!(o.auth, PAM_SUCCESS, "{o:?}");
    // The name lookup ran on a blocking-pool thread that was still alive
    // (idle) at the prompt...
    assert!(o.at_prompt > o.before, "no lookup thread seen: {o:?}");
    // ...and was joined before pam_authenticate returned.
    assert_eq!(
        o.before, o.after,
        "threads before/after pam_authenticate: {o:?}"
    );
    assert_eq!(o.setcred, PAM_SUCCESS, "setcred: {o:?}");
    // account: the module answers PAM_IGNORE; alone in the stack, libpam
    // turns "nobody decided" into a failure rather than a success.
    assert_ne!(o.acct, PAM_SUCCESS, "acct_mgmt: {o:?}");
    assert_ne!(o.acct, PAM_IGNORE);

    let o = transaction(&f.svc_dir(), "hole", "alice", "123456");
    assert_eq!(o.auth, PAM_AUTHINFO_UNAVAIL, "{o:?}");
    assert!(o.elapsed < Duration::from_secs(3), "{o:?}");
    assert_eq!(
        o.before, o.after,
        "threads before/after pam_authenticate: {o:?}"
    );
    // The test itself has at most the main and the test thread (plus the
    // black hole's acceptor).
    assert!(o.after <= 3, "{o:?}");
}
