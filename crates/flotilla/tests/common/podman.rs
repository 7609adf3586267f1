//! Podman for the container tests: whether it can run containers here, the demo image built
//! from a root filesystem (examples/build-demo-image.sh with the binary under test), and the
//! containers a test's Flotilla labelled, found and removed by label.

use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;

use super::{flotilla_bin, repo_path};

/// The demo image's tag for these tests; `:2` is the same image under a new tag.
pub const IMAGE_1: &str = "localhost/flotilla-test-demo:1";
pub const IMAGE_2: &str = "localhost/flotilla-test-demo:2";

fn podman(args: &[&str]) -> Result<String, String> {
    let out = Command::new("podman")
        .args(args)
        .output()
        .map_err(|e| format!("cannot run podman: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if out.status.success() {
        Ok(text)
    } else {
        Err(format!(
            "podman {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Builds the demo image (once per test process) and returns `Ok(())`, or why Podman cannot
/// run containers here. Under `CI` a machine that cannot is a failure, not a skip.
pub fn demo_image() -> Result<(), String> {
    static BUILT: OnceLock<Result<(), String>> = OnceLock::new();
    let built = BUILT.get_or_init(|| {
        podman(&["version", "--format", "{{.Version}}"])?;
        // Old tags go first, so rebuilding leaves no dangling copies behind.
        let _ = podman(&["rmi", "-f", IMAGE_1, IMAGE_2]);
        let script = repo_path("examples/build-demo-image.sh");
        let out = Command::new("bash")
            .arg(&script)
            .arg(IMAGE_1)
            .arg(flotilla_bin())
            .env("FLOTILLA_CONTAINER_ENGINE", "podman")
            .output()
            .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
        if !out.status.success() {
            return Err(format!(
                "building the demo image failed: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        podman(&["tag", IMAGE_1, IMAGE_2])?;
        Ok(())
    });
    match built {
        Ok(()) => Ok(()),
        Err(e) if std::env::var_os("CI").is_some() => {
            panic!("CI must run the container tests, but podman cannot: {e}")
        }
        Err(e) => Err(e.clone()),
    }
}

/// The label value Flotilla gives the containers of a test whose state dir is `state_dir`.
pub fn home(state_dir: &Path) -> String {
    std::fs::canonicalize(state_dir)
        .unwrap_or_else(|_| state_dir.to_path_buf())
        .to_string_lossy()
        .into_owned()
}

/// Names of the containers labelled with `home`, running or not.
pub fn containers(home: &str) -> Vec<String> {
    let filter = format!("label=flotilla.home={home}");
    podman(&["ps", "-a", "--filter", &filter, "--format", "{{.Names}}"])
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .filter(|l| !l.is_empty())
        .collect()
}

/// The image a container runs (`localhost/…:tag`).
pub fn image_of(container: &str) -> String {
    podman(&["inspect", "--format", "{{.ImageName}}", container])
        .unwrap_or_default()
        .trim()
        .to_owned()
}

/// SIGKILLs a container from outside, as an operator's `podman kill` would.
pub fn kill(container: &str) {
    podman(&["kill", container]).expect("podman kill");
}

/// Removes whatever a test left labelled with `home` (on drop, even when it failed).
pub struct Cleanup(pub String);

impl Drop for Cleanup {
    fn drop(&mut self) {
        for name in containers(&self.0) {
            let _ = podman(&["rm", "-f", "-t", "0", &name]);
        }
    }
}
