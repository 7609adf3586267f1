//! Unix signals by name, as launch templates spell them (`stop_signal = "SIGTERM"`).

use std::fmt;

/// A Unix signal number.
///
/// A newtype rather than a bare `i32` so that configuration is validated once (via
/// [`Signal::from_name`]) and the rest of the system cannot send signal numbers it made up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Signal(i32);

/// Known signals: (name without the `SIG` prefix, number).
const TABLE: &[(&str, i32)] = &[
    ("HUP", libc::SIGHUP),
    ("INT", libc::SIGINT),
    ("QUIT", libc::SIGQUIT),
    ("ABRT", libc::SIGABRT),
    ("KILL", libc::SIGKILL),
    ("USR1", libc::SIGUSR1),
    ("USR2", libc::SIGUSR2),
    ("PIPE", libc::SIGPIPE),
    ("ALRM", libc::SIGALRM),
    ("TERM", libc::SIGTERM),
    ("CONT", libc::SIGCONT),
    ("STOP", libc::SIGSTOP),
    ("TSTP", libc::SIGTSTP),
    ("WINCH", libc::SIGWINCH),
    ("SEGV", libc::SIGSEGV),
    ("BUS", libc::SIGBUS),
    ("FPE", libc::SIGFPE),
    ("ILL", libc::SIGILL),
    ("TRAP", libc::SIGTRAP),
];

impl Signal {
    /// `SIGTERM`: the default graceful stop signal.
    pub const TERM: Signal = Signal(libc::SIGTERM);
    /// `SIGKILL`: what a stop escalates to after `stop_timeout`, and what kill drills use.
    pub const KILL: Signal = Signal(libc::SIGKILL);
    /// `SIGINT`: what some programs prefer as their graceful stop signal.
    pub const INT: Signal = Signal(libc::SIGINT);

    /// Parses a signal name as written in a launch template: `"SIGTERM"`, `"TERM"` or
    /// `"sigterm"` all work. Returns `None` for unknown names so config validation can report it.
    pub fn from_name(name: &str) -> Option<Signal> {
        let upper = name.trim().to_ascii_uppercase();
        let bare = upper.strip_prefix("SIG").unwrap_or(&upper);
        TABLE
            .iter()
            .find(|(n, _)| *n == bare)
            .map(|&(_, number)| Signal(number))
    }

    /// The signal for a raw number, e.g. from a wait status; `None` if out of range.
    pub fn from_number(number: i32) -> Option<Signal> {
        (1..=64).contains(&number).then_some(Signal(number))
    }

    /// The raw signal number, for passing to the operating system.
    pub fn number(self) -> i32 {
        self.0
    }

    /// The conventional name (`"SIGTERM"`), or `None` for signals outside the known table.
    pub fn name(self) -> Option<String> {
        TABLE
            .iter()
            .find(|&&(_, number)| number == self.0)
            .map(|(n, _)| format!("SIG{n}"))
    }
}

impl Default for Signal {
    /// `SIGTERM`, the conventional graceful stop signal (and the spec's default).
    fn default() -> Self {
        Signal::TERM
    }
}

impl fmt::Display for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => f.write_str(&name),
            None => write!(f, "signal {}", self.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_with_and_without_prefix() {
        assert_eq!(Signal::from_name("SIGTERM"), Some(Signal::TERM));
        assert_eq!(Signal::from_name("TERM"), Some(Signal::TERM));
        assert_eq!(Signal::from_name("sigkill"), Some(Signal::KILL));
        assert_eq!(Signal::from_name("SIGINT"), Some(Signal::INT));
        assert_eq!(Signal::from_name("SIGNOPE"), None);
        assert_eq!(Signal::from_name(""), None);
    }

    #[test]
    fn displays_conventional_name() {
        assert_eq!(Signal::TERM.to_string(), "SIGTERM");
        assert_eq!(Signal::KILL.name().as_deref(), Some("SIGKILL"));
        assert_eq!(Signal::from_number(9), Some(Signal::KILL));
        assert_eq!(Signal::from_number(0), None);
    }
}
