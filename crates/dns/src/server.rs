//! The DNS server: hickory-server's `ServerFuture` reads and writes the wire format (UDP and
//! TCP, truncation, malformed messages answered FORMERR or dropped) and hands each decoded
//! query to [`Handler`], which checks what it may answer, calls the pure [`crate::answer`]
//! and writes the records back.

use std::cell::Cell;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use hickory_proto::op::{Edns, Header, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::opt::{ClientSubnet, EdnsCode, EdnsOption};
use hickory_proto::rr::{DNSClass, RecordType as WireType};
use hickory_server::authority::MessageResponseBuilder;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::ServerFuture;

use crate::alias::AliasSource;
use crate::answer::{answer, Context, Outcome, QType};
use crate::health::HealthChecks;
use crate::policy::XorShift;
use crate::wire::to_record;
use crate::zones::ZoneSet;
use flotilla_config::dns::RecordType;

/// Largest UDP answer offered to EDNS clients (the DNS flag day 2020 value).
pub(crate) const EDNS_PAYLOAD: u16 = 1232;
/// How long a TCP connection may stay without a query.
const TCP_TIMEOUT: Duration = Duration::from_secs(10);

/// Answers by response code, for metrics.
#[derive(Debug, Default)]
pub struct DnsStats {
    /// NOERROR answers with data.
    pub answered: AtomicU64,
    /// NOERROR without data, and NXDOMAIN.
    pub negative: AtomicU64,
    /// REFUSED (names outside the hosted zones).
    pub refused: AtomicU64,
    /// FORMERR and NOTIMP sent by the handler.
    pub errors: AtomicU64,
}

/// What the server reads on every query: swapped whole on reload, API change or health
/// change, so a query takes no lock.
pub struct DnsState {
    /// The hosted zones.
    pub zones: ArcSwap<ZoneSet>,
    /// Health checks (the runner updates them; queries read a copy of the verdicts).
    pub health: ArcSwap<HealthVerdicts>,
    /// Where alias targets' addresses come from.
    pub aliases: Arc<dyn AliasSource>,
    /// Counters.
    pub stats: DnsStats,
}

/// The verdict of every health check at one moment.
#[derive(Debug, Default, Clone)]
pub struct HealthVerdicts(pub std::collections::HashMap<String, bool>);

impl HealthVerdicts {
    /// The verdicts of `checks` now.
    pub fn of(checks: &HealthChecks) -> Self {
        HealthVerdicts(
            checks
                .statuses()
                .into_iter()
                .map(|s| (s.name, s.healthy))
                .collect(),
        )
    }
}

impl crate::answer::HealthView for HealthVerdicts {
    fn healthy(&self, check: &str) -> bool {
        self.0.get(check).copied().unwrap_or(true)
    }
}

/// The server's request handler.
pub struct Handler(pub Arc<DnsState>);

thread_local! {
    static RNG: Cell<u64> = Cell::new(seed());
}

fn seed() -> u64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64);
    t ^ (&t as *const u64 as u64)
}

impl Handler {
    /// A handler of its own over `zones`: no health verdicts (every check passes), no alias
    /// targets, counters nobody reads. Answers made outside the server — the kept answers,
    /// their tests and fuzzing — go through the full path with it, unseen by the server's
    /// counters.
    pub(crate) fn detached(zones: Arc<ZoneSet>) -> Handler {
        Handler(Arc::new(DnsState {
            zones: ArcSwap::new(zones),
            health: ArcSwap::from_pointee(HealthVerdicts::default()),
            aliases: Arc::new(crate::alias::AliasTable::default()),
            stats: DnsStats::default(),
        }))
    }

    /// Counts an error answer made outside the handler (FORMERR for an undecodable body).
    pub(crate) fn count_error(&self) {
        self.0.stats.errors.fetch_add(1, Ordering::Relaxed);
    }

    /// The answer to a decoded request, decided without awaiting anything: a refusal code,
    /// or the outcome and the client subnet to echo.
    fn decide(&self, request: &Request) -> Result<(Outcome, Option<(IpAddr, u8)>), ResponseCode> {
        if let Some(code) = check_request(request) {
            return Err(code);
        }
        let query = request.queries().first().ok_or(ResponseCode::FormErr)?;
        // ASCII as on the wire (hosted names are ASCII; punycode labels stay punycode),
        // lowercase, without the root's dot: one allocation.
        let mut qname = query.name().to_ascii();
        if qname.ends_with('.') {
            qname.pop();
        }
        qname.make_ascii_lowercase();
        let (client, subnet) = client_of(request);
        let zones = self.0.zones.load();
        let health = self.0.health.load();
        let mut rng = XorShift(RNG.with(|r| {
            let v = r.get().wrapping_add(0x9E37_79B9_7F4A_7C15);
            r.set(v);
            v
        }));
        let mut cx = Context {
            health: &**health,
            aliases: &*self.0.aliases,
            client: Some(client),
            rng: &mut rng,
        };
        Ok((
            answer(&zones, &qname, qtype_of(query.query_type()), &mut cx),
            subnet,
        ))
    }
}

#[async_trait::async_trait]
impl RequestHandler for Handler {
    async fn handle_request<R: ResponseHandler>(
        &self,
        request: &Request,
        mut rh: R,
    ) -> ResponseInfo {
        let mut header = Header::response_from_request(request.header());
        header.set_recursion_available(false);
        let mut builder = MessageResponseBuilder::from_message_request(request);
        let (outcome, subnet) = match self.decide(request) {
            Ok(d) => d,
            Err(code) => {
                self.0.stats.errors.fetch_add(1, Ordering::Relaxed);
                header.set_response_code(code);
                return send(&mut rh, builder.build_no_records(header), header).await;
            }
        };
        if request.edns().is_some() {
            let mut out = Edns::new();
            out.set_max_payload(EDNS_PAYLOAD);
            if let Some(s) = subnet {
                // RFC 7871 §7.2.1: echo the option; the answer holds for the whole subnet.
                out.options_mut()
                    .insert(EdnsOption::Subnet(ClientSubnet::new(s.0, s.1, s.1)));
            }
            builder.edns(out);
        }
        match outcome {
            Outcome::Refused => {
                self.0.stats.refused.fetch_add(1, Ordering::Relaxed);
                header.set_response_code(ResponseCode::Refused);
                send(&mut rh, builder.build_no_records(header), header).await
            }
            Outcome::Answer {
                answers,
                authority,
                nxdomain,
            } => {
                header.set_authoritative(true);
                let stat = if answers.is_empty() {
                    &self.0.stats.negative
                } else {
                    &self.0.stats.answered
                };
                stat.fetch_add(1, Ordering::Relaxed);
                if nxdomain {
                    header.set_response_code(ResponseCode::NXDomain);
                }
                let answers: Vec<_> = answers.iter().filter_map(to_record).collect();
                let soa: Vec<_> = authority.iter().filter_map(to_record).collect();
                let response =
                    builder.build(header, answers.iter(), [].iter(), soa.iter(), [].iter());
                send(&mut rh, response, header).await
            }
        }
    }
}

/// What the handler refuses before looking at the zones: not a query (NOTIMP), not exactly
/// one question (FORMERR), a class other than IN (NOTIMP), zone transfers (REFUSED: not
/// offered).
fn check_request(request: &Request) -> Option<ResponseCode> {
    if request.message_type() != MessageType::Query || request.op_code() != OpCode::Query {
        return Some(ResponseCode::NotImp);
    }
    let queries = request.queries();
    if queries.len() != 1 {
        return Some(ResponseCode::FormErr);
    }
    let q = &queries[0];
    if q.query_class() != DNSClass::IN {
        return Some(ResponseCode::NotImp);
    }
    if matches!(q.query_type(), WireType::AXFR | WireType::IXFR) {
        return Some(ResponseCode::Refused);
    }
    None
}

async fn send<'a, R: ResponseHandler>(
    rh: &mut R,
    response: hickory_server::authority::MessageResponse<
        '_,
        'a,
        impl Iterator<Item = &'a hickory_proto::rr::Record> + Send + 'a,
        impl Iterator<Item = &'a hickory_proto::rr::Record> + Send + 'a,
        impl Iterator<Item = &'a hickory_proto::rr::Record> + Send + 'a,
        impl Iterator<Item = &'a hickory_proto::rr::Record> + Send + 'a,
    >,
    header: Header,
) -> ResponseInfo {
    match rh.send_response(response).await {
        Ok(info) => info,
        Err(e) => {
            tracing::debug!(error = %e, "dns answer not sent");
            let mut h = header;
            h.set_response_code(ResponseCode::ServFail);
            h.into()
        }
    }
}

/// The address that locates the client: its EDNS client subnet when present (with the
/// subnet's source prefix), else the resolver's source address.
fn client_of(request: &Request) -> (IpAddr, Option<(IpAddr, u8)>) {
    let subnet = request
        .edns()
        .and_then(|e| e.option(EdnsCode::Subnet))
        .and_then(|o| match o {
            EdnsOption::Subnet(s) => Some((s.addr(), s.source_prefix())),
            _ => None,
        });
    match subnet {
        Some((ip, prefix)) => (ip, Some((ip, prefix))),
        None => (request.src().ip(), None),
    }
}

fn qtype_of(t: WireType) -> QType {
    match t {
        WireType::A => QType::Record(RecordType::A),
        WireType::AAAA => QType::Record(RecordType::Aaaa),
        WireType::CNAME => QType::Record(RecordType::Cname),
        WireType::TXT => QType::Record(RecordType::Txt),
        WireType::MX => QType::Record(RecordType::Mx),
        WireType::SRV => QType::Record(RecordType::Srv),
        WireType::NS => QType::Ns,
        WireType::SOA => QType::Soa,
        _ => QType::Other,
    }
}

/// The server's sockets, bound before anything starts (a taken port fails the start).
pub struct BoundDns {
    udp: tokio::net::UdpSocket,
    tcp: tokio::net::TcpListener,
}

impl BoundDns {
    /// Binds UDP and TCP on `addr` (port 0: TCP takes the port UDP got).
    pub async fn bind(addr: SocketAddr) -> std::io::Result<BoundDns> {
        let udp = tokio::net::UdpSocket::bind(addr).await?;
        let tcp = tokio::net::TcpListener::bind(udp.local_addr()?).await?;
        Ok(BoundDns { udp, tcp })
    }

    /// Serves on sockets bound elsewhere — a hot upgrade's predecessor hands its own over, so
    /// no query finds the port closed. Call inside a tokio runtime.
    pub fn from_std(
        udp: std::net::UdpSocket,
        tcp: std::net::TcpListener,
    ) -> std::io::Result<BoundDns> {
        udp.set_nonblocking(true)?;
        tcp.set_nonblocking(true)?;
        Ok(BoundDns {
            udp: tokio::net::UdpSocket::from_std(udp)?,
            tcp: tokio::net::TcpListener::from_std(tcp)?,
        })
    }

    /// Duplicates of the UDP and TCP sockets, kept to hand over in a hot upgrade (the
    /// server's own are closed when it stops; the duplicates keep the sockets open).
    pub fn duplicate(&self) -> std::io::Result<(OwnedFd, OwnedFd)> {
        Ok((
            self.udp.as_fd().try_clone_to_owned()?,
            self.tcp.as_fd().try_clone_to_owned()?,
        ))
    }

    /// The address both sockets are bound to.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.udp.local_addr()
    }

    /// Starts serving (UDP in Flotilla's batched loop, [`crate::udp`]; TCP by hickory's
    /// server); the future returned by [`DnsServer::stop`] ends it.
    pub fn serve(self, state: Arc<DnsState>) -> DnsServer {
        let mut server = ServerFuture::new(Handler(Arc::clone(&state)));
        server.register_listener(self.tcp, TCP_TIMEOUT);
        let udp = tokio::spawn(crate::udp::serve(self.udp, Arc::new(Handler(state))));
        DnsServer { server, udp }
    }
}

/// A running server.
pub struct DnsServer {
    server: ServerFuture<Handler>,
    udp: tokio::task::JoinHandle<()>,
}

impl DnsServer {
    /// Stops answering.
    pub async fn stop(mut self) {
        self.udp.abort();
        let _ = (&mut self.udp).await;
        if let Err(e) = self.server.shutdown_gracefully().await {
            tracing::debug!(error = %e, "dns server stopped with an error");
        }
    }
}
