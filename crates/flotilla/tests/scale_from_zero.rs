//! Scale from zero (issue 4 item 7): a group with `min_size = 0` and no instances holds the
//! first request while an instance starts, answers it, goes back to nothing when idle, and
//! wakes again on the next request.

mod common;

use std::time::{Duration, Instant};

use common::*;
use flotilla_admin::api::ActivityInfo;

fn config(ports: &Ports) -> String {
    demo_config(
        ports,
        0,
        2,
        0,
        r#"default_instance_warmup = "1s"

[[auto_scaling_groups.web.scaling_policies]]
name = "idle-to-zero"
type = "target_tracking"
metric = "request_rate_per_target"
target_value = 50.0
period = "1s"
scale_in_stabilization = "2s"
"#,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_request_is_held_until_an_instance_serves_it() {
    let ports = Ports::new();
    let cfg = config(&ports);
    let f = Flotilla::start("scale-from-zero", ports, &cfg);
    // Nothing runs yet.
    let g = wait_for("the admin API", Duration::from_secs(20), || f.group("web")).await;
    assert!(g.instances.is_empty(), "{g:?}");
    assert_eq!(g.desired_capacity, 0);

    let client = http_client();
    let started = Instant::now();
    let (status, headers, body) = get(&client, &f.listener_url("/"))
        .await
        .expect("held request");
    assert_eq!(status, 200, "{body}");
    assert!(body.starts_with("It is "), "{body}");
    let first = headers["x-instance-id"].to_str().unwrap().to_string();
    eprintln!(
        "first request answered after {:?} (one instance started for it)",
        started.elapsed()
    );

    let activities: Vec<ActivityInfo> = f.admin.get("/v1/groups/web/activities").await.unwrap();
    assert!(
        activities
            .iter()
            .any(|a| a.cause.contains("scaling from zero")),
        "{activities:#?}"
    );

    // Idle: target tracking recommends zero and the group goes back to nothing.
    wait_for("scale-in to zero", Duration::from_secs(40), || async {
        let g = f.group("web").await?;
        (g.desired_capacity == 0 && g.instances.is_empty()).then_some(())
    })
    .await;

    // And wakes again.
    let (status, headers, _) = get(&http_client(), &f.listener_url("/"))
        .await
        .expect("second wake");
    assert_eq!(status, 200);
    assert_ne!(
        headers["x-instance-id"].to_str().unwrap(),
        first,
        "a new instance"
    );
}
