//! Cluster mode end to end: real `flotilla node` processes, one per host network namespace,
//! a 3-member etcd, a client in its own namespace. Each test builds its own cluster (they run
//! one at a time). Deadlines are hang guards; what is asserted is counts and state.

mod lab;

use std::collections::BTreeSet;
use std::time::Duration;

use flotilla_admin::api::{CapacityRequest, GroupSummary};
use lab::{config, config_with, host, Host, Lab};

const EVERY: Duration = Duration::from_millis(50);

fn ids(g: &flotilla_admin::api::GroupDetail) -> BTreeSet<String> {
    g.instances.iter().map(|i| i.id.clone()).collect()
}

fn stdout_stderr(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

const THREE: [Host; 3] = [
    host("h1", "az-a", 11, "control,lb,compute"),
    host("h2", "az-b", 12, "control,lb,compute"),
    host("h3", "az-c", 13, "control,lb,compute"),
];

/// Three hosts in three zones, every role on each: one instance lands per zone on its zone's
/// host, every node lists the same three nodes with one leader, and a client of any load
/// balancer node is answered by all three instances. Asked through a node that does not
/// lead, the group's state is the leader's.
#[test]
fn instances_are_placed_per_zone_and_served_through_any_lb_node() {
    let Some(mut lab) = Lab::new(
        "instances_are_placed_per_zone_and_served_through_any_lb_node",
        &THREE,
    ) else {
        return;
    };
    let applied = lab.apply(&config(3, "10s"));
    assert!(applied.status.success(), "{}", stdout_stderr(&applied));
    lab.start_all();
    let g = lab.wait_steady("h1", 3);
    let zones: BTreeSet<&str> = g.instances.iter().map(|i| i.zone.as_str()).collect();
    assert_eq!(zones, BTreeSet::from(["az-a", "az-b", "az-c"]));
    for i in &g.instances {
        let address = i.address.as_deref().expect("an address");
        let host = THREE.iter().find(|h| h.zone == i.zone).expect("a host");
        assert!(
            address.starts_with(&format!("{}:", lab.addr(host.name))),
            "{address} is on {}'s address",
            host.name
        );
    }
    for via in ["h1", "h2", "h3"] {
        let nodes = lab.nodes(via);
        assert_eq!(nodes.len(), 3, "{via}: {nodes:?}");
        assert_eq!(
            nodes.iter().filter(|n| n.leader).count(),
            1,
            "{via}: {nodes:?}"
        );
        assert!(nodes.iter().all(|n| n.instances == 1), "{via}: {nodes:?}");
        assert_eq!(ids(&lab.wait_steady(via, 3)), ids(&g));
    }
    let leader = lab.leader("h1").expect("a leader");
    let follower = THREE
        .iter()
        .find(|h| h.name != leader)
        .expect("a follower")
        .name;
    let load = lab.load(follower, EVERY);
    std::thread::sleep(Duration::from_secs(3));
    let seen = load.finish();
    assert_eq!(seen.failed, 0, "{:?}", seen.errors);
    let answered: BTreeSet<String> = seen.by_instance.keys().cloned().collect();
    assert_eq!(
        answered,
        ids(&g),
        "every instance answers through {follower}"
    );
}

/// What is refused changes nothing: an invalid config is not applied (FILE:LINE:COL errors,
/// the running one stays), a node whose zone the config lacks and a second node with a taken
/// name exit with a clear message; an etcd that answers nothing is a clear error for `apply`
/// and a retry with backoff, not a crash, for a node. The running cluster never changed.
#[test]
fn bad_input_is_refused_and_changes_nothing() {
    let hosts = [host("h1", "az-a", 11, "control,lb,compute")];
    let Some(mut lab) = Lab::new("bad_input_is_refused_and_changes_nothing", &hosts) else {
        return;
    };
    let applied = lab.apply(&config(1, "10s"));
    assert!(applied.status.success(), "{}", stdout_stderr(&applied));
    lab.start_all();
    let before = lab.wait_steady("h1", 1);
    let bad = lab.apply("[cluster]\nzones = [\"az-a\"]\n[auto_scaling_groups.web]\nlaunch_template = \"none\"\nmin_size = 1\nmax_size = 2\n");
    let text = stdout_stderr(&bad);
    assert!(!bad.status.success());
    assert!(
        text.contains(":4:19: unknown launch template `none`"),
        "{text}"
    );
    assert!(text.contains("nothing was applied"), "{text}");
    let zone = lab.run_node_to_exit("h1", "other", "az-q");
    let text = stdout_stderr(&zone);
    assert!(!zone.status.success());
    assert!(
        text.contains("zone \"az-q\" is not one of the cluster's zones (az-a, az-b, az-c)"),
        "{text}"
    );
    let twin = lab.run_node_to_exit("h1", "h1", "az-a");
    let text = stdout_stderr(&twin);
    assert!(!twin.status.success());
    assert!(
        text.contains("a node named \"h1\" is already registered"),
        "{text}"
    );
    // 10.77.0.99 is on the test bridge, and nobody has it: every packet to it is lost.
    let silent = "http://10.77.0.99:2379";
    let unreachable = lab.apply_to(&config(1, "10s"), silent);
    let text = stdout_stderr(&unreachable);
    assert!(!unreachable.status.success());
    assert!(
        text.contains("etcd unreachable at http://10.77.0.99:2379"),
        "{text}"
    );
    let args = [
        "node",
        "--etcd",
        silent,
        "--name",
        "lone",
        "--zone",
        "az-a",
        "--address",
        "10.77.0.11",
        "--admin-bind",
        "10.77.0.11:9292",
        "--state-dir",
        "/tmp/flotilla-lab-lone",
    ];
    let (running, text) = lab.run_for("h1", &args, Duration::from_secs(17));
    let _ = std::fs::remove_dir_all("/tmp/flotilla-lab-lone");
    assert!(running, "the node keeps trying: {text}");
    let retries = text.matches("etcd answers nothing; retrying").count();
    assert!(retries >= 2, "a clear error, retried with backoff: {text}");
    let after = lab.wait_steady("h1", 1);
    assert_eq!(ids(&after), ids(&before), "nothing changed");
    let nodes = lab.nodes("h1");
    assert_eq!(nodes.len(), 1, "{nodes:?}");
    let scaled: GroupSummary = lab
        .put(
            "h1",
            "/v1/groups/web/capacity",
            CapacityRequest {
                desired_capacity: 2,
            },
        )
        .expect("scale");
    assert_eq!(scaled.desired_capacity, 2);
    lab.wait_steady("h1", 2);
}

/// A host dies (its node and its instances, SIGKILL): a client of a surviving load balancer
/// node sees no failed request, and after the grace the lost instance is replaced on the
/// other host of its zone; the group is whole again and nothing runs twice. (Process health
/// checks, so the host's loss — not a failed health check — is what replaces it.)
#[test]
fn a_lost_host_is_replaced_in_its_zone_without_failed_requests() {
    let hosts = [
        host("l1", "az-a", 11, "control,lb"),
        host("a1", "az-a", 12, "compute"),
        host("a2", "az-a", 13, "compute"),
        host("b1", "az-b", 14, "compute"),
        host("k1", "az-c", 15, "compute"),
    ];
    let Some(mut lab) = Lab::new(
        "a_lost_host_is_replaced_in_its_zone_without_failed_requests",
        &hosts,
    ) else {
        return;
    };
    assert!(lab.apply(&config_with(3, "3s", "process")).status.success());
    lab.start_all();
    let before = lab.wait_steady("l1", 3);
    let victim = before
        .instances
        .iter()
        .find(|i| i.zone == "az-a")
        .expect("one in az-a")
        .clone();
    let (dead, spare) = if victim
        .address
        .as_deref()
        .unwrap_or("")
        .starts_with(&format!("{}:", lab.addr("a1")))
    {
        ("a1", "a2")
    } else {
        ("a2", "a1")
    };
    let load = lab.load("l1", EVERY);
    std::thread::sleep(Duration::from_secs(2));
    let killed = lab.kill_host(dead);
    assert!(
        killed >= 2,
        "the node and its instance were killed ({killed})"
    );
    let after = flotilla_testbed::poll("the lost instance replaced", lab::GUARD, || {
        let g = lab.group("l1")?;
        let healthy = g
            .instances
            .iter()
            .filter(|i| i.health == "healthy" && i.state == "in_service")
            .count();
        (healthy == 3 && g.instances.len() == 3 && !g.instances.iter().any(|i| i.id == victim.id))
            .then_some(g)
    });
    std::thread::sleep(Duration::from_secs(2));
    let seen = load.finish();
    assert_eq!(seen.failed, 0, "{:?}", seen.errors);
    assert!(seen.ok > 50, "the client kept going ({})", seen.ok);
    let replacement = after
        .instances
        .iter()
        .find(|i| !ids(&before).contains(&i.id))
        .expect("a replacement");
    assert_eq!(replacement.zone, "az-a");
    assert!(replacement
        .address
        .as_deref()
        .unwrap_or("")
        .starts_with(&format!("{}:", lab.addr(spare))));
    let running: usize = ["a2", "a1", "b1", "k1"]
        .iter()
        .filter(|h| **h != dead)
        .map(|h| lab.instance_pids(h).len())
        .sum();
    assert_eq!(running, 3, "exactly the group's instances run");
    let lost = lab
        .activities("l1")
        .into_iter()
        .filter(|a| a.cause.contains(&format!("host {dead} lost")))
        .count();
    assert!(lost >= 1, "the activity names the lost host");
}

/// The leader's node is SIGKILLed: another candidate leads, builds from etcd and adopts every
/// instance — none launched again, none stopped — and goes on deciding (a scale-out lands).
#[test]
fn a_new_leader_continues_without_duplicate_instances() {
    let hosts = [
        host("x1", "az-a", 11, "control"),
        host("x2", "az-b", 12, "control"),
        host("h1", "az-a", 13, "lb,compute"),
        host("h2", "az-b", 14, "lb,compute"),
        host("h3", "az-c", 15, "lb,compute"),
    ];
    let Some(mut lab) = Lab::new("a_new_leader_continues_without_duplicate_instances", &hosts)
    else {
        return;
    };
    assert!(lab.apply(&config(3, "10s")).status.success());
    lab.start_all();
    let before = lab.wait_steady("h1", 3);
    let pids_before: Vec<BTreeSet<i32>> = ["h1", "h2", "h3"]
        .iter()
        .map(|h| lab.instance_pids(h))
        .collect();
    let leader = lab.leader("h1").expect("a leader");
    let load = lab.load("h2", EVERY);
    lab.kill_node(if leader == "x1" { "x1" } else { "x2" });
    let next = flotilla_testbed::poll("another leader", lab::GUARD, || {
        lab.leader("h1").filter(|l| *l != leader)
    });
    let after = lab.wait_steady("h1", 3);
    assert_eq!(
        ids(&after),
        ids(&before),
        "the new leader ({next}) adopted every instance"
    );
    let pids_after: Vec<BTreeSet<i32>> = ["h1", "h2", "h3"]
        .iter()
        .map(|h| lab.instance_pids(h))
        .collect();
    assert_eq!(
        pids_after, pids_before,
        "no instance was restarted or added"
    );
    let scaled: GroupSummary = lab
        .put(
            "h3",
            "/v1/groups/web/capacity",
            CapacityRequest {
                desired_capacity: 4,
            },
        )
        .expect("scale through a follower");
    assert_eq!(scaled.desired_capacity, 4);
    let four = lab.wait_steady("h1", 4);
    assert!(ids(&before).is_subset(&ids(&four)));
    let seen = load.finish();
    assert_eq!(seen.failed, 0, "{:?}", seen.errors);
}

/// An agent is SIGKILLed and started again: it adopts its running instance (same process),
/// nothing is launched or stopped, and traffic never stops.
#[test]
fn a_restarted_agent_adopts_its_instances() {
    let Some(mut lab) = Lab::new("a_restarted_agent_adopts_its_instances", &THREE) else {
        return;
    };
    assert!(lab.apply(&config(3, "10s")).status.success());
    lab.start_all();
    let before = lab.wait_steady("h1", 3);
    let leader = lab.leader("h1").expect("a leader");
    let agent = THREE
        .iter()
        .find(|h| h.name != leader)
        .expect("a follower")
        .name;
    let lb = THREE
        .iter()
        .find(|h| h.name != leader && h.name != agent)
        .expect("another")
        .name;
    let pids = lab.instance_pids(agent);
    assert_eq!(pids.len(), 1);
    let load = lab.load(lb, EVERY);
    lab.kill_node(agent);
    assert_eq!(
        lab.instance_pids(agent),
        pids,
        "the instance outlives its agent"
    );
    lab.start_node(agent);
    flotilla_testbed::poll("the agent back", lab::GUARD, || {
        lab.nodes(&leader)
            .iter()
            .any(|n| n.name == agent)
            .then_some(())
    });
    std::thread::sleep(Duration::from_secs(3));
    let after = lab.wait_steady(&leader, 3);
    assert_eq!(ids(&after), ids(&before));
    assert_eq!(lab.instance_pids(agent), pids, "adopted, not restarted");
    let seen = load.finish();
    assert_eq!(seen.failed, 0, "{:?}", seen.errors);
    let launches = lab
        .activities(&leader)
        .into_iter()
        .filter(|a| a.description.starts_with("Launching"))
        .count();
    assert_eq!(launches, 3, "only the first three launches");
}

/// Two of three etcd members die for longer than every lease: traffic keeps flowing with no
/// failed request, nothing is launched or stopped; when they return the cluster decides
/// again.
#[test]
fn losing_etcd_quorum_kills_nothing_and_traffic_flows() {
    let Some(mut lab) = Lab::new("losing_etcd_quorum_kills_nothing_and_traffic_flows", &THREE)
    else {
        return;
    };
    assert!(lab.apply(&config(3, "3s")).status.success());
    lab.start_all();
    let before = lab.wait_steady("h1", 3);
    let pids: Vec<BTreeSet<i32>> = ["h1", "h2", "h3"]
        .iter()
        .map(|h| lab.instance_pids(h))
        .collect();
    let load = lab.load("h2", EVERY);
    std::thread::sleep(Duration::from_secs(1));
    lab.etcd.kill(1);
    lab.etcd.kill(2);
    std::thread::sleep(Duration::from_secs(15));
    assert_eq!(
        ["h1", "h2", "h3"]
            .iter()
            .map(|h| lab.instance_pids(h))
            .collect::<Vec<_>>(),
        pids,
        "nothing was killed or launched without quorum"
    );
    lab.etcd.restart(1);
    lab.etcd.restart(2);
    lab.etcd.wait_healthy();
    std::thread::sleep(Duration::from_secs(8));
    let seen = load.finish();
    assert_eq!(seen.failed, 0, "{:?}", seen.errors);
    let after = lab.wait_steady("h1", 3);
    assert_eq!(ids(&after), ids(&before));
    assert_eq!(
        ["h1", "h2", "h3"]
            .iter()
            .map(|h| lab.instance_pids(h))
            .collect::<Vec<_>>(),
        pids,
        "no lease expired en masse when quorum returned"
    );
    let scaled: GroupSummary = lab
        .put(
            "h1",
            "/v1/groups/web/capacity",
            CapacityRequest {
                desired_capacity: 4,
            },
        )
        .expect("scale after the outage");
    assert_eq!(scaled.desired_capacity, 4);
    lab.wait_steady("h1", 4);
}
