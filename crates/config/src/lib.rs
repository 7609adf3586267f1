//! Loading and validating Flotilla config files.
//!
//! A Flotilla config describes, in TOML, what AWS would spread over several services: the
//! cluster (a simulated region with availability zones), EC2-style launch templates and auto
//! scaling groups, and ELBv2-style target groups and load balancers. This crate turns the file
//! into a typed [`Config`] with every AWS default filled in, or reports **every** problem at
//! once as `FILE:LINE:COL: message` lines ([`Diagnostics`]), which is what
//! `flotilla validate` prints and what `POST /v1/reload` answers with.
//!
//! ```
//! let cfg = flotilla_config::parse(
//!     "[launch_templates.web]\ncommand = [\"sleep\", \"60\"]\n",
//!     std::path::Path::new("flotilla.toml"),
//! ).unwrap();
//! assert_eq!(cfg.cluster.zones, ["az-a", "az-b", "az-c"]);
//! ```

#![warn(missing_docs)]
#![forbid(unsafe_code)]

mod decode;
mod diagnostics;
pub mod dns;
pub mod edge;
mod matching;
mod model;
mod routing;
mod scaling;
pub mod scenario;
mod spec;
mod suggest;
mod validate;

use std::path::{Path, PathBuf};

use toml::de::{DeTable, DeValue};
use toml::Spanned;

pub use decode::{
    decode_api_health_check, decode_api_records, parse_value as parse_record_value, Known,
    ALIAS_TTL,
};
pub use diagnostics::{ConfigError, Diagnostic, Diagnostics};
pub use matching::{Cidr, Matcher, QueryPair};
pub use model::{
    Algorithm, AwsApi, Cluster, Config, CrossZone, HealthCheck, ImageTemplate, LaunchTemplate,
    Protocol, ProtocolVersion, PullPolicy, Stickiness, StopSignal, TargetGroup,
};
pub use routing::{
    Action, CanaryRollback, Certificate, Condition, Listener, ListenerProtocol, LoadBalancer,
    LoadBalancerType, Redirect, Rule, WeightedTargetGroup, ROLLBACK_METRICS,
};
pub use scaling::{
    AdjustmentType, AlarmSpec, AutoScalingGroupConfig, Comparison, HealthCheckType,
    InstanceRefreshSettings, LifecycleActionResult, LifecycleHook, LifecycleTransition,
    MissingData, ScalingPolicy, ScheduledActionSpec, SimpleSpec, StepAdjustment, StepSpec,
    TargetTrackingSpec, TerminationPolicy, WarmPool,
};

/// Reads the file at `path` and [`parse`]s it; also checks that the files the config names
/// (listener certificates and keys) exist, reporting a missing one at its value.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let source = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse_checked(&source, path, true)
}

/// Parses and validates config text.
///
/// `path` is only used to label diagnostics (verbatim) and to resolve relative paths in the
/// file (`state_dir`, `working_dir`, certificates) against its parent directory, made absolute
/// with the current directory. The file system is not otherwise touched.
pub fn parse(source: &str, path: &Path) -> Result<Config, ConfigError> {
    parse_checked(source, path, false)
}

fn parse_checked(source: &str, path: &Path, check_files: bool) -> Result<Config, ConfigError> {
    let index = diagnostics::LineIndex::new(source);
    let root = match DeTable::parse(source) {
        Ok(root) => root,
        Err(e) => {
            let span = e.span().unwrap_or(0..0);
            let msg = format!("TOML syntax error: {}", e.message().trim_end());
            let diags = index.finish(path, vec![(span, msg)]);
            return Err(ConfigError::Invalid(diags));
        }
    };
    let span = root.span();
    let root = Spanned::new(span, DeValue::Table(root.into_inner()));

    let mut ctx = decode::Ctx {
        base_dir: base_dir(path),
        check_files,
        ..Default::default()
    };
    let config = decode::decode_config(&mut ctx, &root, path);
    validate::cross_check(&mut ctx, &config);
    if ctx.diags.is_empty() {
        Ok(config)
    } else {
        Err(ConfigError::Invalid(index.finish(path, ctx.diags)))
    }
}

/// The absolute directory holding the config file.
pub(crate) fn base_dir(path: &Path) -> PathBuf {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    std::path::absolute(parent).unwrap_or_else(|_| parent.to_path_buf())
}
