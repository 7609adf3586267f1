//! The state store round trip: writes reach SQLite and come back at the next start.
use super::*;
use flotilla_control::{LifecycleState, Time};

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("flotilla-persist-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

fn record(id: &str) -> flotilla_control::InstanceRecord {
    flotilla_control::InstanceRecord {
        id: InstanceId::from(id.to_string()),
        group: "web".into(),
        zone: "az-a".into(),
        address: "127.0.0.1:4000".parse().unwrap(),
        launch_template_version: 1,
        protected_from_scale_in: false,
        lifecycle: LifecycleState::InService,
        purchase_option: flotilla_control::pricing::PurchaseOption::OnDemand,
    }
}

#[test]
fn writes_reach_the_store_and_are_restored() {
    let dir = temp_dir("roundtrip");
    let groups = ["web".to_string()];
    let (store, stored) = open(&dir, groups.iter()).expect("open");
    assert!(stored.restored.desired.is_empty() && stored.instances.is_empty());
    let clock = Clock::start();
    let mut p = Persister::start(Box::new(store), clock, "run1".into()).expect("start");
    let mut activity = Activity {
        id: 0,
        time: Time::ZERO,
        end_time: None,
        cause: "an operator set the desired capacity".into(),
        description: "Launching a new instance: i-1 in az-a".into(),
        status: ActivityStatus::InProgress,
    };
    p.activity("web", &activity);
    activity.status = ActivityStatus::Successful;
    p.activity("web", &activity);
    let processes: HashMap<InstanceId, Process> = ["i-1", "i-2"]
        .into_iter()
        .map(|id| {
            let p = Process {
                pid: 4242,
                start_time: Some(7),
                limits: None,
            };
            (InstanceId::from(id.to_string()), p)
        })
        .collect();
    let id = |s: &str| InstanceId::from(s.to_string());
    for d in [
        Durable::Desired {
            group: "web".into(),
            desired: Some(4),
        },
        Durable::Suspended {
            group: "web".into(),
            processes: vec![ScalingProcess::Launch, ScalingProcess::AzRebalance],
        },
        Durable::Instance(record("i-1")),
        Durable::Instance(record("i-2")),
        Durable::InstanceGone { id: id("i-1") },
        Durable::Protection {
            id: id("i-2"),
            protected: true,
        },
        Durable::Lifecycle {
            id: id("i-2"),
            state: LifecycleState::WarmedRunning,
        },
        Durable::LoadHour {
            group: "web".into(),
            metric: flotilla_control::metrics::Metric::RequestCount,
            hour: flotilla_control::policy::predictive::LoadHour {
                hour: 480_000,
                mean: 212.5,
                samples: 3600,
            },
        },
    ] {
        p.durable(d, &processes);
    }
    p.close().expect("writer thread").join().expect("joined");

    let (_, stored) = open(&dir, groups.iter()).expect("reopen");
    assert_eq!(stored.restored.desired.get("web"), Some(&4));
    assert_eq!(
        stored.restored.suspended.get("web"),
        Some(&vec![ScalingProcess::AzRebalance, ScalingProcess::Launch])
    );
    assert_eq!(stored.instances.len(), 1);
    let i = &stored.instances[0];
    assert_eq!((i.id.as_str(), i.pid, i.start_time), ("i-2", 4242, 7));
    assert!(i.protected_from_scale_in);
    assert_eq!(i.lifecycle, "warmed:running");
    let hours = &stored.restored.load_history["web"];
    assert_eq!(hours.len(), 1);
    assert_eq!(hours[0].0, flotilla_control::metrics::Metric::RequestCount);
    assert_eq!((hours[0].1.hour, hours[0].1.mean), (480_000, 212.5));
    let history = &stored.history["web"];
    assert_eq!(
        history.len(),
        1,
        "the status change updated the same activity"
    );
    assert_eq!(history[0].status, "successful");
    assert_eq!(history[0].time, clock.rfc3339(Time::ZERO));

    let (store, _) = open(&dir, groups.iter()).expect("reopen");
    let mut p = Persister::start(Box::new(store), clock, "run2".into()).expect("start");
    for d in [
        Durable::Desired {
            group: "web".into(),
            desired: None,
        },
        Durable::Suspended {
            group: "web".into(),
            processes: Vec::new(),
        },
    ] {
        p.durable(d, &processes);
    }
    p.clear_instances();
    p.close().expect("writer thread").join().expect("joined");
    let (_, stored) = open(&dir, groups.iter()).expect("reopen");
    assert!(stored.restored.desired.is_empty() && stored.instances.is_empty());
    assert!(
        stored.restored.suspended.is_empty(),
        "resuming everything is durable too"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
