//! Podman for the container tests: whether it can run containers here, the demo image built
//! from a root filesystem (examples/build-demo-image.sh with the binary under test), and the
//! containers a test's Flotilla labelled, found and removed by label.

use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;

use std::time::Duration;

use super::{flotilla_bin, repo_path, wait_for, Flotilla, Ports};

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

/// A field of `podman inspect` of a container (`{{.HostConfig.Memory}}`), trimmed.
pub fn inspect(container: &str, format: &str) -> Result<String, String> {
    podman(&["inspect", "--format", format, container]).map(|s| s.trim().to_owned())
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

/// A group of `desired` instances of `image` behind one listener, with fast health checks.
pub fn config(ports: &Ports, image: &str, desired: u32, template_extra: &str) -> String {
    format!(
        r#"
[cluster]
name = "containers"
zones = ["az-a", "az-b", "az-c"]
admin_bind = "127.0.0.1:{admin}"

[launch_templates.web]
image = "{image}"
pull = "never"
args = ["demo-app"]
stop_timeout = "5s"
{template_extra}

[target_groups.web]
deregistration_delay = "1s"

[target_groups.web.health_check]
path = "/health"
interval = "500ms"
timeout = "250ms"
healthy_threshold = 2
unhealthy_threshold = 2

[load_balancers.front]
type = "application"

[[load_balancers.front.listeners]]
bind = "127.0.0.1:{listener}"
default_action = {{ type = "forward", target_group = "web" }}

[auto_scaling_groups.web]
launch_template = "web"
target_groups = ["web"]
min_size = 1
max_size = 6
desired_capacity = {desired}
health_check_type = "elb"
health_check_grace_period = "1s"

[auto_scaling_groups.web.instance_refresh]
on_launch_template_change = true
min_healthy_percentage = 66
instance_warmup = "1s"
"#,
        admin = ports.admin,
        listener = ports.listener,
    )
}

/// Builds the image or says why this test is skipped.
pub fn image_or_skip(test: &str) -> bool {
    match demo_image() {
        Ok(()) => true,
        Err(e) => {
            eprintln!("SKIPPED {test}: podman cannot run containers here: {e}");
            false
        }
    }
}

/// Starts Flotilla on `config` with its state dir's containers removed on drop (the cleanup
/// guard is declared after the Flotilla, so it runs once Flotilla has stopped).
pub fn start(name: &str, config_of: impl Fn(&Ports) -> String) -> (Flotilla, Cleanup) {
    let ports = Ports::new();
    let f = Flotilla::start(name, ports, &config_of(&ports));
    let cleanup = Cleanup(home(&f.dir.join(".flotilla")));
    (f, cleanup)
}

/// Waits until no container labelled `home` is left (hang guard 30 s); returns how many
/// there were at the first look.
pub async fn wait_no_containers(home: &str) -> usize {
    let first = containers(home).len();
    wait_for("no container left", Duration::from_secs(30), || async {
        containers(home).is_empty().then_some(())
    })
    .await;
    first
}
