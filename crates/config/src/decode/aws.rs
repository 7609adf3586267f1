//! `[aws_api]`: the AWS-compatible endpoint (ELBv2, Auto Scaling, EC2 launch templates) and
//! `[aws_api.images]`, which says what command an `ImageId` stands for.

use std::collections::BTreeMap;

use super::{Bind, Ctx, Val};
use crate::model::AwsApi;

/// Decodes `[aws_api]`; `None` when it is broken (already reported).
pub(crate) fn decode_aws_api(ctx: &mut Ctx, v: &Val<'_>) -> Option<AwsApi> {
    let keys = ["bind", "region", "account_id", "credentials_env", "images"];
    let t = ctx.table(v, "aws_api".into(), &keys)?;
    let mut api = AwsApi::default();
    if let Some(addr) = t.opt(ctx, "bind", Ctx::socket_addr) {
        api.bind = addr;
    }
    ctx.binds.push(Bind {
        addr: api.bind,
        span: t.get("bind").map_or(t.span.clone(), |v| v.span()),
        owner: "[aws_api] bind".into(),
    });
    if let Some(region) = t.opt(ctx, "region", |ctx, v| {
        let s = ctx.nonempty(v)?;
        let ok = s
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if !ok {
            ctx.err(
                v.span(),
                format!("invalid region `{s}`: expected lower-case letters, digits and `-`, like \"us-east-1\""),
            );
        }
        ok.then_some(s)
    }) {
        api.region = region;
    }
    if let Some(account) = t.opt(ctx, "account_id", |ctx, v| {
        let s = ctx.string(v)?;
        let ok = s.len() == 12 && s.chars().all(|c| c.is_ascii_digit());
        if !ok {
            ctx.err(
                v.span(),
                format!("invalid account_id `{s}`: expected 12 digits"),
            );
        }
        ok.then_some(s)
    }) {
        api.account_id = account;
    }
    if let Some(names) = t.opt(ctx, "credentials_env", |ctx, v| {
        Some(
            ctx.strings(v)?
                .into_iter()
                .map(|(s, _)| s)
                .collect::<Vec<_>>(),
        )
    }) {
        api.credentials_env = names;
    }
    if let Some(images) = t.opt(ctx, "images", decode_images) {
        api.images = images;
    }
    Some(api)
}

fn decode_images(ctx: &mut Ctx, v: &Val<'_>) -> Option<BTreeMap<String, Vec<String>>> {
    let t = ctx.free_table(v, "aws_api.images".into())?;
    let mut images = BTreeMap::new();
    for (k, val) in t.map.iter() {
        let id: &str = k.get_ref();
        let hex = id.strip_prefix("ami-").unwrap_or("");
        if hex.is_empty() || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
            ctx.err(
                k.span(),
                format!("invalid image id `{id}`: expected `ami-` and hex digits, like \"ami-12c6146b\""),
            );
            continue;
        }
        let Some(command) = ctx.strings(val) else {
            continue;
        };
        if command.first().is_none_or(|(p, _)| p.trim().is_empty()) {
            ctx.err(val.span(), "the image's command must name a program");
            continue;
        }
        images.insert(
            id.to_string(),
            command.into_iter().map(|(s, _)| s).collect(),
        );
    }
    Some(images)
}
