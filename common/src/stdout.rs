//! Standard output of the command-line tools, for pipes: a reader that
//! goes away (`twostep audit | head`) ends the tool quietly, as it ends
//! any Unix tool, instead of the panic `println!` gives once Rust's
//! runtime has set SIGPIPE to be ignored.
//!
//! Written by hand: restoring SIGPIPE's default action takes `unsafe`
//! (`signal(2)`), which these crates forbid; this is a dozen lines.

use std::fmt;
use std::io::{ErrorKind, Write};

/// The exit status of a tool whose output pipe closed: 128 + SIGPIPE (13),
/// what a shell reports for a tool that SIGPIPE ended.
pub const PIPE_CLOSED: i32 = 141;

/// Writes `args` and a newline to standard output. When the reader has
/// gone away the process exits with [`PIPE_CLOSED`]; another write error
/// (a full disk behind a redirect) is one line on standard error and exit
/// status 74 (`EX_IOERR`, sysexits.h).
pub fn line(args: fmt::Arguments<'_>) {
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_fmt(args).and_then(|()| out.write_all(b"\n")) {
        exit_on(&e);
    }
}

/// Writes `args` to standard output, without a newline; as [`line`].
pub fn text(args: fmt::Arguments<'_>) {
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_fmt(args).and_then(|()| out.flush()) {
        exit_on(&e);
    }
}

fn exit_on(e: &std::io::Error) -> ! {
    if e.kind() == ErrorKind::BrokenPipe {
        std::process::exit(PIPE_CLOSED);
    }
    eprintln!("cannot write to standard output: {e}");
    std::process::exit(74);
}

/// `println!` for the tools: [`line`].
#[macro_export]
macro_rules! outln {
    () => {
        $crate::stdout::line(format_args!(""))
    };
    ($($arg:tt)*) => {
        $crate::stdout::line(format_args!($($arg)*))
    };
}

/// `print!` for the tools: [`text`].
#[macro_export]
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::stdout::text(format_args!($($arg)*))
    };
}
