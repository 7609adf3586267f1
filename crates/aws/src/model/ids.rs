//! Identifiers in AWS's formats: ARNs with the configured region and account, `lt-` ids,
//! hex suffixes, group UUIDs; and the names of zones as the API shows them.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Makes ids and ARNs for one region and account.
#[derive(Debug)]
pub struct Ids {
    /// e.g. `us-east-1`.
    pub region: String,
    /// 12 digits.
    pub account: String,
    counter: AtomicU64,
    seed: u64,
}

fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// 16 hex digits that stand for a resource of the config file, the same every run.
pub fn file_hex(kind: &str, name: &str) -> String {
    // FNV-1a, then mixed: stable across runs and builds.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in kind.bytes().chain([0]).chain(name.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{:016x}", mix(h))
}

impl Ids {
    /// Ids for `region` and `account`; new ids differ every run.
    pub fn new(region: &str, account: &str) -> Ids {
        let seed = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
            ^ u64::from(std::process::id()).rotate_left(32);
        Ids {
            region: region.to_string(),
            account: account.to_string(),
            counter: AtomicU64::new(0),
            seed,
        }
    }

    fn next(&self) -> u64 {
        mix(self.seed ^ mix(self.counter.fetch_add(1, Ordering::Relaxed)))
    }

    /// 16 new hex digits.
    pub fn hex16(&self) -> String {
        format!("{:016x}", self.next())
    }

    /// A new `lt-` + 17 hex digits.
    pub fn launch_template_id(&self) -> String {
        format!("lt-0{:016x}", self.next())
    }

    /// A new request id (UUID form).
    pub fn request_id(&self) -> String {
        self.uuid()
    }

    /// A new UUID-shaped id.
    pub fn uuid(&self) -> String {
        let (a, b) = (self.next(), self.next());
        format!(
            "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0xfff,
            (b >> 48) & 0x3fff | 0x8000,
            b & 0xffff_ffff_ffff
        )
    }

    fn elb(&self, rest: &str) -> String {
        format!(
            "arn:aws:elasticloadbalancing:{}:{}:{rest}",
            self.region, self.account
        )
    }

    /// A target group's ARN.
    pub fn target_group_arn(&self, name: &str, hex: &str) -> String {
        self.elb(&format!("targetgroup/{name}/{hex}"))
    }

    /// A load balancer's ARN (`kind` `app` or `net`).
    pub fn load_balancer_arn(&self, kind: &str, name: &str, hex: &str) -> String {
        self.elb(&format!("loadbalancer/{kind}/{name}/{hex}"))
    }

    /// The `app/NAME/HEX` part of a load balancer ARN.
    pub fn lb_suffix(arn: &str) -> &str {
        arn.split_once(":loadbalancer/").map_or("", |(_, s)| s)
    }

    /// A listener's ARN under its load balancer's.
    pub fn listener_arn(&self, lb_arn: &str, hex: &str) -> String {
        self.elb(&format!("listener/{}/{hex}", Self::lb_suffix(lb_arn)))
    }

    /// A rule's ARN under its listener's.
    pub fn rule_arn(&self, listener_arn: &str, hex: &str) -> String {
        let rest = listener_arn.split_once(":listener/").map_or("", |(_, s)| s);
        self.elb(&format!("listener-rule/{rest}/{hex}"))
    }

    /// An Auto Scaling group's ARN.
    pub fn group_arn(&self, uuid: &str, name: &str) -> String {
        format!(
            "arn:aws:autoscaling:{}:{}:autoScalingGroup:{uuid}:autoScalingGroupName/{name}",
            self.region, self.account
        )
    }

    /// A scaling policy's ARN.
    pub fn policy_arn(&self, group: &str, policy: &str) -> String {
        format!(
            "arn:aws:autoscaling:{}:{}:scalingPolicy:{}:autoScalingGroupName/{group}:policyName/{policy}",
            self.region,
            self.account,
            self.uuid()
        )
    }

    /// A scheduled action's ARN.
    pub fn scheduled_arn(&self, group: &str, action: &str) -> String {
        format!(
            "arn:aws:autoscaling:{}:{}:scheduledUpdateGroupAction:{}:autoScalingGroupName/{group}:scheduledActionName/{action}",
            self.region,
            self.account,
            self.uuid()
        )
    }

    /// The synthetic default VPC's id.
    pub fn vpc_id(&self) -> String {
        format!("vpc-{}", file_hex("vpc", &self.region))
    }

    /// The synthetic subnet of a zone.
    pub fn subnet_id(&self, zone: &str) -> String {
        format!("subnet-{}", file_hex("subnet", zone))
    }
}

/// Cluster zones and the names the API shows for them: a zone already named like the region
/// (`us-east-1a`) keeps its name, others are shown as the region plus a letter in order
/// (`az-a`, `az-b` → `us-east-1a`, `us-east-1b`). Requests may use either name.
#[derive(Clone, Debug)]
pub struct ZoneMap {
    /// (cluster name, API name).
    pub zones: Vec<(String, String)>,
}

impl ZoneMap {
    /// The map for `zones` in `region`.
    pub fn new(region: &str, zones: &[String]) -> ZoneMap {
        let zones = zones
            .iter()
            .enumerate()
            .map(|(i, z)| {
                let api = if z.starts_with(region) {
                    z.clone()
                } else {
                    let letter = char::from(b'a' + u8::try_from(i % 26).unwrap_or(0));
                    format!("{region}{letter}")
                };
                (z.clone(), api)
            })
            .collect();
        ZoneMap { zones }
    }

    /// The cluster zone an API (or cluster) zone name means.
    pub fn cluster(&self, name: &str) -> Option<&str> {
        self.zones
            .iter()
            .find(|(c, a)| a == name || c == name)
            .map(|(c, _)| c.as_str())
    }

    /// The API name of a cluster zone.
    pub fn api<'a>(&'a self, cluster: &'a str) -> &'a str {
        self.zones
            .iter()
            .find(|(c, _)| c == cluster)
            .map_or(cluster, |(_, a)| a.as_str())
    }
}
