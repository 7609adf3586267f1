//! AWS Signature Version 4 as the SDKs sign Query requests: the `Authorization` header's
//! credential scope tells which service was meant (`ec2`, `elasticloadbalancing`,
//! `autoscaling`), and with configured keys the signature is recomputed and compared (HMAC-
//! SHA256 from `ring`, the implementation rustls already brings). Dates more than 15 minutes
//! off are refused, as AWS does.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use ring::{digest, hmac};

use super::error::{AwsError, AwsResult};

/// How far a request's `X-Amz-Date` may be from now.
const MAX_SKEW: Duration = Duration::from_secs(15 * 60);

/// The parts of an `Authorization: AWS4-HMAC-SHA256 …` header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Authorization {
    /// The access key id.
    pub access_key: String,
    /// `yyyymmdd` of the scope.
    pub date: String,
    /// The scope's region.
    pub region: String,
    /// The scope's service (`ec2`, `elasticloadbalancing`, `autoscaling`).
    pub service: String,
    /// Lower-case header names, as signed, in order.
    pub signed_headers: Vec<String>,
    /// Hex signature.
    pub signature: String,
}

fn incomplete(why: &str) -> AwsError {
    AwsError::new(
        "IncompleteSignature",
        format!("Authorization header is not a valid AWS4-HMAC-SHA256 signature: {why}"),
    )
}

impl Authorization {
    /// Parses the header's value.
    pub fn parse(value: &str) -> AwsResult<Authorization> {
        let rest = value
            .strip_prefix("AWS4-HMAC-SHA256")
            .ok_or_else(|| incomplete("unsupported algorithm (only AWS4-HMAC-SHA256)"))?;
        let mut fields = BTreeMap::new();
        for part in rest.split(',') {
            let (k, v) = part
                .trim()
                .split_once('=')
                .ok_or_else(|| incomplete("expected Credential=, SignedHeaders=, Signature="))?;
            fields.insert(k.trim(), v.trim());
        }
        let field = |k: &str| {
            fields
                .get(k)
                .copied()
                .ok_or_else(|| incomplete(&format!("{k} is missing")))
        };
        let scope: Vec<&str> = field("Credential")?.split('/').collect();
        let [access_key, date, region, service, "aws4_request"] = scope[..] else {
            return Err(incomplete(
                "Credential must be AKID/yyyymmdd/region/service/aws4_request",
            ));
        };
        let signature = field("Signature")?;
        if signature.len() != 64 || !signature.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(incomplete("Signature must be 64 hex digits"));
        }
        Ok(Authorization {
            access_key: access_key.to_string(),
            date: date.to_string(),
            region: region.to_string(),
            service: service.to_string(),
            signed_headers: field("SignedHeaders")?
                .split(';')
                .map(|h| h.to_ascii_lowercase())
                .collect(),
            signature: signature.to_ascii_lowercase(),
        })
    }
}

/// What a request looked like on the wire, for the canonical request.
pub struct SignedRequest<'a> {
    /// `POST` or `GET`.
    pub method: &'a str,
    /// The raw query string (empty for POST).
    pub query: &'a str,
    /// Header name (lower case) → values.
    pub headers: &'a BTreeMap<String, Vec<String>>,
    /// The body.
    pub body: &'a [u8],
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn sha256_hex(data: &[u8]) -> String {
    hex(digest::digest(&digest::SHA256, data).as_ref())
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), data)
        .as_ref()
        .to_vec()
}

/// URI-encodes as SigV4 wants (unreserved characters kept, the rest `%XX` upper case).
fn uri_encode(s: &str, out: &mut String) {
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
}

fn canonical_query(raw: &str) -> AwsResult<String> {
    let mut pairs: Vec<(String, String)> = Vec::new();
    for pair in raw.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let one = super::form::Params::parse(format!("k={k}&v={v}").as_bytes())?;
        let (mut ek, mut ev) = (String::new(), String::new());
        uri_encode(one.get("k").unwrap_or(""), &mut ek);
        uri_encode(one.get("v").unwrap_or(""), &mut ev);
        pairs.push((ek, ev));
    }
    pairs.sort();
    Ok(pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&"))
}

/// The canonical request SigV4 hashes.
fn canonical_request(req: &SignedRequest<'_>, auth: &Authorization) -> AwsResult<String> {
    let mut headers = String::new();
    for name in &auth.signed_headers {
        let values = req.headers.get(name).ok_or_else(|| {
            AwsError::forbidden(
                "SignatureDoesNotMatch",
                format!("The request signature we calculated does not match the signature you provided: signed header {name} is not in the request"),
            )
        })?;
        let joined: Vec<String> = values
            .iter()
            .map(|v| v.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect();
        headers.push_str(&format!("{name}:{}\n", joined.join(",")));
    }
    Ok(format!(
        "{}\n/\n{}\n{}\n{}\n{}",
        req.method,
        canonical_query(req.query)?,
        headers,
        auth.signed_headers.join(";"),
        sha256_hex(req.body)
    ))
}

/// The signature of `req` with `secret`, for `amz_date` (`yyyymmddThhmmssZ`).
pub fn signature(
    req: &SignedRequest<'_>,
    auth: &Authorization,
    amz_date: &str,
    secret: &str,
) -> AwsResult<String> {
    let scope = format!(
        "{}/{}/{}/aws4_request",
        auth.date, auth.region, auth.service
    );
    let to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        sha256_hex(canonical_request(req, auth)?.as_bytes())
    );
    let k_date = hmac(format!("AWS4{secret}").as_bytes(), auth.date.as_bytes());
    let k_region = hmac(&k_date, auth.region.as_bytes());
    let k_service = hmac(&k_region, auth.service.as_bytes());
    let k_signing = hmac(&k_service, b"aws4_request");
    Ok(hex(&hmac(&k_signing, to_sign.as_bytes())))
}

/// Parses `yyyymmddThhmmssZ`.
pub fn parse_amz_date(s: &str) -> Option<SystemTime> {
    let b = s.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, mo, d) = (num(0..4)?, num(4..6)?, num(6..8)?);
    let (h, mi, se) = (num(9..11)?, num(11..13)?, num(13..15)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 {
        return None;
    }
    // Days from civil (Howard Hinnant's algorithm).
    let y2 = if mo <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = u64::try_from(days * 86_400 + h * 3600 + mi * 60 + se).ok()?;
    Some(SystemTime::UNIX_EPOCH + Duration::from_secs(secs))
}

/// Checks a signed request against `keys` (access key → secret) at `now`, in `region`.
/// `ec2` selects EC2's error codes.
pub fn verify(
    req: &SignedRequest<'_>,
    auth: &Authorization,
    keys: &BTreeMap<String, String>,
    region: &str,
    now: SystemTime,
    ec2: bool,
) -> AwsResult<()> {
    let Some(secret) = keys.get(&auth.access_key) else {
        return Err(if ec2 {
            AwsError {
                status: 401,
                ..AwsError::new(
                    "AuthFailure",
                    "AWS was not able to validate the provided access credentials",
                )
            }
        } else {
            AwsError::forbidden(
                "InvalidClientTokenId",
                "The security token included in the request is invalid.",
            )
        });
    };
    let amz_date = req
        .headers
        .get("x-amz-date")
        .and_then(|v| v.first())
        .ok_or_else(|| incomplete("the X-Amz-Date header is missing"))?;
    let when = parse_amz_date(amz_date)
        .ok_or_else(|| incomplete(&format!("X-Amz-Date `{amz_date}` is not yyyymmddThhmmssZ")))?;
    let stamp = humantime::format_rfc3339_seconds(now).to_string();
    let compact: String = stamp.chars().filter(|c| *c != '-' && *c != ':').collect();
    if when + MAX_SKEW < now || when > now + MAX_SKEW {
        let (word, op) = if when < now {
            ("expired", "is now earlier than")
        } else {
            ("not yet current", "is still later than")
        };
        let message =
            format!("Signature {word}: {amz_date} {op} the time allowed (now {compact}, ±15 min.)");
        return Err(if ec2 {
            AwsError::new("RequestExpired", message)
        } else {
            AwsError::forbidden("SignatureDoesNotMatch", message)
        });
    }
    if !amz_date.starts_with(&auth.date) || auth.region != region {
        return Err(AwsError::forbidden(
            "SignatureDoesNotMatch",
            format!(
                "Credential should be scoped to a valid region and date: {}/{} is not {region} on {}",
                auth.date,
                auth.region,
                &amz_date[..8]
            ),
        ));
    }
    let expected = signature(req, auth, amz_date, secret)?;
    let same = expected.len() == auth.signature.len()
        && expected
            .bytes()
            .zip(auth.signature.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0;
    if !same {
        return Err(AwsError::forbidden(
            "SignatureDoesNotMatch",
            "The request signature we calculated does not match the signature you provided. \
             Check your AWS Secret Access Key and signing method.",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// AWS's documented example (IAM `ListUsers`, GET, in the SigV4 guide).
    #[test]
    fn the_documented_example_signature_is_reproduced() {
        let auth = Authorization::parse(
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/iam/aws4_request, \
             SignedHeaders=content-type;host;x-amz-date, \
             Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7",
        )
        .unwrap();
        let mut headers = BTreeMap::new();
        headers.insert(
            "content-type".to_string(),
            vec!["application/x-www-form-urlencoded; charset=utf-8".to_string()],
        );
        headers.insert("host".to_string(), vec!["iam.amazonaws.com".to_string()]);
        headers.insert(
            "x-amz-date".to_string(),
            vec!["20150830T123600Z".to_string()],
        );
        let req = SignedRequest {
            method: "GET",
            query: "Action=ListUsers&Version=2010-05-08",
            headers: &headers,
            body: b"",
        };
        let keys: BTreeMap<String, String> = [(
            "AKIDEXAMPLE".to_string(),
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".to_string(),
        )]
        .into();
        let now = parse_amz_date("20150830T123700Z").unwrap();
        verify(&req, &auth, &keys, "us-east-1", now, false).unwrap();
        let wrong: BTreeMap<String, String> =
            [("AKIDEXAMPLE".to_string(), "other".to_string())].into();
        let e = verify(&req, &auth, &wrong, "us-east-1", now, false).unwrap_err();
        assert_eq!((e.code.as_str(), e.status), ("SignatureDoesNotMatch", 403));
        let late = parse_amz_date("20150830T130000Z").unwrap();
        let e = verify(&req, &auth, &keys, "us-east-1", late, false).unwrap_err();
        assert!(e.message.contains("expired"), "{e}");
        let e = verify(&req, &auth, &keys, "us-east-1", late, true).unwrap_err();
        assert_eq!(e.code, "RequestExpired");
    }

    #[test]
    fn malformed_headers_are_incomplete_signatures() {
        for bad in [
            "AWS4-HMAC-SHA1 Credential=a/b/c/d/aws4_request",
            "AWS4-HMAC-SHA256 Credential=a/b/c, SignedHeaders=host, Signature=00",
            "AWS4-HMAC-SHA256 SignedHeaders=host",
        ] {
            assert_eq!(
                Authorization::parse(bad).unwrap_err().code,
                "IncompleteSignature"
            );
        }
        assert_eq!(parse_amz_date("20150830T12360Z"), None);
    }
}
