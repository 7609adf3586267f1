//! The keeper's wire format: one JSON object per line each way over its unix socket. Kept
//! small and versioned, because a keeper outlives the binary that started it: after a hot
//! upgrade the new Flotilla talks to a keeper the old binary started.

use serde::{Deserialize, Serialize};

use crate::local::SpawnSpec;

/// The protocol version this build speaks (sent in [`Reply::Attached`]).
pub const VERSION: u32 = 1;

/// From a Flotilla to its keeper.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// Who is attached (answers [`Reply::Status`]); changes nothing.
    Status,
    /// This connection owns the instances from now on: while any attached connection is open
    /// the keeper keeps them; when the last one closes it kills them and exits.
    Attach {
        /// The attaching Flotilla's pid (for logs and `Status`).
        pid: u32,
    },
    /// Fork one instance (answers [`Reply::Spawned`] or [`Reply::Failed`]).
    Spawn(SpawnSpec),
}

/// From the keeper to a Flotilla: answers, and exits as they happen.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Reply {
    /// The pids of the attached Flotillas.
    Status {
        /// Attached owners' pids.
        owners: Vec<u32>,
    },
    /// Attached; the instances the keeper runs now (exits after this one are all sent).
    Attached {
        /// The keeper's protocol version.
        version: u32,
        /// Live instances: (instance id, pid).
        instances: Vec<(String, u32)>,
    },
    /// An instance was forked.
    Spawned {
        /// Its id.
        id: String,
        /// Its pid (and process group id).
        pid: u32,
    },
    /// An instance could not be forked.
    Failed {
        /// Its id.
        id: String,
        /// Why, in words.
        error: String,
    },
    /// An instance exited (sent to every attached connection).
    Exited {
        /// Its id.
        id: String,
        /// Its pid.
        pid: u32,
        /// Its exit status, worded for operators (`exit code 3`, `signal 9 (SIGKILL)`).
        status: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_as_single_lines() {
        let spec = SpawnSpec {
            instance_id: "i-1".into(),
            program: "sleep".into(),
            args: vec!["1".into()],
            env: vec![("PORT".into(), "4000".into())],
            working_dir: "".into(),
            log_path: "/tmp/i-1.log".into(),
            die_with_parent: true,
        };
        for r in [
            Request::Status,
            Request::Attach { pid: 7 },
            Request::Spawn(spec),
        ] {
            let line = serde_json::to_string(&r).unwrap();
            assert!(!line.contains('\n'));
            assert_eq!(serde_json::from_str::<Request>(&line).unwrap(), r);
        }
        let exit = Reply::Exited {
            id: "i-1".into(),
            pid: 9,
            status: "exit code 0\nx".into(),
        };
        let line = serde_json::to_string(&exit).unwrap();
        assert!(!line.contains('\n'), "newlines in values are escaped");
        assert_eq!(serde_json::from_str::<Reply>(&line).unwrap(), exit);
    }
}
