//! Compression of cached objects (CloudFront's rules): text-like content types between
//! 1,000 and 10,000,000 bytes, not already encoded and not marked `no-transform`, are stored
//! compressed with brotli (the `brotli` crate) or gzip (`flate2`) for viewers that accept it.

use std::io::Write;

use http::header::{HeaderMap, CACHE_CONTROL, CONTENT_ENCODING, CONTENT_TYPE};

use crate::key::Encoding;

/// CloudFront compresses objects of at least this size...
pub const MIN_SIZE: usize = 1_000;
/// ... and at most this size.
pub const MAX_SIZE: usize = 10_000_000;

/// Whether an origin answer with these headers and body length may be compressed.
pub fn compressible(headers: &HeaderMap, len: usize) -> bool {
    if !(MIN_SIZE..=MAX_SIZE).contains(&len) || headers.contains_key(CONTENT_ENCODING) {
        return false;
    }
    let no_transform = headers
        .get_all(CACHE_CONTROL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.to_ascii_lowercase().contains("no-transform"));
    if no_transform {
        return false;
    }
    let ct = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    ct.starts_with("text/")
        || matches!(
            ct.as_str(),
            "application/json"
                | "application/javascript"
                | "application/x-javascript"
                | "application/xml"
                | "application/xhtml+xml"
                | "application/rss+xml"
                | "application/atom+xml"
                | "application/wasm"
                | "image/svg+xml"
                | "font/ttf"
                | "font/otf"
        )
}

/// `body` compressed with `encoding` (identity returns `None`, as does a failure).
pub fn compress(encoding: Encoding, body: &[u8]) -> Option<Vec<u8>> {
    match encoding {
        Encoding::Identity => None,
        Encoding::Gzip => {
            let mut e = flate2::write::GzEncoder::new(
                Vec::with_capacity(body.len() / 3),
                flate2::Compression::new(6),
            );
            e.write_all(body).ok()?;
            e.finish().ok()
        }
        Encoding::Br => {
            let mut out = Vec::with_capacity(body.len() / 3);
            let params = brotli::enc::BrotliEncoderParams {
                quality: 5,
                lgwin: 22,
                ..Default::default()
            };
            brotli::BrotliCompress(&mut &body[..], &mut out, &params).ok()?;
            Some(out)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;
    use std::io::Read;

    #[test]
    fn text_compresses_both_ways_and_round_trips() {
        let body = "hello edge ".repeat(200);
        let gz = compress(Encoding::Gzip, body.as_bytes()).unwrap();
        let mut out = String::new();
        flate2::read::GzDecoder::new(&gz[..])
            .read_to_string(&mut out)
            .unwrap();
        assert_eq!(out, body);
        let br = compress(Encoding::Br, body.as_bytes()).unwrap();
        let mut out = Vec::new();
        brotli::BrotliDecompress(&mut &br[..], &mut out).unwrap();
        assert_eq!(out, body.as_bytes());
        assert!(br.len() < body.len() / 4);
    }

    #[test]
    fn only_text_like_mid_sized_unencoded_answers() {
        let mut h = HeaderMap::new();
        h.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        );
        assert!(compressible(&h, 5000));
        assert!(!compressible(&h, 10));
        h.insert(
            CACHE_CONTROL,
            HeaderValue::from_static("max-age=1, no-transform"),
        );
        assert!(!compressible(&h, 5000));
        let mut h = HeaderMap::new();
        h.insert(CONTENT_TYPE, HeaderValue::from_static("image/png"));
        assert!(!compressible(&h, 5000));
    }
}
