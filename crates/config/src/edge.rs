//! Distributions (`[distributions.NAME]`): CloudFront's edge cache in front of a load
//! balancer, a target group or an origin group, in CloudFront's vocabulary.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use crate::routing::{Certificate, ListenerProtocol};

/// One distribution: listeners, origins, cache behaviours and the cache's size.
#[derive(Debug, Clone, PartialEq)]
pub struct Distribution {
    /// Where viewers connect (`http` and `https`).
    pub listeners: Vec<EdgeListener>,
    /// Origins by id.
    pub origins: BTreeMap<String, Origin>,
    /// Path-pattern behaviours, tried in file order (first match wins).
    pub behaviors: Vec<Behavior>,
    /// The behaviour when no pattern matches.
    pub default_behavior: Behavior,
    /// The memory the cached objects may take, in bytes (default 256 MiB).
    pub cache_size: u64,
    /// The largest object that is cached (default 16 MiB, at most `cache_size`); larger
    /// answers pass through uncached.
    pub max_object_size: u64,
    /// How long an origin may take to start answering, and to send each part of its body.
    pub origin_timeout: Duration,
}

/// A viewer-facing listener of a distribution.
#[derive(Debug, Clone, PartialEq)]
pub struct EdgeListener {
    /// Address to listen on.
    pub bind: SocketAddr,
    /// `http` or `https` (`tcp` is refused).
    pub protocol: ListenerProtocol,
    /// Certificates of an `https` listener (SNI picks among them).
    pub certificates: Vec<Certificate>,
}

/// Where a distribution fetches what it caches.
#[derive(Debug, Clone, PartialEq)]
pub enum Origin {
    /// A load balancer of this config (its first HTTP listener).
    LoadBalancer(String),
    /// A target group of this config: a healthy target, picked by the group's algorithm.
    TargetGroup(String),
    /// A fixed `host:port` (a custom origin).
    Address(SocketAddr),
    /// CloudFront's origin group: the secondary answers when the primary fails.
    Group {
        /// The origin tried first.
        primary: String,
        /// The origin tried when the primary fails.
        secondary: String,
        /// Primary answers that count as failures (default 500, 502, 503, 504).
        status_codes: Vec<u16>,
    },
}

/// What viewers on plain HTTP get (CloudFront `ViewerProtocolPolicy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ViewerProtocolPolicy {
    /// HTTP and HTTPS alike.
    #[default]
    AllowAll,
    /// HTTP requests get a 301 to the HTTPS listener.
    RedirectToHttps,
    /// HTTP requests get 403.
    HttpsOnly,
}

/// Which methods a behaviour accepts (CloudFront `AllowedMethods`); only GET and HEAD are
/// ever cached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AllowedMethods {
    /// GET, HEAD.
    #[default]
    GetHead,
    /// GET, HEAD, OPTIONS.
    GetHeadOptions,
    /// GET, HEAD, OPTIONS, PUT, PATCH, POST, DELETE (passed to the origin uncached).
    All,
}

/// A list in a cache key policy.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum KeyList {
    /// Nothing of this kind is in the key (nor forwarded to the origin).
    #[default]
    None,
    /// Everything of this kind.
    All,
    /// Only these names (query strings and cookies: exact; headers: case-insensitive).
    Only(Vec<String>),
}

/// CloudFront's cache key policy: what, besides host and path, makes two requests differ.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CacheKeyPolicy {
    /// Query string parameters in the key.
    pub query_strings: KeyList,
    /// Request headers in the key (lowercase); `All` is refused, as CloudFront.
    pub headers: Vec<String>,
    /// Cookies in the key.
    pub cookies: KeyList,
}

/// A cache behaviour.
#[derive(Debug, Clone, PartialEq)]
pub struct Behavior {
    /// The path pattern (`*` and `?` wildcards, case-sensitive); `None` for the default.
    pub path_pattern: Option<String>,
    /// The origin (or origin group) id.
    pub origin: String,
    /// What plain-HTTP viewers get.
    pub viewer_protocol_policy: ViewerProtocolPolicy,
    /// Accepted methods.
    pub allowed_methods: AllowedMethods,
    /// Lower bound on how long an object stays fresh (default 0 s).
    pub min_ttl: Duration,
    /// Freshness when the origin says nothing (default 24 h).
    pub default_ttl: Duration,
    /// Upper bound on freshness (default one year).
    pub max_ttl: Duration,
    /// Compress answers with brotli or gzip when the viewer accepts it.
    pub compress: bool,
    /// What the cache key holds.
    pub cache_key: CacheKeyPolicy,
}
