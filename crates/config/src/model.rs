//! The typed configuration: the cluster, launch templates and target groups.
//!
//! Every value here has had its defaults applied and passed validation, so the data plane and
//! control plane can use it without re-checking.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

pub use flotilla_control::{ImageTemplate, LaunchTemplate, PullPolicy, StopSignal};

use crate::matching::Matcher;
use crate::routing::LoadBalancer;
use crate::scaling::AutoScalingGroupConfig;

/// A whole, validated Flotilla config file: everything one `flotilla up` runs.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The config file as the caller named it; used in messages and by `POST /v1/reload`.
    pub path: PathBuf,
    /// Absolute directory of the config file; relative paths in the file are resolved against it.
    pub base_dir: PathBuf,
    /// Settings of the whole installation (`[cluster]`).
    pub cluster: Cluster,
    /// Recipes for starting instances (`[launch_templates.NAME]`), as EC2 launch templates.
    pub launch_templates: BTreeMap<String, LaunchTemplate>,
    /// Pools of targets the load balancers route to (`[target_groups.NAME]`).
    pub target_groups: BTreeMap<String, TargetGroup>,
    /// Application (HTTP) and network (TCP) load balancers (`[load_balancers.NAME]`).
    pub load_balancers: BTreeMap<String, LoadBalancer>,
    /// Groups of instances kept at a desired size (`[auto_scaling_groups.NAME]`).
    pub auto_scaling_groups: BTreeMap<String, AutoScalingGroupConfig>,
    /// The AWS-compatible API (`[aws_api]`), if it is served.
    pub aws_api: Option<AwsApi>,
    /// Prices per instance type and the reservations owned (`[pricing]`).
    pub pricing: flotilla_control::pricing::PricingSpec,
    /// Edge caches in front of the load balancers (`[distributions.NAME]`).
    pub distributions: BTreeMap<String, crate::edge::Distribution>,
    /// The authoritative DNS server (`[dns]`), if any.
    pub dns: Option<crate::dns::Dns>,
}

impl Config {
    /// Whether the target group `name` balances across zones: its own `cross_zone`, else that
    /// of the load balancers forwarding to it (validation makes them agree), else on.
    pub fn target_group_cross_zone(&self, name: &str) -> bool {
        let own = self
            .target_groups
            .get(name)
            .map(|tg| tg.cross_zone)
            .unwrap_or_default();
        let lb = self
            .load_balancers
            .values()
            .find(|lb| {
                lb.listeners.iter().any(|l| {
                    l.default_action.target_group_names().any(|n| n == name)
                        || l.rules
                            .iter()
                            .any(|r| r.action.target_group_names().any(|n| n == name))
                })
            })
            .is_none_or(|lb| lb.cross_zone);
        own.resolve(lb)
    }
}

/// Installation-wide settings (`[cluster]`): the simulated region.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cluster {
    /// Display name of the installation, in the start-up log line. Default `"flotilla"`.
    pub name: String,
    /// Simulated availability zones (failure domains) that groups spread instances across.
    /// Default `["az-a", "az-b", "az-c"]`; never empty and without duplicates.
    pub zones: Vec<String>,
    /// Where the state database and instance logs live; resolved against the config's
    /// directory. Default `.flotilla`.
    pub state_dir: PathBuf,
    /// Address of the admin API and dashboard. Default `127.0.0.1:9090`; a non-loopback
    /// address makes the bearer token mandatory.
    pub admin_bind: SocketAddr,
    /// Name of the environment variable holding the admin bearer token.
    /// Default `FLOTILLA_ADMIN_TOKEN`.
    pub admin_token_env: String,
    /// Cluster mode only (`flotilla node`): how long a compute host may be without its etcd
    /// lease before its instances are declared lost and replaced. Default 10 s; `flotilla up`
    /// ignores it.
    pub host_lost_grace: Duration,
}

impl Default for Cluster {
    fn default() -> Self {
        Self {
            name: "flotilla".into(),
            zones: vec!["az-a".into(), "az-b".into(), "az-c".into()],
            state_dir: PathBuf::from(".flotilla"),
            admin_bind: SocketAddr::from((Ipv4Addr::LOCALHOST, 9090)),
            admin_token_env: "FLOTILLA_ADMIN_TOKEN".into(),
            host_lost_grace: Duration::from_secs(10),
        }
    }
}

/// The AWS-compatible endpoint (`[aws_api]`): one address serving the ELBv2, Auto Scaling and
/// EC2 launch-template Query APIs, so boto3 and the aws CLI create real load balancers and
/// groups here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsApi {
    /// Where the API listens. Default `127.0.0.1:4566` (the port emulators use). Listeners it
    /// creates bind this address's IP with the port asked for.
    pub bind: SocketAddr,
    /// The region in ARNs and availability zone names. Default `us-east-1`.
    pub region: String,
    /// The account in ARNs. Default `000000000000`.
    pub account_id: String,
    /// Environment variables holding access keys, each `ACCESS_KEY_ID:SECRET_ACCESS_KEY`
    /// (several pairs separated by commas). Default `["FLOTILLA_AWS_CREDENTIALS"]`. With keys,
    /// every request's SigV4 signature is checked; without, a loopback `bind` accepts any
    /// key (as emulators do) and any other `bind` refuses to start.
    pub credentials_env: Vec<String>,
    /// What an `ImageId` launches (`[aws_api.images]`: `"ami-12c6146b" = ["{flotilla}",
    /// "demo-app"]`); an id not listed is refused as AWS refuses it (`InvalidAMIID.NotFound`).
    pub images: BTreeMap<String, Vec<String>>,
}

impl Default for AwsApi {
    fn default() -> Self {
        AwsApi {
            bind: SocketAddr::from((Ipv4Addr::LOCALHOST, 4566)),
            region: "us-east-1".into(),
            account_id: "000000000000".into(),
            credentials_env: vec!["FLOTILLA_AWS_CREDENTIALS".into()],
            images: BTreeMap::new(),
        }
    }
}

/// Protocol of a target group or of its health check (`http` | `tcp`).
///
/// As in ELB, an application load balancer forwards to `http` groups and a network load
/// balancer to `tcp` groups; the health check protocol may differ from the traffic protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Protocol {
    /// HTTP/1.1 (default).
    #[default]
    Http,
    /// Plain TCP: connect succeeds = healthy.
    Tcp,
}

impl Protocol {
    /// `"http"` or `"tcp"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Http => "http",
            Protocol::Tcp => "tcp",
        }
    }
}

/// How a target group spreads requests over its healthy targets (ALB `load_balancing.algorithm.type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Algorithm {
    /// Each target in turn (default).
    #[default]
    RoundRobin,
    /// The target with the fewest requests in flight.
    LeastOutstandingRequests,
    /// A uniformly random target: every target weighs the same. (In AWS, automatic target
    /// weights can lower the share of a target that answers errors; Flotilla has none.)
    WeightedRandom,
}

impl Algorithm {
    /// The config spelling, e.g. `"round_robin"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::RoundRobin => "round_robin",
            Algorithm::LeastOutstandingRequests => "least_outstanding_requests",
            Algorithm::WeightedRandom => "weighted_random",
        }
    }
}

/// HTTP version a target group speaks to its targets, as ELB's `ProtocolVersion`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ProtocolVersion {
    /// HTTP/1.1, whatever the client spoke (default).
    #[default]
    Http1,
    /// HTTP/2 (cleartext, prior knowledge).
    Http2,
    /// gRPC: HTTP/2 with trailers passed through.
    Grpc,
}

/// A pool of targets a load balancer forwards to (`[target_groups.NAME]`), with its health
/// check and draining settings, as an ELB target group.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetGroup {
    /// Traffic protocol. Default `http`.
    pub protocol: Protocol,
    /// HTTP version spoken to the targets (AWS `ProtocolVersion`). Default `http1`.
    pub protocol_version: ProtocolVersion,
    /// Routing algorithm among healthy targets. Default `round_robin`.
    pub algorithm: Algorithm,
    /// How long a deregistered target keeps serving in-flight requests (draining).
    /// Default 300 s as in AWS.
    pub deregistration_delay: Duration,
    /// Ramp-up time for a new target's share of traffic; zero disables it. Default 0.
    pub slow_start: Duration,
    /// Static targets registered beside those an auto scaling group registers.
    pub targets: Vec<SocketAddr>,
    /// How targets are probed.
    pub health_check: HealthCheck,
    /// Load-balancer-generated cookie stickiness.
    pub stickiness: Stickiness,
    /// Send a PROXY protocol v2 header with the client's address to targets before the client's
    /// bytes (AWS attribute `proxy_protocol_v2.enabled`; tcp target groups only). Default false.
    pub proxy_protocol_v2: bool,
    /// Target-group override of the load balancer's cross-zone setting (AWS attribute
    /// `load_balancing.cross_zone.enabled`). Default: use the load balancer's.
    pub cross_zone: CrossZone,
    /// How long connecting to a target may take before the attempt fails and the request
    /// goes to another target, preferably in another zone (HAProxy `timeout connect`).
    /// Default 3 s: a lost SYN is re-sent after 1 s and still fits; a silently cut link costs
    /// 3 s instead of a client's timeout.
    pub connect_timeout: Duration,
    /// How long an idempotent request, sent whole, may wait for its response head before the
    /// attempt is given up and the request sent once to another target, preferably in
    /// another zone (HAProxy `retry-on response-timeout`, Envoy `per_try_timeout`). Default
    /// off: a slow answer (a long poll, a report) would otherwise be asked for twice.
    pub per_try_timeout: Option<Duration>,
}

/// AWS `load_balancing.cross_zone.enabled` of a target group: `true`/`false` override the load
/// balancer's `cross_zone`, `use_load_balancer_configuration` (the default) follows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum CrossZone {
    /// Follow the `cross_zone` of the load balancers that forward to the group.
    #[default]
    UseLoadBalancerConfiguration,
    /// Every target in every zone gets traffic, whatever the load balancer says.
    Enabled,
    /// Each zone gets an equal share, served only by its own targets.
    Disabled,
}

impl CrossZone {
    /// The effective setting for a load balancer whose own `cross_zone` is `lb`.
    pub fn resolve(self, lb: bool) -> bool {
        match self {
            CrossZone::UseLoadBalancerConfiguration => lb,
            CrossZone::Enabled => true,
            CrossZone::Disabled => false,
        }
    }
}

impl Default for TargetGroup {
    fn default() -> Self {
        Self {
            protocol: Protocol::Http,
            protocol_version: ProtocolVersion::Http1,
            algorithm: Algorithm::RoundRobin,
            deregistration_delay: Duration::from_secs(300),
            slow_start: Duration::ZERO,
            targets: Vec::new(),
            health_check: HealthCheck::default(),
            stickiness: Stickiness::default(),
            proxy_protocol_v2: false,
            cross_zone: CrossZone::UseLoadBalancerConfiguration,
            connect_timeout: Duration::from_secs(3),
            per_try_timeout: None,
        }
    }
}

/// Active health check of a target group; defaults are AWS ALB's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheck {
    /// Probe protocol; defaults to the target group's protocol.
    pub protocol: Protocol,
    /// Path requested by HTTP probes. Default `/`.
    pub path: String,
    /// Time between probes. Default 30 s; always greater than `timeout`.
    pub interval: Duration,
    /// A probe without an answer within this time fails. Default 5 s.
    pub timeout: Duration,
    /// Consecutive successes before an unhealthy target is healthy again (1–10). Default 5.
    pub healthy_threshold: u32,
    /// Consecutive failures before a target is unhealthy (1–10). Default 2.
    pub unhealthy_threshold: u32,
    /// HTTP status codes that count as success. Default `200`.
    pub matcher: Matcher,
}

impl Default for HealthCheck {
    fn default() -> Self {
        Self {
            protocol: Protocol::Http,
            path: "/".into(),
            interval: Duration::from_secs(30),
            timeout: Duration::from_secs(5),
            healthy_threshold: 5,
            unhealthy_threshold: 2,
            matcher: Matcher::default(),
        }
    }
}

/// Load-balancer-generated cookie stickiness (ALB `stickiness.type = lb_cookie`): a client keeps
/// going to the same target while the cookie is valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stickiness {
    /// Off by default, as in AWS.
    pub enabled: bool,
    /// Cookie lifetime, 1 s – 7 days. Default 1 day as in AWS.
    pub duration: Duration,
}

impl Default for Stickiness {
    fn default() -> Self {
        Self {
            enabled: false,
            duration: Duration::from_secs(86_400),
        }
    }
}
