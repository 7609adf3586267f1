//! The simulator and `flotilla up` make the same scaling decisions on the same metric series.
//!
//! What is compared, honestly: both drive one `Cluster`, so the question is whether the
//! simulator's driving adds or changes anything. A simulated run records every second's
//! `Samples` as the cluster got them; a second driver, written the way crates/runtime drives
//! (run.rs's control loop: `handle_timeout` at `poll_timeout`, then every effect in order as
//! executor.rs carries them out; launches come back as events after the boot time; samples
//! answer `CollectSamples` with `handle_samples`), feeds that recorded series to a fresh
//! `Cluster` built from the same config. Every desired capacity change — time, cause and
//! target — must be the same. The runtime's sampler (turning the proxy's counters into
//! `Samples`) is not part of this comparison: the series stands in for it.

mod common;

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use common::{config, lb_group, rps_policy, scenario};
use flotilla_control::{Cluster, Effect, InstanceId, ProbeResult, Samples, Time};
use flotilla_simulator::{simulate_recorded, Tap};

/// (time in ms, cause, description) of every desired capacity change.
type Decisions = Vec<(u64, String, String)>;

fn is_decision(a: &flotilla_control::Activity) -> bool {
    a.description.starts_with("Setting desired capacity")
}

#[test]
fn the_simulator_and_the_runtime_loop_decide_the_same_on_the_same_series() {
    let cfg = config(&lb_group(2, 30, 3, "2s", &rps_policy(50.0, "10s")));
    // Fixed boot time: the replaying driver boots instances in the same time.
    let sc = scenario(
        "duration = \"2h\"\nseed = 5\nwarm = false\n[traffic]\nbase = 200\nnoise = 0.3\ndaily_amplitude = 0.8\n\
         [[traffic.changes]]\ntype = \"spike\"\nat = \"40m\"\nfor = \"10m\"\nfactor = 4\n\
         [instance]\nboot_time = \"30s\"\ncapacity = 100\n",
    );
    let mut series: BTreeMap<u64, Samples> = BTreeMap::new();
    let mut simulated: Decisions = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    simulate_recorded(&sc, &cfg, None, &mut |now, tap| match tap {
        Tap::Samples(s) => {
            series.insert(now.as_duration().as_millis() as u64, s.clone());
        }
        Tap::Activity(_, a) if is_decision(a) && seen.insert(a.id) => {
            let at = now.as_duration().as_millis() as u64;
            simulated.push((at, a.cause.clone(), a.description.clone()));
        }
        Tap::Activity(..) => {}
    })
    .expect("simulates");
    let end = *series.keys().next_back().expect("samples were recorded");
    let replayed = replay(&cfg, sc.seed, sc.start, &series, Time::from_millis(end));
    assert!(simulated.len() >= 4, "a run with decisions: {simulated:?}");
    assert_eq!(simulated, replayed);
}

/// The runtime's loop over a recorded series: instances boot in 30 s at the addresses the
/// simulator gave them (10.0.0.2, 10.0.0.3, … in launch order), answer health checks, and stop
/// a second after they are told to; draining ends at the next whole second.
fn replay(
    cfg: &flotilla_config::Config,
    seed: u64,
    start: i64,
    series: &BTreeMap<u64, Samples>,
    end: Time,
) -> Decisions {
    let mut c = Cluster::new(cfg.cluster_spec(|a| a), seed, Time::ZERO);
    let mut pending: BTreeMap<(Time, u64), (InstanceId, bool)> = BTreeMap::new();
    let (mut seq, mut host, mut now) = (0u64, 1u32, Time::ZERO);
    let mut decisions = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    loop {
        // Execute every pending effect, in order (executor.rs's execute_pending).
        while let Some(e) = c.poll_effect() {
            match e {
                Effect::Launch(r) => {
                    seq += 1;
                    pending.insert((now + Duration::from_secs(30), seq), (r.id, true));
                }
                Effect::Stop { id } | Effect::Kill { id } => {
                    seq += 1;
                    pending.insert((now + Duration::from_secs(1), seq), (id, false));
                }
                Effect::Probe {
                    target_group,
                    target,
                } => c.handle_probe_result(now, &target_group, target, ProbeResult::Success),
                Effect::CollectSamples => {
                    let ms = now.as_duration().as_millis() as u64;
                    let samples = series.get(&ms).cloned().unwrap_or_default();
                    let wall =
                        jiff::Timestamp::from_second(start + (ms / 1000) as i64).expect("a time");
                    c.handle_samples(now, wall, samples);
                }
                Effect::Activity { activity, .. }
                    if is_decision(&activity) && seen.insert(activity.id) =>
                {
                    let at = now.as_duration().as_millis() as u64;
                    decisions.push((at, activity.cause, activity.description));
                }
                _ => {}
            }
        }
        // Sleep until the next timeout or event (run.rs's control loop).
        let timeout = c.poll_timeout();
        let event = pending.keys().next().map(|k| k.0);
        let Some(next) = [timeout, event].into_iter().flatten().min() else {
            break;
        };
        if next > end {
            break;
        }
        // Draining targets have nothing in flight: their drain ends at the whole second.
        let second = Time::from_duration(Duration::from_secs(
            now.as_duration().as_millis().div_ceil(1000) as u64,
        ));
        if second < next {
            let drained: Vec<_> = c
                .draining_targets()
                .map(|(t, a)| (t.to_string(), a))
                .collect();
            if !drained.is_empty() {
                now = second;
                for (tg, a) in drained {
                    c.handle_target_idle(now, &tg, a);
                }
                continue;
            }
        }
        now = next;
        if event == Some(next) {
            let Some((_, (id, launched))) = pending.pop_first() else {
                break;
            };
            if launched {
                host += 1;
                let addr = SocketAddr::from((Ipv4Addr::from(0x0a00_0000 + host), 80));
                c.handle_launched(now, &id, addr);
            } else {
                c.handle_instance_exited(now, &id, "exit status 0");
            }
        } else {
            c.handle_timeout(now);
        }
    }
    decisions
}
