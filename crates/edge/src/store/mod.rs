//! The memory store: cached objects under their keys in a quick_cache (S3-FIFO-like
//! eviction, weighted by bytes, so the distribution's `cache_size` caps its memory).
//!
//! An origin answer that varies on `Accept-Encoding` leaves a marker under its key and its
//! object under the key plus the viewer's normalised encoding (RFC 9111 §4.1); `Vary` on
//! headers the origin never receives from this cache cannot make answers differ and is
//! ignored, and `Vary` on the key's own headers is already in the key.
//!
//! A body is kept on the heap or, when large, in a memory file ([`body`]); either way its
//! bytes count in the weight, so `cache_size` caps all the memory the objects hold.

pub mod body;

use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{HeaderMap, HeaderValue, StatusCode};
use quick_cache::sync::Cache;
use quick_cache::{OptionsBuilder, Weighter};

use crate::freshness::Lifetime;
use crate::key::Encoding;
pub use body::{FileBody, FileTally, StoredBody};

/// A stored answer.
#[derive(Debug)]
pub struct Object {
    /// Its status.
    pub status: StatusCode,
    /// Its end-to-end headers (no hop-by-hop fields, no `Age`; `Content-Length` is set on
    /// the way out).
    pub headers: HeaderMap,
    /// Its whole body, shared with every viewer it is served to.
    pub body: StoredBody,
    /// When it arrived (or was last revalidated).
    pub stored_at: Instant,
    /// Its age on arrival.
    pub initial_age: Duration,
    /// How long it is fresh and may be served stale.
    pub lifetime: Lifetime,
    /// The path it was fetched for (invalidations match it).
    pub path: String,
}

/// Where an object stands at a moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Staleness {
    /// Servable as it is.
    Fresh,
    /// Stale, but inside `stale-while-revalidate`: serve it and refresh in the background.
    WhileRevalidate,
    /// Stale: revalidate or fetch before use (inside `stale-if-error` it may still save an
    /// origin failure).
    Stale,
}

impl Object {
    /// Its current age (RFC 9111 §4.2.3).
    pub fn age(&self, now: Instant) -> Duration {
        self.initial_age + now.saturating_duration_since(self.stored_at)
    }

    /// Where it stands at `now`.
    pub fn staleness(&self, now: Instant) -> Staleness {
        let age = self.age(now);
        let l = &self.lifetime;
        if age < l.fresh_for {
            Staleness::Fresh
        } else if age < l.fresh_for + l.stale_while_revalidate {
            Staleness::WhileRevalidate
        } else {
            Staleness::Stale
        }
    }

    /// Whether it may stand in for a failed origin at `now` (`stale-if-error`).
    pub fn usable_on_error(&self, now: Instant) -> bool {
        self.age(now) < self.lifetime.fresh_for + self.lifetime.stale_if_error
    }

    /// Its validators, for a conditional request.
    pub fn etag(&self) -> Option<&HeaderValue> {
        self.headers.get(http::header::ETAG)
    }

    /// Its `Last-Modified`.
    pub fn last_modified(&self) -> Option<&HeaderValue> {
        self.headers.get(http::header::LAST_MODIFIED)
    }

    fn weight(&self, key: &str) -> u64 {
        let headers: usize = self
            .headers
            .iter()
            .map(|(n, v)| n.as_str().len() + v.len() + 32)
            .sum();
        self.body.len() + (headers + key.len() + 256) as u64
    }
}

/// What lies under a key.
#[derive(Debug, Clone)]
enum Entry {
    Object(Arc<Object>, u64),
    /// The object varies on the viewer's encoding: look under the key plus the encoding.
    VaryEncoding,
}

#[derive(Debug, Clone, Copy)]
struct ByBytes;

impl Weighter<String, Entry> for ByBytes {
    fn weight(&self, _: &String, val: &Entry) -> u64 {
        match val {
            Entry::Object(_, w) => *w,
            Entry::VaryEncoding => 64,
        }
    }
}

/// The objects of one distribution.
pub struct Store {
    cache: Cache<String, Entry, ByBytes>,
    files: Arc<FileTally>,
}

fn variant_key(key: &str, encoding: Encoding) -> String {
    format!("{key}\0vary-ae={}", encoding.token())
}

impl Store {
    /// A store holding at most `capacity` bytes, of objects up to `max_object` bytes.
    pub fn new(capacity: u64, max_object: u64) -> Store {
        // quick_cache splits the capacity over shards; each shard must fit a largest object.
        let fit = (capacity / max_object.max(1) / 2).max(1);
        let shards = (fit as usize).min(16).next_power_of_two().min(16);
        let shards = if shards as u64 > fit {
            (shards / 2).max(1)
        } else {
            shards
        };
        let items = (capacity / 16_384).clamp(64, 1 << 20) as usize;
        let options = OptionsBuilder::new()
            .shards(shards)
            .estimated_items_capacity(items)
            .weight_capacity(capacity)
            .build();
        let cache = match options {
            Ok(o) => Cache::with_options(o, ByBytes, Default::default(), Default::default()),
            Err(_) => Cache::with_weighter(items, capacity, ByBytes),
        };
        Store {
            cache,
            files: Arc::default(),
        }
    }

    /// `bytes` as this store keeps a body (large ones in a memory file).
    pub fn keep(&self, bytes: bytes::Bytes) -> StoredBody {
        StoredBody::keep(bytes, &self.files)
    }

    /// Memory files held by bodies (of stored objects and of answers still being sent),
    /// and their bytes.
    pub fn files(&self) -> (u64, u64) {
        self.files.get()
    }

    /// Body bytes sent to viewers by `sendfile` so far.
    pub fn sendfile_bytes(&self) -> u64 {
        self.files.sent()
    }

    /// The object for `key` as a viewer accepting `encoding` gets it.
    pub fn get(&self, key: &str, encoding: Encoding) -> Option<Arc<Object>> {
        match self.cache.get(key)? {
            Entry::Object(o, _) => Some(o),
            Entry::VaryEncoding => match self.cache.get(&variant_key(key, encoding))? {
                Entry::Object(o, _) => Some(o),
                Entry::VaryEncoding => None,
            },
        }
    }

    /// Stores `object` under `key`; `varies` when it varies on the viewer's encoding.
    pub fn put(&self, key: &str, varies: bool, encoding: Encoding, object: Arc<Object>) {
        if varies {
            self.cache.insert(key.to_string(), Entry::VaryEncoding);
            let k = variant_key(key, encoding);
            let w = object.weight(&k);
            self.cache.insert(k, Entry::Object(object, w));
        } else {
            let w = object.weight(key);
            self.cache.insert(key.to_string(), Entry::Object(object, w));
        }
    }

    /// Drops the object under `key` (and its variants' marker).
    pub fn remove(&self, key: &str) {
        self.cache.remove(key);
    }

    /// Drops every object whose path `matches`; returns how many.
    pub fn invalidate(&self, matches: &dyn Fn(&str) -> bool) -> usize {
        let count = std::sync::atomic::AtomicUsize::new(0);
        self.cache.retain(|_, e| match e {
            Entry::Object(o, _) if matches(&o.path) => {
                count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                false
            }
            _ => true,
        });
        count.into_inner()
    }

    /// Bytes held (the weights of the entries).
    pub fn bytes(&self) -> u64 {
        self.cache.weight()
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.cache.len()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.cache.is_empty()
    }
}
