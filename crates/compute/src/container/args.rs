//! The engine command line that runs an instance's container, from its launch spec.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

use flotilla_control::{ImageTemplate, PullPolicy};

use super::engine::Kind;
use crate::LaunchSpec;

/// Labels every container of Flotilla's carries, so a later run (or the watchdog) finds them.
pub(crate) const LABEL_HOME: &str = "flotilla.home";
pub(crate) const LABEL_RUN: &str = "flotilla.run";
pub(crate) const LABEL_INSTANCE: &str = "flotilla.instance";
pub(crate) const LABEL_GROUP: &str = "flotilla.group";

/// The name of an instance's container; an instance id is already a valid container name.
pub(crate) fn container_name(instance_id: &str) -> String {
    format!("flotilla-{instance_id}")
}

/// The instance id back from a container name, if it is one of ours.
pub(crate) fn instance_of(name: &str) -> Option<&str> {
    name.strip_prefix("flotilla-").filter(|id| !id.is_empty())
}

/// Where a container's instance is and which run owns it.
pub(crate) struct Placement<'a> {
    /// The host's address: the target's, where a `port` is published (loopback under
    /// `flotilla up`, the host's own on a cluster-mode agent).
    pub(crate) host: IpAddr,
    pub(crate) home: &'a str,
    pub(crate) run: &'a str,
    /// The port its target is on.
    pub(crate) host_port: u16,
    /// Resource limits (`RLIMIT_NOFILE`, `RLIMIT_NPROC`) the engine may set, for an engine
    /// that runs the container as our descendant (Podman): never above our own hard limits.
    pub(crate) ulimits: Option<(u64, u64)>,
    /// The OCI runtime to ask Podman for (`runc`), if any.
    pub(crate) runtime: Option<&'a str>,
    /// Where Podman writes the container's main pid once it runs (Docker has no such flag).
    pub(crate) pidfile: Option<&'a std::path::Path>,
}

/// The environment the container gets: the template's, then Flotilla's own variables (which
/// win), exactly as a process gets them. `PORT` is where the application must listen inside
/// the container: the published port, or with host networking the target's port.
pub(crate) fn environment(
    spec: &LaunchSpec,
    image: &ImageTemplate,
    at: &Placement<'_>,
) -> BTreeMap<String, String> {
    let mut env = spec.env.clone();
    let port = image.port.unwrap_or(at.host_port);
    env.insert("PORT".into(), port.to_string());
    // With host networking the application listens on the host's address, as a process
    // does; in its own network namespace on all of its interfaces (the engine publishes it).
    let host = match image.port {
        None => at.host,
        Some(_) => IpAddr::from(Ipv4Addr::UNSPECIFIED),
    };
    env.insert("FLOTILLA_HOST".into(), host.to_string());
    env.insert("FLOTILLA_INSTANCE_ID".into(), spec.instance_id.clone());
    env.insert("FLOTILLA_ZONE".into(), spec.zone.clone());
    env.insert("FLOTILLA_GROUP".into(), spec.group.clone());
    env
}

/// `run` arguments (after the program): the client stays attached, so its output is the
/// container's and its exit status the container's. Variables are passed by name only
/// (`-e KEY`): the engine reads their values from its own environment, so no value shows in
/// a process list.
pub(crate) fn run_args(
    kind: Kind,
    spec: &LaunchSpec,
    image: &ImageTemplate,
    env: &BTreeMap<String, String>,
    at: &Placement<'_>,
) -> Vec<String> {
    let mut args: Vec<String> = Vec::new();
    if let (Kind::Podman, Some(runtime)) = (kind, at.runtime) {
        args.extend(["--runtime".into(), runtime.into()]);
    }
    let name = container_name(&spec.instance_id);
    args.extend(["run".into(), "--rm".into(), "--name".into(), name]);
    if let (Kind::Podman, Some(pidfile)) = (kind, at.pidfile) {
        args.push(format!("--pidfile={}", pidfile.display()));
    }
    for (label, value) in [
        (LABEL_HOME, at.home),
        (LABEL_RUN, at.run),
        (LABEL_INSTANCE, spec.instance_id.as_str()),
        (LABEL_GROUP, spec.group.as_str()),
    ] {
        args.extend(["--label".into(), format!("{label}={value}")]);
    }
    // The attached client copies the output into the instance's log file; the engine keeps
    // no second copy.
    args.extend(["--log-driver".into(), "none".into()]);
    let pull = match image.pull {
        PullPolicy::Never => "never",
        PullPolicy::IfMissing => "missing",
        PullPolicy::Always => "always",
    };
    args.push(format!("--pull={pull}"));
    match image.port {
        Some(port) => args.extend([
            "-p".into(),
            format!(
                "{}:{port}",
                std::net::SocketAddr::new(at.host, at.host_port)
            ),
        ]),
        None => args.extend(["--network".into(), "host".into()]),
    }
    args.extend([
        "--stop-signal".into(),
        spec.stop_signal.name().unwrap_or_else(|| "SIGTERM".into()),
        "--stop-timeout".into(),
        spec.stop_timeout.as_secs().max(1).to_string(),
    ]);
    if let Some((nofile, nproc)) = at.ulimits {
        args.extend([
            "--ulimit".into(),
            format!("nofile={nofile}:{nofile}"),
            "--ulimit".into(),
            format!("nproc={nproc}:{nproc}"),
        ]);
    }
    if let Some(millis) = image.cpu_millis {
        args.push(format!("--cpus={}", f64::from(millis) / 1000.0));
    }
    if let Some(bytes) = image.memory_bytes {
        args.push(format!("--memory={bytes}b"));
    }
    for key in env.keys() {
        args.extend(["-e".into(), key.clone()]);
    }
    let (entrypoint, rest) = match spec.command.split_first() {
        Some((program, rest)) => (Some(program), rest),
        None => (None, &[][..]),
    };
    if let Some(program) = entrypoint {
        args.push(format!("--entrypoint={program}"));
    }
    // The reference cannot be taken for an option (config refuses a leading `-`).
    args.push(image.reference.clone());
    args.extend(rest.iter().cloned());
    args.extend(image.args.iter().cloned());
    args
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::time::Duration;

    use super::*;
    use crate::Signal;

    fn spec(command: &[&str], image: ImageTemplate) -> LaunchSpec {
        LaunchSpec {
            instance_id: "i-0abc".into(),
            zone: "az-a".into(),
            group: "web".into(),
            command: command.iter().map(|s| s.to_string()).collect(),
            env: BTreeMap::from([
                ("GREETING".into(), "hi".into()),
                ("PORT".into(), "1".into()),
            ]),
            working_dir: PathBuf::new(),
            stop_signal: Signal::INT,
            stop_timeout: Duration::from_millis(2500),
            image: Some(image),
        }
    }

    fn image(port: Option<u16>) -> ImageTemplate {
        ImageTemplate {
            reference: "localhost/web:2.1".into(),
            args: vec!["demo-app".into()],
            port,
            cpu_millis: Some(500),
            memory_bytes: Some(64 << 20),
            pull: PullPolicy::Never,
        }
    }

    #[test]
    fn host_networking_passes_the_target_port_as_port() {
        let (img, at) = (
            image(None),
            Placement {
                host: IpAddr::from([10, 77, 0, 12]),
                home: "/srv/state",
                run: "r1",
                host_port: 41000,
                ulimits: Some((20000, 4096)),
                runtime: Some("runc"),
                pidfile: Some(std::path::Path::new("/s/i-0abc.pid")),
            },
        );
        let s = spec(&["/bin/flotilla", "--quiet"], img.clone());
        let env = environment(&s, &img, &at);
        assert_eq!(env["FLOTILLA_HOST"], "10.77.0.12", "the host's address");
        assert_eq!(
            env["PORT"], "41000",
            "Flotilla's PORT wins over the template's"
        );
        assert_eq!(env["GREETING"], "hi");
        assert_eq!(env["FLOTILLA_INSTANCE_ID"], "i-0abc");
        let args = run_args(Kind::Podman, &s, &img, &env, &at).join(" ");
        assert!(
            args.starts_with(
                "--runtime runc run --rm --name flotilla-i-0abc --pidfile=/s/i-0abc.pid "
            ),
            "{args}"
        );
        for part in [
            "--label flotilla.home=/srv/state",
            "--label flotilla.run=r1",
            "--label flotilla.instance=i-0abc",
            "--label flotilla.group=web",
            "--log-driver none",
            "--pull=never",
            "--network host",
            "--stop-signal SIGINT --stop-timeout 2",
            "--ulimit nofile=20000:20000 --ulimit nproc=4096:4096",
            "--cpus=0.5",
            "--memory=67108864b",
            "-e GREETING",
            "-e PORT",
        ] {
            assert!(args.contains(part), "{part:?} missing in {args}");
        }
        assert!(!args.contains("hi"), "no value in the command line: {args}");
        assert!(
            args.ends_with("--entrypoint=/bin/flotilla localhost/web:2.1 --quiet demo-app"),
            "{args}"
        );
    }

    #[test]
    fn a_container_port_is_published_on_loopback() {
        let img = image(Some(8080));
        let at = Placement {
            host: IpAddr::from(Ipv4Addr::LOCALHOST),
            home: "h",
            run: "r",
            host_port: 41001,
            ulimits: None,
            runtime: None,
            pidfile: None,
        };
        let s = spec(&[], img.clone());
        let env = environment(&s, &img, &at);
        assert_eq!(
            env["FLOTILLA_HOST"], "0.0.0.0",
            "every interface of its own"
        );
        assert_eq!(
            env["PORT"], "8080",
            "the app listens on its own port inside"
        );
        let args = run_args(Kind::Docker, &s, &img, &env, &at).join(" ");
        assert!(
            args.starts_with("run --rm --name flotilla-i-0abc --label"),
            "{args}"
        );
        assert!(args.contains("-p 127.0.0.1:41001:8080"), "{args}");
        assert!(!args.contains("--network"), "{args}");
        assert!(!args.contains("--entrypoint"), "{args}");
        assert!(args.ends_with("localhost/web:2.1 demo-app"), "{args}");
    }

    #[test]
    fn names_map_back_to_instances() {
        assert_eq!(instance_of(&container_name("i-1")), Some("i-1"));
        assert_eq!(instance_of("flotilla-"), None);
        assert_eq!(instance_of("other"), None);
    }
}
