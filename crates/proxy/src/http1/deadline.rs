//! One timer per connection, re-armed lazily.
//!
//! Every request moves a connection's deadline (idle timeout after a response, response-header
//! timeout after a request was sent). Resetting a tokio timer each time would cost a timer-wheel
//! update per request; instead the deadline is only recorded, and when the armed timer fires
//! early it is re-armed for the recorded deadline. Moving a deadline earlier (a header read
//! timeout shorter than the idle timeout) re-arms at once.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::time::{Instant, Sleep};

/// The deadline of whatever the connection waits for now.
#[derive(Debug)]
pub(crate) struct Deadline {
    /// Set to fire at the deadline or before it (never later).
    sleep: Pin<Box<Sleep>>,
    /// When the deadline really is.
    at: Instant,
}

impl Deadline {
    pub(crate) fn new(at: Instant) -> Deadline {
        Deadline {
            sleep: Box::pin(tokio::time::sleep_until(at)),
            at,
        }
    }

    /// Expire at `at` instead.
    pub(crate) fn set(&mut self, at: Instant) {
        self.at = at;
        if at < self.sleep.deadline() {
            self.sleep.as_mut().reset(at);
        }
    }

    /// Expire at `at` if that is sooner than the deadline set now.
    pub(crate) fn set_earlier(&mut self, at: Instant) {
        if at < self.at {
            self.set(at);
        }
    }

    /// Resolves once the deadline has passed.
    pub(crate) async fn expired(&mut self) {
        std::future::poll_fn(|cx| self.poll_expired(cx)).await;
    }

    /// `Ready` once the deadline has passed (and from then on, until it is moved); else the
    /// task is woken when it may have.
    pub(crate) fn poll_expired(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            std::task::ready!(self.sleep.as_mut().poll(cx));
            if self.at <= self.sleep.deadline() {
                return Poll::Ready(());
            }
            self.sleep.as_mut().reset(self.at);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn a_later_deadline_fires_at_its_time_and_an_earlier_one_at_once() {
        let start = Instant::now();
        let mut d = Deadline::new(start + Duration::from_secs(1));
        d.set(start + Duration::from_secs(5));
        d.expired().await;
        assert_eq!(Instant::now() - start, Duration::from_secs(5));
        d.set(Instant::now() + Duration::from_secs(60));
        d.set(Instant::now() + Duration::from_secs(2));
        d.expired().await;
        assert_eq!(Instant::now() - start, Duration::from_secs(7));
    }
}
