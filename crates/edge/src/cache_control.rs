//! `Cache-Control` as RFC 9111 §5.2 reads it, for responses (the origin's word on caching).
//! Unknown directives are ignored; a malformed number voids only its own directive (§4.2.1:
//! a cache then treats the response as if that directive were absent — except `max-age`
//! and `s-maxage`, whose invalid value makes the response stale, §4.2.1).

use std::time::Duration;

use http::header::{HeaderMap, CACHE_CONTROL, PRAGMA};

/// The response directives a shared cache obeys.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Directives {
    /// `max-age=N`.
    pub max_age: Option<Duration>,
    /// `s-maxage=N` (shared caches only; wins over `max-age`).
    pub s_maxage: Option<Duration>,
    /// A present but invalid `max-age`/`s-maxage`: stale at once.
    pub invalid_age: bool,
    /// `no-store`: never stored.
    pub no_store: bool,
    /// `no-cache` (without field names): stored, but revalidated before every use.
    pub no_cache: bool,
    /// `private`: not for a shared cache.
    pub private: bool,
    /// `public`: storable even with `Authorization`.
    pub public: bool,
    /// `must-revalidate`/`proxy-revalidate`: never served stale.
    pub must_revalidate: bool,
    /// `stale-while-revalidate=N` (RFC 5861).
    pub stale_while_revalidate: Option<Duration>,
    /// `stale-if-error=N` (RFC 5861).
    pub stale_if_error: Option<Duration>,
}

impl Directives {
    /// Reads every `Cache-Control` field of `headers` (and `Pragma: no-cache` when there is
    /// no `Cache-Control`, RFC 9111 §5.4).
    pub fn parse(headers: &HeaderMap) -> Directives {
        let mut d = Directives::default();
        let mut any = false;
        for v in headers.get_all(CACHE_CONTROL) {
            let Ok(s) = v.to_str() else { continue };
            any = true;
            for item in split_items(s) {
                d.apply(item);
            }
        }
        if !any {
            let pragma_no_cache = headers
                .get_all(PRAGMA)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .any(|p| {
                    p.split(',')
                        .any(|t| t.trim().eq_ignore_ascii_case("no-cache"))
                });
            d.no_cache = pragma_no_cache;
        }
        d
    }

    fn apply(&mut self, item: &str) {
        let (name, value) = match item.split_once('=') {
            Some((n, v)) => (n.trim(), Some(v.trim().trim_matches('"'))),
            None => (item.trim(), None),
        };
        let secs = || value.and_then(seconds);
        match name.to_ascii_lowercase().as_str() {
            "max-age" => match secs() {
                Some(s) => self.max_age = Some(s),
                None => self.invalid_age = true,
            },
            "s-maxage" => match secs() {
                Some(s) => self.s_maxage = Some(s),
                None => self.invalid_age = true,
            },
            "no-store" => self.no_store = true,
            // `no-cache="Set-Cookie"` only forbids sending those fields unvalidated; this
            // cache treats it as plain no-cache, the safe reading.
            "no-cache" => self.no_cache = true,
            // `private="field"` likewise: not stored at all.
            "private" => self.private = true,
            "public" => self.public = true,
            "must-revalidate" | "proxy-revalidate" => self.must_revalidate = true,
            "stale-while-revalidate" => self.stale_while_revalidate = secs(),
            "stale-if-error" => self.stale_if_error = secs(),
            _ => {}
        }
    }
}

/// Items of a directive list, split at commas outside quoted strings.
fn split_items(s: &str) -> impl Iterator<Item = &str> {
    let mut items = Vec::new();
    let (mut start, mut quoted) = (0, false);
    for (i, c) in s.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => {
                items.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    items.push(&s[start..]);
    items.into_iter().map(str::trim).filter(|i| !i.is_empty())
}

/// RFC 9111 §1.2.2 delta-seconds: digits only; too large a number is 2^31 seconds.
fn seconds(s: &str) -> Option<Duration> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n = s.parse::<u64>().unwrap_or(u64::MAX).min(1 << 31);
    Some(Duration::from_secs(n))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn parse(v: &[&str]) -> Directives {
        let mut h = HeaderMap::new();
        for s in v {
            h.append(CACHE_CONTROL, HeaderValue::from_str(s).unwrap());
        }
        Directives::parse(&h)
    }

    #[test]
    fn directives_across_fields_and_quotes() {
        let d = parse(&["public, max-age=60", "s-maxage=\"120\", stale-if-error=30"]);
        assert!(d.public);
        assert_eq!(d.max_age, Some(Duration::from_secs(60)));
        assert_eq!(d.s_maxage, Some(Duration::from_secs(120)));
        assert_eq!(d.stale_if_error, Some(Duration::from_secs(30)));
        let d = parse(&["private=\"a, b\", no-store"]);
        assert!(d.private && d.no_store);
    }

    #[test]
    fn invalid_ages_make_stale_and_huge_ones_saturate() {
        assert!(parse(&["max-age=-1"]).invalid_age);
        assert!(parse(&["max-age=1.5"]).invalid_age);
        assert_eq!(
            parse(&["max-age=99999999999999999999"]).max_age,
            Some(Duration::from_secs(1 << 31))
        );
    }

    #[test]
    fn pragma_counts_only_without_cache_control() {
        let mut h = HeaderMap::new();
        h.insert(PRAGMA, HeaderValue::from_static("no-cache"));
        assert!(Directives::parse(&h).no_cache);
        h.insert(CACHE_CONTROL, HeaderValue::from_static("max-age=5"));
        assert!(!Directives::parse(&h).no_cache);
    }
}
