//! The one forwarding path: every protocol that hands a request or a connection to a target
//! group — the HTTP/1 engine, HTTP/2 clients, targets spoken to in HTTP/2, WebSocket upgrades
//! and TCP flows — asks a [`Forwarding`] which target to try, tells it how each attempt went,
//! and learns from it whether to try another. What is decided here, and only here:
//!
//! - the first target: the one a valid `AWSALB` cookie names, else the group's algorithm
//!   (or the flow hash of a TCP connection), skipping ejected targets; a group with nothing
//!   routable that holds requests (scale from zero) makes the request wait for a target;
//! - the deadlines of an attempt, the target group's: `connect_timeout` (HAProxy `timeout
//!   connect`) and `per_try_timeout` for an idempotent request's response head (HAProxy
//!   `retry-on response-timeout`);
//! - passive health: a connect that is refused or times out, or a per-try deadline that
//!   passes, ejects the target; an answer resets its back-off;
//! - the retry: once per request, on another target (another host, in another zone if there
//!   is one: a cut link takes every target behind it), when the failure came before any
//!   answer and either nothing of the request can have reached the target (the connect
//!   failed) or the whole request can be sent again (idempotent and complete, or nothing of
//!   its body taken yet) and the connection closed or the per-try deadline passed before
//!   answering. A request that is not idempotent is never sent twice once its bytes may have
//!   reached a target;
//! - the counters of each target: attempts, errors, requests in flight, answers by status
//!   class and their response time, flows.
//!
//! The protocols do the I/O: taking a pooled connection or opening one, writing, reading and
//! relaying. A pooled connection found closed by the target is their business too (it is sent
//! again on a fresh connection to the same target, which is not the retry).

use std::sync::Arc;
use std::time::{Duration, Instant};

use http::header::{HeaderMap, HeaderValue};
use http::StatusCode;

use crate::body::InFlight;
use crate::errors::Generated;
use crate::lb::target_group::{Backend, TargetGroup};
use crate::request::RequestView;

/// What went wrong on one attempt, before any of the target's answer reached the client (so
/// something else can still be answered).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Failure {
    /// Connecting failed (refused, unreachable): nothing was sent.
    ConnectFailed,
    /// Connecting took longer than the connect timeout: nothing was sent.
    ConnectTimeout,
    /// The connection was closed or reset before any response arrived.
    Closed,
    /// No response headers within the idle timeout.
    NoHeaders,
    /// No response headers within the target group's `per_try_timeout` (only armed for a
    /// request that may be sent again).
    TryTimeout,
    /// The target answered something that is not a valid response.
    Invalid,
}

impl Failure {
    /// The answer the load balancer gives when it gives up after this failure.
    pub(crate) fn generated(self) -> Generated {
        match self {
            Failure::ConnectFailed | Failure::Closed | Failure::Invalid => Generated::BadGateway,
            Failure::ConnectTimeout | Failure::NoHeaders | Failure::TryTimeout => {
                Generated::GatewayTimeout
            }
        }
    }

    /// The target cannot have seen anything of the request.
    fn nothing_sent(self) -> bool {
        matches!(self, Failure::ConnectFailed | Failure::ConnectTimeout)
    }

    /// The target failed to connect or to answer in time: passive health ejects it.
    fn ejects(self) -> bool {
        self.nothing_sent() || self == Failure::TryTimeout
    }
}

/// How targets are chosen for this forwarding.
#[derive(Debug, Clone, Copy)]
enum Choice {
    /// An HTTP request: the group's algorithm.
    Request,
    /// A TCP flow: its flow hash, so one client connection keeps its target.
    Flow(u64),
}

/// One request's (or flow's) way through a target group: the target to try now, and whether
/// the one retry is spent.
pub(crate) struct Forwarding<'g> {
    group: &'g TargetGroup,
    target: Arc<Backend>,
    choice: Choice,
    retried: bool,
}

impl<'g> Forwarding<'g> {
    /// The target a request's valid `AWSALB` cookie names, if stickiness is on and that
    /// target is routable and not ejected. Read before the request's head is let go; pass it
    /// to [`Forwarding::request`].
    pub(crate) fn sticky<R: RequestView>(group: &TargetGroup, req: &R) -> Option<Arc<Backend>> {
        group.sticky_pick(req)
    }

    /// Start forwarding an HTTP request: to `sticky` if given, else to the algorithm's pick,
    /// waiting while the group holds requests for want of a target (scale from zero).
    /// `None`: no target (503).
    pub(crate) async fn request(
        group: &'g TargetGroup,
        sticky: Option<Arc<Backend>>,
    ) -> Option<Self> {
        let target = match sticky {
            Some(b) => b,
            None => group.pick_or_wait(|| group.pick(None)).await?,
        };
        Some(Forwarding {
            group,
            target,
            choice: Choice::Request,
            retried: false,
        })
    }

    /// Start forwarding a TCP flow whose flow hash is `hash` (waiting, as requests do, while
    /// the group holds them). `None`: no target.
    pub(crate) async fn flow(group: &'g TargetGroup, hash: u64) -> Option<Self> {
        let target = group.pick_or_wait(|| group.pick_flow(hash, None)).await?;
        Some(Forwarding {
            group,
            target,
            choice: Choice::Flow(hash),
            retried: false,
        })
    }

    /// The target to try now.
    pub(crate) fn target(&self) -> &Arc<Backend> {
        &self.target
    }

    /// How long connecting to the target may take (the target group's `connect_timeout`).
    pub(crate) fn connect_timeout(&self) -> std::time::Duration {
        self.group.connect_timeout()
    }

    /// The deadline for the response head of a request that can be sent again (`resend`),
    /// counted from `sent_at`: the target group's `per_try_timeout`, while the retry is not
    /// spent (the last try waits the idle timeout, as without one), and only when it is
    /// shorter than `idle` (the wait it would cut short). `None`: no such deadline.
    pub(crate) fn try_deadline(
        &self,
        resend: bool,
        sent_at: Instant,
        idle: Duration,
    ) -> Option<Instant> {
        let per_try = self
            .group
            .per_try_timeout()
            .filter(|t| resend && !self.retried && *t < idle)?;
        Some(sent_at + per_try)
    }

    /// An attempt on the current target starts: a request is counted, and it is in flight
    /// (for least outstanding requests and draining) until the guard is dropped — with the
    /// answer's body, once the client has all of it.
    pub(crate) fn begin(&self) -> InFlight {
        if let Choice::Request = self.choice {
            self.target.count_attempt();
        }
        InFlight::start(&self.target)
    }

    /// The current target answered with `status` to a request sent at `sent_at`: its
    /// ejection back-off starts over and the answer is counted. Returns the time the answer's
    /// head came.
    pub(crate) fn answered(&self, status: u16, sent_at: Instant) -> Instant {
        let now = Instant::now();
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
        self.target
            .answered(status, now.saturating_duration_since(sent_at));
        now
    }

    /// The current target accepted the flow's connection.
    pub(crate) fn flow_opened(&self) {
        self.target.flow_opened();
    }

    /// The target failed after answering began (its body broke off), or answered a body that
    /// could not be relayed: counted as its error; there is no retry.
    pub(crate) fn broke_off(&self) {
        self.target.count_error();
    }

    /// The attempt on the current target failed with `failure`; `resend` says whether the
    /// whole request could still be sent again. The failure is counted (a failed connect
    /// also ejects the target), and `true` means the request goes to another target, now
    /// [`target`](Self::target): see the module's rule. `false`: give up
    /// ([`give_up`](Self::give_up)).
    pub(crate) fn retry(&mut self, failure: Failure, resend: bool) -> bool {
        self.record(failure);
        let safe = failure.nothing_sent()
            || (matches!(failure, Failure::Closed | Failure::TryTimeout) && resend);
        if self.retried || !safe {
            return false;
        }
        let next = match self.choice {
            Choice::Request => self.group.pick(Some(&self.target)),
            Choice::Flow(hash) => self.group.pick_flow(hash, Some(&self.target)),
        };
        let Some(next) = next else {
            return false;
        };
        tracing::debug!(group = self.group.name(), failed = %self.target.addr, retry = %next.addr, ?failure, "retrying on another target");
        self.target = next;
        self.retried = true;
        true
    }

    /// The attempt failed with `failure` after the request went out, so that it cannot be
    /// retried: counted, logged, and the answer the client gets.
    pub(crate) fn failed(&self, failure: Failure) -> Generated {
        self.record(failure);
        self.give_up(failure)
    }

    /// Count a failure against the current target; a failed connect or a missed per-try
    /// deadline ejects it.
    fn record(&self, failure: Failure) {
        self.target.count_error();
        if failure.ejects() {
            self.group.eject(&self.target);
        }
    }

    /// No (more) retry after `failure` ([`retry`](Self::retry) said no): the answer the
    /// client gets.
    pub(crate) fn give_up(&self, failure: Failure) -> Generated {
        tracing::info!(group = self.group.name(), target = %self.target.addr, ?failure, "request failed on target");
        failure.generated()
    }

    /// The `Set-Cookie` value that keeps the client on the current target (stickiness on),
    /// re-issued with every answer so its duration slides, as in AWS.
    pub(crate) fn cookie(&self) -> Option<HeaderValue> {
        self.group.sticky_cookie(&self.target)
    }

    /// Add [`cookie`](Self::cookie) to an answer's headers.
    pub(crate) fn stick(&self, headers: &mut HeaderMap) {
        if let Some(v) = self.cookie() {
            headers.append(http::header::SET_COOKIE, v);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::sync::Arc;

    use super::*;
    use crate::lb::target_group::BackendStats;
    use crate::{HoldConfig, RouteState, TargetUpdate};

    fn group(ports: &[u16]) -> Arc<TargetGroup> {
        let g = TargetGroup::new("web");
        g.update(ports.iter().map(|&p| healthy(p)).collect());
        g
    }

    fn healthy(port: u16) -> TargetUpdate {
        TargetUpdate {
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            instance_id: None,
            zone: None,
            state: RouteState::Healthy,
        }
    }

    fn stats_of(g: &TargetGroup, port: u16) -> BackendStats {
        g.stats()
            .into_iter()
            .find(|s| s.addr.port() == port)
            .unwrap()
    }

    #[tokio::test]
    async fn a_failed_connect_ejects_the_target_and_retries_once_on_another() {
        let g = group(&[1, 2, 3]);
        let mut path = Forwarding::request(&g, None).await.unwrap();
        let first = Arc::clone(path.target());
        let _attempt = path.begin();
        assert!(
            path.retry(Failure::ConnectFailed, false),
            "nothing was sent"
        );
        let second = Arc::clone(path.target());
        assert!(!Arc::ptr_eq(&first, &second));
        let s = stats_of(&g, first.addr.port());
        assert_eq!(
            (s.requests_total, s.errors_total, s.consecutive_failures),
            (1, 1, 1)
        );
        // Ejected: the next requests go elsewhere.
        for _ in 0..6 {
            let p = Forwarding::request(&g, None).await.unwrap();
            assert!(!Arc::ptr_eq(p.target(), &first));
        }
        // The retry is spent: the second failure is the answer.
        assert!(!path.retry(Failure::ConnectTimeout, true));
        assert_eq!(
            path.give_up(Failure::ConnectTimeout),
            Generated::GatewayTimeout
        );
        assert!(Arc::ptr_eq(path.target(), &second));
    }

    #[tokio::test]
    async fn a_closed_connection_is_retried_only_when_the_request_can_be_sent_again() {
        let g = group(&[1, 2]);
        let mut path = Forwarding::request(&g, None).await.unwrap();
        assert!(!path.retry(Failure::Closed, false));
        let mut path = Forwarding::request(&g, None).await.unwrap();
        let first = Arc::clone(path.target());
        assert!(path.retry(Failure::Closed, true));
        assert!(!Arc::ptr_eq(path.target(), &first));
        // A closed connection is not a failed connect: no ejection.
        assert_eq!(stats_of(&g, first.addr.port()).consecutive_failures, 0);
    }

    #[tokio::test]
    async fn a_target_that_may_have_acted_is_never_retried() {
        let g = group(&[1, 2]);
        for failure in [Failure::NoHeaders, Failure::Invalid] {
            let mut path = Forwarding::request(&g, None).await.unwrap();
            assert!(!path.retry(failure, true), "{failure:?}");
        }
        let path = Forwarding::request(&g, None).await.unwrap();
        assert_eq!(path.failed(Failure::Invalid), Generated::BadGateway);
        assert_eq!(
            g.stats().iter().map(|s| s.errors_total).sum::<u64>(),
            3,
            "every failure counted once"
        );
    }

    #[tokio::test]
    async fn a_missed_per_try_deadline_is_retried_only_when_the_request_can_be_sent_again() {
        let g = group(&[1, 2]);
        let mut path = Forwarding::request(&g, None).await.unwrap();
        assert!(!path.retry(Failure::TryTimeout, false), "not idempotent");
        let mut path = Forwarding::request(&g, None).await.unwrap();
        let first = Arc::clone(path.target());
        assert!(path.retry(Failure::TryTimeout, true));
        assert!(!Arc::ptr_eq(path.target(), &first));
        assert_eq!(
            stats_of(&g, first.addr.port()).consecutive_failures,
            1,
            "a target that did not answer in time is ejected"
        );
        assert_eq!(path.give_up(Failure::TryTimeout), Generated::GatewayTimeout);
    }

    #[tokio::test]
    async fn a_retry_goes_to_another_zone_when_there_is_one() {
        let g = TargetGroup::new("zones");
        let at = |ip: u8, zone: &str| TargetUpdate {
            addr: SocketAddr::from(([127, 0, 0, ip], 80)),
            instance_id: None,
            zone: Some(zone.to_string()),
            state: RouteState::Healthy,
        };
        g.update(vec![at(1, "a"), at(2, "a"), at(3, "b")]);
        let mut retried = 0;
        for _ in 0..6 {
            let mut path = Forwarding::request(&g, None).await.unwrap();
            if path.target().addr.ip().to_string() == "127.0.0.3" {
                continue;
            }
            assert!(path.retry(Failure::ConnectTimeout, true));
            assert_eq!(path.target().addr.ip().to_string(), "127.0.0.3");
            retried += 1;
        }
        assert!(retried > 0, "some first try landed in zone a");
    }

    #[tokio::test]
    async fn an_answer_ends_the_ejection_backoff_and_is_counted() {
        let g = group(&[1]);
        let mut path = Forwarding::request(&g, None).await.unwrap();
        assert!(!path.retry(Failure::ConnectFailed, true), "no other target");
        assert_eq!(stats_of(&g, 1).consecutive_failures, 1);
        let sent = Instant::now();
        let attempt = path.begin();
        assert_eq!(stats_of(&g, 1).in_flight, 1);
        path.answered(503, sent);
        drop(attempt);
        let s = stats_of(&g, 1);
        assert_eq!(s.consecutive_failures, 0);
        assert_eq!(s.responses_by_class, [0, 0, 0, 0, 1]);
        assert_eq!((s.requests_total, s.in_flight), (1, 0));
    }

    #[tokio::test]
    async fn a_flow_keeps_its_hash_and_is_not_counted_as_a_request() {
        let g = group(&[1, 2, 3]);
        let a = Forwarding::flow(&g, 42).await.unwrap();
        let b = Forwarding::flow(&g, 42).await.unwrap();
        assert!(
            Arc::ptr_eq(a.target(), b.target()),
            "same hash, same target"
        );
        let mut path = Forwarding::flow(&g, 42).await.unwrap();
        let first = Arc::clone(path.target());
        let attempt = path.begin();
        assert!(path.retry(Failure::ConnectFailed, true));
        drop(attempt);
        let attempt = path.begin();
        path.flow_opened();
        let s = stats_of(&g, path.target().addr.port());
        assert_eq!((s.flows_total, s.requests_total, s.in_flight), (1, 0, 1));
        drop(attempt);
        assert!(!Arc::ptr_eq(path.target(), &first));
    }

    #[tokio::test]
    async fn a_sticky_target_is_tried_first() {
        let g = group(&[1, 2, 3]);
        let third = g
            .pick(None)
            .and_then(|_| g.pick(None))
            .and_then(|_| g.pick(None))
            .unwrap();
        for _ in 0..5 {
            let path = Forwarding::request(&g, Some(Arc::clone(&third)))
                .await
                .unwrap();
            assert!(Arc::ptr_eq(path.target(), &third));
        }
    }

    #[tokio::test]
    async fn flows_wait_for_a_target_while_the_group_holds_requests() {
        let g = TargetGroup::new("zero");
        let config = HoldConfig {
            max_waiting: 4,
            timeout: std::time::Duration::from_secs(60),
        };
        g.enable_hold(config, Arc::new(|| {}));
        let waiting = {
            let g = Arc::clone(&g);
            tokio::spawn(async move { Forwarding::flow(&g, 9).await.map(|p| p.target().addr) })
        };
        while g.held_requests() == 0 {
            tokio::task::yield_now().await;
        }
        g.update(vec![healthy(7)]);
        let got = waiting.await.unwrap();
        assert_eq!(got.map(|a| a.port()), Some(7));
        assert_eq!(g.held_requests(), 0);
    }
}
