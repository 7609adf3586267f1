//! The AWS API from the outside: boto3 and the aws CLI (from a venv `.ci/run` creates; the
//! tests print SKIPPED without it, and fail under `CI`) against a running `flotilla up`.
//! The scripts in `tests/aws/` do the calling and checking; each ends with `N passed, M
//! failed`, and a run that checked nothing fails.

mod common;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::{free_port, repo_path, temp_dir, Flotilla, Ports};

/// One script at a time: each runs instances and load of its own on a two-core machine.
static SERIAL: Mutex<()> = Mutex::new(());

/// The venv with boto3 and awscli, if there is one.
fn venv() -> Option<PathBuf> {
    let dir = std::env::var_os("FLOTILLA_AWS_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_path("target/aws-venv"));
    let python = dir.join("bin/python");
    let ok = Command::new(&python)
        .args(["-c", "import boto3"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
        && dir.join("bin/aws").exists();
    if ok {
        return Some(dir);
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "no venv with boto3 and awscli at {} (.ci/run creates it)",
        dir.display()
    );
    eprintln!(
        "SKIPPED: no venv with boto3 and awscli at {}",
        dir.display()
    );
    None
}

fn config(ports: &Ports, aws_bind: &str) -> String {
    format!(
        r#"
[cluster]
name = "aws-test"
zones = ["az-a", "az-b"]
admin_bind = "127.0.0.1:{admin}"

[aws_api]
bind = "{aws_bind}"
credentials_env = ["FLOTILLA_TEST_AWS_KEYS"]

[aws_api.images]
"ami-12c6146b" = ["{{flotilla}}", "demo-app"]

[launch_templates.file-lt]
command = ["{{flotilla}}", "demo-app"]
stop_timeout = "5s"

[target_groups.file-tg]

[auto_scaling_groups.file-asg]
launch_template = "file-lt"
min_size = 0
max_size = 1
desired_capacity = 0
"#,
        admin = ports.admin,
    )
}

fn start(name: &str, dir: Option<PathBuf>, ports: Ports) -> Flotilla {
    let dir = dir.unwrap_or_else(|| temp_dir(name));
    let cfg = config(&ports, &format!("127.0.0.1:{}", ports.listener));
    Flotilla::start_with_env(dir, ports, &cfg, &[("FLOTILLA_TEST_AWS_KEYS", "test:test")])
}

/// Runs `cmd` until it exits (killed by PID after `timeout`, a hang guard); (success, output).
fn run(mut cmd: Command, timeout: Duration) -> (bool, String) {
    let out_dir = temp_dir("aws-script");
    let out_path = out_dir.join("out.txt");
    let out = std::fs::File::create(&out_path).expect("output file");
    let err = out.try_clone().expect("clone");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .expect("start the script");
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break Some(s);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let text = std::fs::read_to_string(&out_path).unwrap_or_default();
    let _ = std::fs::remove_dir_all(&out_dir);
    (status.is_some_and(|s| s.success()), text)
}

/// Runs `tests/aws/<script>` with the endpoint of `f`; asserts it passed checks and failed none.
fn script(venv: &std::path::Path, f: &Flotilla, name: &str, args: &[&str], ports: &str) -> String {
    let mut cmd = Command::new(venv.join("bin/python"));
    cmd.arg(repo_path(&format!("crates/flotilla/tests/aws/{name}")))
        .args(args)
        .env(
            "FLOTILLA_AWS_ENDPOINT",
            format!("http://127.0.0.1:{}", f.ports.listener),
        )
        .env("FLOTILLA_TEST_PORTS", ports)
        .env("FLOTILLA_AWS_TEST_KEY", "test:test");
    let (ok, out) = run(cmd, Duration::from_secs(600));
    let summary = out
        .lines()
        .rev()
        .find(|l| l.ends_with(" failed") && l.contains(" passed, "))
        .unwrap_or("");
    let passed: usize = summary
        .split(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(
        ok && passed > 0 && summary.ends_with(" 0 failed"),
        "{name} failed ({summary:?}):\n{out}\n--- flotilla log ---\n{}",
        f.log()
    );
    out
}

/// Runs an admin API call to completion from a plain test.
fn tokio_block<T>(
    f: impl std::future::Future<Output = Result<T, flotilla_admin::ClientError>>,
) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
        .block_on(f)
        .expect("the admin API answers")
}

fn two_ports() -> String {
    format!("{},{}", free_port(), free_port())
}

#[test]
fn every_action_answers_good_input_and_refuses_bad_input_as_aws_does() {
    let Some(venv) = venv() else { return };
    let _one = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let f = start("aws-actions", None, Ports::new());
    let out = script(&venv, &f, "actions.py", &[], &two_ports());
    eprintln!("{}", out.lines().last().unwrap_or(""));
}

#[test]
fn boto3_builds_a_serving_group_that_scales_refreshes_and_is_deleted() {
    let Some(venv) = venv() else { return };
    let _one = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let f = start("aws-workflow", None, Ports::new());
    script(&venv, &f, "workflow.py", &[], &two_ports());
    // Everything it created is gone from the cluster too, not only from the API.
    let status = common::cli(&f, &["status", "--json"]).1;
    assert!(!status.contains("time-asg"), "{status}");
}

#[test]
fn a_mixed_instances_policy_splits_launches_between_on_demand_and_spot() {
    let Some(venv) = venv() else { return };
    let _one = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let f = start("aws-mixed", None, Ports::new());
    script(&venv, &f, "mixed.py", &[], &two_ports());
}

#[test]
fn answers_have_the_shapes_of_the_recorded_wire_examples() {
    let Some(venv) = venv() else { return };
    let _one = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let f = start("aws-shapes", None, Ports::new());
    script(&venv, &f, "shapes.py", &[], &two_ports());
}

#[test]
fn what_the_api_created_survives_a_restart_and_shows_in_status() {
    let Some(venv) = venv() else { return };
    let _one = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let port = free_port().to_string();
    let mut f = start("aws-durable", None, Ports::new());
    let created = script(&venv, &f, "durable.py", &["create", &port], &two_ports());
    let status = common::cli(&f, &["status"]).1;
    assert!(
        status.contains("keep-asg") && status.contains("keep-tg"),
        "{status}"
    );
    // The launch template's UserData reached the instance, decoded, as FLOTILLA_USER_DATA names.
    let deadline = Instant::now() + Duration::from_secs(30);
    let pid = loop {
        let group: flotilla_admin::api::GroupDetail =
            tokio_block(f.admin.get("/v1/groups/keep-asg"));
        if let Some(pid) = group.instances.iter().find_map(|i| i.pid) {
            break pid;
        }
        assert!(Instant::now() < deadline, "no instance started: {group:?}");
        std::thread::sleep(Duration::from_millis(100));
    };
    let environ =
        std::fs::read(format!("/proc/{pid}/environ")).expect("the instance's environment");
    let path = String::from_utf8_lossy(&environ)
        .split('\0')
        .find_map(|v| v.strip_prefix("FLOTILLA_USER_DATA=").map(str::to_string))
        .expect("FLOTILLA_USER_DATA is set");
    assert_eq!(
        std::fs::read(&path).expect("the user data file"),
        b"user data for keep"
    );
    let ports = f.ports;
    assert!(f.terminate(Duration::from_secs(60)).success());
    // `f` keeps its directory (and the state in it) until the end of the test.
    let f = start("aws-durable", Some(f.dir.clone()), ports);
    let checked = script(&venv, &f, "durable.py", &["check", &port], &two_ports());
    let ids = |out: &str| {
        out.lines()
            .find(|l| l.starts_with("IDS"))
            .map(str::to_string)
    };
    assert!(ids(&created).is_some());
    assert_eq!(
        ids(&created),
        ids(&checked),
        "the same ids after the restart"
    );
}

#[test]
fn the_examples_build_the_architecture_with_boto3_and_the_aws_cli() {
    let Some(venv) = venv() else { return };
    let _one = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let f = start("aws-examples", None, Ports::new());
    let endpoint = format!("http://127.0.0.1:{}", f.ports.listener);
    let path = format!(
        "{}:{}",
        venv.join("bin").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let env = |cmd: &mut Command, port: u16| {
        cmd.env("FLOTILLA_AWS", &endpoint)
            .env("LISTENER_PORT", port.to_string())
            .env("PATH", &path)
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test");
    };
    let mut urls = Vec::new();
    let mut py = Command::new(venv.join("bin/python"));
    py.arg(repo_path("examples/aws/whatisthetime.py"));
    env(&mut py, free_port());
    let mut sh = Command::new("bash");
    sh.arg(repo_path("examples/aws/whatisthetime.sh"));
    env(&mut sh, free_port());
    for (what, cmd) in [("boto3", py), ("aws CLI", sh)] {
        let (ok, out) = run(cmd, Duration::from_secs(300));
        assert!(ok, "the {what} example failed:\n{out}\n{}", f.log());
        let url = out
            .lines()
            .rev()
            .find(|l| l.starts_with("http://"))
            .unwrap_or_else(|| panic!("the {what} example printed no URL:\n{out}"))
            .to_string();
        urls.push(url);
    }
    for url in &urls {
        let mut curl = Command::new(venv.join("bin/python"));
        curl.args([
            "-c",
            "import sys,urllib.request;print(urllib.request.urlopen(sys.argv[1],timeout=5).read().decode())",
            url,
        ]);
        let (ok, body) = run(curl, Duration::from_secs(30));
        assert!(ok && body.contains("Served by"), "{url}: {body}");
    }
    // The CLI's errors and paging, as users meet them.
    let aws = |args: &[&str]| {
        let mut cmd = Command::new(venv.join("bin/aws"));
        cmd.arg("--endpoint-url")
            .arg(&endpoint)
            .args(args)
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_DEFAULT_REGION", "us-east-1")
            .env("AWS_PAGER", "");
        let out = cmd.output().expect("run aws");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, _, err) = aws(&["elbv2", "describe-target-groups", "--names", "nope"]);
    assert_eq!(code, Some(255), "{err}");
    assert!(
        err.contains("An error occurred (TargetGroupNotFound)"),
        "{err}"
    );
    // `--page-size` becomes MaxRecords=1: the CLI follows NextToken through every page.
    let (code, out, err) = aws(&[
        "autoscaling",
        "describe-auto-scaling-groups",
        "--page-size",
        "1",
        "--query",
        "length(AutoScalingGroups)",
    ]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(out.trim(), "3", "the file's group and the two examples'");
}

#[test]
fn a_public_address_without_access_keys_refuses_to_start() {
    let dir = temp_dir("aws-public");
    let ports = Ports::new();
    let cfg = config(&ports, &format!("0.0.0.0:{}", ports.listener));
    std::fs::write(dir.join("flotilla.toml"), cfg).expect("config");
    let out = Command::new(common::flotilla_bin())
        .arg("up")
        .arg(dir.join("flotilla.toml"))
        .env_remove("FLOTILLA_TEST_AWS_KEYS")
        .output()
        .expect("run flotilla");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("access keys are required") && err.contains("FLOTILLA_TEST_AWS_KEYS"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
