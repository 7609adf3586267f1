//! Keys beyond the interface spec used by the data plane's protocols and limits:
//! `header_read_timeout`, `max_request_body` (load balancers), `protocol_version` (target
//! groups), and the existence check of listener certificate files done by `load`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use flotilla_config::{load, parse, ConfigError, ProtocolVersion};

const BASE: &str = "[launch_templates.web]\ncommand = [\"app\"]\n";

fn lb(extra: &str) -> String {
    format!(
        "{BASE}[target_groups.web]\n[load_balancers.front]\n{extra}\n[[load_balancers.front.listeners]]\nbind = \"127.0.0.1:8080\"\ndefault_action = {{ type = \"forward\", target_group = \"web\" }}\n"
    )
}

fn errors(src: &str) -> Vec<String> {
    match parse(src, Path::new("f.toml")) {
        Ok(_) => Vec::new(),
        Err(ConfigError::Invalid(d)) => d
            .iter()
            .map(|d| format!("{}:{}: {}", d.line, d.column, d.message))
            .collect(),
        Err(e) => panic!("unexpected error {e}"),
    }
}

#[test]
fn defaults() {
    let cfg = parse(&lb(""), Path::new("f.toml")).unwrap();
    let front = &cfg.load_balancers["front"];
    assert_eq!(front.header_read_timeout, Duration::from_secs(10));
    assert_eq!(front.max_request_body, None);
    assert_eq!(
        cfg.target_groups["web"].protocol_version,
        ProtocolVersion::Http1
    );
}

#[test]
fn explicit_values() {
    let src = lb("header_read_timeout = \"2s\"\nmax_request_body = \"10MiB\"").replace(
        "[target_groups.web]\n",
        "[target_groups.web]\nprotocol_version = \"grpc\"\n",
    );
    let cfg = parse(&src, Path::new("f.toml")).unwrap();
    let front = &cfg.load_balancers["front"];
    assert_eq!(front.header_read_timeout, Duration::from_secs(2));
    assert_eq!(front.max_request_body, Some(10 << 20));
    assert_eq!(
        cfg.target_groups["web"].protocol_version,
        ProtocolVersion::Grpc
    );
    let cfg = parse(&lb("max_request_body = 1000"), Path::new("f.toml")).unwrap();
    assert_eq!(cfg.load_balancers["front"].max_request_body, Some(1000));
}

#[test]
fn bad_values_are_reported_where_written() {
    let e = errors(&lb("max_request_body = \"10 parsecs\""));
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(e[0].starts_with("5:20: invalid max_request_body"), "{e:?}");
    let e = errors(&lb("max_request_body = 0"));
    assert!(e[0].contains("greater than zero"), "{e:?}");
    let e = errors(&lb("header_read_timeout = \"0s\""));
    assert!(
        e[0].starts_with("5:23: header_read_timeout must be greater than zero"),
        "{e:?}"
    );
    let e = errors(&lb("").replace(
        "[target_groups.web]\n",
        "[target_groups.web]\nprotocol_version = \"http3\"\n",
    ));
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(e[0].starts_with("4:20: "), "{e:?}");
    assert!(e[0].contains("`http1`"), "{e:?}");
    let e = errors(&lb("header_read_timout = \"1s\""));
    assert!(
        e[0].contains("header_read_timeout"),
        "did-you-mean missing: {e:?}"
    );
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("flotilla-config-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn load_checks_that_certificate_files_exist() {
    let dir = temp_dir("certs");
    std::fs::write(dir.join("cert.pem"), "x").unwrap();
    let src = format!(
        "{BASE}[target_groups.web]\n[[load_balancers.front.listeners]]\nbind = \"127.0.0.1:8443\"\nprotocol = \"https\"\ncertificates = [{{ cert = \"cert.pem\", key = \"missing.key\" }}]\ndefault_action = {{ type = \"forward\", target_group = \"web\" }}\n"
    );
    let path = dir.join("flotilla.toml");
    std::fs::write(&path, &src).unwrap();
    let err = load(&path).unwrap_err();
    let ConfigError::Invalid(d) = &err else {
        panic!("{err}")
    };
    let d: Vec<_> = d.iter().collect();
    assert_eq!(d.len(), 1, "{err}");
    assert_eq!((d[0].line, d[0].column), (7, 44), "{err}");
    assert!(d[0].message.contains("private key file"), "{err}");
    assert!(d[0].message.contains("missing.key"), "{err}");
    // `parse` does not touch the file system.
    assert!(parse(&src, &path).is_ok());
    std::fs::write(dir.join("missing.key"), "x").unwrap();
    assert!(load(&path).is_ok());
    let _ = std::fs::remove_dir_all(&dir);
}
