//! The routing table of one listener: rules by ascending priority, first match wins, else the
//! default action (AWS ALB §1). Built once per configuration by [`crate::lb::rules::compile`] and
//! swapped atomically by the listener; [`Router::route`] only reads it.

use std::net::IpAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Response, StatusCode};

use crate::body::ProxyBody;
use crate::errors::{self, Generated};
use crate::lb::balance;
use crate::lb::rules::{CompiledRule, RedirectAction};
use crate::lb::target_group::TargetGroup;
use crate::request::RequestView;

/// What a listener does with a request: its rules, evaluated in priority order, and the
/// default action for requests that match none.
#[derive(Debug, Clone)]
pub struct Router {
    /// Applied to every request that matches no rule.
    pub default_action: RouteAction,
    /// Sorted by ascending priority.
    pub(crate) rules: Vec<CompiledRule>,
    /// `http` or `https`: the original protocol of redirects.
    pub(crate) protocol: &'static str,
    /// The listener's port: the original port of redirects.
    pub(crate) port: u16,
}

impl Router {
    /// A router without rules that applies `default_action` to every request.
    pub fn new(default_action: RouteAction) -> Self {
        Router {
            default_action,
            rules: Vec::new(),
            protocol: "http",
            port: 80,
        }
    }

    /// The decision for a request, given its head and the TCP peer's address (for
    /// `source-ip`). Rules are tried by ascending priority; the first whose conditions all
    /// match decides. Allocates nothing except to build a redirect's `Location`.
    pub fn route(&self, req: &http::request::Parts, peer: IpAddr) -> Decision<'_> {
        self.route_view(req, peer)
    }

    /// [`Router::route`] for any protocol's view of a request (the HTTP/1 engine routes its
    /// borrowed head without building `Parts`).
    pub(crate) fn route_view<R: RequestView>(&self, req: &R, peer: IpAddr) -> Decision<'_> {
        let action = self
            .rules
            .iter()
            .find(|r| r.matches(req, peer))
            .map_or(&self.default_action, |r| &r.action);
        match action {
            RouteAction::Forward(group) => Decision::Forward(group),
            RouteAction::WeightedForward(w) => match w.pick() {
                Some(group) => Decision::Forward(group),
                None => Decision::NoTargets,
            },
            RouteAction::Redirect(r) => {
                let (status, location) = r.location(req, self.protocol, self.port);
                Decision::Redirect { status, location }
            }
            RouteAction::FixedResponse {
                status,
                content_type,
                body,
            } => Decision::FixedResponse {
                status: *status,
                content_type,
                body,
            },
        }
    }
}

/// One listener action, as in ELBv2 (`forward`, `redirect`, `fixed-response`).
#[derive(Debug, Clone)]
pub enum RouteAction {
    /// Forward to the routable targets of a target group.
    Forward(Arc<TargetGroup>),
    /// Forward to one of several target groups, chosen at random by weight per request.
    WeightedForward(WeightedGroups),
    /// Answer with a redirect built from the request's URI.
    Redirect(RedirectAction),
    /// Answer directly from the load balancer without involving any target.
    FixedResponse {
        /// HTTP status code; an invalid code is answered as 500.
        status: u16,
        /// `Content-Type` of the answer.
        content_type: String,
        /// Body of the answer.
        body: String,
    },
}

/// The target groups of a multi-group `forward`, with cumulative weights for a pick that
/// costs one random number and a short scan.
#[derive(Debug, Clone)]
pub struct WeightedGroups {
    groups: Vec<(Arc<TargetGroup>, u64)>,
    total: u64,
}

impl WeightedGroups {
    /// Groups with their weights (0–999; share = weight / sum; weight 0 gets nothing).
    pub fn new(groups: impl IntoIterator<Item = (Arc<TargetGroup>, u32)>) -> Self {
        let mut total = 0u64;
        let groups = groups
            .into_iter()
            .filter(|(_, w)| *w > 0)
            .map(|(g, w)| {
                total += u64::from(w);
                (g, total)
            })
            .collect();
        WeightedGroups { groups, total }
    }

    fn pick(&self) -> Option<&Arc<TargetGroup>> {
        if self.total == 0 {
            return None;
        }
        let r = balance::below(self.total);
        self.groups
            .iter()
            .find(|(_, upto)| r < *upto)
            .map(|(g, _)| g)
    }
}

/// What the listener does with one request, as decided by [`Router::route`].
#[derive(Debug)]
pub enum Decision<'a> {
    /// Forward to this target group.
    Forward(&'a Arc<TargetGroup>),
    /// Answer `status` (301/302) with this `Location`.
    Redirect {
        /// 301 or 302.
        status: StatusCode,
        /// The complete target URI.
        location: HeaderValue,
    },
    /// Answer with the configured fixed response.
    FixedResponse {
        /// HTTP status code; an invalid code is answered as 500.
        status: u16,
        /// `Content-Type` of the answer.
        content_type: &'a str,
        /// Body of the answer.
        body: &'a str,
    },
    /// A weighted forward whose groups all weigh 0: 503.
    NoTargets,
}

impl Decision<'_> {
    /// The response for a decision the load balancer answers itself (`Forward` has none and
    /// yields 503, which callers avoid by handling it first).
    pub(crate) fn respond(self) -> Response<ProxyBody> {
        match self {
            Decision::Redirect { status, location } => {
                let mut resp = errors::text_response(
                    status,
                    HeaderValue::from_static("text/plain; charset=utf-8"),
                    Bytes::new(),
                );
                resp.headers_mut().insert(header::LOCATION, location);
                resp
            }
            Decision::FixedResponse {
                status,
                content_type,
                body,
            } => errors::fixed_response(status, content_type, body),
            Decision::Forward(_) | Decision::NoTargets => Generated::NoTargets.response(),
        }
    }
}
