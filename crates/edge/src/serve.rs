//! Viewer answers from cached objects: `Age`, `X-Cache`, conditional requests (304), ranges
//! (206/416), HEAD.

use std::time::Instant;

use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Response, StatusCode};

use crate::body::{empty, full, stored, ViewerBody};
use crate::range::{slice, Slice};
use crate::sendfile::Lane;
use crate::store::Object;

/// CloudFront's `X-Cache` values, ours with "from flotilla".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XCache {
    /// Served from the cache.
    Hit,
    /// Served from the cache after the origin confirmed it, or stale around a refresh.
    RefreshHit,
    /// Fetched from the origin.
    Miss,
    /// An error answer.
    Error,
}

impl XCache {
    /// The header value.
    pub fn value(self) -> HeaderValue {
        HeaderValue::from_static(match self {
            XCache::Hit => "Hit from flotilla",
            XCache::RefreshHit => "RefreshHit from flotilla",
            XCache::Miss => "Miss from flotilla",
            XCache::Error => "Error from flotilla",
        })
    }
}

/// The viewer's request as an answer from the cache needs it.
#[derive(Clone, Copy)]
pub struct Ask<'a> {
    /// GET or HEAD.
    pub method: &'a Method,
    /// Its headers (conditionals, ranges).
    pub headers: &'a HeaderMap,
    /// Its connection's zero-copy lane, when it has one (plain HTTP/1).
    pub lane: Option<&'a Lane>,
}

/// The answer to a viewer's GET or HEAD from `object`; returns it and the body bytes sent.
pub fn object_response(
    object: &Object,
    ask: Ask<'_>,
    now: Instant,
    x_cache: XCache,
) -> (Response<ViewerBody>, u64) {
    let req = ask.headers;
    let mut headers = object.headers.clone();
    let age = object.age(now).as_secs();
    headers.insert(header::AGE, HeaderValue::from(age));
    headers.insert("x-cache", x_cache.value());
    headers.insert(header::VIA, HeaderValue::from_static("1.1 flotilla-edge"));
    if not_modified(object, req) {
        let mut keep = HeaderMap::new();
        for name in [
            header::ETAG,
            header::LAST_MODIFIED,
            header::CACHE_CONTROL,
            header::EXPIRES,
            header::VARY,
            header::DATE,
            header::AGE,
            header::VIA,
        ] {
            if let Some(v) = headers.get(&name) {
                keep.insert(name, v.clone());
            }
        }
        keep.insert("x-cache", x_cache.value());
        return (answer(StatusCode::NOT_MODIFIED, keep, empty()), 0);
    }
    let len = object.body.len();
    let etag = object.etag().and_then(|v| v.to_str().ok());
    let lm = object.last_modified().and_then(|v| v.to_str().ok());
    let ranged = object.status == StatusCode::OK;
    let (status, start, end) = match (ranged, slice(req, len, etag, lm)) {
        (true, Slice::Part { start, end }) => {
            let range = format!("bytes {start}-{end}/{len}");
            headers.insert(
                header::CONTENT_RANGE,
                HeaderValue::from_str(&range).unwrap_or(HeaderValue::from_static("bytes */0")),
            );
            (StatusCode::PARTIAL_CONTENT, start, end + 1)
        }
        (true, Slice::Unsatisfiable) => {
            let range = format!("bytes */{len}");
            headers.insert(
                header::CONTENT_RANGE,
                HeaderValue::from_str(&range).unwrap_or(HeaderValue::from_static("bytes */0")),
            );
            headers.remove(header::CONTENT_ENCODING);
            (StatusCode::RANGE_NOT_SATISFIABLE, 0, 0)
        }
        _ => (object.status, 0, len),
    };
    if ranged {
        headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    }
    let sent = end - start;
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(sent));
    if ask.method == Method::HEAD || sent == 0 {
        return (answer(status, headers, empty()), 0);
    }
    let body = stored(&object.body, start, end, ask.lane);
    (answer(status, headers, body), sent)
}

fn answer(status: StatusCode, headers: HeaderMap, body: ViewerBody) -> Response<ViewerBody> {
    let mut r = Response::new(body);
    *r.status_mut() = status;
    *r.headers_mut() = headers;
    r
}

/// RFC 9110 §13.1: `If-None-Match` (weak comparison) decides when present, else
/// `If-Modified-Since` against `Last-Modified`.
fn not_modified(object: &Object, req: &HeaderMap) -> bool {
    if object.status != StatusCode::OK {
        return false;
    }
    if let Some(inm) = req.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()) {
        let Some(etag) = object.etag().and_then(|v| v.to_str().ok()) else {
            return false;
        };
        let weak = |t: &str| t.trim().trim_start_matches("W/").to_string();
        return inm.trim() == "*" || inm.split(',').any(|t| weak(t) == weak(etag));
    }
    let since = req
        .get(header::IF_MODIFIED_SINCE)
        .and_then(|v| v.to_str().ok())
        .and_then(|s| httpdate::parse_http_date(s).ok());
    let modified = object
        .last_modified()
        .and_then(|v| v.to_str().ok())
        .and_then(|s| httpdate::parse_http_date(s).ok());
    matches!((since, modified), (Some(s), Some(m)) if m <= s)
}

/// A short answer made by the cache itself.
pub fn plain(status: StatusCode, text: &str, x_cache: XCache) -> Response<ViewerBody> {
    let mut h = HeaderMap::new();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(text.len()));
    h.insert("x-cache", x_cache.value());
    answer(
        status,
        h,
        full(bytes::Bytes::copy_from_slice(text.as_bytes())),
    )
}
