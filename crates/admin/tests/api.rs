//! The admin API against a stand-in backend: auth, JSON errors, unknown fields, the document.

use std::sync::{Arc, Mutex};

use flotilla_admin::api::{
    ActivityInfo, CapacityRequest, GroupDetail, GroupSummary, ListenerInfo, TargetHealthInfo,
    TerminateRequest, TerminateResponse,
};
use flotilla_admin::{AdminBackend, AdminClient, AdminError, ClientError};

/// One group `web` (1..5, desired 2) and one instance `i-1`.
struct Fake {
    desired: Mutex<u32>,
}

impl AdminBackend for Fake {
    fn groups(&self) -> Vec<GroupSummary> {
        vec![GroupSummary {
            name: "web".into(),
            min_size: 1,
            max_size: 5,
            desired_capacity: *self.desired.lock().unwrap(),
            in_service: 1,
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
}

async fn serve(token: Option<&str>) -> (String, tokio::sync::watch::Sender<bool>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = tokio::sync::watch::channel(false);
    let backend = Arc::new(Fake {
        desired: Mutex::new(2),
    });
    tokio::spawn(flotilla_admin::serve(
        listener,
        backend,
        token.map(Arc::from),
        rx,
    ));
    (url, tx)
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
    ] {
        assert!(schemas.contains_key(name), "schema {name} missing");
    }
    assert_eq!(
        schemas["CapacityRequest"]["additionalProperties"],
        serde_json::Value::Bool(false),
        "unknown fields are refused, and the document says so"
    );
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
}
