//! Listener rules compiled for the request path (AWS ALB §1.2–1.4): conditions with `*`/`?`
//! wildcards pre-split into segments and pre-lowercased where matching is case-insensitive,
//! redirect templates pre-parsed, so that matching a request allocates nothing.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use flotilla_config::{Action, Cidr, Condition, Listener, ListenerProtocol, QueryPair};
use http::header::{HeaderName, HeaderValue};
use http::StatusCode;

use crate::lb::router::{RouteAction, Router, WeightedGroups};
use crate::lb::target_group::TargetGroup;
use crate::request::RequestView;

/// Compile a listener's configuration into its routing table: rules sorted by priority, each
/// condition and action prepared once. Forward actions resolve their target groups in
/// `target_groups` (config validation guarantees they exist; a missing one is answered 503).
pub fn compile(listener: &Listener, target_groups: &HashMap<String, Arc<TargetGroup>>) -> Router {
    let mut rules: Vec<(u32, CompiledRule)> = listener
        .rules
        .iter()
        .map(|r| {
            let rule = CompiledRule {
                conditions: r.conditions.iter().map(compile_condition).collect(),
                action: compile_action(&r.action, target_groups),
            };
            (r.priority, rule)
        })
        .collect();
    rules.sort_by_key(|(p, _)| *p);
    Router {
        default_action: compile_action(&listener.default_action, target_groups),
        rules: rules.into_iter().map(|(_, r)| r).collect(),
        protocol: match listener.protocol {
            ListenerProtocol::Https => "https",
            ListenerProtocol::Http | ListenerProtocol::Tcp => "http",
        },
        port: listener.bind.port(),
    }
}

/// The data-plane form of one config action.
pub fn compile_action(
    action: &Action,
    target_groups: &HashMap<String, Arc<TargetGroup>>,
) -> RouteAction {
    match action {
        Action::Forward {
            target_groups: tgs, ..
        } => {
            let resolved: Vec<(Arc<TargetGroup>, u32)> = tgs
                .iter()
                .filter_map(|t| {
                    target_groups
                        .get(&t.name)
                        .map(|g| (Arc::clone(g), t.weight))
                })
                .collect();
            let mut live = resolved.iter().filter(|(_, w)| *w > 0);
            match (live.next(), live.next()) {
                // One group with weight: no per-request random draw.
                (Some((g, _)), None) => RouteAction::Forward(Arc::clone(g)),
                // Several (a random draw per request), or none (503).
                _ => RouteAction::WeightedForward(WeightedGroups::new(resolved)),
            }
        }
        Action::Redirect(r) => RouteAction::Redirect(RedirectAction {
            status: if r.status == 302 {
                StatusCode::FOUND
            } else {
                StatusCode::MOVED_PERMANENTLY
            },
            protocol: r
                .protocol
                .as_deref()
                .map(|p| Template::parse(&p.to_ascii_lowercase())),
            host: r.host.as_deref().map(Template::parse),
            port: r.port.as_deref().map(Template::parse),
            path: r.path.as_deref().map(Template::parse),
            query: r.query.as_deref().map(Template::parse),
        }),
        Action::FixedResponse {
            status,
            content_type,
            body,
        } => RouteAction::FixedResponse {
            status: *status,
            content_type: content_type.clone(),
            body: body.clone(),
        },
    }
}

/// A rule ready for matching: all conditions must hold (AND).
#[derive(Debug, Clone)]
pub(crate) struct CompiledRule {
    conditions: Vec<Matcher>,
    pub(crate) action: RouteAction,
}

impl CompiledRule {
    pub(crate) fn matches<R: RequestView>(&self, req: &R, peer: IpAddr) -> bool {
        self.conditions.iter().all(|c| c.matches(req, peer))
    }
}

/// One condition; each holds alternatives (OR).
#[derive(Debug, Clone)]
enum Matcher {
    Host(Vec<Glob>),
    Path(Vec<Glob>),
    Header(HeaderName, Vec<Glob>),
    /// An `http-header` condition whose name is not a valid header name: never matches.
    NoHeader,
    Method(Vec<String>),
    Query(Vec<(Option<Glob>, Glob)>),
    SourceIp(Vec<Cidr>),
}

fn compile_condition(c: &Condition) -> Matcher {
    let globs = |vs: &[String], ci: bool| vs.iter().map(|v| Glob::new(v, ci, false)).collect();
    match c {
        Condition::HostHeader(vs) => Matcher::Host(globs(vs, true)),
        Condition::PathPattern(vs) => Matcher::Path(globs(vs, false)),
        Condition::HttpHeader { name, values } => {
            match HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes()) {
                Ok(n) => Matcher::Header(n, globs(values, true)),
                Err(_) => Matcher::NoHeader,
            }
        }
        Condition::HttpRequestMethod(vs) => Matcher::Method(vs.clone()),
        Condition::QueryString(pairs) => Matcher::Query(
            pairs
                .iter()
                .map(|QueryPair { key, value }| {
                    (
                        key.as_deref().map(|k| Glob::new(k, true, true)),
                        Glob::new(value, true, true),
                    )
                })
                .collect(),
        ),
        Condition::SourceIp(cidrs) => Matcher::SourceIp(cidrs.clone()),
    }
}

impl Matcher {
    fn matches<R: RequestView>(&self, req: &R, peer: IpAddr) -> bool {
        match self {
            Matcher::Host(globs) => {
                let host = request_host(req);
                globs.iter().any(|g| g.matches(host.as_bytes()))
            }
            Matcher::Path(globs) => {
                let path = req.path().as_bytes();
                globs.iter().any(|g| g.matches(path))
            }
            Matcher::Header(name, globs) => req
                .header_values(name.as_str())
                .any(|v| globs.iter().any(|g| g.matches(v))),
            Matcher::NoHeader => false,
            Matcher::Method(ms) => ms.iter().any(|m| m == req.method()),
            Matcher::Query(pairs) => {
                let query = req.query().unwrap_or("");
                query_matches(query, pairs)
            }
            Matcher::SourceIp(cidrs) => cidrs.iter().any(|c| c.contains(peer)),
        }
    }
}

/// The host a request is for, without its port.
fn request_host<R: RequestView>(req: &R) -> &str {
    strip_port(req.host_port())
}

fn strip_port(hostport: &str) -> &str {
    if hostport.starts_with('[') {
        // IPv6 literal: keep the brackets.
        return match hostport.find(']') {
            Some(i) => &hostport[..=i],
            None => hostport,
        };
    }
    match hostport.rfind(':') {
        Some(i) => &hostport[..i],
        None => hostport,
    }
}

/// `key=value` pairs of a query, percent-decoded (only a pair that contains `%` is copied);
/// a pattern without key matches the value under any key. A component without `=` is a bare
/// value: only keyless patterns can match it.
fn query_matches(query: &str, pairs: &[(Option<Glob>, Glob)]) -> bool {
    query.split('&').filter(|c| !c.is_empty()).any(|component| {
        let (key, value) = match component.split_once('=') {
            Some((k, v)) => (Some(k), v),
            None => (None, component),
        };
        let key = key.map(percent_decode);
        let value = percent_decode(value);
        pairs.iter().any(|(kp, vp)| {
            let key_ok = match (kp, &key) {
                (None, _) => true,
                (Some(kp), Some(k)) => kp.matches(k),
                (Some(_), None) => false,
            };
            key_ok && vp.matches(&value)
        })
    })
}

/// Percent-decode `%XX` escapes; borrowed when there are none. Invalid escapes stay as they are.
fn percent_decode(s: &str) -> std::borrow::Cow<'_, [u8]> {
    let b = s.as_bytes();
    if !b.contains(&b'%') {
        return std::borrow::Cow::Borrowed(b);
    }
    let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push(h << 4 | l);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    std::borrow::Cow::Owned(out)
}

/// One pattern byte: a literal (lowercased when matching is case-insensitive) or `?`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tok {
    Lit(u8),
    Any,
}

/// A wildcard pattern split at its `*`s into fixed-length segments. Matching anchors the first
/// segment at the start and the last at the end, and places the middle ones leftmost, which is
/// exact for patterns whose only variable-length element is `*`.
#[derive(Debug, Clone)]
pub(crate) struct Glob {
    segments: Vec<Vec<Tok>>,
    case_insensitive: bool,
}

impl Glob {
    /// `escapes`: a backslash makes the next character literal (query-string values).
    pub(crate) fn new(pattern: &str, case_insensitive: bool, escapes: bool) -> Glob {
        let mut segments = vec![Vec::new()];
        let mut bytes = pattern.bytes();
        while let Some(c) = bytes.next() {
            let tok = match c {
                b'\\' if escapes => Tok::Lit(bytes.next().unwrap_or(b'\\')),
                b'*' => {
                    segments.push(Vec::new());
                    continue;
                }
                b'?' => Tok::Any,
                c => Tok::Lit(c),
            };
            let tok = match tok {
                Tok::Lit(c) if case_insensitive => Tok::Lit(c.to_ascii_lowercase()),
                t => t,
            };
            if let Some(seg) = segments.last_mut() {
                seg.push(tok);
            }
        }
        Glob {
            segments,
            case_insensitive,
        }
    }

    fn seg_at(&self, seg: &[Tok], s: &[u8]) -> bool {
        seg.iter().zip(s).all(|(t, &c)| match *t {
            Tok::Any => true,
            Tok::Lit(p) if self.case_insensitive => p == c.to_ascii_lowercase(),
            Tok::Lit(p) => p == c,
        })
    }

    pub(crate) fn matches(&self, s: &[u8]) -> bool {
        let segs = &self.segments;
        let (first, last) = match (segs.first(), segs.last()) {
            (Some(f), Some(l)) => (f, l),
            _ => return s.is_empty(),
        };
        if segs.len() == 1 {
            return s.len() == first.len() && self.seg_at(first, s);
        }
        if s.len() < first.len() + last.len()
            || !self.seg_at(first, s)
            || !self.seg_at(last, &s[s.len() - last.len()..])
        {
            return false;
        }
        let mut rest = &s[first.len()..s.len() - last.len()];
        for seg in &segs[1..segs.len() - 1] {
            if seg.is_empty() {
                continue;
            }
            if rest.len() < seg.len() {
                return false;
            }
            let Some(at) = (0..=rest.len() - seg.len()).find(|&i| self.seg_at(seg, &rest[i..]))
            else {
                return false;
            };
            rest = &rest[at + seg.len()..];
        }
        true
    }
}

/// A redirect with its components pre-parsed; `None` keeps the request's original value.
#[derive(Debug, Clone)]
pub struct RedirectAction {
    status: StatusCode,
    protocol: Option<Template>,
    host: Option<Template>,
    port: Option<Template>,
    path: Option<Template>,
    query: Option<Template>,
}

impl RedirectAction {
    /// Status and `Location` for `req` on a listener speaking `protocol` on `port`:
    /// `protocol://host:port/path?query`, each component from the template or the request.
    pub(crate) fn location<R: RequestView>(
        &self,
        req: &R,
        protocol: &str,
        port: u16,
    ) -> (StatusCode, HeaderValue) {
        let port_buf = port.to_string();
        let orig = Original {
            protocol,
            host: request_host(req),
            port: &port_buf,
            // `#{path}` is the path without its leading slash.
            path: req.path().strip_prefix('/').unwrap_or(req.path()),
            query: req.query().unwrap_or(""),
        };
        let mut out = String::with_capacity(64);
        let expand = |out: &mut String, t: &Option<Template>, original: &str| match t {
            Some(t) => t.expand(out, &orig),
            None => out.push_str(original),
        };
        expand(&mut out, &self.protocol, orig.protocol);
        out.push_str("://");
        expand(&mut out, &self.host, orig.host);
        out.push(':');
        expand(&mut out, &self.port, orig.port);
        let path_start = out.len();
        match &self.path {
            Some(t) => t.expand(&mut out, &orig),
            None => {
                out.push('/');
                out.push_str(orig.path);
            }
        }
        if !out[path_start..].starts_with('/') {
            out.insert(path_start, '/');
        }
        let query_start = out.len();
        out.push('?');
        expand(&mut out, &self.query, orig.query);
        if out.len() == query_start + 1 {
            out.truncate(query_start);
        }
        let location = HeaderValue::from_str(&out).unwrap_or_else(|_| {
            // Only control characters can get here (they are not valid in a header value).
            HeaderValue::from_static("/")
        });
        (self.status, location)
    }
}

/// The request's own URI components, the values of `#{...}` keywords.
struct Original<'a> {
    protocol: &'a str,
    host: &'a str,
    port: &'a str,
    path: &'a str,
    query: &'a str,
}

#[derive(Debug, Clone)]
enum Piece {
    Lit(String),
    Protocol,
    Host,
    Port,
    Path,
    Query,
}

/// A redirect component with its `#{...}` keywords located once.
#[derive(Debug, Clone)]
struct Template(Vec<Piece>);

impl Template {
    fn parse(s: &str) -> Template {
        const KEYWORDS: [(&str, Piece); 5] = [
            ("#{protocol}", Piece::Protocol),
            ("#{host}", Piece::Host),
            ("#{port}", Piece::Port),
            ("#{path}", Piece::Path),
            ("#{query}", Piece::Query),
        ];
        let mut pieces = Vec::new();
        let mut lit = String::new();
        let mut rest = s;
        'outer: while !rest.is_empty() {
            for (kw, piece) in &KEYWORDS {
                if let Some(after) = rest.strip_prefix(kw) {
                    if !lit.is_empty() {
                        pieces.push(Piece::Lit(std::mem::take(&mut lit)));
                    }
                    pieces.push(piece.clone());
                    rest = after;
                    continue 'outer;
                }
            }
            let mut chars = rest.chars();
            if let Some(c) = chars.next() {
                lit.push(c);
            }
            rest = chars.as_str();
        }
        if !lit.is_empty() {
            pieces.push(Piece::Lit(lit));
        }
        Template(pieces)
    }

    fn expand(&self, out: &mut String, orig: &Original<'_>) {
        for p in &self.0 {
            out.push_str(match p {
                Piece::Lit(s) => s,
                Piece::Protocol => orig.protocol,
                Piece::Host => orig.host,
                Piece::Port => orig.port,
                Piece::Path => orig.path,
                Piece::Query => orig.query,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g(p: &str, ci: bool) -> Glob {
        Glob::new(p, ci, true)
    }

    #[test]
    fn wildcards() {
        assert!(g("/img/*", false).matches(b"/img/a.jpg"));
        assert!(g("/img/*", false).matches(b"/img/"));
        assert!(!g("/img/*", false).matches(b"/img"));
        assert!(g("*", false).matches(b""));
        assert!(g("a?c", false).matches(b"abc"));
        assert!(!g("a?c", false).matches(b"ac"));
        assert!(!g("a?c", false).matches(b"abbc"));
        assert!(g("*.example.com", true).matches(b"A.Example.COM"));
        assert!(!g("*.example.com", true).matches(b"example.com"));
        assert!(g("a*b*c", false).matches(b"aXbYbZc"));
        assert!(g("a*b*c", false).matches(b"abc"));
        assert!(!g("a*b*c", false).matches(b"acb"));
        assert!(g("*ab*", false).matches(b"xxabyy"));
        assert!(!g("*ab*", false).matches(b"xaxbx"));
        assert!(g("a**b", false).matches(b"ab"));
        assert!(!g("/API/*", false).matches(b"/api/x"));
        assert!(g(r"a\*b", false).matches(b"a*b"));
        assert!(!g(r"a\*b", false).matches(b"axb"));
        assert!(g(r"\?", false).matches(b"?"));
        assert!(!g(r"\?", false).matches(b"x"));
    }

    #[test]
    fn query_pairs_are_decoded_and_keyless_values_match_any_key() {
        let pairs = vec![(Some(g("version", true)), g("v1", true))];
        assert!(query_matches("VERSION=V1", &pairs));
        assert!(query_matches("a=b&version=v1", &pairs));
        assert!(!query_matches("version=v2", &pairs));
        assert!(query_matches("ver%73ion=v%31", &pairs));
        let any = vec![(None, g("blue", true))];
        assert!(query_matches("color=Blue", &any));
        assert!(query_matches("blue", &any));
        assert!(!query_matches("blue=x", &any));
        assert!(!query_matches("", &any));
        assert_eq!(&*percent_decode("a%2"), b"a%2");
        assert_eq!(&*percent_decode("%41%zz"), b"A%zz");
    }

    fn redirect(r: flotilla_config::Redirect) -> RedirectAction {
        match compile_action(&Action::Redirect(r), &HashMap::new()) {
            RouteAction::Redirect(r) => r,
            other => panic!("{other:?}"),
        }
    }

    fn parts(uri: &str, host: &str) -> http::request::Parts {
        http::Request::get(uri)
            .header("host", host)
            .body(())
            .unwrap()
            .into_parts()
            .0
    }

    #[test]
    fn redirect_keywords_in_every_component() {
        let r = redirect(flotilla_config::Redirect {
            status: 302,
            protocol: Some("#{protocol}".into()),
            host: Some("#{host}".into()),
            port: Some("#{port}".into()),
            path: Some("/#{host}/#{port}/#{path}".into()),
            query: Some("p=#{protocol}&#{query}".into()),
        });
        let (status, loc) = r.location(&parts("/a/b?x=1", "Ex.com:8443"), "https", 8443);
        assert_eq!(status, StatusCode::FOUND);
        assert_eq!(loc, "https://Ex.com:8443/Ex.com/8443/a/b?p=https&x=1");
        // A path template without the leading slash still yields an absolute path; an empty
        // query drops the `?`.
        let r = redirect(flotilla_config::Redirect {
            status: 301,
            protocol: Some("HTTPS".into()),
            host: None,
            port: Some("443".into()),
            path: Some("#{path}".into()),
            query: None,
        });
        let (status, loc) = r.location(&parts("/x", "[::1]:80"), "http", 80);
        assert_eq!(status, StatusCode::MOVED_PERMANENTLY);
        assert_eq!(loc, "https://[::1]:443/x");
    }

    #[test]
    fn host_port_is_ignored() {
        assert_eq!(strip_port("a.example.com:8080"), "a.example.com");
        assert_eq!(strip_port("a.example.com"), "a.example.com");
        assert_eq!(strip_port("[::1]:80"), "[::1]");
    }
}
