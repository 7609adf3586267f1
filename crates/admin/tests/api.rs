//! The admin API against a stand-in backend: auth, JSON errors, unknown fields, the document.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use flotilla_admin::api::{
    ActivityInfo, CapacityRequest, GroupDetail, GroupSummary, InstanceRefreshInfo, ListenerInfo,
    RefreshOverrides, TargetHealthInfo, TerminateRequest, TerminateResponse, ZoneDrillRequest,
    ZoneInfo,
};
use flotilla_admin::{AdminBackend, AdminClient, AdminError, ClientError};

/// One group `web` (1..5, desired 2), one instance `i-1`, one zone `az-a`.
struct Fake {
    desired: Mutex<u32>,
    /// The preferences the last instance refresh was started with.
    refresh: Mutex<Option<RefreshOverrides>>,
    /// The duration of the last outage drill started.
    outage: Mutex<Option<Duration>>,
}

impl AdminBackend for Fake {
    fn groups(&self) -> Vec<GroupSummary> {
        vec![GroupSummary {
            name: "web".into(),
            min_size: 1,
            max_size: 5,
            desired_capacity: *self.desired.lock().unwrap(),
            in_service: 1,
            cost_per_hour: 0.0,
        }]
    }
    fn group(&self, name: &str) -> Option<GroupDetail> {
        (name == "web").then(|| GroupDetail {
            name: "web".into(),
            min_size: 1,
            max_size: 5,
            desired_capacity: *self.desired.lock().unwrap(),
            in_service: 1,
            zones: vec!["az-a".into()],
            instances: Vec::new(),
            cost_per_hour: 0.0,
        })
    }
    fn set_desired_capacity(&self, name: &str, desired: u32) -> Result<GroupSummary, AdminError> {
        if name != "web" {
            return Err(AdminError::NotFound("no group".into()));
        }
        if !(1..=5).contains(&desired) {
            return Err(AdminError::OutOfRange("outside 1..5".into()));
        }
        *self.desired.lock().unwrap() = desired;
        Ok(self.groups().remove(0))
    }
    fn activities(&self, name: &str) -> Option<Vec<ActivityInfo>> {
        (name == "web").then(Vec::new)
    }
    fn target_health(&self, _name: &str) -> Option<Vec<TargetHealthInfo>> {
        None
    }
    fn listeners(&self) -> Vec<ListenerInfo> {
        Vec::new()
    }
    fn terminate_instance(
        &self,
        id: &str,
        decrement_desired: bool,
    ) -> Result<TerminateResponse, AdminError> {
        if id != "i-1" {
            return Err(AdminError::NotFound(format!("no instance {id}")));
        }
        Ok(TerminateResponse {
            instance_id: id.into(),
            group: "web".into(),
            desired_capacity: 2,
            replaced: !decrement_desired,
        })
    }
    fn start_instance_refresh(
        &self,
        name: &str,
        overrides: RefreshOverrides,
    ) -> Result<InstanceRefreshInfo, AdminError> {
        if name != "web" {
            return Err(AdminError::NotFound("no group".into()));
        }
        let min_healthy_percentage = overrides.min_healthy_percentage;
        *self.refresh.lock().unwrap() = Some(overrides);
        Ok(InstanceRefreshInfo {
            instance_refresh_id: "ir-1".into(),
            group: name.into(),
            status: "InProgress".into(),
            status_reason: String::new(),
            percentage_complete: 0,
            instances_to_update: 1,
            instances_total: 1,
            min_healthy_percentage: min_healthy_percentage.unwrap_or(90),
            instance_warmup: "5s".into(),
            checkpoint_percentages: Vec::new(),
            checkpoint_delay: "1h".into(),
            auto_rollback: false,
            checkpoint_until: None,
            launch_template_version: 1,
            previous_launch_template_version: None,
            rollback_reason: None,
            start_time: String::new(),
            end_time: None,
        })
    }
    fn start_zone_outage(&self, zone: &str, duration: Duration) -> Result<ZoneInfo, AdminError> {
        if zone != "az-a" {
            return Err(AdminError::NotFound("no zone".into()));
        }
        *self.outage.lock().unwrap() = Some(duration);
        Ok(ZoneInfo {
            name: zone.into(),
            state: "outage".into(),
            outage_until: Some(String::new()),
            shift_until: None,
            instances: 0,
        })
    }
}

async fn serve(token: Option<&str>) -> (String, tokio::sync::watch::Sender<bool>) {
    let (url, stop, _) = serve_fake(token).await;
    (url, stop)
}

/// Serves a fresh [`Fake`]; returns it too, to see what reached it.
async fn serve_fake(token: Option<&str>) -> (String, tokio::sync::watch::Sender<bool>, Arc<Fake>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = tokio::sync::watch::channel(false);
    let backend = Arc::new(Fake {
        desired: Mutex::new(2),
        refresh: Mutex::new(None),
        outage: Mutex::new(None),
    });
    tokio::spawn(flotilla_admin::serve(
        listener,
        backend.clone(),
        token.map(Arc::from),
        rx,
    ));
    (url, tx, backend)
}

fn api_error(e: ClientError) -> (u16, String, String) {
    match e {
        ClientError::Api {
            status,
            error,
            code,
            ..
        } => (status, code, error),
        other => panic!("expected a JSON API error, got {other}"),
    }
}

#[tokio::test]
async fn a_token_is_required_when_set_and_a_wrong_one_changes_nothing() {
    let (url, _stop) = serve(Some("s3cret")).await;
    let anonymous = AdminClient::new(&url, None).unwrap();
    let wrong = AdminClient::new(&url, Some("guess".into())).unwrap();
    let right = AdminClient::new(&url, Some("s3cret".into())).unwrap();
    let e = anonymous
        .get::<Vec<GroupSummary>>("/v1/groups")
        .await
        .unwrap_err();
    assert_eq!(api_error(e).0, 401);
    let e = wrong
        .put::<_, GroupSummary>(
            "/v1/groups/web/capacity",
            &CapacityRequest {
                desired_capacity: 4,
            },
        )
        .await
        .unwrap_err();
    assert_eq!(api_error(e).1, "unauthorized");
    let e = anonymous
        .get::<serde_json::Value>("/openapi.json")
        .await
        .unwrap_err();
    assert_eq!(api_error(e).0, 401);
    let groups: Vec<GroupSummary> = right.get("/v1/groups").await.unwrap();
    assert_eq!(
        groups[0].desired_capacity, 2,
        "the refused change changed nothing"
    );
}

#[tokio::test]
async fn bad_bodies_and_unknown_fields_get_json_4xx() {
    let (url, _stop) = serve(None).await;
    let c = AdminClient::new(&url, None).unwrap();
    let unknown = serde_json::json!({"desired_capacity": 3, "force": true});
    let e = c
        .put::<_, GroupSummary>("/v1/groups/web/capacity", &unknown)
        .await
        .unwrap_err();
    let (status, code, error) = api_error(e);
    assert_eq!((status, code.as_str()), (400, "bad_request"));
    assert!(error.contains("force"), "{error}");
    let wrong_type = serde_json::json!({"desired_capacity": "three"});
    let e = c
        .put::<_, GroupSummary>("/v1/groups/web/capacity", &wrong_type)
        .await
        .unwrap_err();
    assert_eq!(api_error(e).0, 400);
    let e = c
        .put::<_, GroupSummary>(
            "/v1/groups/web/capacity",
            &CapacityRequest {
                desired_capacity: 9,
            },
        )
        .await
        .unwrap_err();
    assert_eq!(api_error(e).1, "out_of_range");
    let e = c
        .post::<_, TerminateResponse>(
            "/v1/instances/i-1/terminate",
            &serde_json::json!({"decrement_desired": false, "now": 1}),
        )
        .await
        .unwrap_err();
    assert_eq!(api_error(e).0, 400);
    let e = c
        .post::<_, TerminateResponse>(
            "/v1/instances/i-404/terminate",
            &TerminateRequest::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(api_error(e).0, 404);
    let ok: TerminateResponse = c
        .post("/v1/instances/i-1/terminate", &serde_json::json!({}))
        .await
        .unwrap();
    assert!(ok.replaced, "decrement_desired defaults to false");
    let e = c
        .get::<serde_json::Value>("/v1/nothing-here")
        .await
        .unwrap_err();
    assert_eq!(api_error(e).1, "not_found");
    // Not implemented by this backend: a JSON 500, not a panic.
    let e = c
        .post::<_, serde_json::Value>("/v1/reload", &serde_json::json!({}))
        .await
        .unwrap_err();
    assert_eq!(api_error(e).0, 500);
}

#[tokio::test]
async fn the_openapi_document_covers_every_endpoint() {
    let (url, _stop) = serve(None).await;
    let c = AdminClient::new(&url, None).unwrap();
    let doc: serde_json::Value = c.get("/openapi.json").await.unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let paths = doc["paths"].as_object().unwrap();
    for (path, method) in [
        ("/", "get"),
        ("/v1/cluster", "get"),
        ("/v1/groups", "get"),
        ("/v1/groups/{name}", "get"),
        ("/v1/groups/{name}/capacity", "put"),
        ("/v1/groups/{name}/activities", "get"),
        ("/v1/target-groups/{name}/health", "get"),
        ("/v1/listeners", "get"),
        ("/v1/instances/{id}/terminate", "post"),
        ("/v1/instances/{id}/protection", "put"),
        ("/v1/groups/{name}/scaling", "get"),
        ("/v1/groups/{name}/suspended-processes", "put"),
        ("/v1/metrics/{metric}", "get"),
        ("/metrics", "get"),
        ("/v1/reload", "post"),
        ("/v1/groups/{name}/instance-refresh", "post"),
        ("/v1/groups/{name}/instance-refresh", "get"),
        ("/v1/groups/{name}/instance-refresh", "delete"),
        ("/v1/zones", "get"),
        ("/v1/zones/{zone}/outage", "post"),
        ("/v1/zones/{zone}/outage", "delete"),
        ("/v1/zones/{zone}/shift", "post"),
        ("/v1/zones/{zone}/shift", "delete"),
    ] {
        assert!(
            paths.get(path).and_then(|p| p.get(method)).is_some(),
            "{method} {path} missing from the document"
        );
    }
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    for name in [
        "ErrorBody",
        "CapacityRequest",
        "TerminateRequest",
        "ProtectionRequest",
        "GroupDetail",
        "InstanceRefreshRequest",
        "InstanceRefreshInfo",
        "ZoneDrillRequest",
        "ZoneInfo",
    ] {
        assert!(schemas.contains_key(name), "schema {name} missing");
    }
    assert_eq!(
        schemas["CapacityRequest"]["additionalProperties"],
        serde_json::Value::Bool(false),
        "unknown fields are refused, and the document says so"
    );
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
    assert_eq!(
        doc["paths"]["/"]["get"]["security"],
        serde_json::json!([{}]),
        "the static dashboard is documented as needing no token"
    );
}

#[tokio::test]
async fn drill_bodies_are_checked_before_they_reach_the_backend() {
    let (url, _stop, fake) = serve_fake(None).await;
    let c = AdminClient::new(&url, None).unwrap();
    let refresh = "/v1/groups/web/instance-refresh";
    for bad in [
        serde_json::json!({"min_healthy_percentage": 101}),
        serde_json::json!({"min_healthy_percentage": -1}),
        serde_json::json!({"instance_warmup": "soon"}),
        serde_json::json!({"instance_warmup": "2h"}),
        serde_json::json!({"checkpoint_percentages": [50, 20]}),
        serde_json::json!({"checkpoint_percentages": [0]}),
        serde_json::json!({"checkpoint_percentages": [101]}),
        serde_json::json!({"checkpoint_delay": "3d"}),
        serde_json::json!({"checkpoint_delay": "later"}),
        serde_json::json!({"auto_rollback": "yes"}),
        serde_json::json!({"min_healthy_percentage": 90, "max_healthy_percentage": 110}),
        serde_json::json!([90, "5s"]),
        serde_json::json!("fast"),
    ] {
        let e = c
            .post::<_, InstanceRefreshInfo>(refresh, &bad)
            .await
            .unwrap_err();
        assert_eq!(api_error(e).0, 400, "{bad}");
    }
    let r: InstanceRefreshInfo = c
        .post(
            refresh,
            &serde_json::json!({"min_healthy_percentage": 100, "instance_warmup": "1500ms"}),
        )
        .await
        .unwrap();
    assert_eq!(r.min_healthy_percentage, 100);
    assert_eq!(
        *fake.refresh.lock().unwrap(),
        Some(RefreshOverrides {
            min_healthy_percentage: Some(100),
            instance_warmup: Some(Duration::from_millis(1500)),
            ..Default::default()
        })
    );
    let _: InstanceRefreshInfo = c
        .post(
            refresh,
            &serde_json::json!({"checkpoint_percentages": [25, 50], "checkpoint_delay": "1m",
                "auto_rollback": true}),
        )
        .await
        .unwrap();
    assert_eq!(
        *fake.refresh.lock().unwrap(),
        Some(RefreshOverrides {
            checkpoint_percentages: Some(vec![25, 50]),
            checkpoint_delay: Some(Duration::from_secs(60)),
            auto_rollback: Some(true),
            ..Default::default()
        })
    );
    // No body at all: the defaults (the backend's to fill in).
    let http = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Empty<bytes::Bytes>>();
    let response = http
        .request(
            hyper::Request::post(format!("{url}{refresh}"))
                .body(http_body_util::Empty::new())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        *fake.refresh.lock().unwrap(),
        Some(RefreshOverrides::default())
    );
    let _: InstanceRefreshInfo = c
        .post(refresh, &serde_json::Value::Null)
        .await
        .expect("null means the defaults");

    let outage = "/v1/zones/az-a/outage";
    for bad in [
        serde_json::json!({}),
        serde_json::json!({"duration": "a while"}),
        serde_json::json!({"duration": "30s", "zone": "az-b"}),
        serde_json::json!({"duration": 30}),
        serde_json::json!(["30s"]),
        serde_json::Value::Null,
    ] {
        let e = c.post::<_, ZoneInfo>(outage, &bad).await.unwrap_err();
        assert_eq!(api_error(e).0, 400, "{bad}");
    }
    let e = c
        .post::<_, ZoneInfo>(
            "/v1/zones/az-z/outage",
            &ZoneDrillRequest {
                duration: "30s".into(),
            },
        )
        .await
        .unwrap_err();
    assert_eq!(api_error(e).1, "not_found");
    let z: ZoneInfo = c
        .post(
            outage,
            &ZoneDrillRequest {
                duration: "2m".into(),
            },
        )
        .await
        .unwrap();
    assert_eq!(z.state, "outage");
    assert_eq!(*fake.outage.lock().unwrap(), Some(Duration::from_secs(120)));
    // Not implemented by this backend: a JSON 404, not a panic.
    let e = c
        .delete::<ZoneInfo>("/v1/zones/az-a/shift")
        .await
        .unwrap_err();
    assert_eq!(api_error(e).0, 404);
}

/// Every body is a JSON object of its fields: serde alone would also take an array of the
/// fields' values in order (`[3]` for `{"desired_capacity": 3}`), which the document does not
/// allow, so each endpoint refuses that with a 400 before the backend sees it.
#[tokio::test]
async fn bodies_must_be_json_objects() {
    let (url, _stop, fake) = serve_fake(None).await;
    let c = AdminClient::new(&url, None).unwrap();
    let put = |path: &'static str, body: serde_json::Value| {
        let c = &c;
        async move { c.put::<_, serde_json::Value>(path, &body).await }
    };
    let post = |path: &'static str, body: serde_json::Value| {
        let c = &c;
        async move { c.post::<_, serde_json::Value>(path, &body).await }
    };
    for (result, what) in [
        (
            put("/v1/groups/web/capacity", serde_json::json!([3])).await,
            "capacity",
        ),
        (
            post("/v1/instances/i-1/terminate", serde_json::json!([true])).await,
            "terminate",
        ),
        (
            put("/v1/instances/i-1/protection", serde_json::json!([true])).await,
            "protection",
        ),
        (
            put(
                "/v1/groups/web/suspended-processes",
                serde_json::json!([["Launch"]]),
            )
            .await,
            "suspended processes",
        ),
    ] {
        let (status, code, error) = api_error(result.unwrap_err());
        assert_eq!((status, code.as_str()), (400, "bad_request"), "{what}");
        assert!(error.contains("JSON object"), "{what}: {error}");
    }
    assert_eq!(*fake.desired.lock().unwrap(), 2, "nothing changed");
    // The object forms reach the backend.
    let s = put(
        "/v1/groups/web/capacity",
        serde_json::json!({"desired_capacity": 3}),
    )
    .await
    .expect("an object body");
    assert_eq!(s["desired_capacity"], 3);
    let t = post(
        "/v1/instances/i-1/terminate",
        serde_json::json!({"decrement_desired": true}),
    )
    .await
    .expect("an object body");
    assert_eq!(t["replaced"], false);
}

/// A backend of `flotilla up` (the fake keeps the default) has no nodes: `GET /v1/nodes`
/// answers 404, which is what keeps the dashboard's hosts panel hidden.
#[tokio::test]
async fn without_cluster_mode_there_are_no_nodes() {
    let (url, _stop) = serve(None).await;
    let c = AdminClient::new(&url, None).unwrap();
    let e = c
        .get::<Vec<flotilla_admin::api::NodeInfo>>("/v1/nodes")
        .await
        .unwrap_err();
    let (status, _, error) = api_error(e);
    assert_eq!(status, 404);
    assert!(error.contains("not cluster mode"), "{error}");
}
