//! Configuration from the environment Flotilla gives every instance, and the crate's errors.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// Who this instance is and where it listens.
///
/// Read from the environment because that is how Flotilla (like a cloud's instance metadata)
/// tells an instance its identity: `PORT`, `FLOTILLA_HOST`, `FLOTILLA_INSTANCE_ID`,
/// `FLOTILLA_ZONE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DemoConfig {
    /// Address to listen on: `FLOTILLA_HOST` (the host's address in cluster mode), default
    /// 127.0.0.1 (what `flotilla up` gives too).
    pub host: IpAddr,
    /// Port to listen on.
    pub port: u16,
    /// Reported in every answer (`X-Instance-Id`, the `/` text).
    pub instance_id: String,
    /// Reported in every answer (`X-Zone`, the `/` text).
    pub zone: String,
}

/// Why the demo service could not start or keep serving.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// `PORT` is not set: the service cannot guess where Flotilla expects it.
    #[error("PORT is not set")]
    MissingPort,
    /// `PORT` is not a number from 0 to 65535.
    #[error("PORT {0:?} is not a valid port number")]
    InvalidPort(String),
    /// `FLOTILLA_HOST` is not an IP address.
    #[error("FLOTILLA_HOST {0:?} is not an IP address")]
    InvalidHost(String),
    /// The instance id or zone cannot be sent as an HTTP header value.
    #[error("{name} {value:?} cannot be used as an HTTP header value")]
    InvalidIdentity {
        /// Which setting (`FLOTILLA_INSTANCE_ID` or `FLOTILLA_ZONE`).
        name: &'static str,
        /// The offending value.
        value: String,
    },
    /// The listening socket could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address that failed.
        addr: SocketAddr,
        /// The underlying I/O error.
        #[source]
        source: io::Error,
    },
    /// The termination signal handlers could not be installed.
    #[error("cannot install signal handlers: {0}")]
    Signal(#[source] io::Error),
    /// The Tokio runtime could not be built.
    #[error("cannot start the runtime: {0}")]
    Runtime(#[source] io::Error),
}

impl DemoConfig {
    /// Reads `PORT` (required), `FLOTILLA_HOST` (default `127.0.0.1`), `FLOTILLA_INSTANCE_ID`
    /// (default `i-local`) and `FLOTILLA_ZONE` (default `local`), so the app also runs by hand
    /// outside Flotilla with just `PORT`.
    pub fn from_env() -> Result<Self, DemoError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Like [`DemoConfig::from_env`] with an arbitrary variable source (testable without
    /// mutating the process environment).
    pub(crate) fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, DemoError> {
        let raw = lookup("PORT").ok_or(DemoError::MissingPort)?;
        let port = raw
            .trim()
            .parse()
            .map_err(|_| DemoError::InvalidPort(raw.clone()))?;
        let host = match lookup("FLOTILLA_HOST") {
            Some(h) => h
                .trim()
                .parse()
                .map_err(|_| DemoError::InvalidHost(h.clone()))?,
            None => IpAddr::from(Ipv4Addr::LOCALHOST),
        };
        Ok(Self {
            host,
            port,
            instance_id: lookup("FLOTILLA_INSTANCE_ID").unwrap_or_else(|| "i-local".into()),
            zone: lookup("FLOTILLA_ZONE").unwrap_or_else(|| "local".into()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn lookup(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| map.get(name).cloned()
    }

    #[test]
    fn reads_all_variables() {
        let config = DemoConfig::from_lookup(lookup(&[
            ("PORT", "8081"),
            ("FLOTILLA_HOST", "10.77.0.12"),
            ("FLOTILLA_INSTANCE_ID", "i-0a1b"),
            ("FLOTILLA_ZONE", "az-a"),
        ]))
        .unwrap();
        assert_eq!(
            config,
            DemoConfig {
                host: "10.77.0.12".parse().unwrap(),
                port: 8081,
                instance_id: "i-0a1b".into(),
                zone: "az-a".into()
            }
        );
    }

    #[test]
    fn defaults_identity_but_requires_port() {
        let config = DemoConfig::from_lookup(lookup(&[("PORT", "9000")])).unwrap();
        assert_eq!(config.instance_id, "i-local");
        assert_eq!(config.zone, "local");
        assert_eq!(config.host, IpAddr::from(Ipv4Addr::LOCALHOST));
        assert!(matches!(
            DemoConfig::from_lookup(lookup(&[("PORT", "9000"), ("FLOTILLA_HOST", "box")])),
            Err(DemoError::InvalidHost(_))
        ));
        assert!(matches!(
            DemoConfig::from_lookup(lookup(&[])),
            Err(DemoError::MissingPort)
        ));
        assert!(matches!(
            DemoConfig::from_lookup(lookup(&[("PORT", "http")])),
            Err(DemoError::InvalidPort(_))
        ));
        assert!(matches!(
            DemoConfig::from_lookup(lookup(&[("PORT", "70000")])),
            Err(DemoError::InvalidPort(_))
        ));
    }
}
