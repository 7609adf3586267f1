//! Cache keys (CloudFront's cache key policy): host, path, and only the query strings,
//! headers and cookies the policy names, plus the negotiated encoding when the behaviour
//! compresses. What is not in the key is not forwarded to the origin either, so no header a
//! viewer sends (`X-Forwarded-Host`, `X-Original-URL`, …) can change what is stored under a
//! key another viewer reads.

use http::header::{HeaderMap, ACCEPT_ENCODING, COOKIE};

use flotilla_config::edge::{CacheKeyPolicy, KeyList};

/// A content coding this cache produces or asks origins for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Encoding {
    /// brotli.
    Br,
    /// gzip.
    Gzip,
    /// None.
    Identity,
}

impl Encoding {
    /// The `Content-Encoding` token (empty for identity).
    pub fn token(self) -> &'static str {
        match self {
            Encoding::Br => "br",
            Encoding::Gzip => "gzip",
            Encoding::Identity => "",
        }
    }

    /// The best coding `Accept-Encoding` allows: brotli, then gzip (`q=0` refuses one).
    pub fn negotiate(headers: &HeaderMap) -> Encoding {
        let (mut br, mut gzip) = (false, false);
        for v in headers.get_all(ACCEPT_ENCODING) {
            let Ok(s) = v.to_str() else { continue };
            for item in s.split(',') {
                let mut parts = item.split(';');
                let coding = parts.next().unwrap_or("").trim().to_ascii_lowercase();
                let refused = parts.any(|p| {
                    p.trim()
                        .strip_prefix("q=")
                        .is_some_and(|q| q.trim().parse::<f32>().is_ok_and(|q| q <= 0.0))
                });
                match coding.as_str() {
                    "br" => br = !refused,
                    "gzip" | "x-gzip" => gzip = !refused,
                    "*" if !refused => {
                        br = true;
                        gzip = true;
                    }
                    _ => {}
                }
            }
        }
        if br {
            Encoding::Br
        } else if gzip {
            Encoding::Gzip
        } else {
            Encoding::Identity
        }
    }
}

/// The query parameters the policy keeps, in their original order (forwarded as such).
pub fn kept_query<'a>(query: Option<&'a str>, policy: &KeyList) -> Vec<&'a str> {
    let Some(q) = query else { return Vec::new() };
    q.split('&')
        .filter(|p| !p.is_empty())
        .filter(|p| {
            let name = p.split_once('=').map_or(*p, |(n, _)| n);
            match policy {
                KeyList::None => false,
                KeyList::All => true,
                KeyList::Only(names) => names.iter().any(|n| n == name),
            }
        })
        .collect()
}

/// The cookies the policy keeps, as `name=value`.
pub fn kept_cookies<'a>(headers: &'a HeaderMap, policy: &KeyList) -> Vec<&'a str> {
    if *policy == KeyList::None {
        return Vec::new();
    }
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|s| s.split(';'))
        .map(str::trim)
        .filter(|c| {
            let name = c.split_once('=').map_or(*c, |(n, _)| n);
            match policy {
                KeyList::None => false,
                KeyList::All => !c.is_empty(),
                KeyList::Only(names) => names.iter().any(|n| n == name),
            }
        })
        .collect()
}

/// The cache key of a request: `host path ?sorted-query \0 header=value … \0 cookies \0
/// encoding`. Query parameters and cookies are sorted, so their order does not split the
/// cache; header names are lowercase and their repeated values joined in order.
pub fn cache_key(
    host: &str,
    path: &str,
    query: Option<&str>,
    headers: &HeaderMap,
    policy: &CacheKeyPolicy,
    encoding: Option<Encoding>,
) -> String {
    let mut key = String::with_capacity(host.len() + path.len() + 16);
    key.push_str(&host.to_ascii_lowercase());
    key.push_str(path);
    let mut q = kept_query(query, &policy.query_strings);
    if !q.is_empty() {
        q.sort_unstable();
        key.push('?');
        key.push_str(&q.join("&"));
    }
    for name in &policy.headers {
        key.push('\0');
        key.push_str(name);
        key.push('=');
        let values: Vec<&str> = headers
            .get_all(name.as_str())
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        key.push_str(&values.join(","));
    }
    let mut cookies = kept_cookies(headers, &policy.cookies);
    if !cookies.is_empty() {
        cookies.sort_unstable();
        key.push_str("\0cookie=");
        key.push_str(&cookies.join(";"));
    }
    if let Some(e) = encoding {
        key.push_str("\0ae=");
        key.push_str(e.token());
    }
    key
}

/// The host a request names: its `Host` (or `:authority`), lowercase, without the port.
pub fn request_host(uri: &http::Uri, headers: &HeaderMap) -> String {
    let raw = headers
        .get(http::header::HOST)
        .and_then(|v| v.to_str().ok())
        .or_else(|| uri.authority().map(|a| a.as_str()))
        .unwrap_or("");
    let without_port = match raw.strip_prefix('[') {
        Some(rest) => rest.find(']').map_or(raw, |i| &raw[..i + 2]),
        None => raw.split(':').next().unwrap_or(raw),
    };
    without_port.to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn hm(list: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (n, v) in list {
            h.append(*n, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn unkeyed_headers_do_not_change_the_key() {
        let p = CacheKeyPolicy::default();
        let plain = cache_key("a.test", "/x", None, &hm(&[]), &p, None);
        let poisoned = cache_key(
            "a.test",
            "/x",
            None,
            &hm(&[
                ("x-forwarded-host", "evil.test"),
                ("x-original-url", "/admin"),
            ]),
            &p,
            None,
        );
        assert_eq!(plain, poisoned);
    }

    #[test]
    fn query_strings_and_cookies_by_policy_sorted() {
        let p = CacheKeyPolicy {
            query_strings: KeyList::Only(vec!["a".into(), "b".into()]),
            headers: vec!["accept-language".into()],
            cookies: KeyList::Only(vec!["s".into()]),
        };
        let h = hm(&[("accept-language", "de"), ("cookie", "t=1; s=2")]);
        let k1 = cache_key(
            "A.test",
            "/p",
            Some("b=2&z=9&a=1"),
            &h,
            &p,
            Some(Encoding::Gzip),
        );
        let k2 = cache_key(
            "a.test",
            "/p",
            Some("a=1&b=2"),
            &h,
            &p,
            Some(Encoding::Gzip),
        );
        assert_eq!(k1, k2);
        assert_eq!(
            k1,
            "a.test/p?a=1&b=2\0accept-language=de\0cookie=s=2\0ae=gzip"
        );
        let other = cache_key(
            "a.test",
            "/p",
            Some("a=1&b=2"),
            &hm(&[("accept-language", "fr")]),
            &p,
            Some(Encoding::Gzip),
        );
        assert_ne!(k1, other);
    }

    #[test]
    fn negotiation_prefers_brotli_and_honours_q_zero() {
        assert_eq!(
            Encoding::negotiate(&hm(&[("accept-encoding", "gzip, br")])),
            Encoding::Br
        );
        assert_eq!(
            Encoding::negotiate(&hm(&[("accept-encoding", "gzip, br;q=0")])),
            Encoding::Gzip
        );
        assert_eq!(
            Encoding::negotiate(&hm(&[("accept-encoding", "identity")])),
            Encoding::Identity
        );
        assert_eq!(Encoding::negotiate(&hm(&[])), Encoding::Identity);
    }

    #[test]
    fn hosts_lose_their_port_and_case() {
        let u: http::Uri = "/".parse().unwrap();
        assert_eq!(
            request_host(&u, &hm(&[("host", "WWW.Example.test:8080")])),
            "www.example.test"
        );
        assert_eq!(request_host(&u, &hm(&[("host", "[::1]:80")])), "[::1]");
        assert_eq!(request_host(&u, &hm(&[("host", "[::1]")])), "[::1]");
    }
}
