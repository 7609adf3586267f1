//! Tracing spans of the data plane: one per client connection and one per request (each
//! HTTP/2 stream), with their fields as values, the requests inside their connection's span.

mod common;

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use common::*;
use flotilla_proxy::RouteState::Healthy;
use http_body_util::Empty;
use hyper::Request;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

/// A span as recorded: its name, fields and parent.
#[derive(Debug, Clone)]
struct Seen {
    name: &'static str,
    fields: BTreeMap<&'static str, String>,
    parent: Option<u64>,
}

/// A subscriber that keeps the spans of the data plane's target (`flotilla::span`) and
/// tracks which span is entered, to know each new span's parent.
#[derive(Default, Clone)]
struct Recorder {
    spans: Arc<Mutex<BTreeMap<u64, Seen>>>,
    stack: Arc<Mutex<Vec<u64>>>,
    next: Arc<Mutex<u64>>,
}

struct Fields<'a>(&'a mut BTreeMap<&'static str, String>);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn Debug) {
        self.0.insert(field.name(), format!("{value:?}"));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name(), value.to_string());
    }
}

impl Subscriber for Recorder {
    fn enabled(&self, meta: &Metadata<'_>) -> bool {
        meta.target() == "flotilla::span"
    }
    fn new_span(&self, attrs: &Attributes<'_>) -> Id {
        let mut next = self.next.lock().unwrap();
        *next += 1;
        let mut fields = BTreeMap::new();
        attrs.record(&mut Fields(&mut fields));
        let parent = match attrs.parent() {
            Some(p) => Some(p.into_u64()),
            None if attrs.is_contextual() => self.stack.lock().unwrap().last().copied(),
            None => None,
        };
        let seen = Seen {
            name: attrs.metadata().name(),
            fields,
            parent,
        };
        self.spans.lock().unwrap().insert(*next, seen);
        Id::from_u64(*next)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, _: &Event<'_>) {}
    fn enter(&self, span: &Id) {
        self.stack.lock().unwrap().push(span.into_u64());
    }
    fn exit(&self, span: &Id) {
        let mut stack = self.stack.lock().unwrap();
        if let Some(at) = stack.iter().rposition(|&s| s == span.into_u64()) {
            stack.remove(at);
        }
    }
}

impl Recorder {
    fn named(&self, name: &str) -> Vec<(u64, Seen)> {
        let spans = self.spans.lock().unwrap();
        spans
            .iter()
            .filter(|(_, s)| s.name == name)
            .map(|(id, s)| (*id, s.clone()))
            .collect()
    }
}

#[tokio::test]
async fn an_http1_connection_and_each_of_its_requests_get_a_span() {
    let recorder = Recorder::default();
    let _guard = tracing::subscriber::set_default(recorder.clone());
    let backend = TestBackend::start("b1").await;
    let proxy = TestProxy::forward_to(&group_of(&[(backend.addr, Healthy)])).await;
    let mut s = TcpStream::connect(proxy.addr).await.unwrap();
    let mut seen = Vec::new();
    for path in ["/a", "/b?q=1"] {
        let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n");
        s.write_all(req.as_bytes()).await.unwrap();
        let mut buf = [0u8; 4096];
        let n = s.read(&mut buf).await.unwrap();
        seen.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    assert!(
        seen.iter().all(|a| a.starts_with("HTTP/1.1 200")),
        "{seen:?}"
    );
    let conns = recorder.named("conn");
    assert_eq!(conns.len(), 1, "{conns:?}");
    let (conn_id, conn) = &conns[0];
    assert_eq!(conn.fields["client"], s.local_addr().unwrap().to_string());
    assert_eq!(conn.fields["listener"], proxy.addr.to_string());
    assert_eq!(conn.fields["tls"], "false");
    let requests = recorder.named("request");
    let paths: Vec<&str> = requests
        .iter()
        .map(|(_, r)| r.fields["path"].as_str())
        .collect();
    assert_eq!(paths, ["/a", "/b"]);
    for (_, r) in &requests {
        assert_eq!(r.fields["method"], "GET");
        assert_eq!(
            r.parent,
            Some(*conn_id),
            "inside its connection's span: {r:?}"
        );
    }
}

#[tokio::test]
async fn each_http2_stream_gets_a_request_span_inside_its_connections() {
    let recorder = Recorder::default();
    let _guard = tracing::subscriber::set_default(recorder.clone());
    let backend = TestBackend::start("b1").await;
    let proxy = TestProxy::forward_to(&group_of(&[(backend.addr, Healthy)])).await;
    let stream = TcpStream::connect(proxy.addr).await.unwrap();
    let (mut send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    for path in ["/one", "/two"] {
        let req = Request::get(format!("http://{}{path}", proxy.addr))
            .body(Empty::<Bytes>::new())
            .unwrap();
        let resp = send.send_request(req).await.unwrap();
        assert_eq!(resp.status(), 200);
    }
    let conns = recorder.named("conn");
    assert_eq!(conns.len(), 1, "{conns:?}");
    let requests = recorder.named("request");
    let streams: Vec<(&str, &str)> = requests
        .iter()
        .map(|(_, r)| (r.fields["stream"].as_str(), r.fields["path"].as_str()))
        .collect();
    assert_eq!(streams, [("1", "/one"), ("3", "/two")]);
    assert!(requests.iter().all(|(_, r)| r.parent == Some(conns[0].0)));
}
