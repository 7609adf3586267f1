//! The UDP side of the server, batched: up to [`BATCH`] queries read with one `recvmmsg`,
//! each decoded by hickory and answered by the same [`Handler`] as TCP into a reused buffer,
//! and all the answers written with one `sendmmsg` — where hickory's own UDP loop makes a
//! `recvfrom`, a spawned task and a `sendto` per query, which cost Flotilla about 1.5× the
//! CPU per answer of Knot and NSD (docs/benchmarks.md).
//!
//! Bad input keeps hickory's rules: a datagram too short for a header, a response (no
//! reflection), one cut off by the buffer (oversized) or from an address that cannot be
//! answered is dropped; one whose header decodes but whose body does not gets FORMERR; the
//! handler answers the rest (NOTIMP, FORMERR, REFUSED included).

use std::io::{self, IoSlice, IoSliceMut};
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use hickory_proto::op::{Header, MessageType, ResponseCode};
use hickory_proto::rr::Record;
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder, BinEncodable, BinEncoder};
use hickory_proto::xfer::Protocol;
use hickory_proto::ProtoErrorKind;
use hickory_server::authority::{MessageRequest, MessageResponse};
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use nix::sys::socket::{
    recvmmsg, sendmmsg, ControlMessage, MsgFlags, MultiHeaders, SockaddrStorage,
};
use tokio::io::Interest;
use tokio::net::UdpSocket;

use crate::fast::FastAnswers;
use crate::server::Handler;

/// Queries read (and answers written) per system call.
pub const BATCH: usize = 32;
/// The largest query read; longer datagrams are cut off and dropped (hickory's limit too).
const RECV: usize = 4096;
/// The answer size without EDNS (hickory's: its receive buffer).
pub(crate) const NO_EDNS_MAX: u16 = 4096;

/// Where the handler's answer to one query is written (the [`ResponseHandler`] the UDP
/// path gives it): a buffer kept from batch to batch.
#[derive(Clone, Default)]
pub(crate) struct Reply(Arc<Mutex<Vec<u8>>>);

impl Reply {
    pub(crate) fn buf(&self) -> std::sync::MutexGuard<'_, Vec<u8>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait::async_trait]
impl ResponseHandler for Reply {
    async fn send_response<'a>(
        &mut self,
        response: MessageResponse<
            '_,
            'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
        >,
    ) -> io::Result<ResponseInfo> {
        let id = response.header().id();
        let max = response
            .get_edns()
            .as_ref()
            .map_or(NO_EDNS_MAX, |e| e.max_payload());
        let mut buf = self.buf();
        buf.clear();
        let mut encoder = BinEncoder::new(&mut buf);
        encoder.set_max_size(max);
        match response.destructive_emit(&mut encoder) {
            Ok(info) => Ok(info),
            Err(e) => {
                tracing::debug!(error = %e, "dns answer not encoded: SERVFAIL");
                let mut h = Header::new();
                h.set_id(id);
                h.set_message_type(MessageType::Response);
                h.set_response_code(ResponseCode::ServFail);
                write_header(&mut buf, &h);
                Ok(h.into())
            }
        }
    }
}

fn write_header(buf: &mut Vec<u8>, h: &Header) {
    buf.clear();
    let mut encoder = BinEncoder::new(buf);
    if h.emit(&mut encoder).is_err() {
        buf.clear();
    }
}

/// Answers one datagram from `src` into `reply`; false when it gets no answer.
pub(crate) async fn answer_datagram(
    handler: &Handler,
    query: &[u8],
    src: SocketAddr,
    reply: &Reply,
) -> bool {
    reply.buf().clear();
    if !answerable(src) {
        return false;
    }
    let mut decoder = BinDecoder::new(query);
    match MessageRequest::read(&mut decoder) {
        Ok(message) if message.message_type() == MessageType::Response => false,
        Ok(message) => {
            let request = Request::new(message, src, Protocol::Udp);
            handler.handle_request(&request, reply.clone()).await;
            !reply.buf().is_empty()
        }
        Err(e) => match e.kind() {
            ProtoErrorKind::FormError { header, .. }
                if header.message_type() == MessageType::Query =>
            {
                let mut h = Header::response_from_request(header);
                h.set_response_code(ResponseCode::FormErr);
                write_header(&mut reply.buf(), &h);
                handler.count_error();
                true
            }
            _ => false,
        },
    }
}

/// Answers one datagram from `src` with a kept answer ([`crate::fast`]); false (and the
/// full path's turn) when there is none.
pub(crate) fn answer_fast(
    handler: &Handler,
    fast: &FastAnswers,
    query: &[u8],
    src: SocketAddr,
    reply: &Reply,
) -> bool {
    if !answerable(src) {
        return false;
    }
    let stats = &handler.0.stats;
    match fast.answer(query, &mut reply.buf()) {
        Some(true) => stats.answered.fetch_add(1, Ordering::Relaxed),
        Some(false) => stats.negative.fetch_add(1, Ordering::Relaxed),
        None => return false,
    };
    true
}

/// hickory's rule: never answer port 0, an unspecified or a broadcast address.
fn answerable(src: SocketAddr) -> bool {
    src.port() != 0
        && !src.ip().is_unspecified()
        && !matches!(src.ip(), std::net::IpAddr::V4(v4) if v4.is_broadcast())
}

/// One batch's buffers, kept for the server's life.
struct Batch {
    bufs: Box<[[u8; RECV]; BATCH]>,
    got: [(usize, Option<SocketAddr>); BATCH],
    replies: [Reply; BATCH],
    to: [Option<SockaddrStorage>; BATCH],
}

impl Batch {
    fn new() -> Batch {
        Batch {
            bufs: vec![[0u8; RECV]; BATCH]
                .into_boxed_slice()
                .try_into()
                .unwrap_or_else(|_| unreachable!("BATCH buffers")),
            got: [(0, None); BATCH],
            replies: std::array::from_fn(|_| Reply::default()),
            to: [None; BATCH],
        }
    }

    /// Reads what is waiting (up to [`BATCH`]); returns how many.
    fn receive(&mut self, socket: &UdpSocket) -> io::Result<usize> {
        let mut iovs: [[IoSliceMut<'_>; 1]; BATCH] =
            self.bufs.each_mut().map(|b| [IoSliceMut::new(b)]);
        let got = &mut self.got;
        let mut headers = MultiHeaders::<SockaddrStorage>::preallocate(BATCH, None);
        socket.try_io(Interest::READABLE, || {
            let msgs = recvmmsg(
                socket.as_raw_fd(),
                &mut headers,
                iovs.iter_mut(),
                MsgFlags::MSG_DONTWAIT,
                None,
            )?;
            let mut n = 0;
            for m in msgs {
                let cut = m.flags.contains(MsgFlags::MSG_TRUNC);
                let src = m.address.and_then(|a: SockaddrStorage| to_std(&a));
                got[n] = (if cut { 0 } else { m.bytes }, src);
                n += 1;
            }
            Ok(n)
        })
    }

    /// Sends the answers `which` (indices into the batch), waiting while the socket is full.
    async fn send(&mut self, socket: &UdpSocket, which: &[usize]) -> io::Result<()> {
        let mut at = 0;
        while at < which.len() {
            match self.try_send(socket, &which[at..]) {
                Ok(n) => at += n.max(1),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => socket.writable().await?,
                Err(e) => {
                    // This datagram cannot go (e.g. its address): drop it, send the rest.
                    tracing::debug!(error = %e, "dns answer not sent");
                    at += 1;
                }
            }
        }
        Ok(())
    }

    /// One `sendmmsg` of the answers `which`; returns how many went.
    fn try_send(&mut self, socket: &UdpSocket, which: &[usize]) -> io::Result<usize> {
        for (k, &i) in which.iter().enumerate() {
            self.to[k] = self.got[i].1.map(SockaddrStorage::from);
        }
        let held: Vec<_> = which.iter().map(|&i| self.replies[i].buf()).collect();
        let slices: Vec<[IoSlice<'_>; 1]> = held.iter().map(|b| [IoSlice::new(b)]).collect();
        // The system call's headers hold raw pointers (not `Send`): made per call, never
        // kept across an await.
        let mut headers = MultiHeaders::<SockaddrStorage>::preallocate(BATCH, None);
        socket.try_io(Interest::WRITABLE, || {
            let sent = sendmmsg(
                socket.as_raw_fd(),
                &mut headers,
                slices.iter(),
                &self.to[..which.len()],
                [] as [ControlMessage<'_>; 0],
                MsgFlags::MSG_DONTWAIT,
            )?;
            Ok(sent.count())
        })
    }
}

fn to_std(a: &SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = a.as_sockaddr_in() {
        return Some(SocketAddr::V4((*v4).into()));
    }
    a.as_sockaddr_in6().map(|v6| SocketAddr::V6((*v6).into()))
}

/// Serves UDP queries on `socket` until the task is dropped.
pub(crate) async fn serve(socket: UdpSocket, handler: Arc<Handler>) {
    let mut batch = Batch::new();
    let mut answered = Vec::with_capacity(BATCH);
    let mut fast = FastAnswers::empty();
    loop {
        if let Err(e) = socket.readable().await {
            tracing::warn!(error = %e, "dns udp socket failed");
            return;
        }
        let n = match batch.receive(&socket) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => {
                tracing::debug!(error = %e, "dns udp receive failed");
                continue;
            }
        };
        let zones = handler.0.zones.load_full();
        if !fast.is_of(&zones) {
            // A new snapshot (start, reload, API change): its fixed answers encoded once.
            fast = FastAnswers::build(zones).await;
            tracing::debug!(kept = fast.len(), "dns answers kept encoded");
        }
        answered.clear();
        for i in 0..n {
            let (len, src) = batch.got[i];
            let Some(src) = src.filter(|_| len > 0) else {
                continue;
            };
            let query = &batch.bufs[i][..len];
            if answer_fast(&handler, &fast, query, src, &batch.replies[i])
                || answer_datagram(&handler, query, src, &batch.replies[i]).await
            {
                answered.push(i);
            }
        }
        if let Err(e) = batch.send(&socket, &answered).await {
            tracing::warn!(error = %e, "dns udp socket failed");
            return;
        }
    }
}
