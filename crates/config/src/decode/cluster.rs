//! The document root, `[cluster]` and `[launch_templates.NAME]`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{named, Bind, Ctx, Val};
use crate::model::{Cluster, Config, LaunchTemplate, StopSignal};

const ROOT_KEYS: &[&str] = &[
    "cluster",
    "launch_templates",
    "target_groups",
    "load_balancers",
    "auto_scaling_groups",
    "aws_api",
    "pricing",
    "distributions",
    "dns",
];

/// Decodes a whole document; problems are left in `ctx`.
pub(crate) fn decode_config(ctx: &mut Ctx, root: &Val<'_>, path: &Path) -> Config {
    let mut config = Config {
        path: path.to_path_buf(),
        base_dir: ctx.base_dir.clone(),
        cluster: Cluster::default(),
        launch_templates: BTreeMap::new(),
        target_groups: BTreeMap::new(),
        load_balancers: BTreeMap::new(),
        auto_scaling_groups: BTreeMap::new(),
        aws_api: None,
        pricing: Default::default(),
        distributions: BTreeMap::new(),
        dns: None,
    };
    ctx.zones_known = true;
    let Some(root) = ctx.table(root, String::new(), ROOT_KEYS) else {
        return config;
    };
    config.cluster = match root.get("cluster") {
        Some(v) => decode_cluster(ctx, v),
        None => Cluster::default(),
    };
    config.cluster.state_dir = ctx.resolve(&config.cluster.state_dir);
    ctx.binds.push(Bind {
        addr: config.cluster.admin_bind,
        span: root
            .get("cluster")
            .and_then(|c| c.get_ref().get("admin_bind"))
            .map_or(0..0, |v| v.span()),
        owner: "[cluster] admin_bind".into(),
    });

    if let Some(v) = root.get("aws_api") {
        config.aws_api = super::aws::decode_aws_api(ctx, v);
    }
    if let Some(v) = root.get("launch_templates") {
        for (name, _, body) in named(ctx, v, "launch templates") {
            ctx.declared_launch_templates.push(name.clone());
            let path = format!("launch_templates.{}", super::quote_key(&name));
            if let Some(lt) = decode_launch_template(ctx, body, path) {
                config.launch_templates.insert(name, lt);
            }
        }
    }
    if let Some(v) = root.get("target_groups") {
        for (name, _, body) in named(ctx, v, "target groups") {
            ctx.declared_target_groups.push(name.clone());
            let path = format!("target_groups.{}", super::quote_key(&name));
            if let Some(tg) = super::groups::decode_target_group(ctx, body, path) {
                config.target_groups.insert(name, tg);
            }
        }
    }
    if let Some(v) = root.get("load_balancers") {
        for (name, _, body) in named(ctx, v, "load balancers") {
            let path = format!("load_balancers.{}", super::quote_key(&name));
            if let Some(lb) = super::listeners::decode_load_balancer(ctx, body, path) {
                config.load_balancers.insert(name, lb);
            }
        }
    }
    if let Some(v) = root.get("auto_scaling_groups") {
        for (name, _, body) in named(ctx, v, "auto scaling groups") {
            let path = format!("auto_scaling_groups.{}", super::quote_key(&name));
            let zones = config.cluster.zones.clone();
            if let Some(asg) = super::policies::decode_group(ctx, body, path, &zones) {
                config.auto_scaling_groups.insert(name, asg);
            }
        }
    }
    if let Some(v) = root.get("pricing") {
        config.pricing = super::purchase::decode_pricing(ctx, v);
    }
    super::purchase::check_priced(ctx, &config.pricing);
    super::edge_sections(ctx, &root, &mut config);
    config
}

fn decode_cluster(ctx: &mut Ctx, v: &Val<'_>) -> Cluster {
    let mut c = Cluster::default();
    let keys = [
        "name",
        "zones",
        "state_dir",
        "admin_bind",
        "admin_token_env",
        "host_lost_grace",
    ];
    let Some(t) = ctx.table(v, "cluster".into(), &keys) else {
        ctx.zones_known = false;
        return c;
    };
    if let Some(name) = t.opt(ctx, "name", Ctx::nonempty) {
        c.name = name;
    }
    if let Some(zv) = t.get("zones") {
        match ctx.distinct_names(zv, "zone") {
            Some(z) if z.is_empty() => {
                ctx.err(zv.span(), "zones must list at least one zone");
                ctx.zones_known = false;
            }
            Some(z) => c.zones = z.into_iter().map(|(s, _)| s).collect(),
            None => ctx.zones_known = false,
        }
    }
    if let Some(dir) = t.opt(ctx, "state_dir", Ctx::nonempty) {
        c.state_dir = PathBuf::from(dir);
    }
    if let Some(addr) = t.opt(ctx, "admin_bind", Ctx::socket_addr) {
        c.admin_bind = addr;
    }
    if let Some(env) = t.opt(ctx, "admin_token_env", Ctx::nonempty) {
        c.admin_token_env = env;
    }
    if let Some(grace) = t.opt(ctx, "host_lost_grace", |ctx, v| {
        ctx.positive_duration(v, "host_lost_grace")
    }) {
        c.host_lost_grace = grace;
    }
    c
}

fn decode_launch_template(ctx: &mut Ctx, v: &Val<'_>, path: String) -> Option<LaunchTemplate> {
    let keys = [
        "command",
        "env",
        "working_dir",
        "stop_signal",
        "stop_timeout",
        "instance_type",
        "user_data",
        "image",
        "args",
        "port",
        "cpu",
        "memory",
        "pull",
    ];
    let t = ctx.table(v, path, &keys)?;
    let image = super::image::decode_image(ctx, &t);
    let is_image = matches!(image, Some(Some(_))) || t.get("image").is_some();
    let command = match t.get("command") {
        None if is_image => Some(Vec::new()),
        _ => t.req(ctx, "command", |ctx, v| {
            let items = ctx.strings(v)?;
            match items.first() {
                None => {
                    let hint = if is_image {
                        "; leave it out to keep the image's entrypoint"
                    } else {
                        ""
                    };
                    ctx.err(v.span(), format!("command must not be empty{hint}"));
                    None
                }
                Some((first, span)) if first.trim().is_empty() => {
                    ctx.err(span.clone(), "the program to run must not be empty");
                    None
                }
                Some(_) => Some(items.into_iter().map(|(s, _)| s).collect::<Vec<_>>()),
            }
        }),
    };
    let env = t
        .opt(ctx, "env", |ctx, v| decode_env(ctx, v, t.child("env")))
        .unwrap_or_default();
    let working_dir = t
        .opt(ctx, "working_dir", Ctx::path)
        .unwrap_or_else(|| ctx.resolve(std::path::Path::new(".")));
    let stop_signal = t.opt(ctx, "stop_signal", stop_signal).unwrap_or_default();
    let stop_timeout = t
        .opt(ctx, "stop_timeout", |ctx, v| {
            ctx.positive_duration(v, "stop_timeout")
        })
        .unwrap_or(Duration::from_secs(10));
    let instance_type = t
        .opt(ctx, "instance_type", |ctx, v| {
            let ty = ctx.nonempty(v)?;
            ctx.priced_types.push((ty.clone(), v.span()));
            Some(ty)
        })
        .unwrap_or_else(|| "t3.micro".into());
    let user_data = t.opt(ctx, "user_data", Ctx::string).map(String::into_bytes);
    Some(LaunchTemplate {
        command: command?,
        env,
        working_dir,
        stop_signal,
        stop_timeout,
        instance_type,
        user_data,
        image: image?,
    })
}

/// `env = { NAME = "value" }`: names must be non-empty and without `=`.
fn decode_env(ctx: &mut Ctx, v: &Val<'_>, path: String) -> Option<BTreeMap<String, String>> {
    let et = ctx.free_table(v, path)?;
    let mut env = BTreeMap::new();
    for (k, val) in et.map.iter() {
        let key: &str = k.get_ref();
        if key.is_empty() || key.contains('=') {
            ctx.err(
                k.span(),
                format!("invalid environment variable name `{key}`"),
            );
        }
        if let Some(s) = ctx.string(val) {
            env.insert(key.to_string(), s);
        }
    }
    Some(env)
}

/// `stop_signal = "SIGTERM"` (or `TERM`, any case).
fn stop_signal(ctx: &mut Ctx, v: &Val<'_>) -> Option<StopSignal> {
    let s = ctx.string(v)?;
    let sig = StopSignal::parse(&s);
    if sig.is_none() {
        let names = StopSignal::ALL.map(|(_, n)| n).join(", ");
        ctx.err(
            v.span(),
            format!("unknown stop_signal `{s}`; expected one of {names}"),
        );
    }
    sig
}
