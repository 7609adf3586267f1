//! Scenarios for `flotilla simulate`: the traffic, the instances' behaviour and the events a
//! simulated run goes through. A scenario is a TOML file decoded and checked like the config
//! (every problem as FILE:LINE:COL; impossible scenarios — negative rates, a boot longer than
//! the run — refused with the reason).

mod decode;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::de::{DeTable, DeValue};
use toml::Spanned;

use crate::diagnostics::LineIndex;
use crate::ConfigError;

/// One simulated run's world.
#[derive(Clone, Debug, PartialEq)]
pub struct Scenario {
    /// The scenario file as named.
    pub path: PathBuf,
    /// The Flotilla config to run (`config`, relative to the scenario), unless `--config`.
    pub config: Option<PathBuf>,
    /// The auto scaling group the traffic goes to; default: the config's only group.
    pub group: Option<String>,
    /// How long the run lasts (at most 31 days).
    pub duration: Duration,
    /// Seed of every random draw (boot times, crashes, noise, the Spot drill).
    pub seed: u64,
    /// The p99 latency objective: seconds above it are counted.
    pub slo_p99: Duration,
    /// Whether the run starts with the group's initial instances already serving (a service
    /// that was running before the day being simulated; default), or from their first launch.
    pub warm: bool,
    /// Wall-clock start, in seconds since the Unix epoch (scheduled actions, forecasts and
    /// daily patterns follow it). Default: Monday 2024-01-01 00:00 UTC.
    pub start: i64,
    /// Requests per second over time.
    pub traffic: Traffic,
    /// How the simulated instances behave.
    pub instance: InstanceModel,
    /// Things that happen at given times.
    pub events: Vec<Event>,
}

/// Requests per second: `base` (or the CSV), changed by `changes`, shaped by the daily and
/// weekly seasonality, with relative noise.
#[derive(Clone, Debug, PartialEq)]
pub struct Traffic {
    /// Requests per second before any change.
    pub base: f64,
    /// Requests per second, one value per `csv_interval` (repeating), instead of `base`.
    pub csv: Option<Vec<f64>>,
    /// How long each CSV value holds (default 1 s; `1m` makes a day 1,440 lines).
    pub csv_interval: Duration,
    /// Daily swing as a share of the level: the level × (1 + a × cos(…)) peaks at `peak_hour`.
    pub daily_amplitude: f64,
    /// Hour of the day (UTC) of the daily peak.
    pub peak_hour: f64,
    /// Share of the level left on Saturdays and Sundays (1 = no weekly pattern).
    pub weekend_factor: f64,
    /// Uniform relative noise per second (0.1 = ±10 %).
    pub noise: f64,
    /// Steps, ramps and spikes, in time order.
    pub changes: Vec<Change>,
}

/// A change of the traffic level.
#[derive(Clone, Debug, PartialEq)]
pub enum Change {
    /// From `at`, the level is `to`.
    Step {
        /// When.
        at: Duration,
        /// The new level (requests per second).
        to: f64,
    },
    /// From `at`, the level moves linearly to `to` over `over`.
    Ramp {
        /// When it starts.
        at: Duration,
        /// How long it takes.
        over: Duration,
        /// The level reached.
        to: f64,
    },
    /// From `at` for `duration`, the traffic is multiplied by `factor` (a 100× breaking news).
    Spike {
        /// When.
        at: Duration,
        /// How long.
        duration: Duration,
        /// The multiplier.
        factor: f64,
    },
}

/// How one simulated instance behaves.
#[derive(Clone, Debug, PartialEq)]
pub struct InstanceModel {
    /// Mean time from launch to serving.
    pub boot_time: Duration,
    /// Boot times are uniform in `boot_time ± boot_jitter`.
    pub boot_jitter: Duration,
    /// Requests per second one instance serves at 100 % CPU.
    pub capacity: f64,
    /// Requests per second at 100 % CPU by launch template `instance_type`, for types that
    /// differ from `capacity` (a bigger instance serves more).
    pub capacity_by_type: BTreeMap<String, f64>,
    /// Response time with no queue.
    pub base_latency: Duration,
    /// Crashes per instance-hour (exits the group must replace).
    pub crash_rate: f64,
}

impl InstanceModel {
    /// Requests per second at 100 % CPU of an instance of `instance_type`.
    pub fn capacity_of(&self, instance_type: &str) -> f64 {
        self.capacity_by_type
            .get(instance_type)
            .copied()
            .unwrap_or(self.capacity)
    }
}

/// Something that happens during the run.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    /// When.
    pub at: Duration,
    /// What.
    pub kind: EventKind,
}

/// What happens.
#[derive(Clone, Debug, PartialEq)]
pub enum EventKind {
    /// The zone is down for `duration`: its instances stop answering (the control plane is
    /// not told: its health checks must find out) and launches there fail.
    ZoneOutage {
        /// The zone.
        zone: String,
        /// How long.
        duration: Duration,
    },
    /// `count` Spot instances get their interruption notice.
    SpotInterruption {
        /// How many.
        count: u32,
    },
    /// An instance refresh of the group starts.
    Refresh,
}

/// Reads and checks the scenario at `path`.
pub fn load_scenario(path: &Path) -> Result<Scenario, ConfigError> {
    let source = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse_scenario(&source, path)
}

/// Parses and checks scenario text; a `csv` it names is read relative to `path`.
pub fn parse_scenario(source: &str, path: &Path) -> Result<Scenario, ConfigError> {
    let index = LineIndex::new(source);
    let root = match DeTable::parse(source) {
        Ok(root) => root,
        Err(e) => {
            let span = e.span().unwrap_or(0..0);
            let msg = format!("TOML syntax error: {}", e.message().trim_end());
            return Err(ConfigError::Invalid(index.finish(path, vec![(span, msg)])));
        }
    };
    let span = root.span();
    let root = Spanned::new(span, DeValue::Table(root.into_inner()));
    let mut ctx = crate::decode::Ctx {
        base_dir: crate::base_dir(path),
        check_files: true,
        ..Default::default()
    };
    let scenario = decode::decode(&mut ctx, &root, path);
    match scenario {
        Some(s) if ctx.diags.is_empty() => Ok(s),
        _ => {
            if ctx.diags.is_empty() {
                ctx.err(0..0, "the scenario could not be read");
            }
            Err(ConfigError::Invalid(index.finish(path, ctx.diags)))
        }
    }
}
