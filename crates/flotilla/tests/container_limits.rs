//! Per-instance CPU and memory limits of image instances (issue 22): what the engine applied
//! (`podman inspect`) and what the container's cgroup holds — both read here, independently
//! of Flotilla — equal what the admin API and `flotilla instances` report; where the
//! machine's cgroups do not enforce a limit, the API must say "not enforced" with a reason.
//! The test checks one branch or the other per limit and prints which. Skips with a message
//! where Podman cannot run containers (under `CI` it fails instead).

mod common;

use std::time::Duration;

use common::cli;
use common::podman::{self, config, image_or_skip, start, wait_no_containers, IMAGE_1};

/// The cgroup directory of `controller` for `pid`: v1's `/sys/fs/cgroup/<controllers>/<path>`
/// or v2's unified `/sys/fs/cgroup/<path>`, with whether it is v2.
fn cgroup_dir(pid: u32, controller: &str) -> Option<(std::path::PathBuf, bool)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    let root = std::path::Path::new("/sys/fs/cgroup");
    for line in text.lines() {
        let mut f = line.splitn(3, ':');
        let (_, names, path) = (f.next()?, f.next()?, f.next()?);
        let path = path.trim_start_matches('/');
        if names.split(',').any(|n| n == controller) {
            let dir = [controller, names]
                .iter()
                .map(|m| root.join(m).join(path))
                .find(|d| d.is_dir())?;
            return Some((dir, false));
        }
    }
    let path = text.lines().find_map(|l| l.strip_prefix("0::"))?;
    Some((root.join(path.trim_start_matches('/')), true))
}

/// The memory limit the container's cgroup holds, in bytes; `None` where it holds none or
/// cannot be read (no memory controller, not delegated).
fn cgroup_memory(pid: u32) -> Option<u64> {
    let (dir, v2) = cgroup_dir(pid, "memory")?;
    let file = if v2 {
        "memory.max"
    } else {
        "memory.limit_in_bytes"
    };
    let v: u64 = std::fs::read_to_string(dir.join(file))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    (v < 1 << 62).then_some(v)
}

/// The CPU quota and period the container's cgroup holds (µs); `None` where none.
fn cgroup_cpu(pid: u32) -> Option<(u64, u64)> {
    let (dir, v2) = cgroup_dir(pid, "cpu")?;
    let read = |f: &str| std::fs::read_to_string(dir.join(f)).ok();
    let (quota, period) = if v2 {
        let text = read("cpu.max")?;
        let mut f = text.split_whitespace();
        (f.next()?.parse().ok()?, f.next()?.parse().ok()?)
    } else {
        let quota: i64 = read("cpu.cfs_quota_us")?.trim().parse().ok()?;
        (
            u64::try_from(quota).ok()?,
            read("cpu.cfs_period_us")?.trim().parse().ok()?,
        )
    };
    Some((quota, period))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn image_instance_limits_are_enforced_or_reported_as_not_enforced() {
    let test = "image_instance_limits_are_enforced_or_reported_as_not_enforced";
    if !image_or_skip(test) {
        return;
    }
    let extra = "cpu = 0.5\nmemory = \"64MiB\"";
    let (mut f, cleanup) = start("container-limits", |p| config(p, IMAGE_1, 1, extra));
    let g = f.wait_in_service("web", 1, Duration::from_secs(90)).await;
    assert_eq!(g.instances.len(), 1);
    let i = &g.instances[0];
    let container = format!("flotilla-{}", i.id);
    let pid = i.pid.expect("the instance's pid");
    let limits = i
        .limits
        .as_ref()
        .expect("an image instance with limits reports them");
    let (cpu, memory) = (
        limits.cpu.as_ref().unwrap(),
        limits.memory.as_ref().unwrap(),
    );
    assert_eq!((cpu.cores, memory.bytes), (0.5, 64 << 20), "what was asked");

    // What the engine was told to apply.
    assert_eq!(
        podman::inspect(&container, "{{.HostConfig.Memory}}").unwrap(),
        "67108864"
    );
    assert_eq!(
        podman::inspect(&container, "{{.HostConfig.NanoCpus}}").unwrap(),
        "500000000"
    );
    let engine_pid = podman::inspect(&container, "{{.State.Pid}}").unwrap();
    assert_eq!(
        engine_pid,
        pid.to_string(),
        "the API's pid is the container's main process"
    );

    // What the cgroup holds, against what the API reports.
    match cgroup_memory(pid) {
        Some(bytes) if bytes == 64 << 20 => {
            eprintln!("{test}: memory ENFORCED here: cgroup limit {bytes}; API: {memory:?}");
            assert!(
                memory.enforced,
                "the cgroup enforces it but the API says {memory:?}"
            );
            assert_eq!(memory.applied_bytes, Some(bytes));
        }
        seen => {
            eprintln!("{test}: memory NOT ENFORCED here: cgroup limit {seen:?}; API: {memory:?}");
            assert!(
                !memory.enforced,
                "cgroup holds {seen:?} but the API says {memory:?}"
            );
            assert_eq!(memory.applied_bytes, seen);
            assert!(!memory.detail.is_empty(), "a reason: {memory:?}");
        }
    }
    match cgroup_cpu(pid) {
        Some((quota, period)) if quota * 2 == period => {
            eprintln!("{test}: cpu ENFORCED here: quota {quota} per {period} µs; API: {cpu:?}");
            assert!(
                cpu.enforced,
                "the cgroup enforces it but the API says {cpu:?}"
            );
            assert_eq!(cpu.applied_cores, Some(0.5));
            assert!(
                cpu.detail.contains(&format!("{quota} per {period}")),
                "{cpu:?}"
            );
        }
        seen => {
            eprintln!("{test}: cpu NOT ENFORCED here: cgroup quota {seen:?}; API: {cpu:?}");
            assert!(
                !cpu.enforced,
                "cgroup holds {seen:?} but the API says {cpu:?}"
            );
            assert!(!cpu.detail.is_empty(), "a reason: {cpu:?}");
        }
    }

    // The CLI says the same, in words.
    let (ok, out, err) = cli(&f, &["instances"]);
    assert!(ok, "{err}");
    let verdict = |enforced| if enforced { "enforced" } else { "not enforced" };
    let line = format!(
        "limits: cpu 0.5 cores: {} ({}); memory 64 MiB: {} ({})",
        verdict(cpu.enforced),
        cpu.detail,
        verdict(memory.enforced),
        memory.detail
    );
    assert!(out.contains(&line), "{line:?} in:\n{out}");
    // And the OpenAPI document describes the field.
    let doc: serde_json::Value = f.admin.get("/openapi.json").await.unwrap();
    let schemas = &doc["components"]["schemas"];
    assert!(
        schemas["InstanceInfo"]["properties"]["limits"].is_object(),
        "{schemas}"
    );
    assert!(
        schemas["MemoryLimit"]["properties"]["enforced"].is_object(),
        "{schemas}"
    );

    assert!(f.terminate(Duration::from_secs(30)).success());
    assert_eq!(wait_no_containers(&cleanup.0).await, 0);
}
