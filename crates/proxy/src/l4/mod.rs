//! Layer 4: network load balancer listeners ([`tcp`]), the byte pump shared with WebSocket
//! tunnels ([`splice`]) and the PROXY protocol v2 header ([`proxy_protocol`]).

pub mod proxy_protocol;
pub(crate) mod splice;
pub(crate) mod tcp;
