//! Network load balancer listeners: flow-hash spreading, stickiness of a connection, PROXY
//! protocol v2 bytes, retry after a refused connect, no targets, idle timeout and draining.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use flotilla_proxy::{
    serve_tcp_with_stats, ListenerStats, RouteState, TargetGroup, TargetUpdate, TcpListenerConfig,
};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

const DEADLINE: Duration = Duration::from_secs(10);

/// A TCP backend that greets every connection with its name and a newline, then echoes.
/// With `record`, it instead stores every byte it receives until the client half-closes.
struct Backend {
    name: String,
    addr: SocketAddr,
    connections: Arc<AtomicUsize>,
    received: Arc<Mutex<Vec<Vec<u8>>>>,
    accept: tokio::task::JoinHandle<()>,
}

impl Backend {
    async fn echo(name: &str) -> Backend {
        Backend::start(name, false).await
    }

    async fn recording(name: &str) -> Backend {
        Backend::start(name, true).await
    }

    async fn start(name: &str, record: bool) -> Backend {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(AtomicUsize::new(0));
        let received = Arc::new(Mutex::new(Vec::new()));
        let (c, r, n) = (connections.clone(), received.clone(), name.to_string());
        let accept = tokio::spawn(async move {
            let mut conns = JoinSet::new();
            loop {
                let Ok((mut s, _)) = listener.accept().await else {
                    return;
                };
                c.fetch_add(1, Ordering::SeqCst);
                let (r, n) = (r.clone(), n.clone());
                conns.spawn(async move {
                    if record {
                        let mut all = Vec::new();
                        let _ = s.read_to_end(&mut all).await;
                        r.lock().unwrap().push(all);
                        return;
                    }
                    if s.write_all(format!("{n}\n").as_bytes()).await.is_err() {
                        return;
                    }
                    let (mut rd, mut wr) = s.split();
                    let _ = tokio::io::copy(&mut rd, &mut wr).await;
                });
            }
        });
        Backend {
            name: name.to_string(),
            addr,
            connections,
            received,
            accept,
        }
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

struct Nlb {
    addr: SocketAddr,
    stats: Arc<ListenerStats>,
    shutdown: watch::Sender<bool>,
    handle: tokio::task::JoinHandle<Result<(), flotilla_proxy::ProxyError>>,
}

async fn nlb(group: &Arc<TargetGroup>, config: TcpListenerConfig) -> Nlb {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stats = Arc::new(ListenerStats::default());
    let (shutdown, rx) = watch::channel(false);
    let handle = tokio::spawn(serve_tcp_with_stats(
        listener,
        group.clone(),
        config,
        stats.clone(),
        rx,
    ));
    Nlb {
        addr,
        stats,
        shutdown,
        handle,
    }
}

fn config() -> TcpListenerConfig {
    TcpListenerConfig {
        idle_timeout: Duration::from_secs(30),
        proxy_protocol_v2: false,
    }
}

fn group(targets: &[(SocketAddr, RouteState)]) -> Arc<TargetGroup> {
    let g = TargetGroup::new("tcp");
    update(&g, targets);
    g
}

fn update(g: &TargetGroup, targets: &[(SocketAddr, RouteState)]) {
    g.update(
        targets
            .iter()
            .map(|(addr, state)| TargetUpdate {
                addr: *addr,
                instance_id: None,
                zone: None,
                state: *state,
            })
            .collect(),
    );
}

/// A client connection through the load balancer, with the greeting line read.
struct Conn {
    reader: BufReader<TcpStream>,
    served_by: String,
}

async fn connect(addr: SocketAddr) -> Conn {
    let s = TcpStream::connect(addr).await.unwrap();
    let mut reader = BufReader::new(s);
    let mut line = String::new();
    tokio::time::timeout(DEADLINE, reader.read_line(&mut line))
        .await
        .expect("greeting in time")
        .expect("greeting");
    Conn {
        reader,
        served_by: line.trim_end().to_string(),
    }
}

impl Conn {
    async fn echo(&mut self, msg: &str) -> String {
        self.reader
            .get_mut()
            .write_all(format!("{msg}\n").as_bytes())
            .await
            .unwrap();
        let mut line = String::new();
        tokio::time::timeout(DEADLINE, self.reader.read_line(&mut line))
            .await
            .expect("echo in time")
            .expect("echo");
        line.trim_end().to_string()
    }

    /// Waits (bounded) until the load balancer closes the connection; true if it did.
    async fn closed(&mut self) -> bool {
        let mut rest = Vec::new();
        matches!(
            tokio::time::timeout(DEADLINE, self.reader.read_to_end(&mut rest)).await,
            Ok(Ok(_))
        )
    }
}

/// Reads until EOF on a fresh connection: what a client sees when the flow is refused.
async fn read_all(addr: SocketAddr) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(DEADLINE, s.read_to_end(&mut out))
        .await
        .expect("the load balancer closes the connection")
        .ok();
    out
}

async fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while !f() {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn flows_spread_over_targets_and_each_connection_sticks() {
    let bs = [
        Backend::echo("a").await,
        Backend::echo("b").await,
        Backend::echo("c").await,
    ];
    let g = group(
        &bs.iter()
            .map(|b| (b.addr, RouteState::Healthy))
            .collect::<Vec<_>>(),
    );
    let lb = nlb(&g, config()).await;

    let mut per_target: BTreeMap<String, usize> = BTreeMap::new();
    for _ in 0..60 {
        let c = connect(lb.addr).await;
        *per_target.entry(c.served_by).or_default() += 1;
    }
    // Each new connection hashes with a fresh nonce: all three targets get flows.
    assert_eq!(per_target.len(), 3, "{per_target:?}");

    // One connection stays on its target for life.
    let mut c = connect(lb.addr).await;
    let before: usize = bs
        .iter()
        .map(|b| b.connections.load(Ordering::SeqCst))
        .sum();
    for i in 0..20 {
        assert_eq!(c.echo(&format!("msg {i}")).await, format!("msg {i}"));
    }
    let after: usize = bs
        .iter()
        .map(|b| b.connections.load(Ordering::SeqCst))
        .sum();
    assert_eq!(
        before, after,
        "no new upstream connection for the same flow"
    );
    assert!(bs.iter().any(|b| b.name == c.served_by));

    let flows: u64 = g.stats().iter().map(|s| s.flows_total).sum();
    assert_eq!(flows, 61);
    let snap = lb.stats.snapshot();
    assert_eq!(snap.new_connections, 61);
    assert!(snap.processed_bytes > 0);
}

#[tokio::test]
async fn proxy_protocol_v2_header_precedes_the_client_bytes() {
    let b = Backend::recording("r").await;
    let g = group(&[(b.addr, RouteState::Healthy)]);
    let lb = nlb(
        &g,
        TcpListenerConfig {
            proxy_protocol_v2: true,
            ..config()
        },
    )
    .await;
    let mut s = TcpStream::connect(lb.addr).await.unwrap();
    let client = s.local_addr().unwrap();
    s.write_all(b"hello").await.unwrap();
    s.shutdown().await.unwrap();
    wait_until("the target got the whole flow", || {
        !b.received.lock().unwrap().is_empty()
    })
    .await;
    let got = b.received.lock().unwrap()[0].clone();

    let mut want = b"\r\n\r\n\0\r\nQUIT\n".to_vec(); // signature
    want.push(0x21); // version 2, command PROXY
    want.push(0x11); // AF_INET, STREAM
    want.extend_from_slice(&12u16.to_be_bytes()); // address block length
    want.extend_from_slice(&[127, 0, 0, 1]); // source: the client
    want.extend_from_slice(&[127, 0, 0, 1]); // destination: the listener
    want.extend_from_slice(&client.port().to_be_bytes());
    want.extend_from_slice(&lb.addr.port().to_be_bytes());
    want.extend_from_slice(b"hello");
    assert_eq!(got, want);
}

#[tokio::test]
async fn without_proxy_protocol_the_target_sees_only_client_bytes() {
    let b = Backend::recording("r").await;
    let g = group(&[(b.addr, RouteState::Healthy)]);
    let lb = nlb(&g, config()).await;
    let mut s = TcpStream::connect(lb.addr).await.unwrap();
    s.write_all(b"hello").await.unwrap();
    s.shutdown().await.unwrap();
    wait_until("the target got the whole flow", || {
        !b.received.lock().unwrap().is_empty()
    })
    .await;
    assert_eq!(b.received.lock().unwrap()[0], b"hello");
}

/// An address nothing listens on (connections are refused).
async fn refusing_addr() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap()
}

#[tokio::test]
async fn a_refused_flow_is_retried_on_another_target_and_the_refuser_ejected() {
    let live = Backend::echo("live").await;
    let dead = refusing_addr().await;
    let g = group(&[
        (dead, RouteState::Healthy),
        (live.addr, RouteState::Healthy),
    ]);
    let lb = nlb(&g, config()).await;
    for _ in 0..20 {
        let c = connect(lb.addr).await;
        assert_eq!(c.served_by, "live");
    }
    let stats = g.stats();
    let dead_stats = stats.iter().find(|s| s.addr == dead).unwrap();
    assert!(dead_stats.errors_total >= 1);
    assert!(
        dead_stats.consecutive_failures >= 1,
        "still failing: ejected with back-off"
    );
    // Ejected after the first refusal, so far fewer refusals than flows.
    assert!(dead_stats.errors_total < 20, "{dead_stats:?}");
    assert_eq!(lb.stats.snapshot().tcp_elb_resets, 0);
}

#[tokio::test]
async fn without_targets_the_connection_is_closed() {
    let g = group(&[]);
    let lb = nlb(&g, config()).await;
    assert!(read_all(lb.addr).await.is_empty());

    // Only refusing targets: closed as well, after trying two of them.
    update(
        &g,
        &[
            (refusing_addr().await, RouteState::Healthy),
            (refusing_addr().await, RouteState::Healthy),
        ],
    );
    assert!(read_all(lb.addr).await.is_empty());
    assert_eq!(lb.stats.snapshot().tcp_elb_resets, 2);
    wait_until("closed connections are no longer active", || {
        lb.stats.snapshot().active_connections == 0
    })
    .await;
}

#[tokio::test]
async fn draining_waits_for_an_open_flow_which_ends_with_the_delay() {
    let b = Backend::echo("a").await;
    let g = group(&[(b.addr, RouteState::Healthy)]);
    let lb = nlb(&g, config()).await;
    let mut c = connect(lb.addr).await;
    assert_eq!(g.in_flight(b.addr), Some(1), "an open flow is in flight");

    // Deregistered: draining. The open flow keeps working; new flows get no target.
    update(&g, &[(b.addr, RouteState::Draining)]);
    assert_eq!(c.echo("still here").await, "still here");
    assert_eq!(g.in_flight(b.addr), Some(1));
    assert!(read_all(lb.addr).await.is_empty());

    // The deregistration delay ends: the target leaves the group and its flow is closed.
    update(&g, &[]);
    assert!(c.closed().await, "flow closed at the end of the delay");
    assert_eq!(b.connections.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn an_idle_flow_is_closed_after_the_idle_timeout() {
    let b = Backend::echo("a").await;
    let g = group(&[(b.addr, RouteState::Healthy)]);
    let lb = nlb(
        &g,
        TcpListenerConfig {
            idle_timeout: Duration::from_millis(300),
            ..config()
        },
    )
    .await;
    let mut c = connect(lb.addr).await;
    assert!(c.closed().await, "idle flow closed");
    wait_until("the flow is no longer in flight", || {
        g.in_flight(b.addr) == Some(0)
    })
    .await;
}

#[tokio::test]
async fn shutdown_waits_for_open_flows() {
    let b = Backend::echo("a").await;
    let g = group(&[(b.addr, RouteState::Healthy)]);
    let lb = nlb(&g, config()).await;
    let mut c = connect(lb.addr).await;
    lb.shutdown.send(true).unwrap();
    // No longer accepting…
    wait_until("listener closed", || {
        std::net::TcpStream::connect(lb.addr).is_err()
    })
    .await;
    // …but the open flow still works, and the listener returns once it ends.
    assert_eq!(c.echo("bye").await, "bye");
    assert!(!lb.handle.is_finished());
    drop(c);
    tokio::time::timeout(DEADLINE, lb.handle)
        .await
        .expect("serve_tcp returns after the last flow")
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn tcp_probe_reports_connect_and_refusal() {
    let b = Backend::echo("a").await;
    assert_eq!(
        flotilla_proxy::probe_tcp(b.addr, Duration::from_secs(2)).await,
        Ok(())
    );
    let dead = refusing_addr().await;
    assert!(matches!(
        flotilla_proxy::probe_tcp(dead, Duration::from_secs(2)).await,
        Err(flotilla_proxy::ProbeError::Connect(_))
    ));
}
