//! Each cache behaviour against a real origin over loopback: hit, miss, expiry,
//! revalidation, Vary, no-store, private, invalidation, stale-while-revalidate,
//! stale-if-error, ranges, compression, request collapsing, poisoning, caps.

mod common;

use std::sync::atomic::Ordering;
use std::sync::Arc;

use common::*;

async fn setup(
    behavior: &str,
    dist: &str,
) -> (
    Arc<OriginState>,
    Arc<flotilla_edge::Edge>,
    std::net::SocketAddr,
) {
    let state = Arc::new(OriginState::default());
    let origin = start_origin(Arc::clone(&state)).await;
    let (edge, addr) = start_edge(origin, behavior, dist).await;
    (state, edge, addr)
}

#[tokio::test]
async fn a_miss_then_hits_with_age_and_x_cache() {
    let (o, edge, addr) = setup("", "").await;
    let first = get(addr, "/fresh", &[]).await;
    assert_eq!((first.status, first.x_cache()), (200, "Miss from flotilla"));
    for _ in 0..3 {
        let again = get(addr, "/fresh", &[]).await;
        assert_eq!(again.x_cache(), "Hit from flotilla");
        assert_eq!(again.body, first.body);
        assert!(again.headers.contains_key("age"));
    }
    assert_eq!(o.count("/fresh"), 1);
    let s = edge.stats.snapshot();
    assert_eq!((s.hits, s.misses, s.origin_requests), (3, 1, 1));
    assert!(s.bytes_saved > 0);
}

#[tokio::test]
async fn an_expired_object_is_fetched_again() {
    let (o, _, addr) = setup("", "").await;
    assert_eq!(
        get(addr, "/expired", &[]).await.x_cache(),
        "Miss from flotilla"
    );
    assert_eq!(
        get(addr, "/expired", &[]).await.x_cache(),
        "Miss from flotilla"
    );
    assert_eq!(o.count("/expired"), 2);
}

#[tokio::test]
async fn the_default_ttl_applies_when_the_origin_says_nothing_and_min_ttl_clamps() {
    let (o, _, addr) = setup("default_ttl = \"1h\"\nmin_ttl = \"10m\"", "").await;
    get(addr, "/default", &[]).await;
    assert_eq!(
        get(addr, "/default", &[]).await.x_cache(),
        "Hit from flotilla"
    );
    // max-age=5 with Age: 5 would be stale; min_ttl keeps it fresh.
    get(addr, "/expired", &[]).await;
    assert_eq!(
        get(addr, "/expired", &[]).await.x_cache(),
        "Hit from flotilla"
    );
    assert_eq!((o.count("/default"), o.count("/expired")), (1, 1));
}

#[tokio::test]
async fn a_stale_object_with_an_etag_is_revalidated_with_304() {
    let (o, edge, addr) = setup("", "").await;
    let first = get(addr, "/revalidate", &[]).await;
    let second = get(addr, "/revalidate", &[]).await;
    assert_eq!(second.x_cache(), "RefreshHit from flotilla");
    assert_eq!(second.body, first.body);
    assert_eq!(second.headers.get("x-revalidated").unwrap(), "yes");
    let conditional = o
        .seen
        .lock()
        .unwrap()
        .iter()
        .filter(|(p, h)| p == "/revalidate" && h.contains_key("if-none-match"))
        .count();
    assert_eq!(conditional, 1);
    // A new version: the ETag no longer matches, the origin answers 200 and it is a miss.
    o.version.fetch_add(1, Ordering::SeqCst);
    let third = get(addr, "/revalidate", &[]).await;
    assert_eq!(third.x_cache(), "Miss from flotilla");
    assert!(third.text().ends_with("v1"));
    assert_eq!(edge.stats.snapshot().refresh_hits, 1);
}

#[tokio::test]
async fn a_viewer_revalidating_its_own_copy_gets_304_from_the_cache() {
    let (o, _, addr) = setup("", "").await;
    let first = get(addr, "/fresh", &[]).await;
    let etag = first
        .headers
        .get("etag")
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    let again = get(addr, "/fresh", &[("if-none-match", &etag)]).await;
    assert_eq!(again.status, 304);
    assert!(again.body.is_empty());
    assert_eq!(o.count("/fresh"), 1);
}

#[tokio::test]
async fn vary_on_accept_encoding_keeps_one_variant_per_encoding() {
    let (o, _, addr) = setup("", "").await;
    let gz = get(addr, "/vary", &[("accept-encoding", "gzip")]).await;
    let plain = get(addr, "/vary", &[]).await;
    assert!(gz.text().starts_with("gzip:"));
    assert!(!plain.text().starts_with("gzip:"));
    assert_eq!(plain.x_cache(), "Miss from flotilla");
    assert_eq!(
        get(addr, "/vary", &[("accept-encoding", "gzip, deflate")])
            .await
            .text(),
        gz.text()
    );
    assert_eq!(get(addr, "/vary", &[]).await.text(), plain.text());
    assert_eq!(o.count("/vary"), 2);
}

#[tokio::test]
async fn no_store_and_private_answers_are_never_stored() {
    let (o, _, addr) = setup("", "").await;
    for path in ["/no-store", "/private"] {
        for _ in 0..3 {
            let g = get(addr, path, &[]).await;
            assert_eq!((g.status, g.x_cache()), (200, "Miss from flotilla"));
        }
        assert_eq!(o.count(path), 3, "{path}");
    }
}

#[tokio::test]
async fn an_invalidation_removes_matching_objects_only() {
    let (o, edge, addr) = setup("", "").await;
    get(addr, "/fresh", &[]).await;
    get(addr, "/text", &[]).await;
    let inv = edge.invalidate(vec!["/fre*".into()]).unwrap();
    assert_eq!((inv.status, inv.objects), ("Completed", 1));
    assert_eq!(
        get(addr, "/fresh", &[]).await.x_cache(),
        "Miss from flotilla"
    );
    assert_eq!(get(addr, "/text", &[]).await.x_cache(), "Hit from flotilla");
    assert_eq!((o.count("/fresh"), o.count("/text")), (2, 1));
    assert!(edge.invalidate(vec!["no-slash".into()]).is_err());
    assert_eq!(edge.invalidations().len(), 1);
}

#[tokio::test]
async fn stale_while_revalidate_serves_stale_and_refreshes_in_the_background() {
    let (o, _, addr) = setup("", "").await;
    get(addr, "/swr", &[]).await;
    let second = get(addr, "/swr", &[]).await;
    assert_eq!(second.x_cache(), "RefreshHit from flotilla");
    eventually(|| o.count("/swr") == 2).await;
}

#[tokio::test]
async fn stale_if_error_serves_the_stale_copy_while_the_origin_fails() {
    let (o, _, addr) = setup("", "").await;
    let first = get(addr, "/sie", &[]).await;
    o.failing.store(true, Ordering::SeqCst);
    let during = get(addr, "/sie", &[]).await;
    assert_eq!(during.status, 200);
    assert_eq!(during.body, first.body);
    assert_eq!(during.x_cache(), "RefreshHit from flotilla");
    // Without a stale copy the error reaches the viewer.
    let err = get(addr, "/fresh", &[]).await;
    assert_eq!((err.status, err.x_cache()), (503, "Error from flotilla"));
    assert_eq!(o.count("/sie"), 2);
}

#[tokio::test]
async fn an_unreachable_origin_is_a_502_error() {
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let (_, addr) = start_edge(dead, "", "").await;
    let g = get(addr, "/x", &[]).await;
    assert_eq!((g.status, g.x_cache()), (502, "Error from flotilla"));
}

#[tokio::test]
async fn ranges_are_served_from_the_cached_object() {
    let (o, _, addr) = setup("", "").await;
    get(addr, "/big", &[]).await;
    let part = get(addr, "/big", &[("range", "bytes=10-19")]).await;
    assert_eq!(part.status, 206);
    assert_eq!(part.text(), "0123456789");
    assert_eq!(
        part.headers.get("content-range").unwrap(),
        "bytes 10-19/100000"
    );
    let tail = get(addr, "/big", &[("range", "bytes=-5")]).await;
    assert_eq!(tail.text(), "56789");
    assert_eq!(
        get(addr, "/big", &[("range", "bytes=100000-")])
            .await
            .status,
        416
    );
    assert_eq!(o.count("/big"), 1);
}

#[tokio::test]
async fn compression_stores_one_object_per_encoding() {
    use std::io::Read;
    let (o, _, addr) = setup("compress = true", "").await;
    let gz = get(addr, "/text", &[("accept-encoding", "gzip")]).await;
    assert_eq!(gz.headers.get("content-encoding").unwrap(), "gzip");
    let mut out = String::new();
    flate2::read::GzDecoder::new(&gz.body[..])
        .read_to_string(&mut out)
        .unwrap();
    assert_eq!(out, "<p>hello edge</p>".repeat(200));
    let br = get(addr, "/text", &[("accept-encoding", "br, gzip")]).await;
    assert_eq!(br.headers.get("content-encoding").unwrap(), "br");
    let plain = get(addr, "/text", &[]).await;
    assert!(plain.headers.get("content-encoding").is_none());
    assert_eq!(plain.body.len(), out.len());
    assert_eq!(
        get(addr, "/text", &[("accept-encoding", "gzip")])
            .await
            .x_cache(),
        "Hit from flotilla"
    );
    assert_eq!(o.count("/text"), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_misses_on_one_key_make_one_origin_request() {
    let (o, edge, addr) = setup("", "").await;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..1000 {
        tasks.spawn(async move { get(addr, "/slow", &[]).await });
    }
    let mut ok = 0;
    while let Some(r) = tasks.join_next().await {
        let g = r.unwrap();
        assert_eq!(g.status, 200);
        ok += 1;
    }
    assert_eq!(ok, 1000);
    assert_eq!(o.count("/slow"), 1);
    let s = edge.stats.snapshot();
    assert_eq!(s.hits + s.misses, 1000);
    assert_eq!(s.origin_requests, 1);
}

#[tokio::test]
async fn unkeyed_headers_cannot_poison_the_cache() {
    let (o, _, addr) = setup("", "").await;
    let poisoned = get(
        addr,
        "/reflect",
        &[
            ("x-forwarded-host", "evil.test"),
            ("x-original-url", "/admin"),
            ("x-rewrite-url", "/admin"),
        ],
    )
    .await;
    // The origin never saw the unkeyed headers, so nothing of them was stored.
    assert_eq!(poisoned.text(), "host=cdn.example.test xfh=- xou=-");
    let victim = get(addr, "/reflect", &[]).await;
    assert_eq!(victim.x_cache(), "Hit from flotilla");
    assert_eq!(victim.text(), "host=cdn.example.test xfh=- xou=-");
    let seen = o.seen.lock().unwrap();
    assert!(seen
        .iter()
        .all(|(_, h)| !h.contains_key("x-forwarded-host") && !h.contains_key("x-original-url")));
}

#[tokio::test]
async fn answers_past_max_object_size_pass_through_uncached() {
    let (o, edge, addr) = setup("", "max_object_size = \"100KiB\"\ncache_size = \"1MiB\"").await;
    let huge = get(addr, "/huge", &[]).await;
    assert_eq!(huge.body.len(), 300_000, "the viewer still gets all of it");
    get(addr, "/huge", &[]).await;
    assert_eq!(o.count("/huge"), 2);
    assert!(edge.cached().0 < 100_000);
}

#[tokio::test]
async fn an_endless_answer_is_relayed_but_never_cached() {
    use http_body_util::BodyExt;
    let (o, edge, addr) = setup("", "max_object_size = \"64KiB\"\ncache_size = \"1MiB\"").await;
    let req = http::Request::builder()
        .uri(format!("http://{addr}/endless"))
        .header("host", "x")
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .unwrap();
    let resp = client().request(req).await.unwrap();
    let mut body = resp.into_body();
    let mut got = 0usize;
    while got < 1_000_000 {
        let frame = tokio::time::timeout(std::time::Duration::from_secs(20), body.frame())
            .await
            .expect("hang guard")
            .unwrap()
            .unwrap();
        got += frame.into_data().map(|d| d.len()).unwrap_or(0);
    }
    drop(body);
    assert!(got >= 1_000_000);
    assert!(edge.cached().0 < 64 * 1024);
    assert_eq!(o.count("/endless"), 1);
}

#[tokio::test]
async fn the_cache_stays_within_its_byte_cap() {
    let key = "cache_key = { query_strings = \"all\" }";
    let (o, edge, addr) = setup(key, "max_object_size = \"120KiB\"\ncache_size = \"512KiB\"").await;
    for i in 0..30 {
        get(addr, &format!("/big?i={i}"), &[]).await;
    }
    assert_eq!(o.count("/big"), 30, "every query string is its own object");
    assert!(edge.cached().0 <= 512 * 1024, "{}", edge.cached().0);
    assert!(edge.cached().1 < 30, "older objects were evicted");
}

#[tokio::test]
async fn viewer_protocol_and_methods_are_enforced() {
    let (o, _, addr) = setup("viewer_protocol_policy = \"https-only\"", "").await;
    assert_eq!(get(addr, "/fresh", &[]).await.status, 403);
    let (_, _, addr) = setup("viewer_protocol_policy = \"redirect-to-https\"", "").await;
    let r = get(addr, "/fresh?a=1", &[]).await;
    assert_eq!(r.status, 301);
    assert_eq!(
        r.headers.get("location").unwrap(),
        "https://cdn.example.test/fresh?a=1"
    );
    let (_, _, addr) = setup("", "").await;
    let req = http::Request::builder()
        .method("POST")
        .uri(format!("http://{addr}/fresh"))
        .header("host", "x")
        .body(http_body_util::Full::new(bytes::Bytes::from("x")))
        .unwrap();
    assert_eq!(client().request(req).await.unwrap().status(), 403);
    assert_eq!(o.count("/fresh"), 0);
}
