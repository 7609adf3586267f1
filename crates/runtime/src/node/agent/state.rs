//! What an agent knows of its instances, kept in `<state_dir>/agent.json` so that after its
//! own restart it adopts what still runs (pid and process start time must both match, so a
//! reused pid is never taken for an instance) and reports what ended while it was away.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Where an instance is in its life, as this agent saw it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Phase {
    /// Being started.
    Starting,
    /// Running.
    Running,
    /// Ended; the text says how.
    Exited(String),
}

/// One instance of this host.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Local {
    pub(crate) group: String,
    pub(crate) phase: Phase,
    pub(crate) pid: u32,
    pub(crate) start_time: u64,
    pub(crate) port: u16,
    pub(crate) stop_signal: String,
    pub(crate) stop_timeout_ms: u64,
    /// A stop (or kill) was sent already.
    #[serde(default)]
    pub(crate) stopping: bool,
    /// A container (its pid is the container's main process), not a process.
    #[serde(default)]
    pub(crate) container: bool,
}

/// The file.
pub(crate) struct StateFile {
    path: PathBuf,
    last: Option<String>,
}

impl StateFile {
    pub(crate) fn new(state_dir: &Path) -> Self {
        StateFile {
            path: state_dir.join("agent.json"),
            last: None,
        }
    }

    /// What the previous run left (nothing when there is no readable file).
    pub(crate) fn load(&self) -> BTreeMap<String, Local> {
        let Ok(text) = std::fs::read_to_string(&self.path) else {
            return BTreeMap::new();
        };
        serde_json::from_str(&text).unwrap_or_else(|e| {
            tracing::warn!(path = %self.path.display(), error = %e, "unreadable agent state; starting without it");
            BTreeMap::new()
        })
    }

    /// Writes `local` if it changed, atomically (a crash leaves the old or the new file).
    pub(crate) fn save(&mut self, local: &BTreeMap<String, Local>) {
        let Ok(text) = serde_json::to_string_pretty(local) else {
            return;
        };
        if self.last.as_deref() == Some(text.as_str()) {
            return;
        }
        let tmp = self.path.with_extension("json.tmp");
        let written = std::fs::write(&tmp, &text).and_then(|()| std::fs::rename(&tmp, &self.path));
        match written {
            Ok(()) => self.last = Some(text),
            Err(e) => {
                tracing::error!(path = %self.path.display(), error = %e, "cannot save the agent's state")
            }
        }
    }
}
