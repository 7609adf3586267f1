//! Large objects: kept in a memory file and sent by sendfile to plain HTTP/1 viewers (read
//! from the file for HTTP/2), byte for byte the origin's, whole, ranged, HEAD, several
//! answers on one connection; the file goes with its object on eviction and invalidation.

mod common;

use std::sync::Arc;

use bytes::Bytes;
use common::*;
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

const BIG: &str = "max_object_size = \"2MiB\"\ncache_size = \"64MiB\"";

async fn setup(
    dist: &str,
) -> (
    Arc<OriginState>,
    Arc<flotilla_edge::Edge>,
    std::net::SocketAddr,
) {
    let state = Arc::new(OriginState::default());
    let origin = start_origin(Arc::clone(&state)).await;
    let (edge, addr) = start_edge(origin, "cache_key = { query_strings = \"all\" }", dist).await;
    (state, edge, addr)
}

/// One request on `client` (which keeps its connection).
async fn ask(
    client: &Client<
        impl hyper_util::client::legacy::connect::Connect + Clone + Send + Sync + 'static,
        Full<Bytes>,
    >,
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    range: Option<&str>,
) -> Got {
    let headers: Vec<(&str, &str)> = range.map(|r| ("range", r)).into_iter().collect();
    request_on(client, addr, method, path, &headers).await
}

#[tokio::test]
async fn large_hits_come_from_the_memory_file_byte_for_byte_on_one_connection() {
    let (o, edge, addr) = setup(BIG).await;
    let want = blob();
    let c = client();
    let miss = ask(&c, addr, "GET", "/blob", None).await;
    assert_eq!((miss.status, miss.x_cache()), (200, "Miss from flotilla"));
    assert!(miss.body == want, "the miss is the origin's body");
    assert_eq!(
        edge.cached_files(),
        (1, want.len() as u64),
        "the body is in a file"
    );
    // Whole, ranged, HEAD, and a small object, in turn on one
    // connection: each answer's file bytes stay in step with its head.
    for round in 0..3 {
        let hit = ask(&c, addr, "GET", "/blob", None).await;
        assert_eq!((hit.status, hit.x_cache()), (200, "Hit from flotilla"));
        assert!(
            hit.body == want,
            "round {round}: the hit is the origin's body"
        );
        let part = ask(&c, addr, "GET", "/blob", Some("bytes=1000-600000")).await;
        assert_eq!(part.status, 206);
        assert!(part.body == want[1000..=600000], "round {round}: the range");
        assert_eq!(
            part.headers["content-range"],
            format!("bytes 1000-600000/{}", want.len()).as_str()
        );
        let tail = ask(&c, addr, "GET", "/blob", Some("bytes=-70000")).await;
        assert!(
            tail.body == want[want.len() - 70000..],
            "round {round}: the suffix"
        );
        let head = ask(&c, addr, "HEAD", "/blob", None).await;
        assert_eq!(head.status, 200);
        assert_eq!(
            head.headers["content-length"],
            want.len().to_string().as_str()
        );
        assert!(head.body.is_empty(), "HEAD sends no body");
        let small = ask(&c, addr, "GET", "/fresh", None).await;
        assert_eq!(small.status, 200);
    }
    assert_eq!(o.count("/blob"), 1, "every later answer was a hit");
    let per_round = (want.len() + 599_001 + 70_000) as u64;
    assert_eq!(
        edge.sendfile_bytes(),
        want.len() as u64 + 3 * per_round,
        "every large body went by sendfile"
    );
}

#[tokio::test]
async fn an_http2_viewer_gets_the_large_body_read_from_the_file() {
    let (_, edge, addr) = setup(BIG).await;
    let want = blob();
    let h2 = Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http::<Full<Bytes>>();
    ask(&h2, addr, "GET", "/blob", None).await;
    assert_eq!(edge.cached_files().0, 1);
    let hit = ask(&h2, addr, "GET", "/blob", None).await;
    assert_eq!(hit.x_cache(), "Hit from flotilla");
    assert!(hit.body == want);
    let part = ask(&h2, addr, "GET", "/blob", Some("bytes=300000-300009")).await;
    assert!(part.body == want[300000..300010]);
    assert_eq!(edge.sendfile_bytes(), 0, "HTTP/2 reads the file instead");
}

#[tokio::test]
async fn eviction_and_invalidation_close_the_files() {
    // Room for about three 1.5 MiB objects.
    let (o, edge, addr) = setup("max_object_size = \"2MiB\"\ncache_size = \"5MiB\"").await;
    let want = blob();
    for i in 0..8 {
        let g = get(addr, &format!("/blob?i={i}"), &[]).await;
        assert!(g.body == want);
    }
    assert_eq!(o.count("/blob"), 8);
    // Answers sent are dropped; then every file open is an object held.
    eventually(|| edge.cached_files().0 == edge.cached().1 as u64).await;
    let (files, bytes) = edge.cached_files();
    assert!(
        (1..8).contains(&files),
        "evicted objects' files are closed: {files}"
    );
    assert_eq!(bytes, files * want.len() as u64);
    assert!(
        edge.cached().0 <= 5 * 1024 * 1024,
        "the byte cap counts the files"
    );
    let inv = edge.invalidate(vec!["/blob*".into()]).unwrap();
    assert_eq!(inv.objects as u64, files);
    eventually(|| edge.cached_files() == (0, 0)).await;
    let again = get(addr, "/blob?i=7", &[]).await;
    assert_eq!(again.x_cache(), "Miss from flotilla");
    assert!(again.body == want);
}
