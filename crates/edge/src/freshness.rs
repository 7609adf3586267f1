//! Whether an answer may be stored, for how long it is fresh, and how old it is (RFC 9111
//! §3, §4.2), with CloudFront's TTL bounds: an origin's `max-age`/`s-maxage`/`Expires` is
//! clamped to the behaviour's min..max TTL, and an answer that says nothing gets the default
//! TTL. Pure: the clock comes in as arguments.

use std::time::{Duration, SystemTime};

use http::header::{HeaderMap, AGE, DATE, EXPIRES, SET_COOKIE, VARY};
use http::Method;

use crate::cache_control::Directives;

/// CloudFront caches error answers this long when the origin says nothing (its "error
/// caching minimum TTL").
pub const ERROR_TTL: Duration = Duration::from_secs(10);

/// A behaviour's TTL bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ttls {
    /// Lower bound on an origin's explicit freshness.
    pub min: Duration,
    /// Freshness when the origin gives none.
    pub default: Duration,
    /// Upper bound on an origin's explicit freshness.
    pub max: Duration,
}

/// How a stored answer may be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lifetime {
    /// Fresh for this long from the origin's answer (its age included).
    pub fresh_for: Duration,
    /// May be served stale this long past freshness while a refresh runs.
    pub stale_while_revalidate: Duration,
    /// May be served stale this long past freshness when the origin fails.
    pub stale_if_error: Duration,
}

/// Why an answer is not stored, in words (for logs and tests).
pub type NotStored = &'static str;

/// Statuses RFC 9110 §15.1 lets a cache store without explicit freshness.
fn heuristic(status: u16) -> bool {
    matches!(
        status,
        200 | 203 | 204 | 300 | 301 | 308 | 404 | 405 | 410 | 414 | 501
    )
}

/// RFC 9111 §3 for a shared cache, and this cache's own refusals: partial answers (it
/// fetches whole objects), `Vary: *`, and `Set-Cookie` (one viewer's cookie is never served
/// to another).
pub fn storable(
    method: &Method,
    request_has_authorization: bool,
    status: u16,
    headers: &HeaderMap,
    d: &Directives,
) -> Result<(), NotStored> {
    if method != Method::GET {
        return Err("only GET answers are stored");
    }
    if d.no_store {
        return Err("no-store");
    }
    if d.private {
        return Err("private");
    }
    if status == 206 || (100..200).contains(&status) {
        return Err("partial or interim answer");
    }
    if request_has_authorization && !(d.public || d.s_maxage.is_some() || d.must_revalidate) {
        return Err("request carried Authorization");
    }
    if headers.get_all(VARY).iter().any(|v| {
        v.to_str()
            .is_ok_and(|s| s.split(',').any(|t| t.trim() == "*"))
    }) {
        return Err("Vary: *");
    }
    if headers.contains_key(SET_COOKIE) {
        return Err("Set-Cookie");
    }
    let explicit = d.max_age.is_some() || d.s_maxage.is_some() || headers.contains_key(EXPIRES);
    if !explicit && !heuristic(status) && !d.no_cache {
        return Err("status not cacheable without explicit freshness");
    }
    if status >= 500 && status != 501 && !explicit {
        return Err("server error");
    }
    Ok(())
}

/// How long a storable answer stays fresh, and its stale windows.
pub fn lifetime(status: u16, headers: &HeaderMap, d: &Directives, ttls: Ttls) -> Lifetime {
    let clamp = |v: Duration| v.clamp(ttls.min, ttls.max.max(ttls.min));
    let explicit = d.s_maxage.or(d.max_age).or_else(|| {
        let expires = date(headers, EXPIRES)?;
        // An invalid Expires (e.g. "0") means already expired (RFC 9111 §5.3).
        let base = date(headers, DATE).unwrap_or(SystemTime::UNIX_EPOCH);
        Some(expires.duration_since(base).unwrap_or(Duration::ZERO))
    });
    let invalid_expires = headers.contains_key(EXPIRES) && date(headers, EXPIRES).is_none();
    let fresh_for = if d.no_cache || d.invalid_age || (invalid_expires && explicit.is_none()) {
        Duration::ZERO
    } else {
        match explicit {
            Some(v) => clamp(v),
            None if status >= 400 => ttls.default.min(ERROR_TTL),
            None => ttls.default,
        }
    };
    let stale = |w: Option<Duration>| {
        if d.must_revalidate {
            Duration::ZERO
        } else {
            w.unwrap_or_default()
        }
    };
    Lifetime {
        fresh_for,
        stale_while_revalidate: stale(d.stale_while_revalidate),
        stale_if_error: stale(d.stale_if_error),
    }
}

/// The answer's age when it arrived (RFC 9111 §4.2.3): the larger of what its `Date` says
/// and its `Age` plus the time the request took.
pub fn initial_age(
    headers: &HeaderMap,
    request_time: SystemTime,
    response_time: SystemTime,
) -> Duration {
    let apparent = date(headers, DATE)
        .and_then(|d| response_time.duration_since(d).ok())
        .unwrap_or_default();
    let age = headers
        .get(AGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|s| s.trim().parse::<u64>().ok())
        .map(Duration::from_secs)
        .unwrap_or_default();
    let delay = response_time
        .duration_since(request_time)
        .unwrap_or_default();
    apparent.max(age + delay)
}

fn date(headers: &HeaderMap, name: http::header::HeaderName) -> Option<SystemTime> {
    let v = headers.get(name)?.to_str().ok()?;
    httpdate::parse_http_date(v.trim()).ok()
}

#[cfg(test)]
#[path = "freshness_tests.rs"]
mod tests;
