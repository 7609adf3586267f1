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

#[cfg(test)]
mod tests {
    use super::*;
    use flotilla_cluster::watcher::Entry;

    const CONFIG: &str = r#"
[cluster]
name = "t"
zones = ["az-a"]

[dns]
bind = "127.0.0.1:5353"

[dns.zones."example.test"]

[[dns.zones."example.test".records]]
name = "www"
type = "A"
values = ["192.0.2.1"]
"#;

    fn config() -> Config {
        flotilla_config::parse(CONFIG, std::path::Path::new("t.toml")).unwrap()
    }

    fn records(generation: u64, ip: &str, check: Option<&str>) -> DnsChange {
        let mut set = serde_json::json!({ "name": "api", "type": "A", "values": [ip] });
        if let Some(c) = check {
            set["health_check"] = c.into();
        }
        DnsChange::Records {
            generation,
            zone: "example.test".into(),
            request: serde_json::from_value(
                serde_json::json!({ "name": "api", "type": "A", "record_sets": [set] }),
            )
            .unwrap(),
        }
    }

    fn check(generation: u64, name: &str) -> DnsChange {
        DnsChange::HealthCheck {
            generation,
            name: name.into(),
            spec: Some(serde_json::json!({ "type": "tcp", "target": "192.0.2.9:1" })),
        }
    }

    fn snapshot(keys: &Keys, changes: &[(i64, DnsChange)]) -> Snapshot {
        let mut s = Snapshot::default();
        for (revision, c) in changes {
            let (kind, name) = c.override_name(&format!("r{revision}"));
            let record = OverrideRecord {
                value: serde_json::to_value(c).unwrap(),
                ..Default::default()
            };
            s.entries.insert(
                keys.override_key(kind, &name),
                Entry {
                    value: serde_json::to_vec(&record).unwrap(),
                    create_revision: *revision,
                    mod_revision: *revision,
                    lease: 0,
                },
            );
        }
        s.entries.insert(
            keys.override_key("desired", "web"),
            Entry {
                value: b"{\"value\": 3}".to_vec(),
                create_revision: 1,
                mod_revision: 1,
                lease: 0,
            },
        );
        s
    }

    fn api_values(dns: &Dns) -> Vec<String> {
        dns.zones["example.test"]
            .records
            .iter()
            .filter(|r| r.name == "api.example.test")
            .map(|r| format!("{:?}", r.data))
            .collect()
    }

    /// Health checks apply before record sets (a record set may name a check written after
    /// it), record sets by revision (the later one wins), other generations and other
    /// overrides are ignored, and the serial grows once per applied record change.
    #[test]
    fn changes_of_the_running_generation_apply_checks_first_then_records_in_order() {
        let keys = Keys::default();
        let snapshot = snapshot(
            &keys,
            &[
                (5, records(2, "192.0.2.5", Some("late"))),
                (7, check(2, "late")),
                (9, records(2, "192.0.2.9", Some("late"))),
                (11, records(1, "192.0.2.11", None)),
            ],
        );
        let changes = stored(&keys, &snapshot, 2);
        assert_eq!(changes.len(), 3);
        assert!(matches!(changes[0], DnsChange::HealthCheck { .. }));
        let config = config();
        let dns = effective(&config, &changes).unwrap();
        let values = api_values(&dns);
        assert_eq!(values.len(), 1, "{values:?}");
        assert!(values[0].contains("192.0.2.9"), "{values:?}");
        assert!(dns.health_checks.contains_key("late"));
        let base = config.dns.as_ref().unwrap().zones["example.test"].serial;
        assert_eq!(dns.zones["example.test"].serial, base.wrapping_add(2));
        assert!(is_stale(
            &OverrideRecord {
                value: serde_json::to_value(records(1, "192.0.2.1", None)).unwrap(),
                ..Default::default()
            },
            2
        ));
        assert!(!is_stale(
            &OverrideRecord {
                value: serde_json::json!(3),
                ..Default::default()
            },
            2
        ));
    }

    /// A change that does not apply (bad value, unknown zone, missing check) is an error
    /// with the reason and leaves the `[dns]` as it was; `effective` skips such a stored one.
    #[test]
    fn a_change_that_does_not_apply_is_refused_and_skipped() {
        let config = config();
        let before = config.dns.clone().unwrap();
        let mut dns = before.clone();
        let bad_ip = records(1, "not-an-ip", None);
        let e = bad_ip.apply(&config, &mut dns).unwrap_err();
        assert!(matches!(e, AdminError::BadRequest(_)), "{e}");
        let no_check = records(1, "192.0.2.3", Some("nope"));
        assert!(no_check.apply(&config, &mut dns).is_err());
        let mut other_zone = records(1, "192.0.2.3", None);
        if let DnsChange::Records { zone, .. } = &mut other_zone {
            *zone = "other.test".into();
        }
        assert!(other_zone.apply(&config, &mut dns).is_err());
        let delete_missing = DnsChange::HealthCheck {
            generation: 1,
            name: "nope".into(),
            spec: None,
        };
        assert!(matches!(
            delete_missing.apply(&config, &mut dns),
            Err(AdminError::NotFound(_))
        ));
        assert_eq!(dns, before);
        let skipped = effective(&config, &[no_check, records(1, "192.0.2.4", None)]).unwrap();
        let values = api_values(&skipped);
        assert_eq!(values.len(), 1);
        assert!(values[0].contains("192.0.2.4"), "{values:?}");
    }
}
