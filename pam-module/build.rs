//! Link options of `pam_twostep.so`: no shared library that sshd, sudo
//! or login would not load anyway, since each one costs every login the
//! time to load it (measured with `dlopen` on a 2-core VM: libgcc_s
//! about 0.16 ms, its constructor's CPUID probes included, libm about
//! 0.1 ms).
//!
//! - `--as-needed`: rustc names libm for every Rust program; built alone
//!   (`cargo build -p pam_twostep`) the module uses none of it. Built
//!   with the other binaries it does: cargo gives tokio the features
//!   they ask for, and the multi-thread scheduler calls `pow`.
//! - The unwinder (`_Unwind_*`, which catching a panic at the FFI boundary
//!   needs) is linked from GCC's static `libgcc_eh.a`, as `gcc
//!   -static-libgcc` does, instead of loading libgcc_s. Panics never
//!   leave the module, so its unwinder is the only one that sees them.
//!   Where the compiler driver names no such archive, libgcc_s is used as
//!   before.
use std::path::Path;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=CC");
    println!("cargo:rustc-cdylib-link-arg=-Wl,--as-needed");
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let archive = Command::new(&cc)
        .arg("-print-file-name=libgcc_eh.a")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned());
    match archive.as_deref().map(Path::new) {
        Some(p) if p.is_absolute() && p.is_file() => {
            if let Some(dir) = p.parent() {
                println!("cargo:rustc-link-search=native={}", dir.display());
                println!("cargo:rustc-link-lib=static:-bundle=gcc_eh");
            }
        }
        _ => println!(
            "cargo:warning={cc} names no libgcc_eh.a: pam_twostep.so loads libgcc_s for unwinding"
        ),
    }
}
