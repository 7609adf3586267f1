//! Instances from container images (issue 22) against the real binary and real Podman: the
//! demo image is built from a root filesystem in the test; a group of three image instances
//! serves behind a listener, survives a `podman kill` under load and rolls to a new tag with
//! an instance refresh, with 0 failed requests; no container outlives Flotilla (SIGTERM or
//! SIGKILL); containers an earlier run left are adopted; a hot upgrade keeps them (same main
//! processes, the old watchdog stands down, the successor's guards them); bad images are
//! failed launches with the engine's reason. Each test skips with a message where Podman cannot run containers
//! (under `CI` it fails instead).

mod common;

use std::time::Duration;

use common::podman::{self, config, image_or_skip, start, wait_no_containers, IMAGE_1, IMAGE_2};
use common::{
    alive, assert_no_failed_requests, cli, signal, steady_load, wait_for, Flotilla, Ports,
};
use flotilla_admin::api::{GroupDetail, InstanceRefreshInfo, WarmPoolInfo};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn image_instances_serve_survive_a_container_kill_under_load_and_roll_to_a_new_tag() {
    if !image_or_skip("image_instances_serve…") {
        return;
    }
    let (mut f, cleanup) = start("containers-drill", |p| config(p, IMAGE_1, 3, ""));
    let home = cleanup.0.clone();
    let g = f.wait_in_service("web", 3, Duration::from_secs(90)).await;
    let names = podman::containers(&home);
    assert_eq!(names.len(), 3, "one container per instance: {names:?}");
    for i in &g.instances {
        let name = format!("flotilla-{}", i.id);
        assert!(names.contains(&name), "{name} in {names:?}");
        assert_eq!(podman::image_of(&name), IMAGE_1);
    }

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let load = tokio::spawn(steady_load(f.listener_url("/"), 4, 100_000, stop_rx));
    // Kill one container from outside, as an operator (or the OOM killer) would.
    let victim = g.instances[0].id.clone();
    podman::kill(&format!("flotilla-{victim}"));
    let replaced = wait_for(
        "the killed container replaced",
        Duration::from_secs(60),
        || {
            let f = &f;
            let victim = victim.clone();
            async move {
                let g = f.group("web").await?;
                let whole = g.instances.len() == 3
                    && g.instances
                        .iter()
                        .all(|i| i.id != victim && i.health == "healthy");
                whole.then_some(g)
            }
        },
    )
    .await;
    let activities = f.activities("web").await;
    assert!(
        activities.iter().any(|a| a
            .cause
            .contains(&format!("instance {victim} exited unexpectedly"))),
        "the kill was noticed as the instance's exit: {activities:#?}"
    );

    // A new tag in the launch template rolls the group (on_launch_template_change).
    let rolled = roll_to(&f, IMAGE_2).await;
    let _ = stop_tx.send(true);
    let (ok, failures) = load.await.expect("load");
    assert_no_failed_requests(ok, &failures, 100);

    let names = podman::containers(&home);
    assert_eq!(names.len(), 3, "{names:?}");
    for i in &rolled.instances {
        assert!(
            replaced.instances.iter().all(|old| old.id != i.id),
            "{} was replaced by the refresh",
            i.id
        );
        assert_eq!(podman::image_of(&format!("flotilla-{}", i.id)), IMAGE_2);
    }

    let status = f.terminate(Duration::from_secs(60));
    assert!(status.success(), "{status}");
    assert!(
        podman::containers(&home).is_empty(),
        "a graceful stop removes every container at once"
    );
}

/// The group features that do not care what an instance is, with images: every launch waits
/// in a launch hook (continued at its heartbeat timeout), a warm pool keeps a started
/// container ready, and a Spot interruption under load replaces a container — 0 failed
/// requests — and removes the interrupted one; SIGTERM leaves no container (after each run).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hooks_warm_pools_and_spot_interruptions_work_for_image_instances() {
    if !image_or_skip("hooks_warm_pools_and_spot_interruptions_work_for_image_instances") {
        return;
    }
    // A group with a warm pool cannot have Spot instances (as in AWS): two runs.
    let hooked = r#"
[[auto_scaling_groups.web.lifecycle_hooks]]
name = "warm-up"
transition = "launching"
heartbeat_timeout = "2s"
default_result = "continue"

[auto_scaling_groups.web.warm_pool]
max_group_prepared_capacity = 3
pool_state = "running"
"#;
    let (mut f, cleanup) = start("containers-warm", |p| {
        format!("{}{hooked}", config(p, IMAGE_1, 2, ""))
    });
    let home = cleanup.0.clone();
    let held = wait_for(
        "a container held by the hook",
        Duration::from_secs(90),
        || async {
            let g = f.group("web").await?;
            g.instances.into_iter().find(|i| i.state == "pending:wait")
        },
    )
    .await;
    assert!(
        podman::running(&format!("flotilla-{}", held.id)),
        "it runs meanwhile"
    );
    // Warm instances are the group's too: count those in service.
    wait_for("2 serving", Duration::from_secs(90), || async {
        let g = f.group("web").await?;
        let serving = g.instances.iter().filter(|i| i.state == "in_service");
        (serving.filter(|i| i.health == "healthy").count() == 2).then_some(())
    })
    .await;
    let pool: WarmPoolInfo = wait_for("a warmed container", Duration::from_secs(60), || async {
        let p: WarmPoolInfo = f.admin.get("/v1/groups/web/warm-pool").await.ok()?;
        p.instances
            .iter()
            .any(|i| i.state == "warmed:running")
            .then_some(p)
    })
    .await;
    let names = podman::containers(&home);
    for i in pool
        .instances
        .iter()
        .filter(|i| i.state == "warmed:running")
    {
        assert!(names.contains(&format!("flotilla-{}", i.id)), "{names:?}");
    }
    let status = f.terminate(Duration::from_secs(60));
    assert!(status.success(), "{status}");
    assert!(
        podman::containers(&home).is_empty(),
        "no container after SIGTERM"
    );
    drop(cleanup);

    let spot = r#"
[auto_scaling_groups.web.instances_distribution]
on_demand_base_capacity = 0
on_demand_percentage_above_base_capacity = 0
capacity_rebalance = true
spot_interruption_notice = "10s"
"#;
    let (mut f, cleanup) = start("containers-spot", |p| {
        format!("{}{spot}", config(p, IMAGE_1, 2, ""))
    });
    let home = cleanup.0.clone();
    let g = f.wait_in_service("web", 2, Duration::from_secs(90)).await;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let load = tokio::spawn(steady_load(f.listener_url("/"), 4, 100_000, stop_rx));
    let victim = g
        .instances
        .iter()
        .find(|i| i.purchase_option == "spot")
        .expect("a spot instance")
        .id
        .clone();
    let (ok, out, err) = cli(&f, &["spot", "interrupt", &victim]);
    assert!(ok, "{out}{err}");
    wait_for(
        "the interrupted container replaced",
        Duration::from_secs(60),
        || async {
            let g = f.group("web").await?;
            let serving = g
                .instances
                .iter()
                .filter(|i| i.state == "in_service")
                .count();
            (serving == 2 && g.instances.iter().all(|i| i.id != victim)).then_some(())
        },
    )
    .await;
    let _ = stop_tx.send(true);
    let (ok, failures) = load.await.expect("load");
    assert_no_failed_requests(ok, &failures, 20);
    let victim_container = format!("flotilla-{victim}");
    wait_for(
        "the interrupted container removed",
        Duration::from_secs(30),
        || async { (!podman::containers(&home).contains(&victim_container)).then_some(()) },
    )
    .await;
    let status = f.terminate(Duration::from_secs(60));
    assert!(status.success(), "{status}");
    assert!(
        podman::containers(&home).is_empty(),
        "no container after SIGTERM"
    );
}

/// Reloads the config with `image` (a new tag rolls the group: on_launch_template_change) and
/// waits for the instance refresh to succeed and the group to be whole again.
async fn roll_to(f: &Flotilla, image: &str) -> GroupDetail {
    let reloaded = f.reload_with(&config(&f.ports, image, 3, "")).await;
    assert!(!reloaded.changes.is_empty(), "{reloaded:?}");
    let refresh: InstanceRefreshInfo = wait_for(
        "the instance refresh to finish",
        Duration::from_secs(120),
        || async {
            let r: InstanceRefreshInfo =
                f.admin.get("/v1/groups/web/instance-refresh").await.ok()?;
            (r.status == "Successful").then_some(r)
        },
    )
    .await;
    assert_eq!(refresh.percentage_complete, 100);
    f.wait_in_service("web", 3, Duration::from_secs(60)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_container_outlives_a_sigkilled_flotilla() {
    if !image_or_skip("no_container_outlives_a_sigkilled_flotilla") {
        return;
    }
    let (mut f, cleanup) = start("containers-sigkill", |p| config(p, IMAGE_1, 2, ""));
    let g = f.wait_in_service("web", 2, Duration::from_secs(90)).await;
    let pids: Vec<u32> = g.instances.iter().filter_map(|i| i.pid).collect();
    assert_eq!(pids.len(), 2, "each container's main process: {g:?}");
    assert!(pids.iter().all(|p| alive(*p)));
    let mut child = f.child.take().expect("flotilla running");
    signal(child.id(), libc::SIGKILL);
    let _ = child.wait();
    let seen = wait_no_containers(&cleanup.0).await;
    assert!(seen <= 2, "{seen}");
    for pid in pids {
        wait_for(
            "the container's process gone",
            Duration::from_secs(10),
            || async move { (!alive(pid)).then_some(()) },
        )
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn containers_left_by_a_run_are_adopted_by_the_next() {
    if !image_or_skip("containers_left_by_a_run_are_adopted_by_the_next") {
        return;
    }
    let (mut f, cleanup) = start("containers-adopt", |p| config(p, IMAGE_1, 2, ""));
    let before = f.wait_in_service("web", 2, Duration::from_secs(90)).await;
    // The whole service is SIGKILLed at once, watchdog included (as systemd stops a unit):
    // the containers run on, the engine's clients die with Flotilla.
    let flotilla = f.child.take().expect("flotilla running");
    let watchdogs = children_of(flotilla.id());
    assert!(!watchdogs.is_empty(), "the watchdog was found");
    for pid in &watchdogs {
        signal(*pid, libc::SIGKILL);
    }
    let mut flotilla = flotilla;
    signal(flotilla.id(), libc::SIGKILL);
    let _ = flotilla.wait();
    assert_eq!(podman::containers(&cleanup.0).len(), 2, "they survived");

    let again = Flotilla::start_in(f.dir.clone(), f.ports, &config(&f.ports, IMAGE_1, 2, ""));
    let after = again
        .wait_in_service("web", 2, Duration::from_secs(60))
        .await;
    let ids = |g: &GroupDetail| {
        let mut v: Vec<(String, Option<u32>)> =
            g.instances.iter().map(|i| (i.id.clone(), i.pid)).collect();
        v.sort();
        v
    };
    assert_eq!(
        ids(&after),
        ids(&before),
        "the same containers, adopted, no new launch"
    );
    let log = again.log();
    assert_eq!(
        log.matches("adopted a running container").count(),
        2,
        "{log}"
    );
    drop(again);
    wait_no_containers(&cleanup.0).await;
}

/// Direct children of `pid` (the watchdog is the one `sh`).
fn children_of(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return out;
    };
    for task in tasks.flatten() {
        let children = std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
        for child in children
            .split_whitespace()
            .filter_map(|c| c.parse::<u32>().ok())
        {
            let comm = std::fs::read_to_string(format!("/proc/{child}/comm")).unwrap_or_default();
            if comm.trim() == "sh" {
                out.push(child);
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_images_are_failed_launches_with_the_engines_reason() {
    if !image_or_skip("bad_images_are_failed_launches_with_the_engines_reason") {
        return;
    }
    let unknown = |p: &Ports| config(p, "localhost/flotilla-test-no-such-image:1", 1, "");
    let (f, _cleanup) = start("containers-unknown", unknown);
    let failed = failed_launch(&f).await;
    assert!(failed.contains("image not known"), "{failed}");

    let exits = |p: &Ports| {
        config(p, IMAGE_1, 1, "").replace("args = [\"demo-app\"]", "args = [\"no-such-command\"]")
    };
    let (f, cleanup) = start("containers-exits", exits);
    let failed = failed_launch(&f).await;
    assert!(failed.contains("exited at once (exit code 2)"), "{failed}");
    assert!(
        failed.contains("no-such-command"),
        "the app's own words: {failed}"
    );
    drop(f);
    wait_no_containers(&cleanup.0).await;

    let ports = Ports::new();
    let dir = common::temp_dir("containers-no-engine");
    let f = Flotilla::start_with_env(
        dir,
        ports,
        &config(&ports, IMAGE_1, 1, ""),
        &[("FLOTILLA_CONTAINER_ENGINE", "/nonexistent/podman")],
    );
    let failed = failed_launch(&f).await;
    assert!(
        failed.contains("cannot run /nonexistent/podman"),
        "{failed}"
    );
}

/// Waits for two failed launch activities (the first and its retry after the back-off) and
/// returns the first's description; the group never has an instance in service.
async fn failed_launch(f: &Flotilla) -> String {
    let failed = wait_for("two failed launches", Duration::from_secs(60), || async {
        let a = f.activities("web").await;
        let failed: Vec<String> = a
            .iter()
            .filter(|a| a.status == "failed" && a.description.starts_with("Launching"))
            .map(|a| a.description.clone())
            .collect();
        (failed.len() >= 2).then_some(failed)
    })
    .await;
    let g = f.group("web").await.expect("group");
    assert!(g.instances.iter().all(|i| i.state != "in_service"), "{g:?}");
    failed[0].clone()
}

/// Kills a process this test does not own as a child (a hot upgrade's successor) on drop.
struct KillOnDrop(u32);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if alive(self.0) {
            signal(self.0, libc::SIGKILL);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hot_upgrade_keeps_the_containers_and_the_successor_guards_them() {
    if !image_or_skip("a_hot_upgrade_keeps_the_containers_and_the_successor_guards_them") {
        return;
    }
    // With limits, whose report (read at launch) the successor must carry on showing.
    let limits = "cpu = 0.5\nmemory = \"64MiB\"";
    let (mut f, cleanup) = start("containers-upgrade", |p| config(p, IMAGE_1, 2, limits));
    let before = f.wait_in_service("web", 2, Duration::from_secs(90)).await;
    let mut names = podman::containers(&cleanup.0);
    names.sort();
    assert_eq!(names.len(), 2, "{names:?}");
    let old_watchdogs = children_of(f.pid());
    assert_eq!(old_watchdogs.len(), 1, "the old process's watchdog");
    let upgraded: flotilla_admin::api::UpgradeResponse = f
        .admin
        .post("/v1/upgrade", &serde_json::json!({}))
        .await
        .expect("upgrade");
    let successor = KillOnDrop(upgraded.new_pid);
    let status = f.stop_with(0, Duration::from_secs(60)); // signal 0: wait for its exit
    assert!(status.success(), "the old process exited with {status}");
    // Its watchdog has finished, whatever it did: stood down, or removed what it guarded.
    wait_for("the old watchdog's end", Duration::from_secs(30), || {
        let gone = !alive(old_watchdogs[0]);
        async move { gone.then_some(()) }
    })
    .await;

    // The same containers, not restarted, not re-attached: the same main processes.
    let after: GroupDetail = f.admin.get("/v1/groups/web").await.expect("group");
    let ids = |g: &GroupDetail| {
        let mut v: Vec<_> = g
            .instances
            .iter()
            .map(|i| (i.id.clone(), i.pid, i.limits.clone()))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    };
    assert!(before.instances.iter().all(|i| i.limits.is_some()));
    assert_eq!(
        ids(&after),
        ids(&before),
        "the same containers, pids and limits"
    );
    let mut now = podman::containers(&cleanup.0);
    now.sort();
    assert_eq!(now, names, "the old process's watchdog removed nothing");
    let pids: Vec<u32> = after.instances.iter().filter_map(|i| i.pid).collect();
    assert!(pids.iter().all(|p| alive(*p)), "{pids:?}");

    // The successor guards them: SIGKILLed, its watchdog removes the containers.
    signal(successor.0, libc::SIGKILL);
    let seen = wait_no_containers(&cleanup.0).await;
    assert!(seen <= 2, "{seen}");
}
