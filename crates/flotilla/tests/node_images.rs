//! Cluster mode with instances from images (issue 22 on issue 17's agents): real `flotilla
//! node` processes in host namespaces, a 3-member etcd, real Podman. The agents run the
//! launch template's image through the host's engine, on the host's address; a restarted
//! agent adopts its containers (the same ones) and removes an orphan; scaled to zero, no
//! container is left. Skips with `SKIPPED …` without root, etcd or a working Podman (under
//! `CI` those fail instead).

mod common;
mod lab;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use common::podman::{self, NODE_IMAGE};
use flotilla_admin::api::{CapacityRequest, GroupDetail, GroupSummary};
use lab::{host, Host, Lab};

const EVERY: Duration = Duration::from_millis(50);

const HOSTS: [Host; 3] = [
    host("l1", "az-a", 11, "control,lb"),
    host("a1", "az-a", 12, "compute"),
    host("b1", "az-b", 13, "compute"),
];

/// The lab's group `web` as `desired` instances of the demo image over two zones.
fn config(desired: u32) -> String {
    format!(
        r#"
[cluster]
name = "lab"
zones = ["az-a", "az-b"]
host_lost_grace = "10s"

[launch_templates.web]
image = "{NODE_IMAGE}"
pull = "never"
args = ["demo-app"]
stop_timeout = "5s"
memory = "256MiB"

[target_groups.web]
deregistration_delay = "1s"

[target_groups.web.health_check]
path = "/health"
interval = "1s"
timeout = "500ms"
healthy_threshold = 2
unhealthy_threshold = 2

[load_balancers.front]

[[load_balancers.front.listeners]]
bind = "0.0.0.0:8080"
protocol = "http"
default_action = {{ type = "forward", target_group = "web" }}

[auto_scaling_groups.web]
launch_template = "web"
target_groups = ["web"]
min_size = 0
max_size = 6
desired_capacity = {desired}
health_check_type = "elb"
health_check_grace_period = "5s"
"#
    )
}

fn ids(g: &GroupDetail) -> BTreeSet<String> {
    g.instances.iter().map(|i| i.id.clone()).collect()
}

/// Container name → container id of every container labelled with `home`.
fn containers(home: &str) -> BTreeMap<String, String> {
    podman::containers(home)
        .into_iter()
        .map(|name| {
            let id = podman::id_of(&name);
            (name, id)
        })
        .collect()
}

/// The lab with podman on its hosts, or `None` (the test skips, saying why) where podman
/// cannot run containers or the lab cannot be built.
fn container_lab(test: &str) -> Option<Lab> {
    if let Err(e) = podman::node_image() {
        eprintln!("SKIPPED {test}: podman cannot run containers here: {e}");
        return None;
    }
    Some(Lab::new(test, &HOSTS)?.with_containers())
}

#[test]
fn agents_run_image_instances_and_adopt_their_containers_after_a_restart() {
    let test = "agents_run_image_instances_and_adopt_their_containers_after_a_restart";
    let Some(mut lab) = container_lab(test) else {
        return;
    };
    let applied = lab.apply(&config(4));
    assert!(applied.status.success(), "{applied:?}");
    lab.start_all();
    let g = lab.wait_steady("l1", 4);

    // Two per zone, each a container of its zone's agent on that host's address.
    let mut by_host: BTreeMap<&str, BTreeMap<String, String>> = BTreeMap::new();
    for agent in ["a1", "b1"] {
        let zone = HOSTS.iter().find(|h| h.name == agent).expect("host").zone;
        let here: BTreeSet<String> = g
            .instances
            .iter()
            .filter(|i| i.zone == zone)
            .map(|i| {
                let address = i.address.as_deref().expect("an address");
                assert!(
                    address.starts_with(&format!("{}:", lab.addr(agent))),
                    "{address} is on {agent}'s address"
                );
                format!("flotilla-{}", i.id)
            })
            .collect();
        assert_eq!(here.len(), 2, "two instances in {zone}: {g:?}");
        let running = containers(&lab.home(agent));
        assert_eq!(
            running.keys().cloned().collect::<BTreeSet<_>>(),
            here,
            "{agent} runs exactly its instances' containers"
        );
        for name in running.keys() {
            assert_eq!(podman::image_of(name), NODE_IMAGE);
            assert!(podman::running(name), "{name} runs");
        }
        by_host.insert(agent, running);
    }

    // Served through the lb node by every instance.
    let load = lab.load("l1", EVERY);
    std::thread::sleep(Duration::from_secs(3));
    let seen = load.finish();
    assert_eq!(seen.failed, 0, "{:?}", seen.errors);
    let answered: BTreeSet<String> = seen.by_instance.keys().cloned().collect();
    assert_eq!(answered, ids(&g), "every container answers through l1");

    // The agent of a1 is SIGKILLed; its containers run on. An orphan labelled with its state
    // directory appears meanwhile (what a run that died mid-launch leaves).
    let load = lab.load("l1", EVERY);
    lab.kill_node("a1");
    let home = lab.home("a1");
    assert_eq!(
        containers(&home),
        by_host["a1"],
        "the containers outlive their agent"
    );
    let orphan = format!("flotilla-i-orphan{}", std::process::id());
    podman::create_orphan(&home, &orphan, NODE_IMAGE);
    lab.start_node("a1");
    flotilla_testbed::poll("the orphan removed", lab::GUARD, || {
        (!containers(&home).contains_key(&orphan)).then_some(())
    });
    std::thread::sleep(Duration::from_secs(3));
    let after = lab.wait_steady("l1", 4);
    assert_eq!(ids(&after), ids(&g), "nothing replaced");
    assert_eq!(
        containers(&home),
        by_host["a1"],
        "adopted: the same containers (same ids), none started again"
    );
    let seen = load.finish();
    assert_eq!(seen.failed, 0, "{:?}", seen.errors);
    assert!(seen.ok > 20, "the client kept going ({})", seen.ok);
    let launches = lab
        .activities("l1")
        .into_iter()
        .filter(|a| a.description.starts_with("Launching"))
        .count();
    assert_eq!(launches, 4, "only the first four launches");

    // An adopted container is still stopped through the engine: scaled to zero, the agents
    // stop and remove every container.
    let scaled: GroupSummary = lab
        .put(
            "l1",
            "/v1/groups/web/capacity",
            CapacityRequest {
                desired_capacity: 0,
            },
        )
        .expect("scale in");
    assert_eq!(scaled.desired_capacity, 0);
    flotilla_testbed::poll("the group empty", lab::GUARD, || {
        lab.group("l1").filter(|g| g.instances.is_empty())
    });
    flotilla_testbed::poll("no container left", lab::GUARD, || {
        let left: usize = ["a1", "b1"]
            .iter()
            .map(|h| containers(&lab.home(h)).len())
            .sum();
        (left == 0).then_some(())
    });
}

/// An image the engine does not know, on an agent: a failed launch activity with the
/// engine's reason, retried after the back-off (a second failed launch), never in service,
/// and no container left behind by the failures.
#[test]
fn an_unknown_image_on_an_agent_is_a_failed_launch_with_the_engines_reason() {
    let test = "an_unknown_image_on_an_agent_is_a_failed_launch_with_the_engines_reason";
    let Some(mut lab) = container_lab(test) else {
        return;
    };
    let bad = config(1).replace(NODE_IMAGE, "localhost/flotilla-node-no-such-image:1");
    assert!(lab.apply(&bad).status.success());
    lab.start_all();
    let failed = flotilla_testbed::poll("two failed launches", lab::GUARD, || {
        let failed: Vec<String> = lab
            .activities("l1")
            .into_iter()
            .filter(|a| a.status == "failed" && a.description.starts_with("Launching"))
            .map(|a| a.description)
            .collect();
        (failed.len() >= 2).then_some(failed)
    });
    assert!(
        failed.iter().all(|d| d.contains("image not known")),
        "the engine's reason: {failed:?}"
    );
    let g = lab.group("l1").expect("the group");
    assert!(g.instances.iter().all(|i| i.state != "in_service"), "{g:?}");
    flotilla_testbed::poll("no container left", lab::GUARD, || {
        let left: usize = ["a1", "b1"]
            .iter()
            .map(|h| containers(&lab.home(h)).len())
            .sum();
        (left == 0).then_some(())
    });
}
