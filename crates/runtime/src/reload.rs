//! Hot reload (`SIGHUP`, `POST /v1/reload`): the file is validated first; an invalid one is
//! refused with every error as FILE:LINE:COL and the running config keeps serving; a valid
//! one is applied in place, without touching a connection. Changes that need a restart (the
//! admin bind, the state directory, the AWS API's address, a target group's protocol, a group
//! moved to other target groups, ...) refuse the whole reload, so a reload is never
//! half-applied. The AWS API's changes are applied through the same [`apply`].

use std::sync::Arc;

use flotilla_admin::api::ReloadResponse;
use flotilla_admin::AdminError;
use flotilla_config::{Config, ConfigError};

use crate::shared::{lock, Shared};

/// Re-reads the config file and applies it (with the AWS API's overlay merged in); the
/// answer lists what changed.
pub(crate) fn reload(shared: &Arc<Shared>) -> Result<ReloadResponse, AdminError> {
    let Some(path) = shared.config_path.as_deref() else {
        return Err(AdminError::Internal(
            "this flotilla was started without a config file to reload".into(),
        ));
    };
    // Held for the whole reload, so two reloads (or an AWS API change) never interleave.
    let mut current = shared.config();
    let file = flotilla_config::load(path).map_err(|e| invalid(path, e))?;
    let merged = lock(&shared.overlay)
        .merge_into(&file)
        .map_err(|e| AdminError::Conflict(format!("{e}; nothing was changed")))?;
    let changes = apply(shared, &mut current, merged)?;
    *lock(&shared.file_config) = file;
    Ok(ReloadResponse { changes })
}

/// Brings the running system from `current` to `new` in place — the config file's reload and
/// the AWS API's changes both come here — or changes nothing and says why.
pub(crate) fn apply(
    shared: &Arc<Shared>,
    current: &mut Config,
    new: Config,
) -> Result<Vec<String>, AdminError> {
    if shared.is_retired() {
        return Err(crate::upgrade::handing_over());
    }
    let mut blockers = needs_restart(current, &new);
    blockers.extend(crate::edge::reload_blockers(shared, current, &new));
    let spec = new.cluster_spec(|addr| shared.listeners.bound_address(addr));
    blockers.extend(shared.cluster().reconfigure_blockers(&spec));
    if !blockers.is_empty() {
        return Err(AdminError::Conflict(format!(
            "the new config needs a restart to apply ({}); nothing was changed",
            blockers.join("; ")
        )));
    }
    let bound = crate::listeners::bind_new(&shared.listeners, &new, &mut Default::default())
        .map_err(|e| AdminError::Conflict(format!("{e}; nothing was changed")))?;
    // Target groups first: new listeners and forwards may name new ones.
    let (mut changes, replaced) = shared.data_plane.reconfigure(current, &new);
    // The new listeners' forwards are keyed by the addresses they are bound to.
    let bound_at: Vec<_> = bound.iter().map(|b| (b.listener.bind, b.bound())).collect();
    let spec = new.cluster_spec(|addr| {
        bound_at
            .iter()
            .find(|(configured, _)| *configured == addr)
            .map_or_else(|| shared.listeners.bound_address(addr), |(_, b)| *b)
    });
    changes.extend(shared.with_cluster(|c, now| {
        let mut lines = c.reconfigure(now, spec);
        for name in &replaced {
            c.republish_target_group(name);
            lines.push(format!(
                "target group {name}: balancing settings replaced (targets published again)"
            ));
        }
        lines
    }));
    crate::executor::execute_pending(shared);
    changes.extend(
        shared
            .listeners
            .apply(&new, bound, &shared.data_plane, &replaced),
    );
    // Last: a removed target group may have been a listener's until the line above.
    shared.data_plane.remove_absent(&new);
    changes.extend(crate::edge::reconfigure(shared, &new));
    *current = new;
    shared.wake.notify_one();
    Ok(changes)
}

fn invalid(path: &std::path::Path, e: ConfigError) -> AdminError {
    match e {
        ConfigError::Invalid(diagnostics) => {
            let errors: Vec<String> = diagnostics.0.iter().map(|d| d.to_string()).collect();
            AdminError::InvalidConfig {
                summary: format!(
                    "{}: {} error{} found; the running config is unchanged",
                    path.display(),
                    errors.len(),
                    if errors.len() == 1 { "" } else { "s" }
                ),
                errors,
            }
        }
        e => AdminError::InvalidConfig {
            summary: format!("{e}; the running config is unchanged"),
            errors: vec![e.to_string()],
        },
    }
}

/// `reload` for `SIGHUP`: the outcome goes to the log.
pub(crate) fn reload_and_log(shared: &Arc<Shared>) {
    match reload(shared) {
        Ok(r) => tracing::info!(changes = r.changes.join("; ").as_str(), "config reloaded"),
        Err(AdminError::InvalidConfig { summary, errors }) => {
            for e in &errors {
                tracing::error!(error = e.as_str(), "invalid config");
            }
            tracing::error!(reason = summary.as_str(), "reload refused");
        }
        Err(e) => tracing::error!(reason = %e, "reload refused"),
    }
}

/// What the runtime (not the cluster) cannot change in place: its own addresses and the data
/// plane's per-target-group machinery, which is built once.
pub(crate) fn needs_restart(old: &Config, new: &Config) -> Vec<String> {
    let mut why = Vec::new();
    if old.cluster.admin_bind != new.cluster.admin_bind {
        why.push("admin_bind changed".to_string());
    }
    if old.cluster.state_dir != new.cluster.state_dir {
        why.push("state_dir changed".to_string());
    }
    if old.cluster.admin_token_env != new.cluster.admin_token_env {
        why.push("admin_token_env changed".to_string());
    }
    if old
        .aws_api
        .as_ref()
        .map(|a| (a.bind, &a.region, &a.account_id, &a.credentials_env))
        != new
            .aws_api
            .as_ref()
            .map(|a| (a.bind, &a.region, &a.account_id, &a.credentials_env))
    {
        why.push("[aws_api] bind, region, account_id or credentials_env changed".to_string());
    }
    for (name, tg) in &old.target_groups {
        let Some(n) = new.target_groups.get(name) else {
            continue;
        };
        // A TCP target group's listeners hold it for good; HTTP ones are rebuilt in place.
        let tcp = tg.protocol == flotilla_config::Protocol::Tcp;
        if n.protocol != tg.protocol || (tcp && n.proxy_protocol_v2 != tg.proxy_protocol_v2) {
            why.push(format!(
                "protocol or proxy_protocol_v2 of target group {name} changed"
            ));
        }
    }
    why
}
