//! Weighted forward actions changed live through the real binary: `PUT
//! /v1/load-balancers/{lb}/rules/{rule}/weights` and `flotilla shift-weights` move the observed
//! split, bad calls get 4xx JSON, and a canary that answers 5xx is rolled back by its alarm.

mod common;

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use common::*;
use flotilla_admin::api::{RuleWeights, WeightsRequest};
use flotilla_admin::ClientError;
use http_body_util::Full;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// A static target named `name`: `/health` is 200; every other path answers `status` with
/// the name as body.
async fn backend(name: &'static str, status: u16) -> (u16, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind backend");
    let port = listener.local_addr().expect("backend addr").port();
    let task = tokio::spawn(async move {
        let mut conns = tokio::task::JoinSet::new();
        while let Ok((stream, _)) = listener.accept().await {
            let svc = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                let code = if req.uri().path() == "/health" {
                    200
                } else {
                    status
                };
                async move {
                    let mut resp = Response::new(Full::new(Bytes::from(name)));
                    *resp.status_mut() = hyper::StatusCode::from_u16(code).unwrap_or_default();
                    Ok::<_, Infallible>(resp)
                }
            });
            conns.spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    (port, task)
}

fn config(ports: &Ports, blue: u16, green: u16, canary: u16) -> String {
    let tg = |name: &str, port: u16| {
        format!(
            "[target_groups.{name}]\ntargets = [\"127.0.0.1:{port}\"]\nderegistration_delay = \"1s\"\nhealth_check = {{ path = \"/health\", interval = \"500ms\", timeout = \"250ms\", healthy_threshold = 2 }}\n"
        )
    };
    format!(
        r#"
[cluster]
name = "canary"
admin_bind = "127.0.0.1:{admin}"

{blue_tg}
{green_tg}
{canary_tg}
[[load_balancers.front.listeners]]
bind = "127.0.0.1:{listener}"
default_action = {{ type = "forward", target_groups = [ {{ name = "blue", weight = 100 }}, {{ name = "green", weight = 0 }} ] }}

[[load_balancers.front.listeners.rules]]
priority = 10
conditions = [ {{ field = "path-pattern", values = ["/c/*"] }} ]
action = {{ type = "forward", target_groups = [ {{ name = "blue", weight = 50 }}, {{ name = "canary", weight = 50 }} ], rollback = {{ target_group = "canary", alarm = {{ metric = "http_target_5xx_rate", period = "2s", comparison = ">=", threshold = 20.0 }} }} }}
"#,
        admin = ports.admin,
        listener = ports.listener,
        blue_tg = tg("blue", blue),
        green_tg = tg("green", green),
        canary_tg = tg("canary", canary),
    )
}

/// Bodies of `n` sequential GETs of `path`, counted.
async fn split(f: &Flotilla, path: &str, n: usize) -> BTreeMap<String, usize> {
    let client = http_client();
    let mut counts = BTreeMap::new();
    for _ in 0..n {
        let body = match get(&client, &f.listener_url(path)).await {
            Ok((_, _, body)) => body,
            Err(e) => format!("error: {e}"),
        };
        *counts.entry(body).or_default() += 1;
    }
    counts
}

fn only(name: &str, n: usize) -> BTreeMap<String, usize> {
    [(name.to_string(), n)].into()
}

async fn put_weights(
    f: &Flotilla,
    path: &str,
    pairs: &[(&str, u32)],
) -> Result<RuleWeights, ClientError> {
    let request = WeightsRequest {
        weights: pairs.iter().map(|(n, w)| (n.to_string(), *w)).collect(),
    };
    f.admin.put(path, &request).await
}

#[track_caller]
fn refused_with(r: Result<RuleWeights, ClientError>, want: u16, text: &str) {
    match r {
        Err(ClientError::Api { status, error, .. }) => {
            assert_eq!(status, want, "{error}");
            assert!(error.contains(text), "{error}");
        }
        other => panic!("expected HTTP {want}, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weights_shift_live_and_a_failing_canary_is_rolled_back() {
    let (blue, _b) = backend("blue", 200).await;
    let (green, _g) = backend("green", 200).await;
    let (canary, _c) = backend("canary", 500).await;
    let ports = Ports::new();
    let f = Flotilla::start("canary", ports, &config(&ports, blue, green, canary));
    let default = "/v1/load-balancers/front/rules/default/weights";
    wait_for("blue to serve", Duration::from_secs(20), || async {
        (split(&f, "/", 3).await == only("blue", 3)).then_some(())
    })
    .await;

    // 100/0 as configured, then 0/100 by the API.
    assert_eq!(split(&f, "/", 30).await, only("blue", 30));
    let w = put_weights(&f, default, &[("green", 100)]).await.unwrap();
    assert_eq!(
        (w.source.as_str(), w.weights["blue"], w.weights["green"]),
        ("operator", 0, 100)
    );
    wait_for(
        "green to get everything",
        Duration::from_secs(10),
        || async { (split(&f, "/", 3).await == only("green", 3)).then_some(()) },
    )
    .await;
    assert_eq!(split(&f, "/", 30).await, only("green", 30));

    // The CLI: a 50/50 split.
    let (ok, out, err) = cli(&f, &["shift-weights", "front", "blue=50", "green=50"]);
    assert!(ok, "{out}{err}");
    assert!(
        out.contains("blue=50 green=50") && out.contains("operator"),
        "{out}"
    );
    let counts = split(&f, "/", 200).await;
    let (b, g) = (
        counts.get("blue").copied().unwrap_or(0),
        counts.get("green").copied().unwrap_or(0),
    );
    assert!(b + g == 200 && b > 60 && g > 60, "{counts:?}");

    // Bad calls: 4xx JSON with the reason; nothing changes.
    refused_with(
        put_weights(&f, default, &[("purple", 1)]).await,
        400,
        "not in this forward action",
    );
    refused_with(
        put_weights(&f, default, &[("blue", 0), ("green", 0)]).await,
        400,
        "above 0",
    );
    refused_with(
        put_weights(&f, default, &[("blue", 1000)]).await,
        400,
        "above 999",
    );
    let r = put_weights(
        &f,
        "/v1/load-balancers/front/rules/99/weights",
        &[("blue", 1)],
    )
    .await;
    refused_with(r, 404, "no rule `99`");
    let r = put_weights(
        &f,
        "/v1/load-balancers/back/rules/default/weights",
        &[("blue", 1)],
    )
    .await;
    refused_with(r, 404, "no load balancer named `back`");
    let r = put_weights(
        &f,
        "/v1/load-balancers/front/rules/first/weights",
        &[("blue", 1)],
    )
    .await;
    refused_with(r, 400, "neither `default` nor a priority");
    let r = put_weights(&f, &format!("{default}?listener=1"), &[("blue", 1)]).await;
    refused_with(r, 404, "no listener `1`");
    let w: RuleWeights = f.admin.get(default).await.unwrap();
    assert_eq!((w.weights["blue"], w.weights["green"]), (50, 50));

    // The canary rule: half its requests get the canary's 500s until its alarm rolls it back.
    let rule = "/v1/load-balancers/front/rules/10/weights";
    let w: RuleWeights = f.admin.get(rule).await.unwrap();
    assert_eq!(
        w.rollback.as_ref().map(|r| r.state.as_str()),
        Some("watching")
    );
    let rolled = wait_for("the canary rollback", Duration::from_secs(20), || async {
        split(&f, "/c/x", 5).await;
        let w: RuleWeights = f.admin.get(rule).await.ok()?;
        (w.source == "rollback").then_some(w)
    })
    .await;
    assert_eq!((rolled.weights["blue"], rolled.weights["canary"]), (50, 0));
    let rb = rolled.rollback.expect("rollback state");
    assert_eq!(
        (rb.state.as_str(), rb.alarm_state.as_str()),
        ("rolled_back", "ALARM")
    );
    assert!(
        rb.cause.is_some_and(|c| c.contains("http_target_5xx_rate")),
        "{:?}",
        rolled.cause
    );
    assert_eq!(split(&f, "/c/x", 30).await, only("blue", 30));
    assert!(
        f.log().contains("canary rollback of target group canary"),
        "{}",
        f.log()
    );

    // Reset: the file's weights again.
    let (ok, out, err) = cli(&f, &["shift-weights", "front", "--reset"]);
    assert!(ok, "{out}{err}");
    assert!(
        out.contains("blue=100 green=0") && out.contains("source: config"),
        "{out}"
    );
}
