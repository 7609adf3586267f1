//! PROXY protocol version 2 (HAProxy's spec, as AWS NLB sends it with the target group attribute
//! `proxy_protocol_v2.enabled`): a binary header written to the target before any client byte,
//! so that the target learns the client's address although the connection comes from the load
//! balancer.

use std::net::{IpAddr, SocketAddr};

/// The 12-byte signature every v2 header starts with.
pub const SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
/// Version 2 (high nibble), command PROXY (low nibble 1).
const VERSION_PROXY: u8 = 0x21;
/// Address family INET (high nibble 1), transport STREAM (low nibble 1).
const INET_STREAM: u8 = 0x11;
/// Address family INET6 (high nibble 2), transport STREAM (low nibble 1).
const INET6_STREAM: u8 = 0x21;

/// The v2 header for a TCP connection from `client` to the listener at `listener`.
///
/// Both addresses are IPv4 when both are; otherwise both are sent as IPv6 (an IPv4 address as
/// its IPv4-mapped form), since one header has one address family.
pub fn header_v2(client: SocketAddr, listener: SocketAddr) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + 36);
    out.extend_from_slice(&SIGNATURE);
    out.push(VERSION_PROXY);
    match (client.ip(), listener.ip()) {
        (IpAddr::V4(src), IpAddr::V4(dst)) => {
            out.push(INET_STREAM);
            out.extend_from_slice(&12u16.to_be_bytes());
            out.extend_from_slice(&src.octets());
            out.extend_from_slice(&dst.octets());
        }
        (src, dst) => {
            let v6 = |ip: IpAddr| match ip {
                IpAddr::V4(v4) => v4.to_ipv6_mapped(),
                IpAddr::V6(v6) => v6,
            };
            out.push(INET6_STREAM);
            out.extend_from_slice(&36u16.to_be_bytes());
            out.extend_from_slice(&v6(src).octets());
            out.extend_from_slice(&v6(dst).octets());
        }
    }
    out.extend_from_slice(&client.port().to_be_bytes());
    out.extend_from_slice(&listener.port().to_be_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_header_layout() {
        let h = header_v2(
            "10.1.2.3:40000".parse().unwrap(),
            "127.0.0.1:443".parse().unwrap(),
        );
        let mut expected = SIGNATURE.to_vec();
        expected.extend_from_slice(&[0x21, 0x11, 0, 12, 10, 1, 2, 3, 127, 0, 0, 1]);
        expected.extend_from_slice(&[0x9c, 0x40, 0x01, 0xbb]);
        assert_eq!(h, expected);
    }

    #[test]
    fn mixed_families_use_ipv6_mapped_addresses() {
        let h = header_v2("127.0.0.1:1".parse().unwrap(), "[::1]:2".parse().unwrap());
        assert_eq!(h.len(), 16 + 36);
        assert_eq!(&h[12..16], &[0x21, 0x21, 0, 36]);
        assert_eq!(
            &h[16..32],
            &"::ffff:127.0.0.1"
                .parse::<std::net::Ipv6Addr>()
                .unwrap()
                .octets()
        );
        assert_eq!(&h[32..48], &std::net::Ipv6Addr::LOCALHOST.octets());
        assert_eq!(&h[48..52], &[0, 1, 0, 2]);
    }
}
