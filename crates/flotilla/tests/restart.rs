//! A restart loses nothing an operator did: desired capacity, suspended processes and the
//! activity history come back from the state under `state_dir`, and no instance is doubled or
//! orphaned.

mod common;

use std::time::Duration;

use common::{alive, demo_config, Flotilla, Ports};
use flotilla_admin::api::{
    ActivityInfo, CapacityRequest, GroupSummary, ScalingInfo, SuspendedProcessesRequest,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_capacity_and_activities_survive_a_graceful_restart() {
    let ports = Ports::new();
    let (listener, admin) = (ports.listener, ports.admin);
    let config = demo_config(&ports, 1, 5, 2, "");
    let mut first = Flotilla::start("restart", ports, &config);
    first
        .wait_in_service("web", 2, Duration::from_secs(30))
        .await;
    let scaled: GroupSummary = first
        .admin
        .put(
            "/v1/groups/web/capacity",
            &CapacityRequest {
                desired_capacity: 3,
            },
        )
        .await
        .expect("scale to 3");
    assert_eq!(scaled.desired_capacity, 3);
    let before_group = first
        .wait_in_service("web", 3, Duration::from_secs(30))
        .await;
    let before = first.activities("web").await;
    assert!(before.iter().any(|a| a.cause.contains("operator")));
    assert!(
        before.iter().all(|a| a.status == "successful"),
        "{before:#?}"
    );
    let old_pids: Vec<u32> = before_group
        .instances
        .iter()
        .filter_map(|i| i.pid)
        .collect();
    let old_ids: Vec<String> = before_group
        .instances
        .iter()
        .map(|i| i.id.clone())
        .collect();
    assert_eq!(old_pids.len(), 3);

    let status = first.terminate(Duration::from_secs(30));
    assert!(status.success(), "flotilla exited with {status}");
    for pid in &old_pids {
        assert!(!alive(*pid), "instance pid {pid} outlived flotilla");
    }
    assert!(first.dir.join(".flotilla/state.db").exists());

    let second = Flotilla::start_in(first.dir.clone(), Ports { listener, admin }, &config);
    let after_group = second
        .wait_in_service("web", 3, Duration::from_secs(30))
        .await;
    assert_eq!(
        after_group.desired_capacity, 3,
        "the operator's desired capacity (config says 2) is back"
    );
    assert_eq!(after_group.instances.len(), 3, "no doubled instances");
    for i in &after_group.instances {
        assert!(!old_ids.contains(&i.id), "{} reused", i.id);
        assert!(!i.pid.is_some_and(|p| old_pids.contains(&p)));
    }
    let after: Vec<ActivityInfo> = second
        .admin
        .get("/v1/groups/web/activities")
        .await
        .expect("activities after restart");
    for a in &before {
        assert!(
            after.contains(a),
            "lost activity {a:?}; after restart: {after:#?}"
        );
    }
    // Newest first: this run's launches come before the earlier run's history.
    let first_old = after
        .iter()
        .position(|a| a == &before[0])
        .expect("old activity");
    assert!(
        first_old >= 3,
        "this run's three launches come first: {after:#?}"
    );
    assert!(after[..first_old]
        .iter()
        .all(|a| a.description.starts_with("Launching a new instance")));
    assert!(second.log().contains("restoring the desired capacity 3"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_sigkill_dead_instances_are_forgotten_and_replaced_once() {
    let ports = Ports::new();
    let (listener, admin) = (ports.listener, ports.admin);
    let config = demo_config(&ports, 1, 5, 1, "");
    let mut first = Flotilla::start("restart-kill", ports, &config);
    first
        .wait_in_service("web", 1, Duration::from_secs(30))
        .await;
    let _: GroupSummary = first
        .admin
        .put(
            "/v1/groups/web/capacity",
            &CapacityRequest {
                desired_capacity: 2,
            },
        )
        .await
        .expect("scale to 2");
    let before = first
        .wait_in_service("web", 2, Duration::from_secs(30))
        .await;
    let old_pids: Vec<u32> = before.instances.iter().filter_map(|i| i.pid).collect();
    assert_eq!(old_pids.len(), 2, "every instance has a pid: {before:?}");

    // SIGKILL: no chance to clean up; the parent-death signal takes the instances along.
    let mut child = first.child.take().expect("running");
    child.kill().expect("SIGKILL flotilla");
    child.wait().expect("reap flotilla");
    common::wait_for(
        "instances to die with flotilla",
        Duration::from_secs(10),
        || async { old_pids.iter().all(|p| !alive(*p)).then_some(()) },
    )
    .await;

    let second = Flotilla::start_in(first.dir.clone(), Ports { listener, admin }, &config);
    let after = second
        .wait_in_service("web", 2, Duration::from_secs(30))
        .await;
    assert_eq!(
        after.desired_capacity, 2,
        "the operator's change was durable before the kill"
    );
    assert_eq!(
        after.instances.len(),
        2,
        "dead records were not adopted nor doubled"
    );
    assert!(second.log().contains("from the previous run is gone"));
}

/// Scaling processes an operator suspended stay suspended across a restart, and are acted
/// upon from the first moment: with Launch suspended the restarted group launches nothing
/// until the operator resumes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suspended_processes_survive_a_restart_and_are_honoured() {
    let ports = Ports::new();
    let (listener, admin) = (ports.listener, ports.admin);
    let config = demo_config(&ports, 1, 4, 1, "");
    let mut first = Flotilla::start("restart-suspend", ports, &config);
    first
        .wait_in_service("web", 1, Duration::from_secs(30))
        .await;
    let info: ScalingInfo = first
        .admin
        .put(
            "/v1/groups/web/suspended-processes",
            &SuspendedProcessesRequest {
                processes: vec!["Launch".into(), "ScheduledActions".into()],
            },
        )
        .await
        .expect("suspend");
    assert_eq!(info.suspended_processes, ["Launch", "ScheduledActions"]);
    let status = first.terminate(Duration::from_secs(30));
    assert!(status.success(), "flotilla exited with {status}");

    let second = Flotilla::start_in(first.dir.clone(), Ports { listener, admin }, &config);
    let info: ScalingInfo = common::wait_for(
        "the restarted admin API",
        Duration::from_secs(20),
        || async { second.admin.get("/v1/groups/web/scaling").await.ok() },
    )
    .await;
    assert_eq!(
        info.suspended_processes,
        ["Launch", "ScheduledActions"],
        "the operator's suspension is back"
    );
    // Acted upon, not only shown: the group has no instance (the first run stopped its one at
    // shutdown) and, Launch being suspended, starts none.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let g = second.group("web").await.expect("group");
    assert_eq!(g.desired_capacity, 1);
    assert!(g.instances.is_empty(), "launched while suspended: {g:?}");
    assert!(second
        .log()
        .contains("restoring the scaling processes an operator suspended before the restart: Launch, ScheduledActions"));

    // Resuming is durable too and lets the group launch what it was missing.
    let info: ScalingInfo = second
        .admin
        .put(
            "/v1/groups/web/suspended-processes",
            &SuspendedProcessesRequest { processes: vec![] },
        )
        .await
        .expect("resume");
    assert!(info.suspended_processes.is_empty());
    second
        .wait_in_service("web", 1, Duration::from_secs(30))
        .await;
}

/// Kills (by PID) and reaps a process this test started, whatever happens.
struct Reaped(std::process::Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A demo app left by an earlier run (here: started by the test, in its own process group),
/// answering its health check: (process, pid, port).
async fn survivor(id: &str) -> (Reaped, u32, u16) {
    use std::os::unix::process::CommandExt;
    let port = common::free_port();
    let app = std::process::Command::new(common::flotilla_bin())
        .arg("demo-app")
        .env("PORT", port.to_string())
        .env("FLOTILLA_INSTANCE_ID", id)
        .env("FLOTILLA_ZONE", "az-b")
        .env("FLOTILLA_GROUP", "web")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .process_group(0)
        .spawn()
        .expect("start the demo app");
    let app = Reaped(app);
    let pid = app.0.id();
    let client = common::http_client();
    let health = format!("http://127.0.0.1:{port}/health");
    common::wait_for("the demo app", Duration::from_secs(10), || async {
        matches!(common::get(&client, &health).await, Ok((200, _, _))).then_some(())
    })
    .await;
    (app, pid, port)
}

/// Writes the records an earlier run would have left for `survivors` (id, pid, port,
/// scale-in protection, lifecycle), launched from `launch_template_version`, into a fresh state
/// directory named `name`.
fn records_of_an_earlier_run(
    name: &str,
    launch_template_version: u64,
    survivors: &[(&str, u32, u16, bool, &str)],
) -> std::path::PathBuf {
    use flotilla_state::{InstanceRecord, SqliteStore, StateStore};
    let dir = common::temp_dir(name);
    std::fs::create_dir_all(dir.join(".flotilla")).expect("state dir");
    let mut store = SqliteStore::open(&dir.join(".flotilla/state.db")).expect("state db");
    for &(id, pid, port, protected_from_scale_in, lifecycle) in survivors {
        store
            .put_instance(&InstanceRecord {
                id: id.into(),
                group: "web".into(),
                zone: "az-b".into(),
                pid,
                start_time: flotilla_compute::process_start_time(pid).expect("running"),
                address: format!("127.0.0.1:{port}"),
                launch_template_version,
                launched_at_ms: 0,
                protected_from_scale_in,
                lifecycle: lifecycle.into(),
                purchase_option: "on-demand".into(),
            })
            .expect("write record");
    }
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_warm_pool_instance_still_running_is_adopted_back_into_the_pool() {
    // One instance in service and one in the warm pool when the earlier run stopped.
    let (id, serving_id) = ("i-0adoptedwarm1", "i-0adoptedserv1");
    let (_app, pid, port) = survivor(id).await;
    let (_serving, serving_pid, serving_port) = survivor(serving_id).await;
    let dir = records_of_an_earlier_run(
        "adopt-warm",
        1,
        &[
            (id, pid, port, false, "warmed:running"),
            (serving_id, serving_pid, serving_port, false, "in_service"),
        ],
    );

    let ports = Ports::new();
    let pool = "[auto_scaling_groups.web.warm_pool]\nmax_group_prepared_capacity = 2\n";
    let f = Flotilla::start_in(dir, ports, &demo_config(&ports, 1, 3, 1, pool));
    let g = common::wait_for(
        "the adopted instance in the pool",
        Duration::from_secs(30),
        || async {
            let g = f.group("web").await?;
            let warm = g
                .instances
                .iter()
                .any(|i| i.id == id && i.state == "warmed:running");
            let serving = g
                .instances
                .iter()
                .filter(|i| i.state == "in_service")
                .count();
            (warm && serving == 1 && g.instances.len() == 2).then_some(g)
        },
    )
    .await;
    let adopted = g.instances.iter().find(|i| i.id == id).unwrap();
    assert_eq!(adopted.pid, Some(pid), "the same process, not a new launch");
    let activities: Vec<ActivityInfo> = f.admin.get("/v1/groups/web/activities").await.unwrap();
    assert!(
        activities
            .iter()
            .all(|a| !a.description.starts_with("Launching")),
        "nothing launched: {activities:#?}"
    );
    let targets: Vec<flotilla_admin::api::TargetHealthInfo> = f
        .admin
        .get("/v1/target-groups/web/health")
        .await
        .expect("target health");
    assert!(targets.iter().all(|t| t.instance_id.as_deref() != Some(id)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_still_running_from_before_is_adopted_not_doubled() {
    let id = "i-0adopted00001";
    let (mut app, pid, port) = survivor(id).await;
    let client = common::http_client();

    // Its record, as the earlier run would have written it.
    let dir = records_of_an_earlier_run("adopt", 1, &[(id, pid, port, true, "in_service")]);

    let ports = Ports::new();
    let config = demo_config(&ports, 1, 3, 1, "");
    let mut f = Flotilla::start_in(dir, ports, &config);
    let g = f.wait_in_service("web", 1, Duration::from_secs(30)).await;
    assert_eq!(g.instances[0].id, id, "adopted, no new launch");
    assert_eq!(g.instances[0].pid, Some(pid));
    assert!(
        g.instances[0].protected_from_scale_in,
        "the record's scale-in protection is restored"
    );
    let (status, headers, _) = common::get(&client, &f.listener_url("/"))
        .await
        .expect("request through the load balancer");
    assert_eq!(status, 200);
    assert_eq!(headers["x-instance-id"], id);
    let activities = f.activities("web").await;
    assert!(activities
        .iter()
        .any(|a| a.description == format!("Adopting instance: {id} in az-b")));

    // A graceful stop stops the adopted instance as well.
    let status = f.terminate(Duration::from_secs(30));
    assert!(status.success());
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        if app.0.try_wait().expect("wait demo app").is_some() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "flotilla's shutdown did not stop the adopted instance"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn launches_after_a_restart_continue_the_adopted_instances_launch_template_version() {
    let id = "i-0adoptedv3001";
    let (_app, pid, port) = survivor(id).await;
    // The earlier run had reloaded its launch template twice: the survivor runs version 3.
    let dir = records_of_an_earlier_run("adopt-v3", 3, &[(id, pid, port, false, "in_service")]);
    let ports = Ports::new();
    let config = demo_config(&ports, 2, 3, 2, "");
    let f = Flotilla::start_in(dir, ports, &config);
    let g = f.wait_in_service("web", 2, Duration::from_secs(30)).await;
    assert!(g.instances.iter().any(|i| i.id == id), "adopted: {g:?}");
    assert!(
        g.instances.iter().all(|i| i.launch_template_version == 3),
        "the new launch is not taken for older than the survivor: {g:?}"
    );
}
