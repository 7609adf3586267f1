//! `flotilla up`: binds every listener, starts the control loop, and on shutdown stops
//! accepting, lets in-flight requests finish, then stops every instance.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use flotilla_compute::{ComputeEvent, ComputeProvider, LocalProcessProvider};
use flotilla_config::{Action, Config, LaunchTemplate};
use flotilla_control::{AutoScalingGroup, InstanceId, ScalingProcess, TargetGroupHealth};
use flotilla_proxy::AccessLog;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

use crate::backend::{AdminView, Shared};
use crate::clock::Clock;
use crate::control::{Control, Effect, GroupRuntime, TargetGroupRuntime};
use crate::launch::launch_spec;
use crate::persist;
use crate::probe::run_probe;
use crate::reload;
use crate::RuntimeError;

/// How long shutdown waits for in-flight client requests before stopping instances anyway.
const DRAIN_ON_SHUTDOWN: Duration = Duration::from_secs(30);
/// How often the loop looks at in-flight counts while a target drains.
const DRAIN_POLL: Duration = Duration::from_millis(50);
/// AWS's target connect timeout (→ 504).
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// What `flotilla up` needs besides the config.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// Path substituted for `{flotilla}` in launch template commands.
    pub flotilla_exe: PathBuf,
    /// Seed for instance ids, so every run gets fresh ids while tests can fix them.
    pub id_seed: u64,
    /// Admin API token; required when `admin_bind` is not loopback.
    pub admin_token: Option<String>,
}

/// Results coming back from I/O the loop started.
enum Event {
    Probe {
        target_group: String,
        target: std::net::SocketAddr,
        result: flotilla_control::ProbeResult,
    },
}

/// Runs the cluster described by `config` until `shutdown` completes, then stops cleanly.
pub async fn run(
    config: Config,
    options: RunOptions,
    shutdown: impl Future<Output = ()>,
) -> Result<(), RuntimeError> {
    let clock = Clock::start();
    let admin_addr = config.cluster.admin_bind;
    if !admin_addr.ip().is_loopback() && options.admin_token.is_none() {
        return Err(RuntimeError::AdminTokenRequired {
            addr: admin_addr,
            env: config.cluster.admin_token_env.clone(),
        });
    }
    let log_dir = config.cluster.state_dir.join("logs");
    std::fs::create_dir_all(&log_dir).map_err(|source| RuntimeError::StateDir {
        path: log_dir.clone(),
        source,
    })?;

    // Durable state of earlier runs: operator capacities, activity history, live instances.
    let (store, restored) =
        persist::open(&config.cluster.state_dir, config.auto_scaling_groups.keys())?;

    // Bind everything first: a taken port fails the start before any instance exists.
    let admin_listener =
        TcpListener::bind(admin_addr)
            .await
            .map_err(|source| RuntimeError::Bind {
                addr: admin_addr,
                source,
            })?;
    let mut bound = Vec::new();
    for (lb_name, lb) in &config.load_balancers {
        // One access log per load balancer, shared by its listeners; opened before anything
        // starts so that an unwritable path fails the start.
        let access_log =
            match &lb.access_log {
                Some(path) => Some(AccessLog::open(path, lb_name).map_err(|source| {
                    RuntimeError::AccessLog {
                        path: path.clone(),
                        source,
                    }
                })?),
                None => None,
            };
        for l in &lb.listeners {
            let listener = reload::bind_listener(l.bind).map_err(|source| RuntimeError::Bind {
                addr: l.bind,
                source,
            })?;
            // TLS certificates are loaded now, so a bad one fails the start, naming the file.
            let options = crate::protocols::listener_options(lb, l)?;
            bound.push(reload::BoundListener {
                lb_name: lb_name.clone(),
                lb: lb.clone(),
                listener: l.clone(),
                socket: listener,
                access_log: access_log.clone(),
                options,
            });
        }
    }

    let (provider, mut compute_events) = LocalProcessProvider::new(log_dir)?;
    let provider = Arc::new(provider);
    let now = clock.now();

    // Target groups: health machines plus their data-plane views.
    let mut target_groups = BTreeMap::new();
    for (name, tg) in &config.target_groups {
        let (spec, probe) = reload::health_specs(tg);
        let mut health = TargetGroupHealth::new(spec, tg.deregistration_delay);
        for target in &tg.targets {
            health.register(now, *target);
        }
        target_groups.insert(
            name.clone(),
            TargetGroupRuntime::new(
                health,
                flotilla_proxy::TargetGroup::with_settings(
                    name.clone(),
                    flotilla_proxy::TargetGroupSettings::from_config(
                        tg,
                        config.target_group_cross_zone(name),
                    ),
                ),
                probe,
            ),
        );
    }

    // Auto scaling groups.
    let mut groups = BTreeMap::new();
    for (i, (name, asg)) in config.auto_scaling_groups.iter().enumerate() {
        let spec = reload::group_spec(name, asg, 1);
        let mut spec = spec;
        if let Some(&d) = restored.desired.get(name) {
            if (spec.min_size..=spec.max_size).contains(&d) {
                if d != spec.desired_capacity {
                    tracing::info!(
                        group = name.as_str(),
                        "restoring the desired capacity {d} an operator set before the restart \
                         (the config says {})",
                        spec.desired_capacity
                    );
                }
                spec.desired_capacity = d;
            } else {
                tracing::warn!(
                    group = name.as_str(),
                    "the desired capacity {d} an operator set before the restart is outside \
                     the config's {}..{}; using the config's {}",
                    spec.min_size,
                    spec.max_size,
                    spec.desired_capacity
                );
            }
        }
        let seed = options
            .id_seed
            .wrapping_add((i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let mut group = AutoScalingGroup::new(spec, seed, now);
        group.set_new_instances_protected_from_scale_in(asg.new_instances_protected_from_scale_in);
        // Suspended before the first reconcile, so e.g. a suspended Launch launches nothing.
        restore_suspended(name, &mut group, restored.suspended.get(name));
        let mut rt = GroupRuntime::new(
            group,
            asg.launch_template.clone(),
            asg.target_groups.clone(),
        );
        if let Some(t) = config.launch_templates.get(&asg.launch_template) {
            rt.record_template(1, t.clone());
        }
        groups.insert(name.clone(), rt);
    }

    // Listeners: routers over the data-plane target groups.
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut control = Control::new(groups, target_groups);
    control.zones = flotilla_control::ZoneDrills::new(config.cluster.zones.iter().cloned());
    // Static targets are routable (fail-open while `initial`) from the first request, not
    // only after the control loop's first pump.
    control.publish();
    let listener_set = reload::ListenerSet::default();
    reload::lock(&listener_set.weights).restore(
        restored
            .weight_overrides
            .iter()
            .filter_map(crate::weights::from_record),
    );
    for b in bound {
        listener_set.start(b, &control.target_groups, &config.target_groups);
    }

    let persister =
        persist::Persister::start(Box::new(store), clock, format!("{:016x}", options.id_seed))
            .map_err(|source| RuntimeError::StateDir {
                path: config.cluster.state_dir.clone(),
                source,
            })?;
    for (name, d) in &restored.desired {
        if control
            .groups
            .get(name)
            .is_some_and(|g| g.asg.desired_capacity() != *d)
        {
            persister.clear_desired(name);
        }
    }
    control.persist = Some(persister);
    // Overrides the file no longer agrees with were dropped when the listeners compiled.
    listener_set.forget_dropped_overrides(control.persist.as_ref());
    persist::adopt_survivors(
        &mut control,
        &provider,
        &config.launch_templates,
        restored.instances,
        now,
    );
    let scaling = Mutex::new(crate::scaling::Scaling::new(&config, now));
    let shared = Arc::new(Shared {
        scaling,
        control: Mutex::new(control),
        wake: tokio::sync::Notify::new(),
        clock,
        listener_set,
        history: restored.history,
        config_path: (!config.path.as_os_str().is_empty()).then(|| config.path.clone()),
        config: Mutex::new(config),
    });
    {
        let config = shared.config();
        crate::scale_from_zero::enable(&shared, &config);
    }
    let admin_bound = admin_listener.local_addr().unwrap_or(admin_addr);
    let cluster_name = shared.config().cluster.name.clone();
    let admin = tokio::spawn(flotilla_admin::serve(
        admin_listener,
        Arc::new(AdminView(shared.clone())),
        options.admin_token.clone().map(Arc::from),
        stop_rx.clone(),
    ));
    tracing::info!(cluster = %cluster_name, admin = %admin_bound, "flotilla is up");
    let admin_url = format!("http://{admin_bound}");

    // The control loop.
    let (event_tx, mut event_rx) = mpsc::unbounded_channel::<Event>();
    // SIGHUP reloads the config; without the handler it would end the process.
    let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
    let mut lb_metrics = crate::lb_metrics::LoadBalancerMetrics::default();
    tokio::pin!(shutdown);
    loop {
        let now = clock.now();
        let cpu = crate::scaling::process_tree_ticks(&shared, now);
        let (effects, deadline) = {
            let mut c = shared.lock();
            c.tick(now);
            // Once a second: sample metrics and let the scaling policies act.
            let next_sample = {
                let mut s = shared
                    .scaling
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                s.tick(&mut c, now, jiff::Timestamp::now(), cpu);
                if lb_metrics.due(now) {
                    lb_metrics.sample(&mut s.store, &shared.listener_set.stats(), &c, now);
                    // After the second's metrics are in: canary rollbacks judge them.
                    crate::shift::tick_rollbacks(&shared.listener_set, &c, &s.store, now);
                }
                s.next_sample()
            };
            let effects = c.pump(now);
            let mut deadline = c.next_timeout().map(|t| clock.instant(t));
            let sample_at = clock.instant(next_sample);
            deadline = Some(deadline.map_or(sample_at, |d| d.min(sample_at)));
            if c.any_draining() {
                let poll = tokio::time::Instant::now().into_std() + DRAIN_POLL;
                deadline = Some(deadline.map_or(poll, |d| d.min(poll)));
            }
            (effects, deadline)
        };
        for effect in effects {
            match effect {
                Effect::Launch {
                    group,
                    id,
                    zone,
                    template,
                } => {
                    let at = LaunchAt {
                        group: &group,
                        id: &id,
                        zone: &zone,
                        admin_url: &admin_url,
                    };
                    launch(&shared, &provider, &options, at, template).await;
                    shared.wake.notify_one();
                }
                Effect::Stop { id } => provider.stop(id.as_str()),
                Effect::Kill { id } => provider.kill(id.as_str()),
                Effect::Probe {
                    target_group,
                    target,
                    check,
                } => {
                    let tx = event_tx.clone();
                    tokio::spawn(async move {
                        let result = run_probe(target, &check).await;
                        // The loop is gone only during shutdown; the result no longer matters.
                        let _ = tx.send(Event::Probe {
                            target_group,
                            target,
                            result,
                        });
                    });
                }
            }
        }
        let sleep = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = &mut shutdown => break,
            _ = sleep => {}
            _ = shared.wake.notified() => {}
            Some(()) = async {
                match hangup.as_mut() {
                    Some(h) => h.recv().await,
                    None => std::future::pending().await,
                }
            } => {
                tracing::info!("SIGHUP received: reloading the config");
                let shared = Arc::clone(&shared);
                tokio::task::spawn_blocking(move || reload::reload_and_log(&shared));
            }
            Some(event) = event_rx.recv() => {
                let Event::Probe { target_group, target, result } = event;
                shared.lock().probed(clock.now(), &target_group, target, result);
            }
            Some(event) = compute_events.recv() => {
                let ComputeEvent::Exited { instance_id, status, .. } = event;
                shared.lock().exited(clock.now(), &InstanceId::from(instance_id), &status);
            }
        }
    }

    // Shutdown: stop accepting and let in-flight requests finish, then stop the instances.
    tracing::info!("shutting down: draining listeners");
    let _ = stop_tx.send(true);
    let mut proxies = shared.listener_set.stop_all();
    let drained = tokio::time::timeout(DRAIN_ON_SHUTDOWN, async {
        while let Some(result) = proxies.join_next().await {
            if let Ok(Err(e)) = result {
                tracing::warn!("listener stopped with an error: {e}");
            }
        }
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            "in-flight requests still running after {DRAIN_ON_SHUTDOWN:?}; stopping anyway"
        );
        proxies.abort_all();
    }
    tracing::info!("stopping every instance");
    provider.shutdown().await;
    // Every instance is stopped: none is left for a later run to adopt.
    let writer = {
        let mut c = shared.lock();
        c.persist.as_mut().and_then(|p| {
            p.clear_instances();
            p.close()
        })
    };
    if let Some(writer) = writer {
        let _ = tokio::task::spawn_blocking(move || writer.join()).await;
    }
    let _ = admin.await;
    tracing::info!("flotilla stopped");
    Ok(())
}

/// Which instance a launch is for.
struct LaunchAt<'a> {
    group: &'a str,
    id: &'a InstanceId,
    zone: &'a str,
    /// The admin API's URL, given to the instance as `FLOTILLA_ADMIN`.
    admin_url: &'a str,
}

/// Starts an instance from `template` (the version the group asked for), or from the config's
/// current template of the group when this run does not know that version.
async fn launch(
    shared: &Arc<Shared>,
    provider: &Arc<LocalProcessProvider>,
    options: &RunOptions,
    at: LaunchAt<'_>,
    template: Option<LaunchTemplate>,
) {
    let LaunchAt {
        group,
        id,
        zone,
        admin_url,
    } = at;
    let template = template.or_else(|| {
        let name = shared
            .lock()
            .groups
            .get(group)
            .map(|g| g.launch_template.clone());
        name.and_then(|n| shared.config().launch_templates.get(&n).cloned())
    });
    let Some(template) = template else {
        let now = shared.clock.now();
        shared
            .lock()
            .launch_failed(now, group, id, "launch template not found");
        return;
    };
    let spec = launch_spec(&template, &options.flotilla_exe, id, group, zone, admin_url);
    let result = provider.launch(spec).await;
    let now = shared.clock.now();
    let mut c = shared.lock();
    match result {
        Ok(launched) => {
            let start_time = flotilla_compute::process_start_time(launched.pid);
            c.launched(now, group, id, launched.address, launched.pid, start_time)
        }
        Err(e) => {
            tracing::warn!(group, instance = %id, "launch failed: {e}");
            c.launch_failed(now, group, id, &e.to_string());
        }
    }
}

/// Suspends again the scaling processes an operator had suspended before the restart (AWS
/// keeps a group's suspensions until they are resumed). A name this version does not know is
/// logged and skipped.
fn restore_suspended(group: &str, asg: &mut AutoScalingGroup, stored: Option<&Vec<String>>) {
    let Some(stored) = stored else { return };
    let mut restored = Vec::new();
    for name in stored {
        match name.parse::<ScalingProcess>() {
            Ok(p) => {
                asg.suspend_process(p);
                restored.push(p.as_str());
            }
            Err(e) => tracing::warn!(group, "ignoring a stored suspended process: {e}"),
        }
    }
    if !restored.is_empty() {
        tracing::info!(
            group,
            "restoring the scaling processes an operator suspended before the restart: {}",
            restored.join(", ")
        );
    }
}

pub(crate) fn forwarded_groups(action: &Action) -> Vec<String> {
    match action {
        Action::Forward { target_groups, .. } => {
            target_groups.iter().map(|t| t.name.clone()).collect()
        }
        _ => Vec::new(),
    }
}
