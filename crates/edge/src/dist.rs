//! One distribution at run time: its config, store, in-flight fetches, invalidations and
//! counters, and the path of a viewer's request through them.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Instant, SystemTime};

use arc_swap::ArcSwap;
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use tokio::sync::watch;

use flotilla_config::edge::{AllowedMethods, Behavior, Distribution, Origin, ViewerProtocolPolicy};

use crate::body::ViewerBody;
use crate::fetch::{self, Fetched, Job};
use crate::invalidate::{self, Invalidation};
use crate::key::{cache_key, request_host, Encoding};
use crate::origin::{pass_request, OriginClient, OriginError, OriginResolver};
use crate::sendfile::Lane;
use crate::serve::{object_response, plain, Ask, XCache};
use crate::stats::Stats;
use crate::store::{Object, Staleness, Store};

type Flight = watch::Receiver<Option<Arc<Fetched>>>;

/// A distribution.
pub struct Edge {
    /// Its name.
    pub name: String,
    pub(crate) config: ArcSwap<Distribution>,
    pub(crate) store: Store,
    inflight: Mutex<HashMap<String, Flight>>,
    /// Its counters.
    pub stats: Stats,
    invalidations: Mutex<Vec<Invalidation>>,
    next_invalidation: AtomicU64,
    pub(crate) resolver: Arc<dyn OriginResolver>,
    pub(crate) client: OriginClient,
    /// The bound port of its HTTPS listener (0: none), for redirects to HTTPS.
    pub(crate) https_port: AtomicU16,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Edge {
    /// A distribution with an empty cache.
    pub fn new(name: &str, config: Distribution, resolver: Arc<dyn OriginResolver>) -> Arc<Edge> {
        Arc::new(Edge {
            name: name.to_string(),
            store: Store::new(config.cache_size, config.max_object_size),
            config: ArcSwap::from_pointee(config),
            inflight: Mutex::new(HashMap::new()),
            stats: Stats::default(),
            invalidations: Mutex::new(Vec::new()),
            next_invalidation: AtomicU64::new(1),
            resolver,
            client: OriginClient::default(),
            https_port: AtomicU16::new(0),
        })
    }

    /// Applies a reloaded config (cached objects stay; the store's size is fixed).
    pub fn reconfigure(&self, config: Distribution) {
        self.config.store(Arc::new(config));
    }

    /// The config in force.
    pub fn config(&self) -> Arc<Distribution> {
        self.config.load_full()
    }

    /// Bytes and objects in the cache.
    pub fn cached(&self) -> (u64, usize) {
        (self.store.bytes(), self.store.len())
    }

    /// Memory files held by large bodies and their bytes (part of [`Edge::cached`]'s bytes;
    /// answers still being sent keep theirs until done).
    pub fn cached_files(&self) -> (u64, u64) {
        self.store.files()
    }

    /// Body bytes sent to viewers by `sendfile` so far (large hits on plain HTTP/1).
    pub fn sendfile_bytes(&self) -> u64 {
        self.store.sendfile_bytes()
    }

    /// Removes every object under `paths` (CloudFront `CreateInvalidation`).
    pub fn invalidate(&self, paths: Vec<String>) -> Result<Invalidation, String> {
        invalidate::validate(&paths)?;
        let objects = self
            .store
            .invalidate(&|p| paths.iter().any(|pat| invalidate::covers(pat, p)));
        let n = self.next_invalidation.fetch_add(1, Ordering::Relaxed);
        let inv = Invalidation {
            id: format!("I{n:06}"),
            status: "Completed",
            paths,
            create_time: SystemTime::now(),
            objects,
        };
        tracing::info!(
            distribution = self.name.as_str(),
            id = inv.id.as_str(),
            objects,
            "invalidation"
        );
        let mut list = lock(&self.invalidations);
        list.push(inv.clone());
        let excess = list.len().saturating_sub(100);
        list.drain(..excess);
        Ok(inv)
    }

    /// The last 100 invalidations, newest first.
    pub fn invalidations(&self) -> Vec<Invalidation> {
        lock(&self.invalidations).iter().rev().cloned().collect()
    }

    /// Answers one viewer request.
    pub async fn handle(
        self: &Arc<Self>,
        req: Request<Incoming>,
        https: bool,
        peer: SocketAddr,
    ) -> Response<ViewerBody> {
        Stats::bump(&self.stats.requests);
        let cfg = self.config.load_full();
        let behavior = crate::behavior::select(&cfg, req.uri().path());
        if let Some(r) = self.viewer_protocol(behavior, &req, https) {
            return r;
        }
        let method = req.method().clone();
        if !allowed(behavior.allowed_methods, &method) {
            return plain(
                StatusCode::FORBIDDEN,
                "method not allowed by this cache behavior\n",
                XCache::Error,
            );
        }
        if method != Method::GET && method != Method::HEAD {
            return self.pass(req, behavior, peer).await;
        }
        let encoding = Encoding::negotiate(req.headers());
        let host = request_host(req.uri(), req.headers());
        let key = cache_key(
            &host,
            req.uri().path(),
            req.uri().query(),
            req.headers(),
            &behavior.cache_key,
            behavior.compress.then_some(encoding),
        );
        let now = Instant::now();
        let ask = Ask {
            method: &method,
            headers: req.headers(),
            lane: req.extensions().get::<Lane>(),
        };
        let stale = match self.store.get(&key, encoding) {
            Some(obj) => match obj.staleness(now) {
                Staleness::Fresh => return self.serve(&obj, ask, XCache::Hit),
                Staleness::WhileRevalidate => {
                    let job = job(key, &req, behavior, encoding, peer, Some(Arc::clone(&obj)));
                    let me = Arc::clone(self);
                    tokio::spawn(async move { me.collapsed(job).await });
                    return self.serve(&obj, ask, XCache::RefreshHit);
                }
                Staleness::Stale => Some(obj),
            },
            None => None,
        };
        let job = job(key, &req, behavior, encoding, peer, stale);
        self.fetch_and_serve(job, ask).await
    }

    fn serve(&self, obj: &Object, ask: Ask<'_>, x: XCache) -> Response<ViewerBody> {
        let (resp, sent) = object_response(obj, ask, Instant::now(), x);
        match x {
            XCache::Hit => Stats::bump(&self.stats.hits),
            XCache::RefreshHit => Stats::bump(&self.stats.refresh_hits),
            XCache::Miss => Stats::bump(&self.stats.misses),
            XCache::Error => Stats::bump(&self.stats.errors),
        }
        if matches!(x, XCache::Hit | XCache::RefreshHit) {
            Stats::add(&self.stats.bytes_saved, sent);
        }
        resp
    }

    /// Fetches (joining a fetch of the same key in flight) and answers from what came.
    async fn fetch_and_serve(self: &Arc<Self>, job: Job, ask: Ask<'_>) -> Response<ViewerBody> {
        let method = ask.method;
        let stale = job.stale.clone();
        let retry = Job {
            stale: None,
            ..job.clone_request()
        };
        let (fetched, led) = self.collapsed(job).await;
        let now = Instant::now();
        let rescue = |this: &Self| {
            stale
                .as_ref()
                .filter(|s| s.usable_on_error(now))
                .map(|s| this.serve(s, ask, XCache::RefreshHit))
        };
        match &*fetched {
            Fetched::Object {
                object,
                revalidated,
            } => {
                let x = if *revalidated {
                    XCache::RefreshHit
                } else if led {
                    XCache::Miss
                } else {
                    XCache::Hit
                };
                self.serve(object, ask, x)
            }
            Fetched::Pass { status, response } => {
                if status.is_server_error() {
                    if let Some(r) = rescue(self) {
                        return r;
                    }
                }
                let taken = lock(response).take();
                match taken {
                    Some(r) => self.relay(r, method),
                    None => {
                        // Not shareable: this viewer asks the origin itself.
                        match fetch::run(Arc::clone(self), retry).await {
                            Fetched::Object { object, .. } => {
                                self.serve(&object, ask, XCache::Miss)
                            }
                            Fetched::Pass { response, .. } => match lock(&response).take() {
                                Some(r) => self.relay(r, method),
                                None => self.origin_error(&OriginError::NoAddress),
                            },
                            Fetched::Failed(e) => self.origin_error(&e),
                        }
                    }
                }
            }
            Fetched::Failed(e) => rescue(self).unwrap_or_else(|| self.origin_error(e)),
        }
    }

    /// Runs `job` in its own task unless the same key is already being fetched; every
    /// viewer of the key waits for the one result. Returns it, and whether this viewer led.
    async fn collapsed(self: &Arc<Self>, job: Job) -> (Arc<Fetched>, bool) {
        let flight_key = format!("{}\0{}", job.key, job.encoding.token());
        let (mut rx, led) = {
            let mut map = lock(&self.inflight);
            match map.get(&flight_key) {
                Some(rx) => (rx.clone(), false),
                None => {
                    let (tx, rx) = watch::channel(None);
                    map.insert(flight_key.clone(), rx.clone());
                    let me = Arc::clone(self);
                    tokio::spawn(async move {
                        let _done = FlightDone(Arc::clone(&me), flight_key);
                        let f = fetch::run(Arc::clone(&me), job).await;
                        let _ = tx.send(Some(Arc::new(f)));
                    });
                    (rx, true)
                }
            }
        };
        let result = rx
            .wait_for(Option::is_some)
            .await
            .ok()
            .and_then(|v| v.clone());
        let fetched = result.unwrap_or_else(|| {
            Arc::new(Fetched::Failed(OriginError::Failed(
                "fetch task ended".into(),
            )))
        });
        (fetched, led)
    }

    fn relay(&self, mut r: Response<ViewerBody>, method: &Method) -> Response<ViewerBody> {
        let x = if r.status().is_server_error() {
            XCache::Error
        } else {
            XCache::Miss
        };
        Stats::bump(if x == XCache::Error {
            &self.stats.errors
        } else {
            &self.stats.misses
        });
        r.headers_mut().insert("x-cache", x.value());
        r.headers_mut()
            .insert(header::VIA, HeaderValue::from_static("1.1 flotilla-edge"));
        if method == Method::HEAD {
            *r.body_mut() = crate::body::empty();
        }
        r
    }

    fn origin_error(&self, e: &OriginError) -> Response<ViewerBody> {
        Stats::bump(&self.stats.errors);
        tracing::debug!(distribution = self.name.as_str(), error = %e, "origin failed");
        match e {
            OriginError::Timeout => plain(
                StatusCode::GATEWAY_TIMEOUT,
                "the origin did not answer in time\n",
                XCache::Error,
            ),
            _ => plain(
                StatusCode::BAD_GATEWAY,
                "the origin could not be reached\n",
                XCache::Error,
            ),
        }
    }

    /// Methods other than GET and HEAD go to the origin (an origin group's primary)
    /// uncached, with their body.
    async fn pass(
        &self,
        req: Request<Incoming>,
        behavior: &Behavior,
        peer: SocketAddr,
    ) -> Response<ViewerBody> {
        let cfg = self.config.load_full();
        let origin = match cfg.origins.get(&behavior.origin) {
            Some(Origin::Group { primary, .. }) => cfg.origins.get(primary),
            o => o,
        };
        let Some(addr) = origin.and_then(|o| self.resolver.resolve(o)) else {
            return self.origin_error(&OriginError::NoAddress);
        };
        let method = req.method().clone();
        let (parts, body) = req.into_parts();
        Stats::bump(&self.stats.origin_requests);
        match self
            .client
            .send(addr, pass_request(parts, body, peer), cfg.origin_timeout)
            .await
        {
            Ok(r) => {
                let (parts, body) = r.into_parts();
                let r = Response::from_parts(parts, crate::body::Prefixed::new(None, body));
                self.relay(r.map(http_body_util::BodyExt::boxed_unsync), &method)
            }
            Err(e) => self.origin_error(&e),
        }
    }

    /// CloudFront's viewer protocol policy for a plain-HTTP request.
    fn viewer_protocol(
        &self,
        b: &Behavior,
        req: &Request<Incoming>,
        https: bool,
    ) -> Option<Response<ViewerBody>> {
        if https {
            return None;
        }
        match b.viewer_protocol_policy {
            ViewerProtocolPolicy::AllowAll => None,
            ViewerProtocolPolicy::HttpsOnly => Some(plain(
                StatusCode::FORBIDDEN,
                "this content is only served over HTTPS\n",
                XCache::Error,
            )),
            ViewerProtocolPolicy::RedirectToHttps => {
                let host = request_host(req.uri(), req.headers());
                let port = self.https_port.load(Ordering::Relaxed);
                let port = if port == 443 || port == 0 {
                    String::new()
                } else {
                    format!(":{port}")
                };
                let pq = req.uri().path_and_query().map_or("/", |p| p.as_str());
                let location = format!("https://{host}{port}{pq}");
                let mut r = plain(
                    StatusCode::MOVED_PERMANENTLY,
                    "moved to HTTPS\n",
                    XCache::Miss,
                );
                r.headers_mut()
                    .insert(header::LOCATION, HeaderValue::from_str(&location).ok()?);
                Some(r)
            }
        }
    }
}

/// Removes a finished fetch from the in-flight map, even if its task panicked.
struct FlightDone(Arc<Edge>, String);

impl Drop for FlightDone {
    fn drop(&mut self) {
        lock(&self.0.inflight).remove(&self.1);
    }
}

fn allowed(m: AllowedMethods, method: &Method) -> bool {
    match m {
        AllowedMethods::All => true,
        AllowedMethods::GetHeadOptions => {
            matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
        }
        AllowedMethods::GetHead => matches!(*method, Method::GET | Method::HEAD),
    }
}

fn job(
    key: String,
    req: &Request<Incoming>,
    b: &Behavior,
    encoding: Encoding,
    peer: SocketAddr,
    stale: Option<Arc<Object>>,
) -> Job {
    Job {
        key,
        uri: req.uri().clone(),
        headers: req.headers().clone(),
        behavior: b.clone(),
        encoding,
        peer,
        stale,
    }
}
