//! Lifecycle hooks and warm pools against the real binary: a launch hook holds an instance out
//! of service until the application (here: the CLI or the API) completes it; a heartbeat
//! timeout applies the default result; a terminate hook runs after draining and before the
//! stop signal; a warm pool keeps started instances ready and a scale-out registers one.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{alive, cli, demo_config, get, http_client, wait_for, Flotilla, Ports};
use flotilla_admin::api::{
    ActivityInfo, CompleteLifecycleActionRequest, GroupDetail, InstanceInfo, LifecycleActionInfo,
    LifecycleResult, TargetHealthInfo, WarmPoolInfo,
};
use flotilla_admin::ClientError;

const WAIT: Duration = Duration::from_secs(30);

fn hook(name: &str, transition: &str, timeout: &str, default: &str) -> String {
    format!(
        "[[auto_scaling_groups.web.lifecycle_hooks]]\nname = \"{name}\"\ntransition = \
         \"{transition}\"\nheartbeat_timeout = \"{timeout}\"\ndefault_result = \"{default}\"\n"
    )
}

/// The first instance of the group in `state`.
async fn wait_state(f: &Flotilla, state: &str) -> InstanceInfo {
    wait_for(&format!("an instance in {state}"), WAIT, || async {
        let g = f.group("web").await?;
        g.instances.into_iter().find(|i| i.state == state)
    })
    .await
}

async fn targets(f: &Flotilla) -> Vec<TargetHealthInfo> {
    f.admin
        .get("/v1/target-groups/web/health")
        .await
        .expect("target health")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn launch_hook_holds_an_instance_out_of_service_until_completed() {
    let ports = Ports::new();
    let config = demo_config(
        &ports,
        1,
        3,
        1,
        &hook("warm-cache", "launching", "60s", "abandon"),
    );
    let f = Flotilla::start("hook-launch", ports, &config);
    let waiting = wait_state(&f, "pending:wait").await;
    // Running, but not registered: nothing routes to it yet.
    assert!(waiting.pid.is_some_and(alive));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(targets(&f).await.is_empty());
    let (status, _, _) = get(&http_client(), &f.listener_url("/")).await.unwrap();
    assert_eq!(status, 503);
    let actions: Vec<LifecycleActionInfo> = f
        .admin
        .get("/v1/groups/web/lifecycle-actions")
        .await
        .unwrap();
    assert_eq!(actions.len(), 1, "{actions:?}");
    assert_eq!(
        (actions[0].instance_id.as_str(), actions[0].hook.as_str()),
        (waiting.id.as_str(), "warm-cache")
    );
    assert_eq!(actions[0].transition, "launching");
    assert_eq!(actions[0].default_result, "abandon");

    // Bad completions are 4xx JSON and change nothing.
    let complete = |instance: &str, hook: &str| CompleteLifecycleActionRequest {
        instance_id: instance.to_string(),
        hook: hook.to_string(),
        result: LifecycleResult::Continue,
    };
    for (body, status) in [
        (complete(&waiting.id, "no-such-hook"), 409),
        (complete("i-nope", "warm-cache"), 404),
    ] {
        let e = f
            .admin
            .post::<_, serde_json::Value>("/v1/groups/web/lifecycle-actions", &body)
            .await
            .unwrap_err();
        assert!(
            matches!(e, ClientError::Api { status: s, .. } if s == status),
            "{e}"
        );
    }
    let e = f
        .admin
        .post::<_, serde_json::Value>(
            "/v1/groups/web/lifecycle-actions",
            &serde_json::json!({"instance_id": waiting.id, "hook": "warm-cache", "result": "maybe"}),
        )
        .await
        .unwrap_err();
    assert!(matches!(e, ClientError::Api { status: 400, .. }), "{e}");

    // The application says it is ready (here through the CLI): registered, healthy, serving.
    let (ok, out, err) = cli(
        &f,
        &[
            "lifecycle",
            "complete",
            "web",
            &waiting.id,
            "warm-cache",
            "--result",
            "continue",
        ],
    );
    assert!(ok, "{out}{err}");
    assert!(out.contains("in_service"), "{out}");
    let g = f.wait_in_service("web", 1, WAIT).await;
    assert_eq!(g.instances[0].id, waiting.id);
    let (status, _, body) = get(&http_client(), &f.listener_url("/")).await.unwrap();
    assert_eq!(status, 200);
    assert!(body.contains(&waiting.id), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeat_timeout_applies_the_default_result_abandon() {
    let ports = Ports::new();
    let config = demo_config(
        &ports,
        1,
        3,
        1,
        &hook("warm-cache", "launching", "2s", "abandon"),
    );
    let f = Flotilla::start("hook-timeout", ports, &config);
    let first = wait_state(&f, "pending:wait").await;
    // A heartbeat gives it another 2 s.
    let (ok, out, err) = cli(
        &f,
        &["lifecycle", "heartbeat", "web", &first.id, "warm-cache"],
    );
    assert!(ok, "{out}{err}");
    assert!(out.contains("then abandon"), "{out}");
    // Nobody completes it: abandoned, its process stopped, a replacement launched.
    let replacement = wait_for("a replacement in pending:wait", WAIT, || async {
        let g = f.group("web").await?;
        g.instances
            .into_iter()
            .find(|i| i.state == "pending:wait" && i.id != first.id)
    })
    .await;
    wait_for("the abandoned process to exit", WAIT, || async {
        (!first.pid.is_some_and(alive)).then_some(())
    })
    .await;
    let g: GroupDetail = f.group("web").await.unwrap();
    assert!(g.instances.iter().all(|i| i.id != first.id), "{g:?}");
    assert_ne!(replacement.id, first.id);
    let activities: Vec<ActivityInfo> = f.admin.get("/v1/groups/web/activities").await.unwrap();
    assert!(
        activities.iter().any(|a| a.description.contains(&first.id)
            && a.description
                .contains("timed out (default result): abandon")),
        "{activities:#?}"
    );
    assert!(activities
        .iter()
        .any(|a| a.cause.contains("ended with ABANDON")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminate_hook_runs_after_draining_and_before_the_stop_signal() {
    let ports = Ports::new();
    let config = demo_config(
        &ports,
        1,
        3,
        2,
        &hook("flush", "terminating", "60s", "continue"),
    );
    let f = Flotilla::start("hook-terminate", ports, &config);
    f.wait_in_service("web", 2, WAIT).await;
    let (ok, out, err) = cli(&f, &["scale", "web", "1"]);
    assert!(ok, "{out}{err}");
    let draining = wait_state(&f, "terminating").await;
    // Deregistration comes first (deregistration_delay 2 s); only then the hook waits.
    let victim = wait_state(&f, "terminating:wait").await;
    assert_eq!(victim.id, draining.id);
    let address = victim.address.clone().unwrap();
    assert!(targets(&f)
        .await
        .iter()
        .all(|t| t.target != address || t.state == "draining"));
    // No stop signal while the hook waits: the process keeps running.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let pid = victim.pid.unwrap();
    assert!(alive(pid));
    let g = f.group("web").await.unwrap();
    assert!(g
        .instances
        .iter()
        .any(|i| i.id == victim.id && i.state == "terminating:wait"));
    let (ok, out, err) = cli(&f, &["lifecycle", "complete", "web", &victim.id, "flush"]);
    assert!(ok, "{out}{err}");
    wait_for("the drained instance to stop", WAIT, || async {
        (!alive(pid)).then_some(())
    })
    .await;
    f.wait_in_service("web", 1, WAIT).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warm_pool_scale_out_registers_a_prepared_instance_and_scale_in_returns_it() {
    let ports = Ports::new();
    let config = demo_config(
        &ports,
        1,
        3,
        1,
        "[auto_scaling_groups.web.warm_pool]\nmin_size = 0\npool_state = \"running\"\nreuse_on_scale_in = true\n",
    );
    let f = Flotilla::start("warm-pool", ports, &config);
    // max_size 3 − desired 1 = 2 prepared, running, not registered.
    let pool = wait_for("a full warm pool", WAIT, || async {
        let p: WarmPoolInfo = f.admin.get("/v1/groups/web/warm-pool").await.ok()?;
        (p.instances.len() == 2 && p.instances.iter().all(|i| i.state == "warmed:running"))
            .then_some(p)
    })
    .await;
    assert_eq!(
        (pool.desired_size, pool.max_group_prepared_capacity),
        (2, 3)
    );
    let warm: BTreeSet<String> = pool.instances.iter().map(|i| i.id.clone()).collect();
    let pids: Vec<u32> = pool.instances.iter().filter_map(|i| i.pid).collect();
    assert!(pids.len() == 2 && pids.iter().all(|p| alive(*p)));
    let serving = wait_serving(&f, 1).await;
    assert!(serving.iter().all(|i| !warm.contains(&i.id)));

    // Scale-out: a pool instance is registered, no new launch (still 3 instances in all).
    let (ok, out, err) = cli(&f, &["scale", "web", "2"]);
    assert!(ok, "{out}{err}");
    let serving = wait_serving(&f, 2).await;
    let from_pool: Vec<&InstanceInfo> = serving.iter().filter(|i| warm.contains(&i.id)).collect();
    assert_eq!(from_pool.len(), 1, "{serving:?}");
    let g = f.group("web").await.unwrap();
    assert_eq!(g.instances.len(), 3, "{g:?}");
    let activities: Vec<ActivityInfo> = f.admin.get("/v1/groups/web/activities").await.unwrap();
    assert!(activities.iter().any(|a| a
        .description
        .starts_with("Launching an instance from the warm pool")));

    // Scale-in with reuse_on_scale_in: the drained instance goes back to the pool, running.
    let serving_ids: BTreeSet<String> = serving.iter().map(|i| i.id.clone()).collect();
    let (ok, out, err) = cli(&f, &["scale", "web", "1"]);
    assert!(ok, "{out}{err}");
    let pool = wait_for("the scaled-in instance back in the pool", WAIT, || async {
        let p: WarmPoolInfo = f.admin.get("/v1/groups/web/warm-pool").await.ok()?;
        let back = p
            .instances
            .iter()
            .any(|i| serving_ids.contains(&i.id) && i.state == "warmed:running");
        (back && p.instances.len() == 2).then_some(p)
    })
    .await;
    let returned = pool
        .instances
        .iter()
        .find(|i| serving_ids.contains(&i.id))
        .unwrap();
    let before = serving.iter().find(|i| i.id == returned.id).unwrap();
    assert_eq!(returned.pid, before.pid, "the same process, never stopped");
    assert!(returned.pid.is_some_and(alive));
    wait_serving(&f, 1).await;
    let g = f.group("web").await.unwrap();
    assert!(g.instances.iter().all(|i| i.pid.is_some_and(alive)));
    assert_eq!(g.instances.len(), 3);
    let (ok, out, err) = cli(&f, &["warm-pool", "web"]);
    assert!(ok && out.contains("2 of 2 instance(s)"), "{out}{err}");
}

/// Waits until exactly `n` instances are in service and healthy targets (warm ones aside).
async fn wait_serving(f: &Flotilla, n: usize) -> Vec<InstanceInfo> {
    wait_for(&format!("{n} instance(s) serving"), WAIT, || async {
        let g = f.group("web").await?;
        let serving: Vec<InstanceInfo> = g
            .instances
            .into_iter()
            .filter(|i| i.state == "in_service")
            .collect();
        let t = f
            .admin
            .get::<Vec<TargetHealthInfo>>("/v1/target-groups/web/health")
            .await
            .ok()?;
        let healthy = t.iter().filter(|t| t.state == "healthy").count();
        (serving.len() == n && healthy == n && t.len() == n).then_some(serving)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_adds_a_warm_pool_and_a_hook_then_removes_the_pool() {
    let ports = Ports::new();
    let f = Flotilla::start("warm-pool-reload", ports, &demo_config(&ports, 1, 3, 1, ""));
    f.wait_in_service("web", 1, WAIT).await;
    let e = f
        .admin
        .get::<WarmPoolInfo>("/v1/groups/web/warm-pool")
        .await
        .unwrap_err();
    assert!(matches!(e, ClientError::Api { status: 404, .. }), "{e}");
    let extra = format!(
        "[auto_scaling_groups.web.warm_pool]\nmax_group_prepared_capacity = 2\n{}",
        hook("warm-cache", "launching", "60s", "continue")
    );
    let r = f.reload_with(&demo_config(&f.ports, 1, 3, 1, &extra)).await;
    assert!(
        r.changes
            .iter()
            .any(|c| c.contains("lifecycle hooks or warm pool updated")),
        "{r:?}"
    );
    // 2 prepared − 1 desired = 1 in the pool, which waits for the new launch hook on entry.
    let pooled = wait_state(&f, "warmed:pending:wait").await;
    let (ok, out, err) = cli(
        &f,
        &["lifecycle", "complete", "web", &pooled.id, "warm-cache"],
    );
    assert!(ok, "{out}{err}");
    wait_state(&f, "warmed:running").await;
    // Without the pool again, its instance is stopped.
    f.reload_with(&demo_config(&f.ports, 1, 3, 1, "")).await;
    f.wait_in_service("web", 1, WAIT).await;
    wait_for("the pooled process to stop", WAIT, || async {
        (!pooled.pid.is_some_and(alive)).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_app_completes_its_own_launch_hook_after_warming_up() {
    let ports = Ports::new();
    // The demo app reads FLOTILLA_ADMIN (set by flotilla) and completes the hook itself.
    let config = demo_config(&ports, 1, 3, 2, &hook("warm-cache", "launching", "60s", "abandon"))
        .replace(
            "stop_timeout = \"5s\"\n",
            "stop_timeout = \"5s\"\nenv = { DEMO_LAUNCH_HOOK = \"warm-cache\", DEMO_WARMUP = \"300ms\" }\n",
        );
    let f = Flotilla::start("hook-app", ports, &config);
    let g = f.wait_in_service("web", 2, WAIT).await;
    let activities: Vec<ActivityInfo> = f.admin.get("/v1/groups/web/activities").await.unwrap();
    for i in &g.instances {
        assert!(
            activities.iter().any(|a| a.description.contains(&i.id)
                && a.description.contains("warm-cache completed: continue")),
            "{activities:#?}"
        );
    }
}
