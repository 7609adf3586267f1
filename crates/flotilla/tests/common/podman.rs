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
    checked(BUILT.get_or_init(|| build(IMAGE_1, Some(IMAGE_2))))
}

/// The demo image under [`NODE_IMAGE`], for the cluster-mode test (its own tag: rebuilding
/// it never touches the images another test binary's containers run).
pub fn node_image() -> Result<(), String> {
    static BUILT: OnceLock<Result<(), String>> = OnceLock::new();
    checked(BUILT.get_or_init(|| build(NODE_IMAGE, None)))
}

/// The demo image for `tests/node_images.rs`.
pub const NODE_IMAGE: &str = "localhost/flotilla-node-demo:1";

fn build(tag: &str, also: Option<&str>) -> Result<(), String> {
    podman(&["version", "--format", "{{.Version}}"])?;
    // Old tags go first, so rebuilding leaves no dangling copies behind.
    let _ = podman(&["rmi", "-f", tag]);
    if let Some(other) = also {
        let _ = podman(&["rmi", "-f", other]);
    }
    let script = repo_path("examples/build-demo-image.sh");
    let out = Command::new("bash")
        .arg(&script)
        .arg(tag)
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
    if let Some(other) = also {
        podman(&["tag", tag, other])?;
    }
    Ok(())
}

fn checked(built: &Result<(), String>) -> Result<(), String> {
    match built {
        Ok(()) => Ok(()),
        Err(e) if std::env::var_os("CI").is_some() => {
            panic!("CI must run the container tests, but podman cannot: {e}")
        }
        Err(e) => Err(e.clone()),
    }
}

/// The id of a container (to tell the same container from a new one of the same name).
pub fn id_of(container: &str) -> String {
    podman(&["inspect", "--format", "{{.Id}}", container])
        .unwrap_or_default()
        .trim()
        .to_owned()
}

/// Whether a container is running.
pub fn running(container: &str) -> bool {
    podman(&["inspect", "--format", "{{.State.Running}}", container])
        .is_ok_and(|s| s.trim() == "true")
}

/// Creates (does not start) a container labelled with `home` under an instance-like name,
/// as an orphan a crashed run would leave.
pub fn create_orphan(home: &str, name: &str, image: &str) {
    let label = format!("flotilla.home={home}");
    podman(&[
        "create", "--name", name, "--label", &label, image, "demo-app",
    ])
    .expect("podman create");
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
