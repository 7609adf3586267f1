//! Bodies sent to viewers: a cached object's shared bytes, or an origin's answer relayed
//! (with the bytes already read in front when it outgrew the cache).

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;

/// What a viewer's answer carries.
pub type ViewerBody = UnsyncBoxBody<Bytes, hyper::Error>;

/// A whole body.
pub fn full(b: Bytes) -> ViewerBody {
    Full::new(b).map_err(|never| match never {}).boxed_unsync()
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
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        if let Some(p) = self.prefix.take() {
            return Poll::Ready(Some(Ok(Frame::data(p))));
        }
        Pin::new(&mut self.rest).poll_frame(cx)
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
