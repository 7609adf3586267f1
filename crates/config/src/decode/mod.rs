//! A schema-aware walk over the spanned TOML tree that collects every problem it meets.
//!
//! Each decoder returns `Option<T>`: `None` means "already reported"; callers substitute a
//! default and keep going so that one mistake never hides the next.

mod actions;
mod alarms;
mod aws;
mod cluster;
mod dns;
mod dns_records;
mod edge;
mod groups;
mod image;
mod lifecycle;
mod listeners;
mod policies;
mod predictive;
mod purchase;

use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use toml::de::{DeTable, DeValue};
use toml::Spanned;

use crate::suggest;

pub(crate) use cluster::decode_config;
pub use dns::{decode_api_health_check, decode_api_records, Known};
pub use dns_records::{parse_value, ALIAS_TTL};

/// `[distributions.NAME]` and `[dns]`, decoded after the load balancers they refer to.
fn edge_sections(ctx: &mut Ctx, root: &Tbl<'_, '_>, config: &mut crate::Config) {
    let lbs: Vec<&str> = config.load_balancers.keys().map(String::as_str).collect();
    if let Some(v) = root.get("distributions") {
        config.distributions = edge::decode_distributions(ctx, v, &lbs);
    }
    let known = dns::Known {
        load_balancers: lbs,
        distributions: config.distributions.keys().map(String::as_str).collect(),
    };
    config.dns = root
        .get("dns")
        .and_then(|v| dns::decode_dns(ctx, v, &known));
}

/// Byte range in the source text.
pub(crate) type Span = Range<usize>;
/// A value with its location.
pub(crate) type Val<'i> = Spanned<DeValue<'i>>;

/// A name used somewhere else in the file, checked once everything is decoded.
#[derive(Debug)]
pub(crate) struct Reference {
    pub kind: RefKind,
    pub name: String,
    pub span: Span,
}

/// What a [`Reference`] points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RefKind {
    TargetGroup,
    LaunchTemplate,
    Zone,
}

/// A listening address with where it was written and who owns it, for duplicate detection.
#[derive(Debug)]
pub(crate) struct Bind {
    pub addr: SocketAddr,
    pub span: Span,
    pub owner: String,
}

/// A forward from a load balancer of some type to a target group, for protocol checks.
#[derive(Debug)]
pub(crate) struct ForwardUse {
    pub lb_kind: crate::LoadBalancerType,
    /// The forwarding load balancer's `cross_zone` (set once its listeners are decoded).
    pub lb_cross_zone: bool,
    pub target_group: String,
    pub span: Span,
}

/// Collected diagnostics plus the cross-reference facts [`crate::validate`] needs.
#[derive(Debug, Default)]
pub(crate) struct Ctx {
    pub diags: Vec<(Span, String)>,
    pub refs: Vec<Reference>,
    pub binds: Vec<Bind>,
    pub forwards: Vec<ForwardUse>,
    /// Names declared in the file even if their body failed to decode, so a broken
    /// definition does not also produce "unknown name" errors at every use.
    pub declared_target_groups: Vec<String>,
    pub declared_launch_templates: Vec<String>,
    /// False when `[cluster] zones` itself is broken: zone references are then not checked.
    pub zones_known: bool,
    pub base_dir: PathBuf,
    /// Whether files named by the config (certificates) must exist (`load`, not `parse`).
    pub check_files: bool,
    /// Instance types named by launch templates and reservations, checked against the
    /// price table once `[pricing]` is decoded.
    pub priced_types: Vec<(String, Span)>,
}

impl Ctx {
    pub(crate) fn err(&mut self, span: Span, msg: impl Into<String>) {
        self.diags.push((span, msg.into()));
    }

    fn expected(&mut self, v: &Val<'_>, what: &str) {
        let found = v.get_ref().type_str();
        self.err(v.span(), format!("expected {what}, found {found}"));
    }

    /// A table with a fixed set of keys; every other key is reported with a suggestion.
    pub(crate) fn table<'a, 'i>(
        &mut self,
        v: &'a Val<'i>,
        path: String,
        keys: &[&str],
    ) -> Option<Tbl<'a, 'i>> {
        match v.get_ref() {
            DeValue::Table(map) => {
                let t = Tbl {
                    map,
                    span: v.span(),
                    path,
                };
                t.check_keys(self, keys);
                Some(t)
            }
            _ => {
                self.expected(v, &format!("a table for {}", label(&path)));
                None
            }
        }
    }

    /// A table whose keys are free-form (such as `env`).
    pub(crate) fn free_table<'a, 'i>(
        &mut self,
        v: &'a Val<'i>,
        path: String,
    ) -> Option<Tbl<'a, 'i>> {
        match v.get_ref() {
            DeValue::Table(map) => Some(Tbl {
                map,
                span: v.span(),
                path,
            }),
            _ => {
                self.expected(v, &format!("a table for {}", label(&path)));
                None
            }
        }
    }

    pub(crate) fn string(&mut self, v: &Val<'_>) -> Option<String> {
        match v.get_ref() {
            DeValue::String(s) => Some(s.to_string()),
            _ => {
                self.expected(v, "a string");
                None
            }
        }
    }

    /// A string that must not be empty (names, metrics, paths).
    pub(crate) fn nonempty(&mut self, v: &Val<'_>) -> Option<String> {
        let s = self.string(v)?;
        if s.trim().is_empty() {
            self.err(v.span(), "must not be empty");
            return None;
        }
        Some(s)
    }

    pub(crate) fn boolean(&mut self, v: &Val<'_>) -> Option<bool> {
        match v.get_ref() {
            DeValue::Boolean(b) => Some(*b),
            _ => {
                self.expected(v, "true or false");
                None
            }
        }
    }

    pub(crate) fn integer(&mut self, v: &Val<'_>) -> Option<i64> {
        match v.get_ref() {
            DeValue::Integer(i) => match i64::from_str_radix(i.as_str(), i.radix()) {
                Ok(n) => Some(n),
                Err(_) => {
                    self.err(v.span(), "integer is out of range");
                    None
                }
            },
            _ => {
                self.expected(v, "an integer");
                None
            }
        }
    }

    /// An integer in `range`, reported as "`what` must be between …".
    pub(crate) fn int_in(
        &mut self,
        v: &Val<'_>,
        what: &str,
        range: std::ops::RangeInclusive<i64>,
    ) -> Option<i64> {
        let n = self.integer(v)?;
        if !range.contains(&n) {
            let (lo, hi) = (range.start(), range.end());
            let msg = if *hi == i64::from(u32::MAX) {
                format!("{what} must be at least {lo}, found {n}")
            } else {
                format!("{what} must be between {lo} and {hi}, found {n}")
            };
            self.err(v.span(), msg);
            return None;
        }
        Some(n)
    }

    /// A non-negative integer that fits a `u32`.
    pub(crate) fn u32(&mut self, v: &Val<'_>, what: &str) -> Option<u32> {
        self.int_in(v, what, 0..=i64::from(u32::MAX))
            .and_then(|n| u32::try_from(n).ok())
    }

    /// A finite number; integers are accepted where a float is expected.
    pub(crate) fn number(&mut self, v: &Val<'_>) -> Option<f64> {
        let parsed = match v.get_ref() {
            DeValue::Float(f) => f.as_str().replace('_', "").parse::<f64>().ok(),
            DeValue::Integer(_) => return self.integer(v).map(|n| n as f64),
            _ => {
                self.expected(v, "a number");
                return None;
            }
        };
        match parsed {
            Some(f) if f.is_finite() => Some(f),
            _ => {
                self.err(v.span(), "expected a finite number");
                None
            }
        }
    }

    pub(crate) fn duration(&mut self, v: &Val<'_>) -> Option<Duration> {
        match v.get_ref() {
            DeValue::String(s) => match humantime::parse_duration(s.trim()) {
                Ok(d) => Some(d),
                Err(e) => {
                    self.err(
                        v.span(),
                        format!("invalid duration \"{s}\" ({e}); write e.g. \"250ms\", \"2s\", \"5m\", \"1h\""),
                    );
                    None
                }
            },
            DeValue::Integer(i) => {
                let n = i.as_str().to_string();
                self.err(
                    v.span(),
                    format!(
                        "expected a duration string like \"2s\", found integer {n}; write \"{n}s\""
                    ),
                );
                None
            }
            _ => {
                self.expected(v, "a duration string like \"2s\"");
                None
            }
        }
    }

    /// A duration that must not be zero (intervals and timeouts).
    pub(crate) fn positive_duration(&mut self, v: &Val<'_>, what: &str) -> Option<Duration> {
        let d = self.duration(v)?;
        if d.is_zero() {
            self.err(v.span(), format!("{what} must be greater than zero"));
            return None;
        }
        Some(d)
    }

    /// A positive size in bytes: an integer, or a string with a unit (`B`, `KB`, `KiB`, `MB`,
    /// `MiB`, `GB`, `GiB`), e.g. `"10MiB"`.
    pub(crate) fn byte_size(&mut self, v: &Val<'_>, what: &str) -> Option<u64> {
        let n = match v.get_ref() {
            DeValue::Integer(_) => {
                let n = self.integer(v)?;
                u64::try_from(n).ok()
            }
            DeValue::String(s) => parse_size(s.trim()),
            _ => {
                self.expected(v, "a size like \"10MiB\" or a number of bytes");
                return None;
            }
        };
        match n {
            Some(n) if n > 0 => Some(n),
            Some(_) => {
                self.err(v.span(), format!("{what} must be greater than zero"));
                None
            }
            None => {
                self.err(
                    v.span(),
                    format!("invalid {what}: write a number of bytes or a size like \"512KiB\", \"10MiB\", \"1GB\""),
                );
                None
            }
        }
    }

    /// One of a fixed set of spellings, with a suggestion when it is close to one.
    pub(crate) fn choice<T: Copy>(
        &mut self,
        v: &Val<'_>,
        what: &str,
        options: &[(&str, T)],
    ) -> Option<T> {
        let s = self.string(v)?;
        if let Some((_, t)) = options.iter().find(|(name, _)| *name == s) {
            return Some(*t);
        }
        let names: Vec<&str> = options.iter().map(|(n, _)| *n).collect();
        let hint = suggest::hint(&s, names.iter().copied());
        let list = names
            .iter()
            .map(|n| format!("`{n}`"))
            .collect::<Vec<_>>()
            .join(", ");
        self.err(
            v.span(),
            format!("unknown {what} `{s}`; expected one of {list}{hint}"),
        );
        None
    }

    pub(crate) fn array<'a, 'i>(&mut self, v: &'a Val<'i>) -> Option<&'a [Val<'i>]> {
        match v.get_ref() {
            DeValue::Array(a) => Some(a),
            _ => {
                self.expected(v, "an array");
                None
            }
        }
    }

    /// An array of strings, each kept with its span (for references and duplicates).
    pub(crate) fn strings(&mut self, v: &Val<'_>) -> Option<Vec<(String, Span)>> {
        let items = self.array(v)?;
        let mut out = Vec::with_capacity(items.len());
        let mut ok = true;
        for item in items {
            match self.string(item) {
                Some(s) => out.push((s, item.span())),
                None => ok = false,
            }
        }
        ok.then_some(out)
    }

    /// Strings that must all be non-empty and distinct; `what` names one element.
    pub(crate) fn distinct_names(
        &mut self,
        v: &Val<'_>,
        what: &str,
    ) -> Option<Vec<(String, Span)>> {
        let items = self.strings(v)?;
        let mut ok = true;
        for (i, (s, span)) in items.iter().enumerate() {
            if s.trim().is_empty() {
                self.err(span.clone(), format!("{what} must not be empty"));
                ok = false;
            } else if items[..i].iter().any(|(o, _)| o == s) {
                self.err(span.clone(), format!("duplicate {what} `{s}`"));
                ok = false;
            }
        }
        ok.then_some(items)
    }

    pub(crate) fn socket_addr(&mut self, v: &Val<'_>) -> Option<SocketAddr> {
        let s = self.string(v)?;
        match s.trim().parse::<SocketAddr>() {
            Ok(a) => Some(a),
            Err(_) => {
                let hint = if s.starts_with("localhost:") {
                    "; use 127.0.0.1 instead of localhost"
                } else {
                    ""
                };
                self.err(
                    v.span(),
                    format!(
                        "invalid address `{s}`: expected IP:PORT like \"127.0.0.1:8080\"{hint}"
                    ),
                );
                None
            }
        }
    }

    /// A path from the file, made absolute against the config's directory.
    pub(crate) fn path(&mut self, v: &Val<'_>) -> Option<PathBuf> {
        let s = self.nonempty(v)?;
        Some(self.resolve(Path::new(&s)))
    }

    pub(crate) fn resolve(&self, p: &Path) -> PathBuf {
        let joined = if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.base_dir.join(p)
        };
        joined
            .components()
            .filter(|c| !matches!(c, Component::CurDir))
            .collect()
    }
}

/// A decoded table: its entries, where it was written, and its dotted path for messages.
pub(crate) struct Tbl<'a, 'i> {
    pub map: &'a DeTable<'i>,
    pub span: Span,
    pub path: String,
}

impl<'a, 'i> Tbl<'a, 'i> {
    fn check_keys(&self, ctx: &mut Ctx, keys: &[&str]) {
        for k in self.map.keys() {
            let key: &str = k.get_ref();
            if !keys.contains(&key) {
                let hint = suggest::hint(key, keys.iter().copied());
                ctx.err(
                    k.span(),
                    format!("unknown key `{key}` in {}{hint}", label(&self.path)),
                );
            }
        }
    }

    /// `[a.b]`, or "the top level" for the document itself.
    pub(crate) fn label(&self) -> String {
        label(&self.path)
    }

    pub(crate) fn get(&self, key: &str) -> Option<&'a Val<'i>> {
        self.map.get(key)
    }

    /// Decodes an optional key.
    pub(crate) fn opt<T>(
        &self,
        ctx: &mut Ctx,
        key: &str,
        f: impl FnOnce(&mut Ctx, &'a Val<'i>) -> Option<T>,
    ) -> Option<T> {
        self.get(key).and_then(|v| f(ctx, v))
    }

    /// Decodes a required key, reporting its absence at the table.
    pub(crate) fn req<T>(
        &self,
        ctx: &mut Ctx,
        key: &str,
        f: impl FnOnce(&mut Ctx, &'a Val<'i>) -> Option<T>,
    ) -> Option<T> {
        match self.get(key) {
            Some(v) => f(ctx, v),
            None => {
                ctx.err(
                    self.span.clone(),
                    format!("missing required key `{key}` in {}", self.label()),
                );
                None
            }
        }
    }

    /// Dotted path of a child key.
    pub(crate) fn child(&self, key: &str) -> String {
        let key = quote_key(key);
        if self.path.is_empty() {
            key
        } else {
            format!("{}.{key}", self.path)
        }
    }
}

/// The entries of a `[section.NAME]` collection such as `target_groups`.
pub(crate) fn named<'a, 'i>(
    ctx: &mut Ctx,
    v: &'a Val<'i>,
    section: &str,
) -> Vec<(String, Span, &'a Val<'i>)> {
    match v.get_ref() {
        DeValue::Table(map) => map
            .iter()
            .map(|(k, v)| (k.get_ref().to_string(), k.span(), v))
            .collect(),
        _ => {
            ctx.expected(v, &format!("a table of named {section}"));
            Vec::new()
        }
    }
}

fn label(path: &str) -> String {
    if path.is_empty() {
        "the top level".to_string()
    } else {
        format!("[{path}]")
    }
}

fn quote_key(key: &str) -> String {
    let bare = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if bare {
        key.to_string()
    } else {
        format!("{key:?}")
    }
}

/// `"10MiB"` → 10485760; `None` for anything else than digits and a known unit.
fn parse_size(s: &str) -> Option<u64> {
    let digits = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(digits);
    let n: u64 = num.parse().ok()?;
    let mult: u64 = match unit.trim() {
        "" | "B" => 1,
        "KB" | "kB" => 1_000,
        "KiB" => 1 << 10,
        "MB" => 1_000_000,
        "MiB" => 1 << 20,
        "GB" => 1_000_000_000,
        "GiB" => 1 << 30,
        _ => return None,
    };
    n.checked_mul(mult)
}

#[cfg(test)]
mod size_tests {
    use super::parse_size;

    #[test]
    fn sizes_with_units() {
        assert_eq!(parse_size("10MiB"), Some(10 << 20));
        assert_eq!(parse_size("512 KiB"), Some(512 << 10));
        assert_eq!(parse_size("1GB"), Some(1_000_000_000));
        assert_eq!(parse_size("42"), Some(42));
        assert_eq!(parse_size("10 parsecs"), None);
        assert_eq!(parse_size("MiB"), None);
    }
}
