//! Bodies sent to viewers: a cached object's shared bytes or memory file, or an origin's
//! answer relayed (with the bytes already read in front when it outgrew the cache).

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;

use crate::sendfile::{placeholder, Lane, LANE_CHUNK};
use crate::store::{FileBody, StoredBody};

/// Why a viewer's body broke off (the origin's, or a memory file's read).
pub type BodyError = Box<dyn std::error::Error + Send + Sync>;

/// What a viewer's answer carries.
pub type ViewerBody = UnsyncBoxBody<Bytes, BodyError>;

/// A whole body.
pub fn full(b: Bytes) -> ViewerBody {
    Full::new(b).map_err(|never| match never {}).boxed_unsync()
}

/// Bytes `start..end` of a stored body; a file's go by `sendfile` when the viewer's
/// connection has a `lane`, else read into memory a chunk at a time.
pub fn stored(body: &StoredBody, start: u64, end: u64, lane: Option<&Lane>) -> ViewerBody {
    match body {
        StoredBody::Memory(b) => full(b.slice(start as usize..end as usize)),
        StoredBody::File(file) => FileChunks {
            file: std::sync::Arc::clone(file),
            next: start,
            end,
            lane: lane.cloned(),
        }
        .boxed_unsync(),
    }
}

/// Bytes read from a memory file per frame, for viewers without a lane.
const READ_CHUNK: u64 = 256 * 1024;

/// A memory file's bytes as frames: placeholders of up to [`LANE_CHUNK`] on a lane, else
/// bytes read [`READ_CHUNK`] at a time.
struct FileChunks {
    file: std::sync::Arc<FileBody>,
    next: u64,
    end: u64,
    lane: Option<Lane>,
}

impl Body for FileChunks {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let chunk = if self.lane.is_some() {
            LANE_CHUNK as u64
        } else {
            READ_CHUNK
        };
        let n = (self.end - self.next).min(chunk);
        if n == 0 {
            return Poll::Ready(None);
        }
        let at = self.next;
        self.next += n;
        let data = match &self.lane {
            Some(lane) => {
                lane.push(&self.file, at, n);
                Ok(placeholder(n as usize))
            }
            None => self.file.read(at, n as usize).map_err(BodyError::from),
        };
        Poll::Ready(Some(data.map(Frame::data)))
    }

    fn is_end_stream(&self) -> bool {
        self.next == self.end
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.end - self.next)
    }
}

/// No body.
pub fn empty() -> ViewerBody {
    Empty::new().map_err(|never| match never {}).boxed_unsync()
}

/// An origin body, with the part already read first.
pub struct Prefixed {
    prefix: Option<Bytes>,
    rest: Incoming,
}

impl Prefixed {
    /// `prefix` (if any), then the rest of `rest`.
    pub fn new(prefix: Option<Bytes>, rest: Incoming) -> Prefixed {
        Prefixed {
            prefix: prefix.filter(|p| !p.is_empty()),
            rest,
        }
    }
}

impl Body for Prefixed {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        if let Some(p) = self.prefix.take() {
            return Poll::Ready(Some(Ok(Frame::data(p))));
        }
        Pin::new(&mut self.rest)
            .poll_frame(cx)
            .map_err(BodyError::from)
    }

    fn is_end_stream(&self) -> bool {
        self.prefix.is_none() && self.rest.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        let mut h = self.rest.size_hint();
        if let Some(p) = &self.prefix {
            let n = p.len() as u64;
            // Upper first: a lower bound above the old upper one would panic.
            if let Some(u) = h.upper() {
                h.set_upper(u + n);
            }
            h.set_lower(h.lower() + n);
        }
        h
    }
}
