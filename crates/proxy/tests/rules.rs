//! Listener rules end to end through the proxy: every condition type with AWS matching rules,
//! AND/OR, priority order, the invariants of aws-semantics §1.5, redirects, fixed responses and
//! weighted forwarding. Rules are written in the config syntax and compiled by
//! `flotilla_proxy::rules::compile`, then swapped into a running listener.

mod common;

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::*;
use flotilla_proxy::{rules, RouteAction, RouteState, TargetGroup};
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// Three groups `a`, `b`, `c` with one backend each (named like the group), and a listener
/// whose default forwards to `a` and whose rules are `rules_toml`.
struct Fixture {
    proxy: TestProxy,
    _backends: Vec<TestBackend>,
    groups: HashMap<String, Arc<TargetGroup>>,
}

impl Fixture {
    async fn new(rules_toml: &str) -> Fixture {
        let mut backends = Vec::new();
        let mut groups = HashMap::new();
        for name in ["a", "b", "c"] {
            let b = TestBackend::start(name).await;
            let g = TargetGroup::new(name);
            g.update(vec![target(b.addr, RouteState::Healthy)]);
            groups.insert(name.to_string(), g);
            backends.push(b);
        }
        let proxy =
            TestProxy::start(RouteAction::Forward(groups["a"].clone()), test_config()).await;
        let src = format!(
            "[target_groups.a]\n[target_groups.b]\n[target_groups.c]\n\
             [[load_balancers.front.listeners]]\nbind = \"127.0.0.1:8080\"\n\
             default_action = {{ type = \"forward\", target_group = \"a\" }}\n{rules_toml}"
        );
        let config = flotilla_config::parse(&src, Path::new("rules.toml"))
            .unwrap_or_else(|e| panic!("{e}\n{src}"));
        let mut listener = config.load_balancers["front"].listeners[0].clone();
        listener.bind = proxy.addr;
        // The listener is live: the compiled table replaces the default-only router atomically.
        proxy
            .router
            .store(Arc::new(rules::compile(&listener, &groups)));
        Fixture {
            proxy,
            _backends: backends,
            groups,
        }
    }

    /// Which backend answered (`""` for a load-balancer answer), plus status and headers.
    async fn ask(&self, req: hyper::http::request::Builder) -> Answer {
        self.ask_with(&client(), req).await
    }

    async fn ask_with(&self, c: &TestClient, req: hyper::http::request::Builder) -> Answer {
        let req = req.body(Full::new(Bytes::new())).unwrap();
        let resp = tokio::time::timeout(Duration::from_secs(20), c.request(req))
            .await
            .expect("request timed out")
            .expect("request failed");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        let backend = headers
            .get("x-backend")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        Answer {
            status,
            backend,
            headers,
            body,
        }
    }

    /// The backend a GET of `path_and_query` reaches, with extra headers.
    async fn who(&self, path_and_query: &str, headers: &[(&str, &str)]) -> String {
        let mut req = Request::get(self.proxy.url(path_and_query));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let a = self.ask(req).await;
        assert_eq!(a.status, 200, "{path_and_query} {headers:?}: {:?}", a.body);
        a.backend
    }
}

struct Answer {
    status: u16,
    backend: String,
    headers: hyper::HeaderMap,
    body: Bytes,
}

fn rule(priority: u32, conditions: &str, group: &str) -> String {
    format!(
        "[[load_balancers.front.listeners.rules]]\npriority = {priority}\nconditions = [{conditions}]\n\
         action = {{ type = \"forward\", target_group = \"{group}\" }}\n"
    )
}

#[tokio::test]
async fn host_header_is_case_insensitive_with_wildcards_and_ignores_the_port() {
    let f = Fixture::new(&format!(
        "{}{}",
        rule(
            1,
            r#"{ field = "host-header", values = ["API.example.com"] }"#,
            "b"
        ),
        rule(
            2,
            r#"{ field = "host-header", values = ["*.example.com", "w?.test.org"] }"#,
            "c"
        ),
    ))
    .await;
    assert_eq!(f.who("/", &[("host", "api.example.com")]).await, "b");
    assert_eq!(f.who("/", &[("host", "Api.Example.Com:8080")]).await, "b");
    assert_eq!(f.who("/", &[("host", "x.y.example.com")]).await, "c");
    // `*.example.com` needs something before the dot.
    assert_eq!(f.who("/", &[("host", "example.com")]).await, "a");
    // `?` is exactly one character.
    assert_eq!(f.who("/", &[("host", "w1.test.org")]).await, "c");
    assert_eq!(f.who("/", &[("host", "w.test.org")]).await, "a");
    assert_eq!(f.who("/", &[("host", "w12.test.org")]).await, "a");
    // Two Host headers: the target and the rules could each believe another one, so the
    // request is refused (RFC 9112 §3.2).
    let raw = raw_exchange(
        f.proxy.addr,
        b"GET / HTTP/1.1\r\nHost: api.example.com\r\nHost: x.example.com\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(raw.starts_with("HTTP/1.1 400 "), "{raw}");
    assert!(!raw.contains("x-backend"), "{raw}");
}

#[tokio::test]
async fn path_pattern_is_case_sensitive_and_never_sees_the_query() {
    let f = Fixture::new(&format!(
        "{}{}",
        rule(1, r#"{ field = "path-pattern", values = ["/API/*"] }"#, "b"),
        rule(
            2,
            r#"{ field = "path-pattern", values = ["/img/*", "/v?/x"] }"#,
            "c"
        ),
    ))
    .await;
    assert_eq!(f.who("/API/x", &[]).await, "b");
    assert_eq!(f.who("/api/x", &[]).await, "a");
    assert_eq!(f.who("/img/a.jpg", &[]).await, "c");
    assert_eq!(f.who("/img/a.jpg?a=b", &[]).await, "c");
    // The query is not part of the path: `/img?x=/img/` does not match `/img/*`.
    assert_eq!(f.who("/img?x=/img/", &[]).await, "a");
    assert_eq!(f.who("/v2/x", &[]).await, "c");
    assert_eq!(f.who("/v22/x", &[]).await, "a");
}

#[tokio::test]
async fn http_header_name_and_values_are_case_insensitive_and_each_occurrence_is_tried() {
    let f = Fixture::new(&rule(
        1,
        r#"{ field = "http-header", name = "X-Canary", values = ["YES", "beta-*"] }"#,
        "b",
    ))
    .await;
    assert_eq!(f.who("/", &[("x-canary", "yes")]).await, "b");
    assert_eq!(f.who("/", &[("X-CANARY", "Beta-7")]).await, "b");
    assert_eq!(f.who("/", &[("x-canary", "no")]).await, "a");
    assert_eq!(f.who("/", &[]).await, "a");
    // Repeated header: the second occurrence matches.
    assert_eq!(
        f.who("/", &[("x-canary", "no"), ("x-canary", "yes")]).await,
        "b"
    );
}

#[tokio::test]
async fn request_method_is_exact() {
    let f = Fixture::new(&rule(
        1,
        r#"{ field = "http-request-method", values = ["DELETE", "PURGE"] }"#,
        "b",
    ))
    .await;
    let m = |m: &str| Request::builder().method(m).uri(f.proxy.url("/"));
    assert_eq!(f.ask(m("DELETE")).await.backend, "b");
    assert_eq!(f.ask(m("PURGE")).await.backend, "b");
    assert_eq!(f.ask(m("GET")).await.backend, "a");
    // Methods are case-sensitive: `purge` is another method.
    assert_eq!(f.ask(m("purge")).await.backend, "a");
}

#[tokio::test]
async fn query_string_pairs_are_case_insensitive_decoded_and_keyless_values_match_any_key() {
    let f = Fixture::new(&format!(
        "{}{}",
        rule(
            1,
            r#"{ field = "query-string", values = ["version=v1"] }"#,
            "b"
        ),
        rule(
            2,
            r#"{ field = "query-string", values = ["blue", "size=x*l"] }"#,
            "c"
        ),
    ))
    .await;
    assert_eq!(f.who("/?VERSION=V1", &[]).await, "b");
    assert_eq!(f.who("/?a=1&version=v1", &[]).await, "b");
    assert_eq!(f.who("/?version=v2", &[]).await, "a");
    // Percent-decoded before matching.
    assert_eq!(f.who("/?ver%73ion=%761", &[]).await, "b");
    // A value without key matches under any key.
    assert_eq!(f.who("/?color=BLUE", &[]).await, "c");
    assert_eq!(f.who("/?size=XXL", &[]).await, "c");
    assert_eq!(f.who("/?size=m", &[]).await, "a");
    assert_eq!(f.who("/", &[]).await, "a");
}

#[tokio::test]
async fn source_ip_is_the_tcp_peer_not_x_forwarded_for() {
    let f = Fixture::new(&rule(
        1,
        r#"{ field = "source-ip", values = ["127.0.0.2/32", "10.0.0.0/8"] }"#,
        "b",
    ))
    .await;
    // From 127.0.0.1: no match, whatever X-Forwarded-For claims.
    assert_eq!(f.who("/", &[("x-forwarded-for", "10.1.2.3")]).await, "a");
    // From 127.0.0.2 (the whole 127/8 is loopback on Linux): match.
    let mut conn = HttpConnector::new();
    conn.set_local_address(Some("127.0.0.2".parse::<IpAddr>().unwrap()));
    let from2: TestClient = Client::builder(TokioExecutor::new()).build(conn);
    let a = f.ask_with(&from2, Request::get(f.proxy.url("/"))).await;
    assert_eq!((a.status, a.backend.as_str()), (200, "b"));
}

#[tokio::test]
async fn conditions_and_across_or_within_and_priority_order_first_match_wins() {
    // Declared out of order on purpose; priority 5 must still be tried before 10.
    let f = Fixture::new(&format!(
        "{}{}{}",
        rule(
            10,
            r#"{ field = "host-header", values = ["*.x.com"] }"#,
            "c"
        ),
        rule(5, r#"{ field = "path-pattern", values = ["/a*"] }"#, "b"),
        rule(
            7,
            r#"{ field = "path-pattern", values = ["/both", "/either"] },
               { field = "http-request-method", values = ["POST"] }"#,
            "c"
        ),
    ))
    .await;
    // §1.5: priority 5 path=/a* beats priority 10 host=*.x.com.
    assert_eq!(f.who("/abc", &[("host", "h.x.com")]).await, "b");
    assert_eq!(f.who("/zzz", &[("host", "h.x.com")]).await, "c");
    // AND: path matches but the method does not.
    assert_eq!(f.who("/both", &[]).await, "a");
    let post = |p: &str| Request::post(f.proxy.url(p));
    // OR within the path condition, AND with the method.
    assert_eq!(f.ask(post("/both")).await.backend, "c");
    assert_eq!(f.ask(post("/either")).await.backend, "c");
    assert_eq!(f.ask(post("/neither")).await.backend, "a");
}

#[tokio::test]
async fn redirects_build_location_from_templates_and_the_original_uri() {
    let f = Fixture::new(
        r##"
[[load_balancers.front.listeners.rules]]
priority = 1
conditions = [ { field = "path-pattern", values = ["/a/*"] } ]
action = { type = "redirect", status = 301, protocol = "HTTPS", port = "443", host = "#{host}", path = "/#{path}", query = "#{query}" }

[[load_balancers.front.listeners.rules]]
priority = 2
conditions = [ { field = "path-pattern", values = ["/old/*"] } ]
action = { type = "redirect", status = 302, path = "/new/#{path}" }

[[load_balancers.front.listeners.rules]]
priority = 3
conditions = [ { field = "path-pattern", values = ["/q"] } ]
action = { type = "redirect", status = 301, host = "www.#{host}", query = "from=#{path}&#{query}" }
"##,
    )
    .await;
    let port = f.proxy.addr.port();
    let go = |path: &str, host: &str| Request::get(f.proxy.url(path)).header("host", host);

    // §1.5 invariant, exactly.
    let a = f.ask(go("/a/b?x=1", "h:80")).await;
    assert_eq!(a.status, 301);
    assert_eq!(a.headers["location"], "https://h:443/a/b?x=1");
    assert_eq!(a.backend, "");

    // 302; unspecified protocol, host, port and query keep their original values.
    let a = f.ask(go("/old/x/y?k=v", "Site.example")).await;
    assert_eq!(a.status, 302);
    assert_eq!(
        a.headers["location"],
        format!("http://Site.example:{port}/new/old/x/y?k=v").as_str()
    );
    // No query: no `?`.
    let a = f.ask(go("/old/z", "s.example")).await;
    assert_eq!(
        a.headers["location"],
        format!("http://s.example:{port}/new/old/z").as_str()
    );
    // Keywords inside other components; the path is kept as it was.
    let a = f.ask(go("/q?a=1", "s.example")).await;
    assert_eq!(a.status, 301);
    assert_eq!(
        a.headers["location"],
        format!("http://www.s.example:{port}/q?from=q&a=1").as_str()
    );
}

#[tokio::test]
async fn fixed_response_answers_without_a_target() {
    let f = Fixture::new(
        r#"
[[load_balancers.front.listeners.rules]]
priority = 1
conditions = [ { field = "http-request-method", values = ["DELETE"] } ]
action = { type = "fixed-response", status = 403, content_type = "application/json", body = "{\"no\":true}" }
"#,
    )
    .await;
    let a = f.ask(Request::delete(f.proxy.url("/x"))).await;
    assert_eq!(a.status, 403);
    assert_eq!(a.headers["content-type"], "application/json");
    assert_eq!(a.body, "{\"no\":true}");
    assert_eq!(a.backend, "");
    let total: u64 = f
        .groups
        .values()
        .flat_map(|g| g.stats())
        .map(|s| s.requests_total)
        .sum();
    assert_eq!(total, 0, "no target was involved");
    assert_eq!(f.who("/x", &[]).await, "a");
}

#[tokio::test]
async fn weighted_forward_splits_by_weight_and_weight_zero_gets_nothing() {
    let f = Fixture::new(
        r#"
[[load_balancers.front.listeners.rules]]
priority = 1
conditions = [ { field = "path-pattern", values = ["/*"] } ]
action = { type = "forward", target_groups = [ { name = "a", weight = 3 }, { name = "b", weight = 1 }, { name = "c", weight = 0 } ] }
"#,
    )
    .await;
    let c = client();
    let mut counts: HashMap<String, usize> = HashMap::new();
    let n = 1000;
    for _ in 0..n {
        let (status, backend, _) = get(&c, &f.proxy.url("/w")).await;
        assert_eq!(status, 200);
        *counts.entry(backend).or_default() += 1;
    }
    let a = counts.get("a").copied().unwrap_or(0);
    let b = counts.get("b").copied().unwrap_or(0);
    assert_eq!(
        counts.get("c"),
        None,
        "weight 0 gets no traffic: {counts:?}"
    );
    assert_eq!(a + b, n);
    // Expected 750/250; ±60 is more than 4 standard deviations (σ ≈ 13.7).
    assert!((690..=810).contains(&a), "{counts:?}");
}
