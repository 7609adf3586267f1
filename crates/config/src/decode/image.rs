//! The container keys of `[launch_templates.NAME]`: `image` and what only an image uses
//! (`args`, `port`, `cpu`, `memory`, `pull`).

use super::{Ctx, Tbl, Val};
use crate::model::{ImageTemplate, PullPolicy};

/// Keys that mean something only next to `image`.
const IMAGE_ONLY: [&str; 5] = ["args", "port", "cpu", "memory", "pull"];

/// The smallest memory limit container engines accept (Podman and Docker refuse less than
/// 6 MB), so a smaller one is refused here, at its line, rather than at every launch.
const MIN_MEMORY: u64 = 6 << 20;

/// The most cores a `cpu` limit may name (an obvious typo beyond).
const MAX_CPUS: f64 = 1024.0;

/// `Some(None)`: a process template; `Some(Some(_))`: an image template; `None`: an error was
/// reported.
pub(crate) fn decode_image(ctx: &mut Ctx, t: &Tbl<'_, '_>) -> Option<Option<ImageTemplate>> {
    let Some(image) = t.get("image") else {
        for key in IMAGE_ONLY {
            if let Some(v) = t.get(key) {
                ctx.err(
                    v.span(),
                    format!("`{key}` applies only to image templates: set `image` in {}, or leave `{key}` out", t.label()),
                );
            }
        }
        return Some(None);
    };
    let mut ok = true;
    if let Some(v) = t.get("working_dir") {
        ctx.err(
            v.span(),
            "`working_dir` applies only to command templates: an image sets its own working directory",
        );
        ok = false;
    }
    let reference = reference(ctx, image);
    let args = match t.get("args") {
        Some(v) => ctx
            .strings(v)
            .map(|items| items.into_iter().map(|(s, _)| s).collect()),
        None => Some(Vec::new()),
    };
    let port = t.opt(ctx, "port", |ctx, v| {
        ctx.int_in(v, "port", 1..=65535)
            .and_then(|n| u16::try_from(n).ok())
    });
    let port_ok = t.get("port").is_none() || port.is_some();
    let cpu_millis = t.opt(ctx, "cpu", cpu);
    let cpu_ok = t.get("cpu").is_none() || cpu_millis.is_some();
    let memory_bytes = t.opt(ctx, "memory", |ctx, v| {
        let n = ctx.byte_size(v, "memory")?;
        if n < MIN_MEMORY {
            ctx.err(
                v.span(),
                "memory must be at least 6MiB (container engines refuse less)",
            );
            return None;
        }
        Some(n)
    });
    let memory_ok = t.get("memory").is_none() || memory_bytes.is_some();
    let pull = match t.get("pull") {
        Some(v) => ctx.choice(v, "pull policy", &PullPolicy::ALL),
        None => Some(PullPolicy::default()),
    };
    if !(ok && port_ok && cpu_ok && memory_ok) {
        return None;
    }
    Some(Some(ImageTemplate {
        reference: reference?,
        args: args?,
        port,
        cpu_millis,
        memory_bytes,
        pull: pull?,
    }))
}

/// An image reference the engine's command line cannot mistake for an option.
fn reference(ctx: &mut Ctx, v: &Val<'_>) -> Option<String> {
    let s = ctx.nonempty(v)?;
    if s.starts_with('-') {
        ctx.err(v.span(), "an image reference must not start with `-`");
        return None;
    }
    if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        ctx.err(
            v.span(),
            "an image reference must not contain spaces or control characters",
        );
        return None;
    }
    Some(s)
}

/// `cpu = 0.5` → 500 thousandths of a core.
fn cpu(ctx: &mut Ctx, v: &Val<'_>) -> Option<u32> {
    let cores = ctx.number(v)?;
    if !(cores > 0.0 && cores <= MAX_CPUS) {
        ctx.err(
            v.span(),
            format!("cpu must be a number of cores above 0 and at most {MAX_CPUS}, found {cores}"),
        );
        return None;
    }
    let millis = (cores * 1000.0).round();
    if millis < 1.0 {
        ctx.err(v.span(), "cpu must be at least 0.001 cores");
        return None;
    }
    // In range by the checks above: at most 1,024,000.
    Some(millis as u32)
}
