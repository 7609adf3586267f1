//! The request's parameters: `application/x-www-form-urlencoded` decoded strictly (a broken
//! percent escape or bytes that are not UTF-8 are refused, never guessed at), then read by
//! name with the Query protocol's flattening: `Name.member.N` lists (EC2: `Name.N`), nested
//! `Parent.Member` structures, and `Name=` for an empty list.

use std::collections::BTreeMap;

use super::error::{AwsError, AwsResult};

/// Parameters by their flattened name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Params {
    map: BTreeMap<String, String>,
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Decodes one `+`/`%XX`-encoded component.
fn decode(raw: &[u8]) -> Result<String, String> {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        match raw[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let byte = raw
                    .get(i + 1)
                    .and_then(|h| hex(*h))
                    .zip(raw.get(i + 2).and_then(|l| hex(*l)))
                    .map(|(h, l)| h * 16 + l)
                    .ok_or_else(|| {
                        let end = (i + 3).min(raw.len());
                        format!(
                            "invalid percent escape `{}`",
                            String::from_utf8_lossy(&raw[i..end])
                        )
                    })?;
                out.push(byte);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| "a parameter is not valid UTF-8".to_string())
}

impl Params {
    /// Parses a form body (or a query string). Refuses malformed input with
    /// `MalformedQueryString`, naming what is wrong.
    pub fn parse(body: &[u8]) -> AwsResult<Params> {
        let mut map = BTreeMap::new();
        for pair in body.split(|b| *b == b'&').filter(|p| !p.is_empty()) {
            let (k, v) = match pair.iter().position(|b| *b == b'=') {
                Some(i) => (&pair[..i], &pair[i + 1..]),
                None => (pair, &b""[..]),
            };
            let bad = |m: String| AwsError::new("MalformedQueryString", m);
            let key = decode(k).map_err(bad)?;
            let value = decode(v).map_err(bad)?;
            if key.is_empty() {
                return Err(bad("a parameter has an empty name".into()));
            }
            map.insert(key, value);
        }
        Ok(Params { map })
    }

    /// Parameters from pairs (tests, and sub-structures).
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Params {
        Params {
            map: pairs
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    /// The value of `name`, if given.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.map.get(name).map(String::as_str)
    }

    /// Whether any parameter is `name` or starts with `name.`.
    pub fn has(&self, name: &str) -> bool {
        self.map.contains_key(name) || !self.sub(name).map.is_empty()
    }

    /// The value of `name`; `MissingParameter` when absent.
    pub fn required(&self, name: &str) -> AwsResult<&str> {
        self.get(name).ok_or_else(|| AwsError::missing(name))
    }

    /// `name` as an integer in `min..=max`, if given; a bad value is `ValidationError`
    /// (`code` lets EC2 say `InvalidParameterValue`).
    pub fn int(&self, name: &str, min: i64, max: i64) -> AwsResult<Option<i64>> {
        let Some(v) = self.get(name) else {
            return Ok(None);
        };
        let n: i64 = v.trim().parse().map_err(|_| {
            AwsError::validation(format!(
                "Value '{v}' for parameter {name} is invalid: expected an integer"
            ))
        })?;
        if n < min || n > max {
            return Err(AwsError::validation(format!(
                "Value '{n}' at '{name}' failed to satisfy constraint: Member must have value \
                 between {min} and {max}"
            )));
        }
        Ok(Some(n))
    }

    /// `name` as a u32 in `min..=max`, if given.
    pub fn u32(&self, name: &str, min: u32, max: u32) -> AwsResult<Option<u32>> {
        Ok(self
            .int(name, i64::from(min), i64::from(max))?
            .map(|n| u32::try_from(n).unwrap_or(max)))
    }

    /// `name` as a number, if given.
    pub fn float(&self, name: &str) -> AwsResult<Option<f64>> {
        let Some(v) = self.get(name) else {
            return Ok(None);
        };
        match v.trim().parse::<f64>() {
            Ok(x) if x.is_finite() => Ok(Some(x)),
            _ => Err(AwsError::validation(format!(
                "Value '{v}' for parameter {name} is invalid: expected a number"
            ))),
        }
    }

    /// `name` as `true`/`false`, if given.
    pub fn boolean(&self, name: &str) -> AwsResult<Option<bool>> {
        match self.get(name) {
            None => Ok(None),
            Some(v) if v.eq_ignore_ascii_case("true") => Ok(Some(true)),
            Some(v) if v.eq_ignore_ascii_case("false") => Ok(Some(false)),
            Some(v) => Err(AwsError::validation(format!(
                "Value '{v}' for parameter {name} is invalid: expected true or false"
            ))),
        }
    }

    /// The parameters under `prefix.`, with the prefix removed.
    pub fn sub(&self, prefix: &str) -> Params {
        let dotted = format!("{prefix}.");
        Params {
            map: self
                .map
                .range(dotted.clone()..)
                .take_while(|(k, _)| k.starts_with(&dotted))
                .map(|(k, v)| (k[dotted.len()..].to_string(), v.clone()))
                .collect(),
        }
    }

    /// The entries of a flattened list under `prefix` (`prefix.member.N…` for Query,
    /// `prefix.N…` for EC2 when `member` is false), in numeric index order, each as the
    /// parameters under it (`""` holds a scalar item's value). `None` when the list is absent;
    /// `prefix=` alone is the empty list.
    pub fn list_entries(&self, prefix: &str, member: bool) -> AwsResult<Option<Vec<Params>>> {
        let base = if member {
            format!("{prefix}.member")
        } else {
            prefix.to_string()
        };
        let under = self.sub(&base);
        if under.map.is_empty() {
            return Ok(self.map.contains_key(prefix).then(Vec::new));
        }
        let mut entries: BTreeMap<u32, Params> = BTreeMap::new();
        for (k, v) in &under.map {
            let (index, rest) = match k.split_once('.') {
                Some((i, rest)) => (i, rest),
                None => (k.as_str(), ""),
            };
            let n: u32 = index.parse().ok().filter(|n| *n >= 1).ok_or_else(|| {
                AwsError::validation(format!("{base}.{index}: a list index must be 1 or more"))
            })?;
            entries
                .entry(n)
                .or_default()
                .map
                .insert(rest.to_string(), v.clone());
        }
        Ok(Some(entries.into_values().collect()))
    }

    /// A list of strings (`prefix.member.N`, or `prefix.N` for EC2).
    pub fn strings(&self, prefix: &str, member: bool) -> AwsResult<Option<Vec<String>>> {
        let Some(entries) = self.list_entries(prefix, member)? else {
            return Ok(None);
        };
        entries
            .into_iter()
            .map(|p| {
                p.get("").map(str::to_string).ok_or_else(|| {
                    AwsError::validation(format!("{prefix}: a list item has no value"))
                })
            })
            .collect::<AwsResult<Vec<_>>>()
            .map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_come_back_in_numeric_order_whatever_the_wire_order() {
        let p = Params::parse(
            b"Action=X&AvailabilityZones.member.10=j&AvailabilityZones.member.2=b&\
              AvailabilityZones.member.1=a&Recurrence=0+8+%2A+%2A+MON-FRI",
        )
        .unwrap();
        let zones = p.strings("AvailabilityZones", true).unwrap().unwrap();
        assert_eq!(zones, ["a", "b", "j"]);
        assert_eq!(p.get("Recurrence"), Some("0 8 * * MON-FRI"));
    }

    #[test]
    fn an_empty_list_is_sent_as_name_equals() {
        let p = Params::parse(b"ScalingProcesses=").unwrap();
        assert_eq!(p.strings("ScalingProcesses", true).unwrap(), Some(vec![]));
        assert_eq!(p.strings("Other", true).unwrap(), None);
    }

    #[test]
    fn ec2_lists_have_no_member_and_nest() {
        let p = Params::parse(b"Filter.1.Name=tag%3Aapp&Filter.1.Value.1=web&Filter.1.Value.2=api")
            .unwrap();
        let filters = p.list_entries("Filter", false).unwrap().unwrap();
        assert_eq!(filters.len(), 1);
        assert_eq!(filters[0].get("Name"), Some("tag:app"));
        assert_eq!(
            filters[0].strings("Value", false).unwrap().unwrap(),
            ["web", "api"]
        );
    }

    #[test]
    fn malformed_bodies_are_refused_with_a_reason() {
        for body in [&b"Action=%G1"[..], b"Action=%4", b"A=%FF%FE", b"=x"] {
            let e = Params::parse(body).unwrap_err();
            assert_eq!(e.code, "MalformedQueryString", "{body:?}");
        }
        let p = Params::parse(b"MinSize=two").unwrap();
        assert_eq!(p.int("MinSize", 0, 10).unwrap_err().code, "ValidationError");
        assert!(p.int("MaxSize", 0, 10).unwrap().is_none());
    }
}
