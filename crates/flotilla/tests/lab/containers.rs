//! Labs whose nodes run containers (`tests/node_images.rs`).

use std::process::Command;

use super::Lab;

impl Lab {
    /// Nodes that run containers: they enter their namespace with `nsenter --net` only.
    /// `ip netns exec` also gives its program a mount namespace with a fresh `/sys`, without
    /// the cgroup hierarchy, where runc refuses to create a container ("no cgroup mount found
    /// in mountinfo"); a real host has no such problem. Containers labelled with a host's
    /// state directory are removed when the lab is dropped.
    pub fn with_containers(mut self) -> Lab {
        self.containers = true;
        self
    }

    /// The label value of host `name`'s containers: its node's state directory.
    pub fn home(&self, name: &str) -> String {
        let dir = self.dir.join(name);
        std::fs::canonicalize(&dir)
            .unwrap_or(dir)
            .to_string_lossy()
            .into_owned()
    }
}

/// Removes every container labelled `flotilla.home=<home>` (a failed test's leftovers).
pub(super) fn remove(home: &str) {
    let filter = format!("label=flotilla.home={home}");
    let Ok(out) = Command::new("podman")
        .args(["ps", "-aq", "--filter", &filter])
        .output()
    else {
        return;
    };
    for id in String::from_utf8_lossy(&out.stdout).split_whitespace() {
        let _ = Command::new("podman")
            .args(["rm", "-f", "-t", "0", id])
            .output();
    }
}
