//! Listener rules through the real binary: a path-pattern rule forwarding to a second target
//! group of static in-test backends, a redirect and a fixed response, beside the default
//! action forwarding to the demo app's auto scaling group.

mod common;

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use common::*;
use http_body_util::{BodyExt, Empty, Full};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// A static target: answers every request with `static:<path>`.
async fn static_backend() -> (u16, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind backend");
    let port = listener.local_addr().expect("backend addr").port();
    let task = tokio::spawn(async move {
        let mut conns = tokio::task::JoinSet::new();
        while let Ok((stream, _)) = listener.accept().await {
            let svc =
                hyper::service::service_fn(|req: Request<hyper::body::Incoming>| async move {
                    let body = format!("static:{}", req.uri().path());
                    Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(body))))
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_forward_redirect_and_answer_through_the_binary() {
    let (backend_port, backend) = static_backend().await;
    let ports = Ports::new();
    let extra = format!(
        r##"
[target_groups.static]
targets = ["127.0.0.1:{backend_port}"]
deregistration_delay = "1s"
health_check = {{ path = "/health", interval = "500ms", timeout = "250ms", healthy_threshold = 2 }}

[[load_balancers.front.listeners.rules]]
priority = 20
conditions = [ {{ field = "path-pattern", values = ["/old/*"] }} ]
action = {{ type = "redirect", status = 301, path = "/new/#{{path}}" }}

[[load_balancers.front.listeners.rules]]
priority = 10
conditions = [ {{ field = "path-pattern", values = ["/static/*"] }} ]
action = {{ type = "forward", target_group = "static" }}

[[load_balancers.front.listeners.rules]]
priority = 30
conditions = [ {{ field = "http-request-method", values = ["DELETE"] }} ]
action = {{ type = "fixed-response", status = 403, content_type = "text/plain", body = "no\n" }}
"##
    );
    let config = demo_config(&ports, 1, 1, 1, &extra);
    let f = Flotilla::start("routing", ports, &config);
    let listener_port = f.ports.listener;
    f.wait_in_service("web", 1, Duration::from_secs(30)).await;
    let client = http_client();

    // The static group's target turns healthy, then the rule reaches it.
    let body = wait_for(
        "the static target to answer",
        Duration::from_secs(20),
        || async {
            match get(&client, &f.listener_url("/static/a.css")).await {
                Ok((200, _, body)) if body.starts_with("static:") => Some(body),
                _ => None,
            }
        },
    )
    .await;
    assert_eq!(body, "static:/static/a.css");

    // Everything else goes to the default action: the demo app.
    let (status, _, body) = get(&client, &f.listener_url("/")).await.expect("GET /");
    assert_eq!(status, 200);
    assert!(body.starts_with("It is "), "{body}");

    // Redirect: the rest of the URI keeps its original values.
    let (status, headers, _) = get(&client, &f.listener_url("/old/x/y?k=v"))
        .await
        .expect("GET /old");
    assert_eq!(status, 301);
    assert_eq!(
        headers["location"],
        format!("http://127.0.0.1:{listener_port}/new/old/x/y?k=v").as_str()
    );

    // Fixed response, without any target.
    let req = Request::delete(f.listener_url("/static/a.css"))
        .body(Empty::<Bytes>::new())
        .expect("request");
    let resp = tokio::time::timeout(Duration::from_secs(10), client.request(req))
        .await
        .expect("DELETE timed out")
        .expect("DELETE failed");
    // Priority 10 (path) comes before 30 (method): the static target answers the DELETE.
    assert_eq!(resp.status(), 200);
    let _ = resp.into_body().collect().await;
    let req = Request::delete(f.listener_url("/thing"))
        .body(Empty::<Bytes>::new())
        .expect("request");
    let resp = tokio::time::timeout(Duration::from_secs(10), client.request(req))
        .await
        .expect("DELETE timed out")
        .expect("DELETE failed");
    assert_eq!(resp.status(), 403);
    assert_eq!(resp.headers()["content-type"], "text/plain");
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    assert_eq!(body, "no\n");
    backend.abort();
}
