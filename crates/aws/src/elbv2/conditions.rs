//! Rule conditions: the six ELBv2 fields, read with AWS's limits (one each of host, path,
//! method and source-ip; at most five values in all) and written back in AWS's shape.

use crate::model::ConditionRes;
use crate::protocol::xml::Xml;
use crate::protocol::{AwsError, AwsResult, Params};

/// Reads `Conditions.member.N` with ELBv2's limits.
pub(crate) fn parse_conditions(p: &Params) -> AwsResult<Vec<ConditionRes>> {
    let entries = p
        .list_entries("Conditions", true)?
        .filter(|e| !e.is_empty())
        .ok_or_else(|| AwsError::missing("Conditions"))?;
    let mut out: Vec<ConditionRes> = Vec::new();
    for c in &entries {
        let field = c.required("Field")?.to_string();
        let config = match field.as_str() {
            "host-header" => "HostHeaderConfig",
            "path-pattern" => "PathPatternConfig",
            "http-header" => "HttpHeaderConfig",
            "http-request-method" => "HttpRequestMethodConfig",
            "query-string" => "QueryStringConfig",
            "source-ip" => "SourceIpConfig",
            other => {
                return Err(AwsError::validation(format!(
                    "Condition field '{other}' is not valid"
                )))
            }
        };
        let sub = c.sub(config);
        let mut values = if field == "query-string" {
            sub.list_entries("Values", true)?
                .unwrap_or_default()
                .iter()
                .map(|kv| match kv.get("Key") {
                    Some(k) => format!("{k}={}", kv.get("Value").unwrap_or("")),
                    None => kv.get("Value").unwrap_or("").to_string(),
                })
                .collect()
        } else {
            sub.strings("Values", true)?.unwrap_or_default()
        };
        if values.is_empty() {
            values = c.strings("Values", true)?.unwrap_or_default();
        }
        if values.is_empty() || values.iter().any(|v| v.is_empty() || v.len() > 128) {
            return Err(AwsError::validation(format!(
                "A {field} condition needs 1-128 character values"
            )));
        }
        let header_name = (field == "http-header")
            .then(|| sub.required("HttpHeaderName").map(str::to_string))
            .transpose()?;
        let single = matches!(
            field.as_str(),
            "host-header" | "path-pattern" | "http-request-method" | "source-ip"
        );
        if single && out.iter().any(|o| o.field == field) {
            return Err(AwsError::validation(format!(
                "A rule can only have one '{field}' condition"
            )));
        }
        if field == "source-ip" {
            for v in &values {
                v.parse::<flotilla_config::Cidr>()
                    .map_err(AwsError::validation)?;
            }
        }
        out.push(ConditionRes {
            field,
            values,
            header_name,
        });
    }
    if out.iter().map(|c| c.values.len()).sum::<usize>() > 5 {
        return Err(AwsError::validation(
            "A rule can have at most 5 condition values in total",
        ));
    }
    Ok(out)
}

pub(crate) fn write_conditions(x: &mut Xml, conditions: &[ConditionRes]) {
    x.list("Conditions", "member", conditions, |x, c| {
        x.leaf("Field", &c.field);
        if matches!(c.field.as_str(), "host-header" | "path-pattern") {
            x.strings("Values", "member", &c.values);
        }
        match c.field.as_str() {
            "host-header" => x.node("HostHeaderConfig", |x| {
                x.strings("Values", "member", &c.values);
            }),
            "path-pattern" => x.node("PathPatternConfig", |x| {
                x.strings("Values", "member", &c.values);
            }),
            "http-request-method" => x.node("HttpRequestMethodConfig", |x| {
                x.strings("Values", "member", &c.values);
            }),
            "source-ip" => x.node("SourceIpConfig", |x| {
                x.strings("Values", "member", &c.values);
            }),
            "http-header" => x.node("HttpHeaderConfig", |x| {
                x.opt("HttpHeaderName", c.header_name.as_ref())
                    .strings("Values", "member", &c.values);
            }),
            _ => x.node("QueryStringConfig", |x| {
                x.list("Values", "member", &c.values, |x, v| {
                    match v.split_once('=') {
                        Some((k, val)) => x.leaf("Key", k).leaf("Value", val),
                        None => x.leaf("Value", v),
                    };
                });
            }),
        };
    });
}
