//! HTTP/2 frames (RFC 9113 §4, §6): the nine-byte header, the frame types a server meets, and
//! writers that append frames straight into the connection's output buffer.

/// Length of a frame header.
pub(crate) const HEADER_LEN: usize = 9;

/// The client connection preface (RFC 9113 §3.4).
pub(crate) const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// The largest frame payload every peer must accept; ours too (we advertise no larger one).
pub(crate) const DEFAULT_MAX_FRAME_SIZE: u32 = 16_384;

/// The initial flow-control window (RFC 9113 §6.9.2).
pub(crate) const DEFAULT_WINDOW: u32 = 65_535;

/// The largest flow-control window.
pub(crate) const MAX_WINDOW: u32 = (1 << 31) - 1;

/// Frame types.
pub(crate) mod kind {
    pub(crate) const DATA: u8 = 0x0;
    pub(crate) const HEADERS: u8 = 0x1;
    pub(crate) const PRIORITY: u8 = 0x2;
    pub(crate) const RST_STREAM: u8 = 0x3;
    pub(crate) const SETTINGS: u8 = 0x4;
    pub(crate) const PUSH_PROMISE: u8 = 0x5;
    pub(crate) const PING: u8 = 0x6;
    pub(crate) const GOAWAY: u8 = 0x7;
    pub(crate) const WINDOW_UPDATE: u8 = 0x8;
    pub(crate) const CONTINUATION: u8 = 0x9;
}

/// Frame flags.
pub(crate) mod flag {
    pub(crate) const END_STREAM: u8 = 0x1;
    pub(crate) const ACK: u8 = 0x1;
    pub(crate) const END_HEADERS: u8 = 0x4;
    pub(crate) const PADDED: u8 = 0x8;
    pub(crate) const PRIORITY: u8 = 0x20;
}

/// Settings identifiers (RFC 9113 §6.5.2).
pub(crate) mod setting {
    pub(crate) const HEADER_TABLE_SIZE: u16 = 0x1;
    pub(crate) const ENABLE_PUSH: u16 = 0x2;
    pub(crate) const MAX_CONCURRENT_STREAMS: u16 = 0x3;
    pub(crate) const INITIAL_WINDOW_SIZE: u16 = 0x4;
    pub(crate) const MAX_FRAME_SIZE: u16 = 0x5;
    pub(crate) const MAX_HEADER_LIST_SIZE: u16 = 0x6;
}

/// Error codes (RFC 9113 §7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reason {
    NoError = 0x0,
    ProtocolError = 0x1,
    InternalError = 0x2,
    FlowControlError = 0x3,
    StreamClosed = 0x5,
    FrameSizeError = 0x6,
    RefusedStream = 0x7,
    /// The stream is no longer wanted (its answer waited for window too long).
    Cancel = 0x8,
    CompressionError = 0x9,
    /// The peer is flooding us (too many resets, CONTINUATION frames, a header block too big).
    EnhanceYourCalm = 0xb,
}

/// A frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Head {
    pub(crate) len: usize,
    pub(crate) kind: u8,
    pub(crate) flags: u8,
    pub(crate) stream: u32,
}

impl Head {
    /// Parse the nine bytes at the start of `b` (which has at least [`HEADER_LEN`]).
    pub(crate) fn parse(b: &[u8]) -> Head {
        Head {
            len: (usize::from(b[0]) << 16) | (usize::from(b[1]) << 8) | usize::from(b[2]),
            kind: b[3],
            flags: b[4],
            stream: u32::from_be_bytes([b[5], b[6], b[7], b[8]]) & MAX_WINDOW,
        }
    }

    pub(crate) fn has(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }
}

/// Append a frame header for a payload of `len` bytes.
pub(crate) fn head(out: &mut Vec<u8>, len: usize, kind: u8, flags: u8, stream: u32) {
    // Payloads are split below the peer's frame size, which is below 2^24.
    let len = len as u32;
    out.extend_from_slice(&[(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags]);
    out.extend_from_slice(&(stream & MAX_WINDOW).to_be_bytes());
}

/// Append a SETTINGS frame with `pairs`.
pub(crate) fn settings(out: &mut Vec<u8>, pairs: &[(u16, u32)]) {
    head(out, pairs.len() * 6, kind::SETTINGS, 0, 0);
    for (id, value) in pairs {
        out.extend_from_slice(&id.to_be_bytes());
        out.extend_from_slice(&value.to_be_bytes());
    }
}

/// Append a SETTINGS acknowledgement.
pub(crate) fn settings_ack(out: &mut Vec<u8>) {
    head(out, 0, kind::SETTINGS, flag::ACK, 0);
}

/// Append a PING acknowledgement echoing `payload`.
pub(crate) fn ping_ack(out: &mut Vec<u8>, payload: &[u8]) {
    head(out, payload.len(), kind::PING, flag::ACK, 0);
    out.extend_from_slice(payload);
}

/// Append a WINDOW_UPDATE.
pub(crate) fn window_update(out: &mut Vec<u8>, stream: u32, increment: u32) {
    head(out, 4, kind::WINDOW_UPDATE, 0, stream);
    out.extend_from_slice(&(increment & MAX_WINDOW).to_be_bytes());
}

/// Append a RST_STREAM.
pub(crate) fn rst_stream(out: &mut Vec<u8>, stream: u32, reason: Reason) {
    head(out, 4, kind::RST_STREAM, 0, stream);
    out.extend_from_slice(&(reason as u32).to_be_bytes());
}

/// Append a GOAWAY naming the last stream that was (or will be) processed.
pub(crate) fn goaway(out: &mut Vec<u8>, last_stream: u32, reason: Reason) {
    head(out, 8, kind::GOAWAY, 0, 0);
    out.extend_from_slice(&(last_stream & MAX_WINDOW).to_be_bytes());
    out.extend_from_slice(&(reason as u32).to_be_bytes());
}

/// Append a header block as HEADERS (and CONTINUATION frames when it is larger than
/// `max_frame`).
pub(crate) fn headers(
    out: &mut Vec<u8>,
    stream: u32,
    block: &[u8],
    end_stream: bool,
    max_frame: usize,
) {
    let mut chunks = block.chunks(max_frame.max(1));
    let first = chunks.next().unwrap_or(&[]);
    let rest = block.len() > first.len();
    let mut flags = if end_stream { flag::END_STREAM } else { 0 };
    if !rest {
        flags |= flag::END_HEADERS;
    }
    head(out, first.len(), kind::HEADERS, flags, stream);
    out.extend_from_slice(first);
    let mut chunks = chunks.peekable();
    while let Some(c) = chunks.next() {
        let flags = if chunks.peek().is_none() {
            flag::END_HEADERS
        } else {
            0
        };
        head(out, c.len(), kind::CONTINUATION, flags, stream);
        out.extend_from_slice(c);
    }
}

/// Append `data` as DATA frames of at most `max_frame` bytes; END_STREAM on the last.
pub(crate) fn data(
    out: &mut Vec<u8>,
    stream: u32,
    data: &[u8],
    end_stream: bool,
    max_frame: usize,
) {
    if data.is_empty() {
        head(
            out,
            0,
            kind::DATA,
            if end_stream { flag::END_STREAM } else { 0 },
            stream,
        );
        return;
    }
    let mut chunks = data.chunks(max_frame.max(1)).peekable();
    while let Some(c) = chunks.next() {
        let last = chunks.peek().is_none();
        let flags = if last && end_stream {
            flag::END_STREAM
        } else {
            0
        };
        head(out, c.len(), kind::DATA, flags, stream);
        out.extend_from_slice(c);
    }
}

/// The payload of a frame without its padding (RFC 9113 §6.1): `Err` when the padding is
/// longer than the payload.
pub(crate) fn unpad(h: &Head, payload: &[u8]) -> Result<std::ops::Range<usize>, Reason> {
    if !h.has(flag::PADDED) {
        return Ok(0..payload.len());
    }
    let Some(&pad) = payload.first() else {
        return Err(Reason::ProtocolError);
    };
    let pad = usize::from(pad);
    if 1 + pad > payload.len() {
        return Err(Reason::ProtocolError);
    }
    Ok(1..payload.len() - pad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_round_trip() {
        let mut out = Vec::new();
        head(
            &mut out,
            0x01_02_03,
            kind::HEADERS,
            flag::END_HEADERS,
            0x8000_0005,
        );
        let h = Head::parse(&out);
        assert_eq!(
            h,
            Head {
                len: 0x01_02_03,
                kind: kind::HEADERS,
                flags: flag::END_HEADERS,
                stream: 5
            }
        );
        assert!(h.has(flag::END_HEADERS) && !h.has(flag::END_STREAM));
    }

    #[test]
    fn large_header_blocks_continue_and_data_is_split() {
        let mut out = Vec::new();
        headers(&mut out, 1, &[7u8; 25], true, 10);
        let first = Head::parse(&out);
        assert_eq!((first.kind, first.len), (kind::HEADERS, 10));
        assert!(first.has(flag::END_STREAM) && !first.has(flag::END_HEADERS));
        let second = Head::parse(&out[19..]);
        assert_eq!(
            (second.kind, second.len, second.flags),
            (kind::CONTINUATION, 10, 0)
        );
        let third = Head::parse(&out[38..]);
        assert_eq!(
            (third.kind, third.len, third.flags),
            (kind::CONTINUATION, 5, flag::END_HEADERS)
        );
        let mut out = Vec::new();
        data(&mut out, 3, &[1u8; 12], true, 5);
        let lens: Vec<(usize, u8)> = [0, 14, 28]
            .iter()
            .map(|&at| {
                let h = Head::parse(&out[at..]);
                (h.len, h.flags)
            })
            .collect();
        assert_eq!(lens, vec![(5, 0), (5, 0), (2, flag::END_STREAM)]);
    }

    #[test]
    fn padding_is_removed_or_refused() {
        let padded = Head {
            len: 5,
            kind: kind::DATA,
            flags: flag::PADDED,
            stream: 1,
        };
        assert_eq!(unpad(&padded, &[2, b'a', b'b', 0, 0]), Ok(1..3));
        assert_eq!(unpad(&padded, &[9, b'a']), Err(Reason::ProtocolError));
    }
}
