//! Standard output for the CLI, ending quietly on a closed pipe.
//!
//! `println!` panics when stdout is a pipe whose reader went away (`flotilla activities web |
//! head`). Unix tools end silently there; resetting SIGPIPE to its default would do it too,
//! but it would also let a reset socket kill `flotilla load` and the admin client (hyper
//! writes with `writev`, which raises SIGPIPE). So every line goes through [`write_line`],
//! which exits with status 0 on `EPIPE` and reports other write errors once.

use std::io::{ErrorKind, Write};

/// Writes `args` to stdout and flushes (so live lines show at once through a pipe); on a
/// closed pipe the process ends quietly with status 0.
pub(crate) fn write(args: std::fmt::Arguments<'_>) {
    let mut out = std::io::stdout().lock();
    let result = out.write_fmt(args).and_then(|()| out.flush());
    match result {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::BrokenPipe => std::process::exit(0),
        Err(e) => {
            eprintln!("error: writing to stdout: {e}");
            std::process::exit(1);
        }
    }
}

/// `println!` that ends quietly on a closed pipe (see the module docs).
macro_rules! outln {
    () => {
        $crate::out::write(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::out::write(format_args!("{}\n", format_args!($($arg)*)))
    };
}

pub(crate) use outln;
