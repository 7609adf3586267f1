//! Per-listener protocol settings for the data plane: TLS for `https` listeners and the
//! request limits, built from the config before any listener starts so that a bad
//! certificate fails `flotilla up` at once, naming the file.

use flotilla_config::{Listener, ListenerProtocol, LoadBalancer};
use flotilla_proxy::tls::{server_config, PemCertificate};
use flotilla_proxy::{Limits, ListenerOptions};

use crate::RuntimeError;

/// TLS (https listeners only) and limits of one listener.
pub(crate) fn listener_options(
    lb: &LoadBalancer,
    listener: &Listener,
) -> Result<ListenerOptions, RuntimeError> {
    let tls_error = |source| RuntimeError::Tls {
        addr: listener.bind,
        source,
    };
    let tls = if listener.protocol == ListenerProtocol::Https {
        let mut certs = Vec::with_capacity(listener.certificates.len());
        for c in &listener.certificates {
            certs.push(PemCertificate::read(&c.cert, &c.key).map_err(tls_error)?);
        }
        Some(server_config(&certs).map_err(tls_error)?)
    } else {
        None
    };
    Ok(ListenerOptions {
        tls,
        limits: Limits {
            header_read_timeout: lb.header_read_timeout,
            max_request_body: lb.max_request_body,
            ..Limits::default()
        },
    })
}
