//! Range requests on cached objects (RFC 9110 §14): one `bytes=` range is served as 206;
//! several ranges, other units or a failed `If-Range` get the whole object (which the RFC
//! allows); a range that starts past the end gets 416.

use http::header::{HeaderMap, IF_RANGE, RANGE};

/// What to send of an object of `len` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slice {
    /// The whole object (200).
    Whole,
    /// Bytes `start..=end` (206).
    Part {
        /// First byte.
        start: u64,
        /// Last byte, inclusive.
        end: u64,
    },
    /// 416 with `Content-Range: bytes */len`.
    Unsatisfiable,
}

/// The slice a request asks for; `validator` is the object's ETag or Last-Modified, for
/// `If-Range`.
pub fn slice(
    headers: &HeaderMap,
    len: u64,
    etag: Option<&str>,
    last_modified: Option<&str>,
) -> Slice {
    let Some(range) = headers.get(RANGE).and_then(|v| v.to_str().ok()) else {
        return Slice::Whole;
    };
    if let Some(cond) = headers.get(IF_RANGE).and_then(|v| v.to_str().ok()) {
        let cond = cond.trim();
        // A strong ETag or the exact date must match; otherwise the whole object.
        let strong = !cond.starts_with("W/") && Some(cond) == etag;
        if !(strong || Some(cond) == last_modified) {
            return Slice::Whole;
        }
    }
    let Some(spec) = range.trim().strip_prefix("bytes=") else {
        return Slice::Whole;
    };
    if spec.contains(',') {
        return Slice::Whole;
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return Slice::Whole;
    };
    let (a, b) = (a.trim(), b.trim());
    let num = |s: &str| {
        (!s.is_empty() && s.bytes().all(|c| c.is_ascii_digit()))
            .then(|| s.parse::<u64>().ok())
            .flatten()
    };
    match (num(a), num(b)) {
        (Some(start), _) if start >= len => Slice::Unsatisfiable,
        (Some(start), Some(end)) if end >= start => Slice::Part {
            start,
            end: end.min(len - 1),
        },
        (Some(start), None) if b.is_empty() => Slice::Part {
            start,
            end: len - 1,
        },
        (None, Some(suffix)) if a.is_empty() && suffix > 0 && len > 0 => Slice::Part {
            start: len.saturating_sub(suffix),
            end: len - 1,
        },
        (None, Some(_)) if a.is_empty() => Slice::Unsatisfiable,
        _ => Slice::Whole,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn r(v: &str, len: u64) -> Slice {
        let mut h = HeaderMap::new();
        h.insert(RANGE, HeaderValue::from_str(v).unwrap());
        slice(&h, len, Some("\"e1\""), None)
    }

    #[test]
    fn single_ranges() {
        assert_eq!(r("bytes=0-9", 100), Slice::Part { start: 0, end: 9 });
        assert_eq!(r("bytes=90-", 100), Slice::Part { start: 90, end: 99 });
        assert_eq!(r("bytes=-10", 100), Slice::Part { start: 90, end: 99 });
        assert_eq!(r("bytes=50-500", 100), Slice::Part { start: 50, end: 99 });
        assert_eq!(r("bytes=100-", 100), Slice::Unsatisfiable);
        assert_eq!(r("bytes=0-1,5-6", 100), Slice::Whole);
        assert_eq!(r("items=0-1", 100), Slice::Whole);
        assert_eq!(r("bytes=9-1", 100), Slice::Whole);
    }

    #[test]
    fn if_range_must_match() {
        let mut h = HeaderMap::new();
        h.insert(RANGE, HeaderValue::from_static("bytes=0-0"));
        h.insert(IF_RANGE, HeaderValue::from_static("\"old\""));
        assert_eq!(slice(&h, 10, Some("\"e1\""), None), Slice::Whole);
        h.insert(IF_RANGE, HeaderValue::from_static("\"e1\""));
        assert_eq!(
            slice(&h, 10, Some("\"e1\""), None),
            Slice::Part { start: 0, end: 0 }
        );
    }
}
