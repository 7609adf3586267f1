//! The changes the admin API makes to a `[dns]`, as pure functions on the config value: the
//! running service applies them in place (`flotilla up`), and cluster-mode lb nodes apply the
//! operators' stored changes to the applied config's `[dns]` the same way, so every node
//! reaches the same zones and checks from the same inputs.

use flotilla_config::dns::{Dns, DnsHealthCheck, RecordSet, RecordType};

/// A change the admin API asks for could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ChangeError {
    /// No hosted zone of that name.
    #[error("no hosted zone `{0}`")]
    NoZone(String),
    /// No health check of that name.
    #[error("no health check `{0}`")]
    NoHealthCheck(String),
    /// The change breaks a rule (Route 53's, or a reference).
    #[error("{0}")]
    Invalid(String),
}

/// Replaces the record sets of one `(name, type)` in a zone (Route 53 `UPSERT` of every set of
/// that name and type), or deletes them when `sets` is empty; the zone's serial grows. Nothing
/// changes on an error.
pub fn set_records(
    dns: &mut Dns,
    zone: &str,
    name: &str,
    rtype: RecordType,
    sets: Vec<RecordSet>,
) -> Result<(), ChangeError> {
    for s in &sets {
        if let Some(hc) = &s.health_check {
            if !dns.health_checks.contains_key(hc) {
                return Err(ChangeError::NoHealthCheck(hc.clone()));
            }
        }
    }
    let z = dns
        .zones
        .get_mut(zone)
        .ok_or_else(|| ChangeError::NoZone(zone.to_string()))?;
    z.records.retain(|r| !(r.name == name && r.rtype == rtype));
    z.records.extend(sets);
    z.serial = z.serial.wrapping_add(1);
    Ok(())
}

/// Creates or replaces a health check; its children must exist.
pub fn put_health_check(
    dns: &mut Dns,
    name: &str,
    spec: DnsHealthCheck,
) -> Result<(), ChangeError> {
    if let Some(c) = spec
        .children
        .iter()
        .find(|c| !dns.health_checks.contains_key(*c))
    {
        return Err(ChangeError::Invalid(format!(
            "unknown child health check `{c}`"
        )));
    }
    dns.health_checks.insert(name.to_string(), spec);
    Ok(())
}

/// Deletes a health check no record set or calculated check uses.
pub fn delete_health_check(dns: &mut Dns, name: &str) -> Result<(), ChangeError> {
    if !dns.health_checks.contains_key(name) {
        return Err(ChangeError::NoHealthCheck(name.to_string()));
    }
    let used_by_record = dns
        .zones
        .values()
        .flat_map(|z| &z.records)
        .any(|r| r.health_check.as_deref() == Some(name));
    let used_by_check = dns
        .health_checks
        .values()
        .any(|c| c.children.iter().any(|x| x == name));
    if used_by_record || used_by_check {
        return Err(ChangeError::Invalid(format!(
            "health check `{name}` is in use"
        )));
    }
    dns.health_checks.remove(name);
    Ok(())
}
