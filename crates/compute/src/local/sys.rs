//! The only code in this crate that talks to the kernel directly (and so the only `unsafe`).

use std::io;
use std::process::Command;

use crate::Signal;

/// Makes a child die with its parent: sets `PR_SET_PDEATHSIG = SIGKILL` between fork and exec.
///
/// The parent-death signal is what guarantees that no instance outlives Flotilla, even when
/// Flotilla itself is SIGKILLed and gets no chance to clean up. The kernel fires it when the
/// *thread* that forked the child exits, so callers must spawn from a long-lived thread (see
/// `spawner.rs`). If the parent already died before `prctl` ran, the signal would never come;
/// comparing `getppid()` with the expected parent closes that race by failing the spawn.
///
/// The process group is set by the caller with the safe `CommandExt::process_group(0)`.
#[allow(unsafe_code)]
pub(crate) fn die_with_parent(command: &mut Command) {
    use std::os::unix::process::CommandExt;
    let parent = libc::pid_t::try_from(std::process::id()).unwrap_or(libc::pid_t::MAX);
    // SAFETY: the closure runs in the forked child before exec, where only async-signal-safe
    // operations are allowed. It calls only `prctl`, `getppid` and reads `errno` (through
    // `io::Error::last_os_error`, which allocates nothing for OS errors); it does not allocate,
    // lock, or touch any state shared with other threads.
    unsafe {
        command.pre_exec(move || {
            #[cfg(target_os = "linux")]
            {
                let signal = libc::SIGKILL as libc::c_ulong;
                if libc::prctl(libc::PR_SET_PDEATHSIG, signal, 0, 0, 0) != 0 {
                    return Err(io::Error::last_os_error());
                }
            }
            if libc::getppid() != parent {
                // The parent died between fork and prctl: do not start an orphan.
                return Err(io::Error::from_raw_os_error(libc::ESRCH));
            }
            Ok(())
        });
    }
}

/// Sends `signal` to the whole process group `pgid` (the instance's main pid, since every
/// instance leads its own group), so helpers the instance started are stopped with it.
///
/// Returns `false` if the group no longer exists, which callers treat as "already gone".
#[allow(unsafe_code)]
pub(crate) fn signal_group(pgid: u32, signal: Signal) -> bool {
    let Ok(pgid) = libc::pid_t::try_from(pgid) else {
        return false;
    };
    if pgid <= 1 {
        // Never signal "every process" (0/-1 semantics) or init, whatever the caller passes.
        return false;
    }
    // SAFETY: `killpg` has no memory-safety preconditions; a stale or wrong group id yields an
    // error (ESRCH/EPERM), never undefined behaviour.
    let rc = unsafe { libc::killpg(pgid, signal.number()) };
    if rc != 0 {
        let err = io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::ESRCH) {
            tracing::warn!(pgid, %signal, error = %err, "cannot signal process group");
        }
        return false;
    }
    true
}

/// Whether any process (including a zombie) has id `pid`.
pub(crate) fn pid_exists(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// The hard limits on open files and processes of this process (`RLIMIT_NOFILE`,
/// `RLIMIT_NPROC`), `None` for one that cannot be read or is unlimited.
#[allow(unsafe_code)]
pub(crate) fn hard_limits() -> (Option<u64>, Option<u64>) {
    let hard = |resource| {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: `getrlimit` writes one `rlimit` through a pointer to a live, properly
        // aligned local; it has no other memory effects.
        let rc = unsafe { libc::getrlimit(resource, &mut limit) };
        (rc == 0 && limit.rlim_max != libc::RLIM_INFINITY).then_some(limit.rlim_max)
    };
    (hard(libc::RLIMIT_NOFILE), hard(libc::RLIMIT_NPROC))
}
