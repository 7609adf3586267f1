//! Predictive scaling end to end: the load history a run keeps in the state store is taken
//! back at start, so the forecast is ready at once (`GET /v1/groups/{name}/forecast`,
//! `flotilla forecast`) — a restart does not forget what the policy learned.

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::*;
use flotilla_admin::api::ForecastInfo;
use flotilla_state::{LoadHourRecord, SqliteStore, StateStore};

const POLICY: &str = r#"
[[auto_scaling_groups.web.scaling_policies]]
name = "daily"
type = "predictive"
metric = "request_count"
target_value = 40.0
mode = "forecast_only"
"#;

/// Load in hour `h` of the day: 40/s at night, 400/s from 08:00 to 20:00.
fn load(h: i64) -> f64 {
    if (8..20).contains(&h.rem_euclid(24)) {
        400.0
    } else {
        40.0
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_history_in_the_state_store_makes_a_forecast_at_start() {
    let now_hour = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs() as i64
        / 3600;
    // What an earlier run kept: the 30 hours before this one.
    let dir = temp_dir("predictive");
    std::fs::create_dir_all(dir.join(".flotilla")).expect("state dir");
    {
        let mut store = SqliteStore::open(&dir.join(".flotilla/state.db")).expect("state db");
        for hour in now_hour - 30..now_hour {
            store
                .put_load_hour(&LoadHourRecord {
                    group: "web".into(),
                    metric: "request_count".into(),
                    hour,
                    mean: load(hour),
                    samples: 3600,
                })
                .expect("write");
        }
    }
    let ports = Ports::new();
    let f = Flotilla::start_in(dir, ports, &demo_config(&ports, 1, 12, 1, POLICY));
    let fc: ForecastInfo = wait_for("a forecast", Duration::from_secs(30), || async {
        let fc: ForecastInfo = f.admin.get("/v1/groups/web/forecast").await.ok()?;
        (fc.policies.first()?.status == "ready").then_some(fc)
    })
    .await;
    let p = &fc.policies[0];
    assert_eq!(p.history_hours, 30);
    assert_eq!(p.forecast.len(), 48);
    assert_eq!(p.history.len(), 30);
    // Yesterday's pattern, hour by hour: 1 instance at night, 10 by day.
    for (i, x) in p.forecast.iter().enumerate() {
        let want = if load(now_hour + i as i64) > 100.0 {
            10
        } else {
            1
        };
        assert_eq!(x.capacity, want, "hour {i} ({}): {x:?}", x.time);
    }
    let (ok, out, err) = cli(&f, &["forecast", "web"]);
    assert!(ok, "{err}");
    assert!(
        out.contains("policy daily (forecast_only)") && out.contains("30 hour(s) of history"),
        "{out}"
    );
    assert_eq!(
        out.lines()
            .filter(|l| l.contains("T") && l.contains("Z "))
            .count(),
        48,
        "{out}"
    );
    let (ok, out, _) = cli(&f, &["status"]);
    assert!(ok && out.contains("policy daily (predictive)"), "{out}");
}
