//! Operators' DNS changes in cluster mode: a record set or health check sent to any node's
//! admin API is stored as an operator override (`overrides/dns-records/<zone>|<name>|<TYPE>`,
//! `overrides/dns-health-check/<name>`) tagged with the config generation it was made
//! against, and every lb node applies the overrides of the generation it runs to that
//! config's `[dns]` — health checks first, then record sets, each in the order they were
//! written — through the same functions `flotilla up`'s API uses (`flotilla_dns::changes`).
//! A later `flotilla apply` starts a new generation, so its file replaces them, as a reload
//! replaces `flotilla up`'s API changes.

use flotilla_admin::edge_api::RecordSetsRequest;
use flotilla_admin::AdminError;
use flotilla_cluster::records::OverrideRecord;
use flotilla_cluster::store::decode;
use flotilla_cluster::{Key, Keys, Snapshot};
use flotilla_config::dns::Dns;
use flotilla_config::Config;
use flotilla_dns::changes;
use serde::{Deserialize, Serialize};

use crate::edge::{decode_health_check, decode_records};

/// Override kind of record sets.
pub(crate) const RECORDS: &str = "dns-records";
/// Override kind of health checks.
pub(crate) const CHECK: &str = "dns-health-check";

/// One operator change, as stored in the override's value.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub(crate) enum DnsChange {
    /// `PUT /v1/dns/zones/{zone}/records`.
    Records {
        generation: u64,
        zone: String,
        request: RecordSetsRequest,
    },
    /// `PUT` (a spec) or `DELETE` (none) `/v1/dns/health-checks/{name}`.
    HealthCheck {
        generation: u64,
        name: String,
        spec: Option<serde_json::Value>,
    },
}

impl DnsChange {
    fn generation(&self) -> u64 {
        match self {
            DnsChange::Records { generation, .. } | DnsChange::HealthCheck { generation, .. } => {
                *generation
            }
        }
    }

    /// The override's kind and name (the record sets' name as decoded, so every spelling of a
    /// name and type lands on one key).
    pub(crate) fn override_name(&self, record_name: &str) -> (&'static str, String) {
        match self {
            DnsChange::Records { zone, request, .. } => {
                (RECORDS, format!("{zone}|{record_name}|{}", request.rtype))
            }
            DnsChange::HealthCheck { name, .. } => (CHECK, name.clone()),
        }
    }

    /// Applies the change to `dns` (the config `config`'s, with earlier changes); on an
    /// error `dns` is unchanged. Returns the record sets' qualified name (records only).
    pub(crate) fn apply(&self, config: &Config, dns: &mut Dns) -> Result<String, AdminError> {
        match self {
            DnsChange::Records { zone, request, .. } => {
                let (name, rtype, sets) =
                    decode_records(config, &dns.health_checks, zone, request)?;
                changes::set_records(dns, zone, &name, rtype, sets).map_err(|e| match e {
                    changes::ChangeError::NoZone(_) => AdminError::NotFound(e.to_string()),
                    _ => AdminError::BadRequest(e.to_string()),
                })?;
                Ok(name)
            }
            DnsChange::HealthCheck { name, spec, .. } => {
                match spec {
                    Some(spec) => {
                        let check = decode_health_check(name, spec)?;
                        changes::put_health_check(dns, name, check)
                            .map_err(|e| AdminError::BadRequest(e.to_string()))?;
                    }
                    None => changes::delete_health_check(dns, name).map_err(|e| match e {
                        changes::ChangeError::NoHealthCheck(_) => {
                            AdminError::NotFound(e.to_string())
                        }
                        _ => AdminError::Conflict(e.to_string()),
                    })?,
                }
                Ok(String::new())
            }
        }
    }
}

/// The stored changes of `generation` in the order they apply: health checks first (a
/// record set may name one), then record sets, each by the revision that wrote it.
pub(crate) fn stored(keys: &Keys, snapshot: &Snapshot, generation: u64) -> Vec<DnsChange> {
    let mut found: Vec<(bool, i64, DnsChange)> = snapshot
        .entries
        .iter()
        .filter_map(|(key, entry)| {
            let Some(Key::Override { kind, .. }) = keys.parse(key) else {
                return None;
            };
            if kind != RECORDS && kind != CHECK {
                return None;
            }
            let record = decode::<OverrideRecord>(key, &entry.value).ok()?;
            let change: DnsChange = serde_json::from_value(record.value).ok()?;
            let is_records = matches!(change, DnsChange::Records { .. });
            (change.generation() == generation).then_some((is_records, entry.mod_revision, change))
        })
        .collect();
    found.sort_by_key(|(is_records, revision, _)| (*is_records, *revision));
    found.into_iter().map(|(_, _, c)| c).collect()
}

/// The `[dns]` every lb node answers with: `config`'s, with the stored changes applied (one
/// that no longer applies — its zone or health check went — is skipped and logged).
pub(crate) fn effective(config: &Config, changes: &[DnsChange]) -> Option<Dns> {
    let mut dns = config.dns.clone()?;
    for change in changes {
        let mut next = dns.clone();
        match change.apply(config, &mut next) {
            Ok(_) => dns = next,
            Err(e) => {
                tracing::warn!(?change, error = %e, "a stored DNS change no longer applies; skipped")
            }
        }
    }
    Some(dns)
}

/// Whether a stored change belongs to an older generation (to be cleared).
pub(crate) fn is_stale(record: &OverrideRecord, generation: u64) -> bool {
    serde_json::from_value::<DnsChange>(record.value.clone())
        .is_ok_and(|c| c.generation() < generation)
}
