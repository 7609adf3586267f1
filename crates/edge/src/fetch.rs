//! One origin fetch for a cache key: runs in its own task (so a viewer that goes away cannot
//! strand the viewers waiting on it), tries the origin group's secondary when the primary
//! fails, reads the body up to `max_object_size`, and stores what RFC 9111 lets it store —
//! or hands the answer on uncached.

use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use bytes::{Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Response, StatusCode, Uri};
use http_body_util::BodyExt;
use hyper::body::Incoming;

use flotilla_config::edge::{Behavior, Origin};

use crate::body::{Prefixed, ViewerBody};
use crate::cache_control::Directives;
use crate::dist::Edge;
use crate::freshness::{initial_age, lifetime, storable, Ttls};
use crate::key::Encoding;
use crate::origin::{cacheable_request, hop_by_hop, OriginError};
use crate::stats::Stats;
use crate::store::{Object, StoredBody};

/// What a fetch produced, shared with every viewer that waited for it.
pub enum Fetched {
    /// An object now in the cache; `revalidated` when the origin answered 304.
    Object {
        /// The object.
        object: Arc<Object>,
        /// Whether the origin only confirmed the stale copy.
        revalidated: bool,
    },
    /// An answer that is not shared: the first viewer to take it relays it, the others ask
    /// the origin themselves. `status` lets a stale copy stand in for a 5xx.
    Pass {
        /// The origin's status.
        status: StatusCode,
        /// The answer, until taken.
        response: Mutex<Option<Response<ViewerBody>>>,
    },
    /// No answer from the origin.
    Failed(OriginError),
}

/// What a fetch needs to know of the viewer's request.
pub struct Job {
    /// The cache key.
    pub key: String,
    /// The viewer's URI.
    pub uri: Uri,
    /// The viewer's headers.
    pub headers: HeaderMap,
    /// The behaviour serving it.
    pub behavior: Behavior,
    /// The encoding negotiated with the viewer (asked of the origin).
    pub encoding: Encoding,
    /// The viewer's address.
    pub peer: std::net::SocketAddr,
    /// The stale copy being revalidated, if any.
    pub stale: Option<Arc<Object>>,
}

impl Job {
    /// A copy (to ask the origin again when a shared fetch's answer could not be shared).
    pub fn clone_request(&self) -> Job {
        Job {
            key: self.key.clone(),
            uri: self.uri.clone(),
            headers: self.headers.clone(),
            behavior: self.behavior.clone(),
            encoding: self.encoding,
            peer: self.peer,
            stale: self.stale.clone(),
        }
    }
}

/// Runs `job` against the origin and stores what may be stored.
pub async fn run(edge: Arc<Edge>, job: Job) -> Fetched {
    let request_time = SystemTime::now();
    let validators = job.stale.as_ref().and_then(|s| {
        let e = s.etag().cloned();
        let l = s.last_modified().cloned();
        (e.is_some() || l.is_some()).then(|| {
            (
                e.unwrap_or(HeaderValue::from_static("")),
                l.unwrap_or(HeaderValue::from_static("")),
            )
        })
    });
    let make = || {
        let parts = viewer_parts(&job.uri, &job.headers);
        cacheable_request(
            &Method::GET,
            &parts,
            &job.behavior,
            job.encoding,
            job.peer,
            validators.as_ref().map(|(e, l)| (e, l)),
        )
    };
    let resp = match exchange(&edge, &job.behavior.origin, &make).await {
        Ok(r) => r,
        Err(e) => return Fetched::Failed(e),
    };
    if resp.status() == StatusCode::NOT_MODIFIED {
        if let Some(stale) = &job.stale {
            return revalidated(&edge, &job, stale, resp.headers(), request_time);
        }
    }
    let (parts, body) = resp.into_parts();
    let d = Directives::parse(&parts.headers);
    let has_auth = job.headers.contains_key(header::AUTHORIZATION);
    if let Err(why) = storable(
        &Method::GET,
        has_auth,
        parts.status.as_u16(),
        &parts.headers,
        &d,
    ) {
        tracing::debug!(key = job.key.as_str(), why, "answer not stored");
        return pass(parts, Prefixed::new(None, body));
    }
    let cfg = edge.config.load();
    let (bytes, rest) = read_capped(body, cfg.max_object_size, cfg.origin_timeout).await;
    Stats::add(&edge.stats.origin_bytes, bytes.len() as u64);
    let bytes = match rest {
        Read::Whole => bytes.freeze(),
        Read::Failed => {
            return Fetched::Failed(OriginError::Failed("origin body broke off".into()))
        }
        Read::TooBig(rest) => {
            tracing::debug!(
                key = job.key.as_str(),
                cap = cfg.max_object_size,
                "answer larger than max_object_size: passed through"
            );
            return pass(parts, Prefixed::new(Some(bytes.freeze()), rest));
        }
    };
    let ttls = ttls(&job.behavior);
    let mut object = build_object(
        &job,
        parts.status,
        parts.headers,
        bytes,
        &d,
        ttls,
        request_time,
    );
    if let StoredBody::Memory(b) = &object.body {
        // Large bodies move into a memory file (served by sendfile).
        object.body = edge.store.keep(b.clone());
    }
    let varies = !job.behavior.compress && varies_on_encoding(&object.headers);
    let object = Arc::new(object);
    edge.store
        .put(&job.key, varies, job.encoding, Arc::clone(&object));
    Fetched::Object {
        object,
        revalidated: false,
    }
}

fn viewer_parts(uri: &Uri, headers: &HeaderMap) -> http::request::Parts {
    let mut req = http::Request::new(());
    *req.uri_mut() = uri.clone();
    *req.headers_mut() = headers.clone();
    req.into_parts().0
}

fn ttls(b: &Behavior) -> Ttls {
    Ttls {
        min: b.min_ttl,
        default: b.default_ttl,
        max: b.max_ttl,
    }
}

fn pass(parts: http::response::Parts, body: Prefixed) -> Fetched {
    let status = parts.status;
    let mut resp = Response::from_parts(parts, body.boxed_unsync());
    strip_hop_by_hop(resp.headers_mut());
    Fetched::Pass {
        status,
        response: Mutex::new(Some(resp)),
    }
}

/// The origin's answer, from the primary of an origin group and then, if that failed or
/// answered one of the group's failover statuses, from the secondary.
pub async fn exchange(
    edge: &Edge,
    origin_id: &str,
    make: &(dyn Fn() -> http::Request<crate::origin::OutBody> + Sync),
) -> Result<Response<Incoming>, OriginError> {
    let cfg = edge.config.load_full();
    let origin = cfg.origins.get(origin_id).ok_or(OriginError::NoAddress)?;
    match origin {
        Origin::Group {
            primary,
            secondary,
            status_codes,
        } => {
            let first = send_to(edge, cfg.origins.get(primary), make(), &cfg).await;
            match first {
                Ok(r) if !status_codes.contains(&r.status().as_u16()) => Ok(r),
                _ => send_to(edge, cfg.origins.get(secondary), make(), &cfg).await,
            }
        }
        o => send_to(edge, Some(o), make(), &cfg).await,
    }
}

async fn send_to(
    edge: &Edge,
    origin: Option<&Origin>,
    req: http::Request<crate::origin::OutBody>,
    cfg: &flotilla_config::edge::Distribution,
) -> Result<Response<Incoming>, OriginError> {
    let addr = origin
        .and_then(|o| edge.resolver.resolve(o))
        .ok_or(OriginError::NoAddress)?;
    Stats::bump(&edge.stats.origin_requests);
    edge.client.send(addr, req, cfg.origin_timeout).await
}

enum Read {
    Whole,
    TooBig(Incoming),
    Failed,
}

/// Reads a body until its end or past `cap` bytes; each wait has `timeout`.
async fn read_capped(
    mut body: Incoming,
    cap: u64,
    timeout: std::time::Duration,
) -> (BytesMut, Read) {
    let mut buf = BytesMut::new();
    loop {
        let frame = match tokio::time::timeout(timeout, body.frame()).await {
            Ok(Some(Ok(f))) => f,
            Ok(None) => return (buf, Read::Whole),
            Ok(Some(Err(_))) | Err(_) => return (buf, Read::Failed),
        };
        if let Ok(data) = frame.into_data() {
            buf.extend_from_slice(&data);
            if buf.len() as u64 > cap {
                return (buf, Read::TooBig(body));
            }
        }
    }
}

fn strip_hop_by_hop(h: &mut HeaderMap) {
    let names: Vec<_> = h.keys().filter(|n| hop_by_hop(n)).cloned().collect();
    for n in names {
        h.remove(n);
    }
}

fn varies_on_encoding(h: &HeaderMap) -> bool {
    h.get_all(header::VARY)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| {
            v.split(',')
                .any(|t| t.trim().eq_ignore_ascii_case("accept-encoding"))
        })
}

fn build_object(
    job: &Job,
    status: StatusCode,
    mut headers: HeaderMap,
    mut body: Bytes,
    d: &Directives,
    ttls: Ttls,
    request_time: SystemTime,
) -> Object {
    let initial = initial_age(&headers, request_time, SystemTime::now());
    let life = lifetime(status.as_u16(), &headers, d, ttls);
    strip_hop_by_hop(&mut headers);
    headers.remove(header::AGE);
    headers.remove(header::CONTENT_LENGTH);
    if job.behavior.compress && crate::compress::compressible(&headers, body.len()) {
        if let Some(z) = crate::compress::compress(job.encoding, &body) {
            body = Bytes::from(z);
            headers.insert(
                header::CONTENT_ENCODING,
                HeaderValue::from_static(job.encoding.token()),
            );
            headers.append(header::VARY, HeaderValue::from_static("Accept-Encoding"));
        }
    }
    Object {
        status,
        headers,
        body: StoredBody::Memory(body),
        stored_at: Instant::now(),
        initial_age: initial,
        lifetime: life,
        path: job.uri.path().to_string(),
    }
}

/// A 304 confirmed the stale copy: its headers are updated from the 304 (RFC 9111 §4.3.4)
/// and it is fresh again.
fn revalidated(
    edge: &Edge,
    job: &Job,
    stale: &Object,
    fresh: &HeaderMap,
    request_time: SystemTime,
) -> Fetched {
    let mut headers = stale.headers.clone();
    for name in fresh.keys() {
        if hop_by_hop(name) || name == header::CONTENT_LENGTH || name == header::CONTENT_ENCODING {
            continue;
        }
        headers.remove(name);
        for v in fresh.get_all(name) {
            headers.append(name.clone(), v.clone());
        }
    }
    let d = Directives::parse(&headers);
    let object = Arc::new(Object {
        status: stale.status,
        initial_age: initial_age(fresh, request_time, SystemTime::now()),
        lifetime: lifetime(stale.status.as_u16(), &headers, &d, ttls(&job.behavior)),
        headers,
        body: stale.body.clone(),
        stored_at: Instant::now(),
        path: stale.path.clone(),
    });
    let varies = !job.behavior.compress && varies_on_encoding(&object.headers);
    edge.store
        .put(&job.key, varies, job.encoding, Arc::clone(&object));
    Fetched::Object {
        object,
        revalidated: true,
    }
}
