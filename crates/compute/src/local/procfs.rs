//! Reading a process's identity from `/proc`, so a pid recorded before a restart is never
//! confused with an unrelated process that got the same pid later.

/// The start time of process `pid` in clock ticks since boot (`/proc/<pid>/stat` field 22), or
/// `None` when there is no such process or it has already exited (zombie).
///
/// A pid plus its start time names one process for the life of the machine: pids are recycled,
/// start times of different processes with the same pid are not equal.
pub fn process_start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&stat)
}

/// Field 22 of a `/proc/<pid>/stat` line, `None` for a zombie or dead process.
fn parse_stat(stat: &str) -> Option<u64> {
    // The command name (field 2) is in parentheses and may itself contain spaces or ')'.
    let (_, rest) = stat.rsplit_once(')')?;
    let mut fields = rest.split_whitespace();
    let state = fields.next()?; // field 3
    if state == "Z" || state == "X" {
        return None;
    }
    // Fields 4..=21 are skipped; the next is field 22.
    fields.nth(18)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_field_22_even_with_odd_command_names() {
        let line = "4242 (we ird) name)) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 \
                    987654 1000 50 18446744073709551615";
        assert_eq!(parse_stat(line), Some(987_654));
        let zombie = "4242 (x) Z 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 55 0 0";
        assert_eq!(parse_stat(zombie), None);
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn our_own_process_has_a_stable_start_time() {
        let me = std::process::id();
        let first = process_start_time(me);
        assert!(first.is_some());
        assert_eq!(first, process_start_time(me));
        assert_eq!(process_start_time(u32::MAX), None);
    }
}
