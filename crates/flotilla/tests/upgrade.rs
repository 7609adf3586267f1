//! Hot upgrade of flotilla itself (`POST /v1/upgrade`, `flotilla upgrade`, `SIGUSR2`): the
//! new process takes every listening socket, the instances and the cluster's state; no request
//! is lost, no instance restarted, nothing left behind; a new binary that fails leaves the old
//! one serving; and no instance outlives flotilla, even a SIGKILLed successor. (The edge's
//! sockets and systemd's notifications through an upgrade: `upgrade_service.rs`.)

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::upgrade::{
    listening_sockets, pids, processes_with, upgrade, upgrade_and_wait, wait_gone, Adopted,
};
use common::{
    assert_no_failed_requests, demo_config, get, http_client, paced_load, signal, temp_dir,
    wait_for, Flotilla, Ports,
};
use flotilla_admin::api::GroupDetail;
use flotilla_admin::{AdminClient, ClientError};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgrade_under_load_loses_no_request_and_restarts_no_instance() {
    let ports = Ports::new();
    let config = demo_config(&ports, 1, 5, 3, "");
    let mut f = Flotilla::start("upgrade-load", ports, &config);
    let before = f.wait_in_service("web", 3, Duration::from_secs(60)).await;
    let before_pids = pids(&before);
    assert_eq!(before_pids.len(), 3);
    let activities_before = f.activities("web").await;
    let old = f.pid();

    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let load = tokio::spawn(paced_load(
        f.listener_url("/"),
        4,
        100_000,
        Duration::from_millis(5),
        stop_rx,
    ));
    // Load is flowing through the old process before the upgrade starts.
    let client = http_client();
    for _ in 0..20 {
        assert_eq!(
            get(&client, &f.listener_url("/")).await.expect("request").0,
            200
        );
    }
    let new = upgrade_and_wait(&mut f, old).await;
    let _guard = Adopted(new);
    // And through the new one after the old has gone.
    for _ in 0..50 {
        assert_eq!(
            get(&client, &f.listener_url("/")).await.expect("request").0,
            200
        );
    }
    stop.send(true).expect("stop load");
    let (ok, failed) = load.await.expect("load");
    assert_no_failed_requests(ok, &failed, 50);

    let after: GroupDetail = f.admin.get("/v1/groups/web").await.expect("group after");
    assert_eq!(
        pids(&after),
        before_pids,
        "the same instances, same pids: none restarted"
    );
    let activities_after = f.activities("web").await;
    assert_eq!(
        activities_after, activities_before,
        "no activity: nothing launched or stopped"
    );
    assert!(processes_with(&f.dir.display().to_string()).contains(&new));

    // SIGTERM keeps its meaning in the successor: everything stops.
    signal(new, libc::SIGTERM);
    let all: Vec<u32> = before_pids.values().copied().chain([new]).collect();
    assert!(
        wait_gone(&all, Duration::from_secs(30)),
        "instances outlived the successor's stop"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_upgrades_in_a_row_leave_no_stray_process_or_socket() {
    let ports = Ports::new();
    let config = demo_config(&ports, 1, 5, 2, "");
    let mut f = Flotilla::start("upgrade-three", ports, &config);
    let before = pids(&f.wait_in_service("web", 2, Duration::from_secs(60)).await);
    let dir = f.dir.display().to_string();
    let mut current = f.pid();
    let mut guards = Vec::new();
    for round in 1..=3 {
        current = upgrade_and_wait(&mut f, current).await;
        guards.push(Adopted(current));
        let g: GroupDetail = f.admin.get("/v1/groups/web").await.expect("group");
        assert_eq!(pids(&g), before, "round {round}: instances kept");
        let ups = processes_with(&format!("{dir}/flotilla.toml"));
        assert_eq!(
            ups,
            vec![current],
            "round {round}: one flotilla up, the newest"
        );
        let keepers = processes_with(&format!("{dir}/.flotilla/keeper.sock"));
        assert_eq!(keepers.len(), 1, "round {round}: one instance keeper");
        assert!(
            !f.dir.join(".flotilla/upgrade.sock").exists(),
            "round {round}: upgrade socket removed"
        );
        assert_eq!(
            listening_sockets(f.ports.listener),
            1,
            "round {round}: the one listening socket"
        );
        assert_eq!(
            listening_sockets(f.ports.admin),
            1,
            "round {round}: the one admin socket"
        );
    }
    let keeper = processes_with(&format!("{dir}/.flotilla/keeper.sock"));
    signal(current, libc::SIGTERM);
    let all: Vec<u32> = before
        .values()
        .copied()
        .chain(keeper)
        .chain([current])
        .collect();
    assert!(
        wait_gone(&all, Duration::from_secs(30)),
        "something outlived the last process"
    );
    assert!(!f.dir.join(".flotilla/keeper.sock").exists());
}

/// A copy of the flotilla binary in `dir` (a hard link when possible), so a test may replace
/// the file the running process was started from.
fn own_binary(dir: &Path) -> PathBuf {
    let path = dir.join("flotilla-bin");
    let real = Path::new(common::flotilla_bin());
    if std::fs::hard_link(real, &path).is_err() {
        std::fs::copy(real, &path).expect("copy the binary");
    }
    path
}

/// Replaces `path` atomically (rename), as a package manager does.
fn replace(path: &Path, with: impl FnOnce(&Path)) {
    let tmp = path.with_extension("new");
    let _ = std::fs::remove_file(&tmp);
    with(&tmp);
    std::fs::rename(&tmp, path).expect("rename over the binary");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_binary_that_fails_leaves_the_old_one_serving_with_the_reason() {
    use std::os::unix::fs::PermissionsExt;
    let dir = temp_dir("upgrade-fail");
    let bin = own_binary(&dir);
    let ports = Ports::new();
    let config = demo_config(&ports, 1, 5, 1, "");
    let f = Flotilla::start_binary(&bin, dir.clone(), ports, &config, &[], &[]);
    let before = pids(&f.wait_in_service("web", 1, Duration::from_secs(60)).await);
    let old = f.pid();

    // 1. A config that no longer parses: the new process reports its errors to the old one.
    std::fs::write(f.dir.join("flotilla.toml"), "[cluster\nname = 1\n").expect("break config");
    let Err(ClientError::Api {
        status,
        code,
        error,
        ..
    }) = upgrade(&f.admin).await
    else {
        panic!("an upgrade to a broken config succeeded");
    };
    assert_eq!((status, code.as_str()), (500, "upgrade_failed"), "{error}");
    assert!(
        error.contains("flotilla.toml") && error.contains("error"),
        "{error}"
    );
    std::fs::write(f.dir.join("flotilla.toml"), &config).expect("restore config");

    // 2. A binary that exits at start; a second upgrade meanwhile is refused with 409.
    replace(&bin, |tmp| {
        std::fs::write(tmp, "#!/bin/sh\nsleep 2\nexit 3\n").expect("script");
        std::fs::set_permissions(tmp, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    });
    let admin =
        AdminClient::new(&format!("http://127.0.0.1:{}", f.ports.admin), None).expect("client");
    let first = tokio::spawn(async move { upgrade(&admin).await });
    // (The broken-config upgrade above logged the same line once already.)
    wait_for(
        "the first upgrade to start",
        Duration::from_secs(30),
        || {
            let started = f
                .log()
                .matches("hot upgrade: starting the new flotilla")
                .count();
            async move { (started == 2).then_some(()) }
        },
    )
    .await;
    let Err(ClientError::Api { status, .. }) = upgrade(&f.admin).await else {
        panic!("a second upgrade during the first was not refused");
    };
    assert_eq!(status, 409);
    let Err(ClientError::Api { status, error, .. }) = first.await.expect("first") else {
        panic!("an upgrade to a binary that exits succeeded");
    };
    assert_eq!(status, 500);
    assert!(error.contains("exited") && error.contains('3'), "{error}");
    // The log says it too, with each reason.
    let log = f.log();
    let failures: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("hot upgrade failed; this process keeps serving"))
        .collect();
    assert_eq!(failures.len(), 2, "{failures:?}");
    assert!(failures[0].contains("flotilla.toml"), "{}", failures[0]);
    assert!(
        failures[1].contains("exited (exit status: 3)"),
        "{}",
        failures[1]
    );

    // The old process serves on, with the same instances, and can still be upgraded.
    let client = http_client();
    assert_eq!(
        get(&client, &f.listener_url("/")).await.expect("request").0,
        200
    );
    let g: GroupDetail = f.admin.get("/v1/groups/web").await.expect("group");
    assert_eq!(pids(&g), before);
    assert_eq!(f.pid(), old);
    replace(&bin, |tmp| {
        if std::fs::hard_link(common::flotilla_bin(), tmp).is_err() {
            std::fs::copy(common::flotilla_bin(), tmp).expect("copy");
        }
    });
    let mut f = f;
    let new = upgrade_and_wait(&mut f, old).await;
    let _guard = Adopted(new);
    let g: GroupDetail = f.admin.get("/v1/groups/web").await.expect("group");
    assert_eq!(pids(&g), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_of_an_upgraded_flotilla_still_leaves_no_instance_behind() {
    let ports = Ports::new();
    let config = demo_config(&ports, 1, 5, 2, "");
    let mut f = Flotilla::start("upgrade-kill", ports, &config);
    let instances: Vec<u32> = pids(&f.wait_in_service("web", 2, Duration::from_secs(60)).await)
        .into_values()
        .collect();
    assert_eq!(instances.len(), 2);
    let dir = f.dir.display().to_string();
    let old = f.pid();
    // Through SIGUSR2 this time.
    signal(old, libc::SIGUSR2);
    let status = f.stop_with(0, Duration::from_secs(60));
    assert!(status.success(), "the old process exited with {status}");
    let ups = wait_for("the successor", Duration::from_secs(30), || {
        let ups = processes_with(&format!("{dir}/flotilla.toml"));
        async move { (ups.len() == 1).then_some(ups) }
    })
    .await;
    let new = ups[0];
    let _guard = Adopted(new);
    let g: GroupDetail = wait_for("the successor's admin API", Duration::from_secs(30), || {
        let admin = &f.admin;
        async move { admin.get("/v1/groups/web").await.ok() }
    })
    .await;
    let mut kept: Vec<u32> = pids(&g).into_values().collect();
    let mut expected = instances.clone();
    kept.sort_unstable();
    expected.sort_unstable();
    assert_eq!(kept, expected, "SIGUSR2 kept the instances");
    let keeper = processes_with(&format!("{dir}/.flotilla/keeper.sock"));
    assert_eq!(keeper.len(), 1);

    signal(new, libc::SIGKILL);
    let all: Vec<u32> = instances.iter().copied().chain(keeper).collect();
    assert!(
        wait_gone(&all, Duration::from_secs(20)),
        "an instance or the keeper outlived a SIGKILLed flotilla"
    );
}
