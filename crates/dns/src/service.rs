//! The DNS service as `flotilla up` runs it: the server, the health checks' runner (which
//! drives the sans-IO [`HealthChecks`] with real time and probes), and the changes that
//! reloads and the admin API make.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use flotilla_config::dns::{Dns, DnsHealthCheck, RecordSet};
use tokio::sync::{mpsc, watch, Notify};
use tokio::task::JoinHandle;

use crate::alias::AliasSource;
pub use crate::changes::ChangeError;
use crate::health::{CheckStatus, HealthChecks};
use crate::server::{BoundDns, DnsServer, DnsState, DnsStats, HealthVerdicts};
use crate::zones::ZoneSet;

/// The running DNS service.
pub struct DnsService {
    state: Arc<DnsState>,
    checks: Arc<Mutex<HealthChecks>>,
    /// The `[dns]` in force, with the API's changes.
    config: Mutex<Dns>,
    origin: Instant,
    wake: Arc<Notify>,
    stop: watch::Sender<bool>,
    runner: JoinHandle<()>,
    server: DnsServer,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl DnsService {
    /// Starts answering on `bound` and probing the health checks of `dns`.
    pub fn start(bound: BoundDns, dns: &Dns, aliases: Arc<dyn AliasSource>) -> DnsService {
        let origin = Instant::now();
        let checks = Arc::new(Mutex::new(HealthChecks::new(
            &dns.health_checks,
            Duration::ZERO,
        )));
        let state = Arc::new(DnsState {
            zones: ArcSwap::from_pointee(ZoneSet::new(dns)),
            health: ArcSwap::from_pointee(HealthVerdicts::of(&lock(&checks))),
            aliases,
            stats: DnsStats::default(),
        });
        let wake = Arc::new(Notify::new());
        let (stop, stop_rx) = watch::channel(false);
        let runner = tokio::spawn(run_checks(
            Arc::clone(&checks),
            Arc::clone(&state),
            origin,
            Arc::clone(&wake),
            stop_rx,
        ));
        let server = bound.serve(Arc::clone(&state));
        DnsService {
            state,
            checks,
            config: Mutex::new(dns.clone()),
            origin,
            wake,
            stop,
            runner,
            server,
        }
    }

    /// Applies a reloaded `[dns]` (the bind address is the caller's to compare).
    pub fn reconfigure(&self, dns: &Dns) {
        let now = self.origin.elapsed();
        lock(&self.checks).reconfigure(&dns.health_checks, now);
        self.state.zones.store(Arc::new(ZoneSet::new(dns)));
        *lock(&self.config) = dns.clone();
        self.wake.notify_one();
    }

    /// The zones as they answer now.
    pub fn zones(&self) -> Arc<ZoneSet> {
        self.state.zones.load_full()
    }

    /// Every health check's state; `last_checked` is how long ago.
    pub fn health_checks(&self) -> Vec<(CheckStatus, Option<Duration>)> {
        let now = self.origin.elapsed();
        lock(&self.checks)
            .statuses()
            .into_iter()
            .map(|s| {
                let ago = s.last_checked.map(|t| now.saturating_sub(t));
                (s, ago)
            })
            .collect()
    }

    /// The `[dns]` in force, with the API's changes.
    pub fn config(&self) -> Dns {
        lock(&self.config).clone()
    }

    /// The health checks' configurations.
    pub fn health_check_specs(&self) -> BTreeMap<String, DnsHealthCheck> {
        lock(&self.config).health_checks.clone()
    }

    /// Counters for metrics.
    pub fn stats(&self) -> &DnsStats {
        &self.state.stats
    }

    /// Replaces the record sets of one `(name, type)` in a zone (Route 53 `UPSERT` of every
    /// set of that name and type), or deletes them when `sets` is empty.
    pub fn set_records(
        &self,
        zone: &str,
        name: &str,
        rtype: flotilla_config::dns::RecordType,
        sets: Vec<RecordSet>,
    ) -> Result<(), ChangeError> {
        let mut config = lock(&self.config);
        crate::changes::set_records(&mut config, zone, name, rtype, sets)?;
        let dns = config.clone();
        drop(config);
        self.state.zones.store(Arc::new(ZoneSet::new(&dns)));
        Ok(())
    }

    /// Creates or replaces a health check.
    pub fn put_health_check(&self, name: &str, spec: DnsHealthCheck) -> Result<(), ChangeError> {
        let mut config = lock(&self.config);
        crate::changes::put_health_check(&mut config, name, spec)?;
        let specs = config.health_checks.clone();
        drop(config);
        lock(&self.checks).reconfigure(&specs, self.origin.elapsed());
        self.wake.notify_one();
        Ok(())
    }

    /// Deletes a health check no record set or calculated check uses.
    pub fn delete_health_check(&self, name: &str) -> Result<(), ChangeError> {
        let mut config = lock(&self.config);
        crate::changes::delete_health_check(&mut config, name)?;
        let specs = config.health_checks.clone();
        drop(config);
        lock(&self.checks).reconfigure(&specs, self.origin.elapsed());
        self.wake.notify_one();
        Ok(())
    }

    /// Stops the server and the probes.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        self.server.stop().await;
        let _ = self.runner.await;
    }
}

/// Drives the health checks: starts every due probe, feeds back results, publishes the
/// verdicts for queries, sleeps until the next probe is due.
async fn run_checks(
    checks: Arc<Mutex<HealthChecks>>,
    state: Arc<DnsState>,
    origin: Instant,
    wake: Arc<Notify>,
    mut stop: watch::Receiver<bool>,
) {
    let (tx, mut rx) = mpsc::unbounded_channel::<(String, Result<String, String>)>();
    loop {
        let now = origin.elapsed();
        let (probes, next, verdicts) = {
            let mut c = lock(&checks);
            let probes: Vec<_> = std::iter::from_fn(|| c.poll_probe(now)).collect();
            (probes, c.poll_timeout(), HealthVerdicts::of(&c))
        };
        if verdicts.0 != state.health.load().0 {
            state.health.store(Arc::new(verdicts));
        }
        for p in probes {
            let tx = tx.clone();
            tokio::spawn(async move {
                let result = crate::probe::run(&p).await;
                let _ = tx.send((p.check, result));
            });
        }
        let sleep = async {
            match next {
                Some(t) => tokio::time::sleep_until((origin + t).into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = stop.changed() => break,
            _ = wake.notified() => {}
            _ = sleep => {}
            Some((check, result)) = rx.recv() => {
                let now = origin.elapsed();
                let mut c = lock(&checks);
                let (passed, detail) = match &result { Ok(d) => (true, d.as_str()), Err(d) => (false, d.as_str()) };
                c.handle_result(now, &check, passed, detail);
            }
        }
    }
}
