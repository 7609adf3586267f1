//! What the machine's cgroups enforce of a container's CPU and memory limits, read back from
//! the cgroup the container's process is in: an engine may start a container whose limit it
//! could not apply (no such controller), and an operator must be told rather than assume it.

use std::path::{Path, PathBuf};

use flotilla_control::ImageTemplate;

use crate::{CpuLimit, InstanceLimits, MemoryLimit};

/// A limit as read from the container's cgroup.
#[derive(Debug, PartialEq, Eq)]
enum Seen {
    /// The cgroup file holds this value.
    Value(u64),
    /// CPU quota and period (`cpu.max`, or v1's `cpu.cfs_quota_us`/`cpu.cfs_period_us`).
    Quota(u64, u64),
    /// No limit set there (`max`, or v1's -1 or huge).
    Unlimited,
    /// No such controller or file for the process.
    Missing(String),
}

/// What the container's cgroup enforces of each limit the template sets; `None` when it sets
/// none.
pub(crate) fn report(pid: u32, image: &ImageTemplate) -> Option<InstanceLimits> {
    let cgroups = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
    report_from(Path::new("/sys/fs/cgroup"), &cgroups, image)
}

fn report_from(root: &Path, cgroups: &str, image: &ImageTemplate) -> Option<InstanceLimits> {
    if image.cpu_millis.is_none() && image.memory_bytes.is_none() {
        return None;
    }
    let cpu = image.cpu_millis.map(|millis| {
        let cores = f64::from(millis) / 1000.0;
        let (seen, how) = cpu(root, cgroups);
        let applied_cores = match seen {
            Seen::Quota(q, p) if p > 0 => Some(q as f64 / p as f64),
            _ => None,
        };
        let (enforced, detail) = match seen {
            Seen::Quota(q, p) if p > 0 && q * 1000 / p == u64::from(millis) => {
                (true, format!("{how} {q} per {p} µs"))
            }
            Seen::Quota(q, p) => (false, format!("{how} is {q} per {p} µs")),
            Seen::Unlimited => (false, format!("{how} sets no quota")),
            Seen::Missing(why) => (false, why),
            Seen::Value(_) => (false, how),
        };
        CpuLimit {
            cores,
            applied_cores,
            enforced,
            detail,
        }
    });
    let memory = image.memory_bytes.map(|bytes| {
        let (seen, how) = memory(root, cgroups);
        let applied_bytes = match seen {
            Seen::Value(v) => Some(v),
            _ => None,
        };
        let (enforced, detail) = match seen {
            Seen::Value(v) if v == bytes => (true, how),
            Seen::Value(v) => (false, format!("{how} is {v}")),
            Seen::Unlimited => (false, format!("{how} sets no limit")),
            Seen::Missing(why) => (false, why),
            Seen::Quota(..) => (false, how),
        };
        MemoryLimit {
            bytes,
            applied_bytes,
            enforced,
            detail,
        }
    });
    Some(InstanceLimits { cpu, memory })
}

/// The cgroup directory of `controller` for the process (v1), or its unified one (v2).
fn dir_of(root: &Path, cgroups: &str, controller: &str) -> Option<(PathBuf, bool)> {
    for line in cgroups.lines() {
        let mut fields = line.splitn(3, ':');
        let (_, controllers, path) = (fields.next()?, fields.next()?, fields.next()?);
        let path = path.trim_start_matches('/');
        if controllers.split(',').any(|c| c == controller) {
            // v1: mounted under the controller's name, or under the joined names.
            for mount in [controller, controllers] {
                let dir = root.join(mount).join(path);
                if dir.is_dir() {
                    return Some((dir, false));
                }
            }
        }
    }
    let unified = cgroups.lines().find_map(|l| l.strip_prefix("0::"))?;
    let dir = root.join(unified.trim_start_matches('/'));
    root.join("cgroup.controllers")
        .is_file()
        .then_some((dir, true))
}

/// On cgroup v2, why `controller` does not apply to the cgroup `dir`: the parent did not
/// enable (delegate) it to the cgroup, as for a rootless container without delegation.
fn v2_missing(dir: &Path, controller: &str) -> Option<Seen> {
    let enabled = std::fs::read_to_string(dir.join("cgroup.controllers")).ok()?;
    (!enabled.split_whitespace().any(|c| c == controller)).then(|| {
        Seen::Missing(format!(
            "cgroup v2 {controller} controller not enabled for the container's cgroup (not delegated)"
        ))
    })
}

fn read_u64(path: &Path) -> Option<Result<u64, ()>> {
    let text = std::fs::read_to_string(path).ok()?;
    let text = text.trim();
    if text == "max" || text == "-1" {
        return Some(Err(()));
    }
    text.parse().ok().map(Ok)
}

fn memory(root: &Path, cgroups: &str) -> (Seen, String) {
    let Some((dir, v2)) = dir_of(root, cgroups, "memory") else {
        return (
            Seen::Missing("no memory cgroup for the container".into()),
            String::new(),
        );
    };
    if let Some(missing) = v2.then(|| v2_missing(&dir, "memory")).flatten() {
        return (missing, String::new());
    }
    let (file, how) = if v2 {
        ("memory.max", "cgroup v2 memory.max")
    } else {
        ("memory.limit_in_bytes", "cgroup v1 memory.limit_in_bytes")
    };
    let seen = match read_u64(&dir.join(file)) {
        Some(Ok(v)) if v >= 1 << 62 => Seen::Unlimited,
        Some(Ok(v)) => Seen::Value(v),
        Some(Err(())) => Seen::Unlimited,
        None => Seen::Missing(format!("cannot read {}", dir.join(file).display())),
    };
    (seen, how.into())
}

fn cpu(root: &Path, cgroups: &str) -> (Seen, String) {
    let Some((dir, v2)) = dir_of(root, cgroups, "cpu") else {
        return (
            Seen::Missing("no cpu cgroup for the container".into()),
            String::new(),
        );
    };
    if let Some(missing) = v2.then(|| v2_missing(&dir, "cpu")).flatten() {
        return (missing, String::new());
    }
    if v2 {
        let how = "cgroup v2 cpu.max".to_string();
        let text = std::fs::read_to_string(dir.join("cpu.max")).unwrap_or_default();
        let mut fields = text.split_whitespace();
        let seen = match (fields.next(), fields.next().and_then(|p| p.parse().ok())) {
            (Some("max"), _) => Seen::Unlimited,
            (Some(q), Some(p)) => q
                .parse()
                .map_or(Seen::Missing("cannot read cpu.max".into()), |q| {
                    Seen::Quota(q, p)
                }),
            _ => Seen::Missing(format!("cannot read {}", dir.join("cpu.max").display())),
        };
        return (seen, how);
    }
    let how = "cgroup v1 cpu.cfs_quota_us".to_string();
    let quota = read_u64(&dir.join("cpu.cfs_quota_us"));
    let period = read_u64(&dir.join("cpu.cfs_period_us"));
    let seen = match (quota, period) {
        (Some(Ok(q)), Some(Ok(p))) => Seen::Quota(q, p),
        (Some(Err(())), _) => Seen::Unlimited,
        _ => Seen::Missing(format!(
            "cannot read {}",
            dir.join("cpu.cfs_quota_us").display()
        )),
    };
    (seen, how)
}

#[cfg(test)]
mod tests {
    use super::*;
    use flotilla_control::PullPolicy;

    fn image(cpu: Option<u32>, memory: Option<u64>) -> ImageTemplate {
        ImageTemplate {
            reference: "x".into(),
            args: Vec::new(),
            port: None,
            cpu_millis: cpu,
            memory_bytes: memory,
            pull: PullPolicy::Never,
        }
    }

    fn text_of(root: &Path, cgroups: &str, image: &ImageTemplate) -> (String, bool) {
        let limits = report_from(root, cgroups, image).unwrap();
        (limits.to_string(), limits.all_enforced())
    }

    fn fake_root(name: &str) -> PathBuf {
        let root =
            std::env::temp_dir().join(format!("flotilla-limits-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        root
    }

    fn write(root: &Path, rel: &str, text: &str) {
        let path = root.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    #[test]
    fn v1_limits_are_read_back_and_a_missing_controller_is_reported() {
        let root = fake_root("v1");
        write(
            &root,
            "memory/libpod/c1/memory.limit_in_bytes",
            "67108864\n",
        );
        write(&root, "cpu,cpuacct/libpod/c1/cpu.cfs_quota_us", "50000\n");
        write(&root, "cpu,cpuacct/libpod/c1/cpu.cfs_period_us", "100000\n");
        let cgroups = "4:memory:/libpod/c1\n2:cpu,cpuacct:/libpod/c1\n0::/libpod/c1\n";
        let limits = report_from(&root, cgroups, &image(Some(500), Some(64 << 20))).unwrap();
        let memory = limits.memory.as_ref().unwrap();
        assert_eq!(
            (memory.bytes, memory.applied_bytes),
            (64 << 20, Some(64 << 20))
        );
        assert_eq!(limits.cpu.as_ref().unwrap().applied_cores, Some(0.5));
        let (text, all) = (limits.to_string(), limits.all_enforced());
        assert!(all, "{text}");
        assert_eq!(text, "cpu 0.5 cores: enforced (cgroup v1 cpu.cfs_quota_us 50000 per 100000 µs); memory 64 MiB: enforced (cgroup v1 memory.limit_in_bytes)");

        let (text, all) = text_of(&root, "4:memory:/libpod/c1\n", &image(Some(500), None));
        assert!(!all);
        assert_eq!(
            text,
            "cpu 0.5 cores: not enforced (no cpu cgroup for the container)"
        );
        assert_eq!(report_from(&root, cgroups, &image(None, None)), None);
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn v2_unlimited_is_not_enforced() {
        let root = fake_root("v2");
        write(&root, "cgroup.controllers", "cpu memory\n");
        write(&root, "machine/c2/memory.max", "max\n");
        write(&root, "machine/c2/cpu.max", "25000 100000\n");
        let (text, all) = text_of(&root, "0::/machine/c2\n", &image(Some(250), Some(64 << 20)));
        assert!(!all);
        assert_eq!(text, "cpu 0.25 cores: enforced (cgroup v2 cpu.max 25000 per 100000 µs); memory 64 MiB: not enforced (cgroup v2 memory.max sets no limit)");
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn a_v2_controller_not_delegated_is_the_reason() {
        let root = fake_root("v2-delegation");
        write(&root, "cgroup.controllers", "cpu memory pids\n");
        write(&root, "user/c3/cgroup.controllers", "pids\n");
        let limits =
            report_from(&root, "0::/user/c3\n", &image(Some(500), Some(64 << 20))).unwrap();
        assert!(!limits.all_enforced());
        let memory = limits.memory.unwrap();
        assert_eq!(memory.applied_bytes, None);
        assert_eq!(
            memory.detail,
            "cgroup v2 memory controller not enabled for the container's cgroup (not delegated)"
        );
        assert!(limits
            .cpu
            .unwrap()
            .detail
            .contains("cpu controller not enabled"));
        let _ = std::fs::remove_dir_all(&root);
    }
}
