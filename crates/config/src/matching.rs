//! Small value types with their own syntax: status-code matchers, CIDR blocks, query pairs.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// The set of HTTP status codes a health check accepts (ELB `Matcher.HttpCode`), e.g. `"200"`,
/// `"200,204"`, `"200-299"` or `"200-299,302"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Matcher {
    /// Inclusive ranges; a single code is a range of one.
    ranges: Vec<(u16, u16)>,
}

impl Default for Matcher {
    /// `200`, the AWS ALB default.
    fn default() -> Self {
        Self {
            ranges: vec![(200, 200)],
        }
    }
}

impl Matcher {
    /// True when `status` is one of the accepted codes.
    pub fn matches(&self, status: u16) -> bool {
        self.ranges
            .iter()
            .any(|&(lo, hi)| (lo..=hi).contains(&status))
    }

    /// The inclusive code ranges.
    pub fn ranges(&self) -> &[(u16, u16)] {
        &self.ranges
    }

    /// Parses the AWS syntax; codes must be 200–599. The error says what is wrong.
    pub fn parse(s: &str) -> Result<Self, String> {
        let mut ranges = Vec::new();
        for part in s.split(',') {
            let part = part.trim();
            if part.is_empty() {
                return Err(format!(
                    "invalid matcher `{s}`: empty entry; write codes like \"200\", \"200,204\" or \"200-299\""
                ));
            }
            let (lo, hi) = match part.split_once('-') {
                Some((a, b)) => (code(a, s)?, code(b, s)?),
                None => {
                    let c = code(part, s)?;
                    (c, c)
                }
            };
            if lo > hi {
                return Err(format!(
                    "invalid matcher `{s}`: range {lo}-{hi} is backwards"
                ));
            }
            ranges.push((lo, hi));
        }
        Ok(Self { ranges })
    }
}

fn code(text: &str, whole: &str) -> Result<u16, String> {
    if text.trim().is_empty() {
        return Err(format!("invalid matcher `{whole}`: incomplete range"));
    }
    match text.trim().parse::<u16>() {
        Ok(c) if (200..=599).contains(&c) => Ok(c),
        Ok(c) => Err(format!("invalid matcher `{whole}`: {c} is outside 200-599")),
        Err(_) => Err(format!(
            "invalid matcher `{whole}`: `{}` is not a status code",
            text.trim()
        )),
    }
}

impl fmt::Display for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (lo, hi)) in self.ranges.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            if lo == hi {
                write!(f, "{lo}")?;
            } else {
                write!(f, "{lo}-{hi}")?;
            }
        }
        Ok(())
    }
}

/// An IPv4 or IPv6 network (`source-ip` condition values), e.g. `10.0.0.0/8`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cidr {
    /// Network address as written (host bits are ignored when matching).
    pub addr: IpAddr,
    /// Prefix length, at most 32 (IPv4) or 128 (IPv6).
    pub prefix: u8,
}

impl Cidr {
    /// True when `ip` lies inside this network. IPv4-mapped IPv6 addresses match IPv4 networks.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl FromStr for Cidr {
    type Err = String;

    /// `ADDR/PREFIX`; a bare address means a single host (`/32` or `/128`).
    fn from_str(s: &str) -> Result<Self, String> {
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| format!("invalid CIDR `{s}`: `{addr}` is not an IP address"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => match p.parse::<u8>() {
                Ok(n) if n <= max => n,
                _ => return Err(format!("invalid CIDR `{s}`: prefix length must be 0-{max}")),
            },
        };
        Ok(Self { addr, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// One `query-string` condition value: `"key=value"`, or `"value"` alone to match the value
/// under any key. Either side may use `*` and `?` wildcards (kept verbatim).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct QueryPair {
    /// Key to match; `None` matches any key.
    pub key: Option<String>,
    /// Value to match.
    pub value: String,
}

impl FromStr for QueryPair {
    type Err = String;

    /// Splits at the first unescaped `=`; empty values are rejected as in AWS.
    fn from_str(s: &str) -> Result<Self, String> {
        let split = s
            .char_indices()
            .scan(false, |escaped, (i, c)| {
                let here = !*escaped && c == '=';
                *escaped = !*escaped && c == '\\';
                Some((i, here))
            })
            .find(|&(_, here)| here)
            .map(|(i, _)| i);
        let (key, value) = match split {
            Some(i) => (Some(&s[..i]), &s[i + 1..]),
            None => (None, s),
        };
        if value.is_empty() {
            return Err(format!("query-string value `{s}` has an empty value"));
        }
        Ok(Self {
            key: key.filter(|k| !k.is_empty()).map(str::to_string),
            value: value.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matcher_forms() {
        let m = Matcher::parse("200").unwrap();
        assert!(m.matches(200) && !m.matches(201));
        let m = Matcher::parse("200,204").unwrap();
        assert!(m.matches(204) && !m.matches(202));
        let m = Matcher::parse("200-299").unwrap();
        assert!(m.matches(200) && m.matches(299) && !m.matches(300) && !m.matches(199));
        let m = Matcher::parse(" 200-299 , 302").unwrap();
        assert!(m.matches(302) && m.matches(250) && !m.matches(301));
        assert_eq!(m.to_string(), "200-299,302");
        assert!(Matcher::default().matches(200));
    }

    #[test]
    fn matcher_errors() {
        for bad in [
            "", "abc", "200-", "299-200", "100", "200,,204", "600", "2OO",
        ] {
            assert!(Matcher::parse(bad).is_err(), "{bad:?} should fail");
        }
    }

    #[test]
    fn cidr_parse_and_contains() {
        let c: Cidr = "10.0.0.0/8".parse().unwrap();
        assert!(c.contains("10.1.2.3".parse().unwrap()));
        assert!(!c.contains("11.0.0.1".parse().unwrap()));
        assert!(c.contains("::ffff:10.9.9.9".parse().unwrap()));
        assert!(!c.contains("::1".parse().unwrap()));
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains("1.2.3.4".parse().unwrap()));
        let host: Cidr = "192.168.1.5".parse().unwrap();
        assert_eq!(host.prefix, 32);
        assert!(host.contains("192.168.1.5".parse().unwrap()));
        assert!(!host.contains("192.168.1.6".parse().unwrap()));
        let v6: Cidr = "2001:db8::/32".parse().unwrap();
        assert!(v6.contains("2001:db8:1::1".parse().unwrap()));
        assert!(!v6.contains("2001:db9::1".parse().unwrap()));
        assert_eq!(v6.to_string(), "2001:db8::/32");
        let all6: Cidr = "::/0".parse().unwrap();
        assert!(all6.contains("::1".parse().unwrap()));
    }

    #[test]
    fn cidr_errors() {
        for bad in [
            "10.0.0.0/33",
            "::/129",
            "10.0.0/8",
            "x/8",
            "10.0.0.0/",
            "10.0.0.0/-1",
            "",
        ] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad:?} should fail");
        }
    }

    #[test]
    fn query_pairs() {
        let p: QueryPair = "version=v1".parse().unwrap();
        assert_eq!(p.key.as_deref(), Some("version"));
        assert_eq!(p.value, "v1");
        let p: QueryPair = "v1".parse().unwrap();
        assert_eq!((p.key, p.value.as_str()), (None, "v1"));
        let p: QueryPair = "*=x".parse().unwrap();
        assert_eq!(p.key.as_deref(), Some("*"));
        let p: QueryPair = r"a\=b=c".parse().unwrap();
        assert_eq!(p.key.as_deref(), Some(r"a\=b"));
        assert!("k=".parse::<QueryPair>().is_err());
    }
}
