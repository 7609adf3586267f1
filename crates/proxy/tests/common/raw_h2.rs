//! A raw HTTP/2 client: frames written by hand, for what a well-behaved client library will not
//! send, and a reader of the server's frames.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Frame types (RFC 9113 §6).
pub mod kind {
    pub const DATA: u8 = 0x0;
    pub const HEADERS: u8 = 0x1;
    pub const PRIORITY: u8 = 0x2;
    pub const RST_STREAM: u8 = 0x3;
    pub const SETTINGS: u8 = 0x4;
    pub const PUSH_PROMISE: u8 = 0x5;
    pub const PING: u8 = 0x6;
    pub const GOAWAY: u8 = 0x7;
    pub const WINDOW_UPDATE: u8 = 0x8;
    pub const CONTINUATION: u8 = 0x9;
}

/// Frame flags.
pub mod flag {
    pub const END_STREAM: u8 = 0x1;
    pub const ACK: u8 = 0x1;
    pub const END_HEADERS: u8 = 0x4;
    pub const PADDED: u8 = 0x8;
    pub const PRIORITY: u8 = 0x20;
}

/// Error codes (RFC 9113 §7).
pub mod code {
    pub const NO_ERROR: u32 = 0x0;
    pub const PROTOCOL_ERROR: u32 = 0x1;
    pub const INTERNAL_ERROR: u32 = 0x2;
    pub const FLOW_CONTROL_ERROR: u32 = 0x3;
    pub const STREAM_CLOSED: u32 = 0x5;
    pub const FRAME_SIZE_ERROR: u32 = 0x6;
    pub const REFUSED_STREAM: u32 = 0x7;
    pub const CANCEL: u32 = 0x8;
    pub const COMPRESSION_ERROR: u32 = 0x9;
    pub const ENHANCE_YOUR_CALM: u32 = 0xb;
}

/// Settings identifiers.
pub mod setting {
    pub const ENABLE_PUSH: u16 = 0x2;
    pub const INITIAL_WINDOW_SIZE: u16 = 0x4;
    pub const MAX_FRAME_SIZE: u16 = 0x5;
}

pub fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut out = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

pub fn settings(pairs: &[(u16, u32)]) -> Vec<u8> {
    let mut p = Vec::new();
    for (id, v) in pairs {
        p.extend_from_slice(&id.to_be_bytes());
        p.extend_from_slice(&v.to_be_bytes());
    }
    frame(kind::SETTINGS, 0, 0, &p)
}

pub fn window_update(stream: u32, increment: u32) -> Vec<u8> {
    frame(kind::WINDOW_UPDATE, 0, stream, &increment.to_be_bytes())
}

pub fn rst(stream: u32, code: u32) -> Vec<u8> {
    frame(kind::RST_STREAM, 0, stream, &code.to_be_bytes())
}

pub fn ping(data: [u8; 8]) -> Vec<u8> {
    frame(kind::PING, 0, 0, &data)
}

/// An HPACK integer with a `prefix`-bit prefix (RFC 7541 §5.1).
fn int(out: &mut Vec<u8>, first: u8, prefix: u8, mut v: usize) {
    let max = (1usize << prefix) - 1;
    if v < max {
        out.push(first | v as u8);
        return;
    }
    out.push(first | max as u8);
    v -= max;
    while v >= 0x80 {
        out.push((v & 0x7f) as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// A literal header field without indexing, new name (RFC 7541 §6.2.2), no Huffman.
pub fn field(out: &mut Vec<u8>, name: &str, value: &str) {
    out.push(0);
    int(out, 0, 7, name.len());
    out.extend_from_slice(name.as_bytes());
    int(out, 0, 7, value.len());
    out.extend_from_slice(value.as_bytes());
}

/// A literal header field with incremental indexing, new name (RFC 7541 §6.2.1): it enters
/// the dynamic table, at index 62.
pub fn field_indexed(out: &mut Vec<u8>, name: &str, value: &str) {
    out.push(0x40);
    int(out, 0, 7, name.len());
    out.extend_from_slice(name.as_bytes());
    int(out, 0, 7, value.len());
    out.extend_from_slice(value.as_bytes());
}

/// A request header block: `:method`, `:scheme` http, `:authority` a, `:path`, then `extra`.
pub fn request(method: &str, path: &str, extra: &[(&str, &str)]) -> Vec<u8> {
    let mut b = Vec::new();
    field(&mut b, ":method", method);
    field(&mut b, ":scheme", "http");
    field(&mut b, ":authority", "a");
    field(&mut b, ":path", path);
    for (n, v) in extra {
        field(&mut b, n, v);
    }
    b
}

/// A header block of exactly the fields given.
pub fn block(fields: &[(&str, &str)]) -> Vec<u8> {
    let mut b = Vec::new();
    for (n, v) in fields {
        field(&mut b, n, v);
    }
    b
}

/// HEADERS with END_HEADERS (and END_STREAM when `end`).
pub fn headers(stream: u32, block: &[u8], end: bool) -> Vec<u8> {
    let flags = flag::END_HEADERS | if end { flag::END_STREAM } else { 0 };
    frame(kind::HEADERS, flags, stream, block)
}

pub fn data(stream: u32, payload: &[u8], end: bool) -> Vec<u8> {
    frame(
        kind::DATA,
        if end { flag::END_STREAM } else { 0 },
        stream,
        payload,
    )
}

/// A frame the server sent.
#[derive(Debug, Clone)]
pub struct Frame {
    pub kind: u8,
    pub flags: u8,
    pub stream: u32,
    pub payload: Vec<u8>,
}

impl Frame {
    pub fn has(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }

    /// The error code of a RST_STREAM or GOAWAY.
    pub fn code(&self) -> u32 {
        let at = if self.kind == kind::GOAWAY { 4 } else { 0 };
        let p = &self.payload[at..at + 4];
        u32::from_be_bytes([p[0], p[1], p[2], p[3]])
    }

    /// The last stream id of a GOAWAY.
    pub fn last_stream(&self) -> u32 {
        let p = &self.payload;
        u32::from_be_bytes([p[0], p[1], p[2], p[3]]) & 0x7fff_ffff
    }

    /// The `:status` of a response HEADERS, when it is the first field of the block and
    /// coded statically or as a literal (how the proxy's encoder writes a status the first
    /// time): `None` for anything else.
    pub fn status(&self) -> Option<u16> {
        let mut b = &self.payload[..];
        if self.has(flag::PADDED) {
            let pad = usize::from(*b.first()?);
            b = b.get(1..b.len().checked_sub(pad)?)?;
        }
        if self.has(flag::PRIORITY) {
            b = b.get(5..)?;
        }
        // Dynamic table size updates (one byte each as the proxy writes them).
        while b.first().is_some_and(|&x| x & 0xe0 == 0x20) {
            b = &b[1..];
        }
        match *b.first()? {
            0x88 => Some(200),
            0x89 => Some(204),
            0x8a => Some(206),
            0x8b => Some(304),
            0x8c => Some(400),
            0x8d => Some(404),
            0x8e => Some(500),
            // Literal, name `:status` (static index 8), raw value.
            0x48 | 0x08 | 0x18 => {
                let len = usize::from(*b.get(1)?);
                std::str::from_utf8(b.get(2..2 + len)?).ok()?.parse().ok()
            }
            _ => None,
        }
    }
}

/// One client connection speaking raw frames.
pub struct Conn {
    pub s: TcpStream,
    buf: Vec<u8>,
    /// Frames read but not yet returned.
    pending: std::collections::VecDeque<Frame>,
    pub closed: bool,
}

/// What a connection's response on one stream came to.
#[derive(Debug, Default)]
pub struct Answer {
    pub status: Option<u16>,
    pub body: Vec<u8>,
    /// The stream was reset, with this code.
    pub reset: Option<u32>,
    /// END_STREAM was seen.
    pub ended: bool,
}

impl Conn {
    /// Connect and send the preface with an empty SETTINGS.
    pub async fn open(addr: SocketAddr) -> Conn {
        Conn::open_with(addr, &[]).await
    }

    /// Connect and send the preface with these settings.
    pub async fn open_with(addr: SocketAddr, pairs: &[(u16, u32)]) -> Conn {
        let mut c = Conn::connect(addr).await;
        let mut out = PREFACE.to_vec();
        out.extend(settings(pairs));
        c.send(&out).await;
        c
    }

    /// Connect without sending anything.
    pub async fn connect(addr: SocketAddr) -> Conn {
        let s = TcpStream::connect(addr).await.unwrap();
        s.set_nodelay(true).unwrap();
        Conn {
            s,
            buf: Vec::new(),
            pending: Default::default(),
            closed: false,
        }
    }

    /// Write `bytes`; `false` when the server no longer takes them (closed, or 5 s without
    /// progress).
    pub async fn send(&mut self, bytes: &[u8]) -> bool {
        matches!(
            tokio::time::timeout(Duration::from_secs(5), self.s.write_all(bytes)).await,
            Ok(Ok(()))
        )
    }

    /// The next frame, or `None` when the connection closed or nothing came within `wait`.
    pub async fn next(&mut self, wait: Duration) -> Option<Frame> {
        let deadline = Instant::now() + wait;
        loop {
            if let Some(f) = self.pending.pop_front() {
                return Some(f);
            }
            if self.buf.len() >= 9 {
                let len = (usize::from(self.buf[0]) << 16)
                    | (usize::from(self.buf[1]) << 8)
                    | usize::from(self.buf[2]);
                if self.buf.len() >= 9 + len {
                    let f = Frame {
                        kind: self.buf[3],
                        flags: self.buf[4],
                        stream: u32::from_be_bytes([
                            self.buf[5],
                            self.buf[6],
                            self.buf[7],
                            self.buf[8],
                        ]) & 0x7fff_ffff,
                        payload: self.buf[9..9 + len].to_vec(),
                    };
                    self.buf.drain(..9 + len);
                    return Some(f);
                }
            }
            if self.closed {
                return None;
            }
            let mut tmp = [0u8; 16 * 1024];
            match tokio::time::timeout_at(deadline, self.s.read(&mut tmp)).await {
                Ok(Ok(n)) if n > 0 => self.buf.extend_from_slice(&tmp[..n]),
                Ok(_) => self.closed = true,
                Err(_) => return None,
            }
        }
    }

    /// Read frames until one satisfies `pred` (returned) — `None` if the connection closed or
    /// `wait` passed first. Other frames are dropped.
    pub async fn until(
        &mut self,
        wait: Duration,
        mut pred: impl FnMut(&Frame) -> bool,
    ) -> Option<Frame> {
        let deadline = Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let f = self.next(left).await?;
            if pred(&f) {
                return Some(f);
            }
        }
    }

    /// The error code of the GOAWAY the server sends within 5 s.
    pub async fn goaway(&mut self) -> Option<u32> {
        let f = self
            .until(Duration::from_secs(5), |f| f.kind == kind::GOAWAY)
            .await?;
        Some(f.code())
    }

    /// The error code of the RST_STREAM on `stream` within 5 s (`None`: none came, or the
    /// connection ended first).
    pub async fn rst(&mut self, stream: u32) -> Option<u32> {
        let f = self
            .until(Duration::from_secs(5), |f| {
                (f.kind == kind::RST_STREAM && f.stream == stream) || f.kind == kind::GOAWAY
            })
            .await?;
        (f.kind == kind::RST_STREAM).then(|| f.code())
    }

    /// Read the answer on `stream` until it ends, is reset, or 5 s pass. Frames of other
    /// streams are kept for later; a GOAWAY ends the wait.
    pub async fn answer(&mut self, stream: u32) -> Answer {
        let mut a = Answer::default();
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut others = Vec::new();
        while !a.ended && a.reset.is_none() {
            let left = deadline.saturating_duration_since(Instant::now());
            let Some(f) = self.next(left).await else {
                break;
            };
            if f.kind == kind::GOAWAY {
                others.push(f);
                break;
            }
            if f.stream != stream {
                others.push(f);
                continue;
            }
            match f.kind {
                kind::HEADERS => {
                    if a.status.is_none() {
                        a.status = f.status();
                    }
                    a.ended = f.has(flag::END_STREAM);
                }
                kind::DATA => {
                    a.body.extend_from_slice(&f.payload);
                    a.ended = f.has(flag::END_STREAM);
                }
                kind::RST_STREAM => a.reset = Some(f.code()),
                _ => {}
            }
        }
        self.pending.extend(others);
        a
    }

    /// Whether the server closes the connection within `wait` (frames until then are read
    /// and dropped).
    pub async fn closes_within(&mut self, wait: Duration) -> bool {
        let deadline = Instant::now() + wait;
        while !self.closed {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            if self.next(left).await.is_none() && !self.closed {
                return false;
            }
        }
        true
    }
}
