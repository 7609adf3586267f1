//! Load balancers, listeners, rules, conditions and actions (the ELBv2 routing model).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::matching::{Cidr, QueryPair};

/// A load balancer (`[load_balancers.NAME]`): one or more listeners sharing settings.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadBalancer {
    /// Application (HTTP, layer 7, with rules) or network (TCP, layer 4). TOML key `type`.
    pub kind: LoadBalancerType,
    /// Whether every target in every zone gets traffic or each zone's node only sends to its
    /// own zone's targets. Default as AWS: on for application load balancers, off for network
    /// ones.
    pub cross_zone: bool,
    /// How long an idle client connection is kept open. Default 60 s for application load
    /// balancers and 350 s for network ones (AWS); never zero.
    pub idle_timeout: Duration,
    /// Where to write the access log (JSON lines, one per request), resolved against the
    /// config's directory; `None` (default) = no access log, as in AWS.
    pub access_log: Option<PathBuf>,
    /// How long a client may take to send a complete request head once it has started one;
    /// slower clients get 408 and a closed connection. Default 10 s. (Not an AWS attribute.)
    pub header_read_timeout: Duration,
    /// Largest request body in bytes (`max_request_body`, an integer or a size such as
    /// `"10MiB"`); larger ones get 413. Default `None`: unlimited, as ALB.
    pub max_request_body: Option<u64>,
    /// The ports it listens on.
    pub listeners: Vec<Listener>,
}

impl LoadBalancer {
    /// Names of the target groups its listeners forward to, by default action or rule (a
    /// name may repeat): what its health in DNS depends on.
    pub fn target_group_names(&self) -> impl Iterator<Item = &str> {
        self.listeners.iter().flat_map(|l| {
            std::iter::once(&l.default_action)
                .chain(l.rules.iter().map(|r| &r.action))
                .flat_map(Action::target_group_names)
        })
    }
}

/// Kind of load balancer, as in ELBv2 `Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum LoadBalancerType {
    /// ALB: HTTP/HTTPS listeners with rules (default).
    #[default]
    Application,
    /// NLB: TCP listeners forwarding connections to one target group.
    Network,
}

impl LoadBalancerType {
    /// `"application"` or `"network"`.
    pub fn as_str(self) -> &'static str {
        match self {
            LoadBalancerType::Application => "application",
            LoadBalancerType::Network => "network",
        }
    }
}

/// One listening socket of a load balancer with its routing rules.
#[derive(Debug, Clone, PartialEq)]
pub struct Listener {
    /// Local address to listen on; unique across all listeners and the admin API.
    pub bind: SocketAddr,
    /// `http`/`https` for application load balancers, `tcp` for network ones.
    pub protocol: ListenerProtocol,
    /// Server certificates for `https` (SNI picks among them); paths resolved against the
    /// config's directory but not checked here.
    pub certificates: Vec<Certificate>,
    /// What happens when no rule matches (ELB's default rule).
    pub default_action: Action,
    /// Rules, sorted by ascending priority (first match wins).
    pub rules: Vec<Rule>,
}

/// Protocol a listener speaks to clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ListenerProtocol {
    /// Plain HTTP (default for application load balancers).
    #[default]
    Http,
    /// HTTP over TLS; needs at least one certificate.
    Https,
    /// TCP pass-through (network load balancers).
    Tcp,
}

impl ListenerProtocol {
    /// `"http"`, `"https"` or `"tcp"`.
    pub fn as_str(self) -> &'static str {
        match self {
            ListenerProtocol::Http => "http",
            ListenerProtocol::Https => "https",
            ListenerProtocol::Tcp => "tcp",
        }
    }
}

/// A certificate/key pair (PEM files) offered by an `https` listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Certificate {
    /// Certificate chain file, absolute.
    pub cert: PathBuf,
    /// Private key file, absolute.
    pub key: PathBuf,
}

/// A listener rule: when all conditions match, perform the action.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    /// 1–50000, unique per listener; lower is evaluated first.
    pub priority: u32,
    /// All must match (AND); at least one.
    pub conditions: Vec<Condition>,
    /// What to do with a matching request.
    pub action: Action,
}

/// One rule condition; the values inside a condition are alternatives (OR).
/// `*` and `?` are wildcards where AWS allows them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    /// `host-header`: the Host header, case-insensitive.
    HostHeader(Vec<String>),
    /// `path-pattern`: the URL path (never the query), case-sensitive.
    PathPattern(Vec<String>),
    /// `http-header`: a named header's value, case-insensitive.
    HttpHeader {
        /// Header name (no wildcards).
        name: String,
        /// Accepted values.
        values: Vec<String>,
    },
    /// `http-request-method`: exact method such as `GET`.
    HttpRequestMethod(Vec<String>),
    /// `query-string`: key/value pairs of the query string, case-insensitive.
    QueryString(Vec<QueryPair>),
    /// `source-ip`: the client's address (the TCP peer, not X-Forwarded-For).
    SourceIp(Vec<Cidr>),
}

impl Condition {
    /// The config spelling of the condition's `field`, e.g. `"path-pattern"`.
    pub fn field(&self) -> &'static str {
        match self {
            Condition::HostHeader(_) => "host-header",
            Condition::PathPattern(_) => "path-pattern",
            Condition::HttpHeader { .. } => "http-header",
            Condition::HttpRequestMethod(_) => "http-request-method",
            Condition::QueryString(_) => "query-string",
            Condition::SourceIp(_) => "source-ip",
        }
    }
}

/// What a rule or a listener's default does with a request.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Send to one or more target groups, split by weight.
    Forward {
        /// 1–5 groups; `target_group = "x"` is one group with weight 1.
        target_groups: Vec<WeightedTargetGroup>,
        /// Canary rollback: when its alarm fires, the canary group's weight goes to 0.
        rollback: Option<CanaryRollback>,
    },
    /// Answer with a redirect built from the request's URI.
    Redirect(Redirect),
    /// Answer directly with a fixed response.
    FixedResponse {
        /// HTTP status, 2xx, 4xx or 5xx.
        status: u16,
        /// One of the five content types ALB allows.
        content_type: String,
        /// At most 1024 characters.
        body: String,
    },
}

impl Action {
    /// Names of the target groups a forward action sends to (empty for other actions).
    pub fn target_group_names(&self) -> impl Iterator<Item = &str> {
        let groups: &[WeightedTargetGroup] = match self {
            Action::Forward { target_groups, .. } => target_groups,
            _ => &[],
        };
        groups.iter().map(|g| g.name.as_str())
    }
}

/// Automatic rollback of a canary (`rollback = { target_group, alarm }` on a weighted forward):
/// when the alarm on the canary group's metric fires, that group's weight is set to 0 so all
/// traffic goes to the others. Beyond AWS, which leaves this to CodeDeploy.
pub use flotilla_control::RollbackSpec as CanaryRollback;
/// A target group in a forward action; traffic share is weight / sum of weights.
pub use flotilla_control::WeightedTargetGroup;

/// Metrics a canary rollback alarm may watch (at the canary target group's scope).
pub const ROLLBACK_METRICS: [flotilla_control::metrics::Metric; 4] = [
    flotilla_control::metrics::Metric::HttpTarget5xxCount,
    flotilla_control::metrics::Metric::HttpTarget5xxRate,
    flotilla_control::metrics::Metric::TargetResponseTime,
    flotilla_control::metrics::Metric::RequestCount,
];

/// An ALB redirect: unspecified components keep the request's values; components may use
/// `#{protocol}`, `#{host}`, `#{port}`, `#{path}` (without leading `/`) and `#{query}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redirect {
    /// 301 (permanent, default) or 302 (temporary).
    pub status: u16,
    /// `HTTP`, `HTTPS` or `#{protocol}`.
    pub protocol: Option<String>,
    /// Host, may contain `#{host}`.
    pub host: Option<String>,
    /// Port 1–65535 or `#{port}`.
    pub port: Option<String>,
    /// Absolute path, may contain keywords.
    pub path: Option<String>,
    /// Query without the leading `?`.
    pub query: Option<String>,
}
