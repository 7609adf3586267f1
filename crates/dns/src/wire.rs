//! Answer records ([`Rr`]) as hickory's records, which it encodes on the wire.

use hickory_proto::rr::rdata::{A, AAAA, CNAME, MX, NS, SOA, SRV, TXT};
use hickory_proto::rr::{Name, RData, Record};

use crate::answer::{Data, Rr};
use flotilla_config::dns::RecordValue;

/// SOA timers (refresh, retry, expire): Route 53's defaults.
const SOA_TIMERS: (i32, i32, i32) = (7200, 900, 1_209_600);

/// `s` (relative form, no trailing dot) as a fully qualified name, without formatting a
/// copy with the dot.
fn name(s: &str) -> Option<Name> {
    if s.is_empty() {
        return Some(Name::root());
    }
    let mut n = Name::from_ascii(s).ok()?;
    n.set_fqdn(true);
    Some(n)
}

/// The record for `rr`; `None` only for a name hickory cannot encode (validated names can).
pub fn to_record(rr: &Rr) -> Option<Record> {
    let rdata = match &rr.data {
        Data::Value(RecordValue::A(ip)) => RData::A(A(*ip)),
        Data::Value(RecordValue::Aaaa(ip)) => RData::AAAA(AAAA(*ip)),
        Data::Value(RecordValue::Cname(t)) => RData::CNAME(CNAME(name(t)?)),
        Data::Value(RecordValue::Txt(t)) => RData::TXT(TXT::new(vec![t.clone()])),
        Data::Value(RecordValue::Mx {
            preference,
            exchange,
        }) => RData::MX(MX::new(*preference, name(exchange)?)),
        Data::Value(RecordValue::Srv {
            priority,
            weight,
            port,
            target,
        }) => RData::SRV(SRV::new(*priority, *weight, *port, name(target)?)),
        Data::Ns(ns) => RData::NS(NS(name(ns)?)),
        Data::Soa {
            mname,
            rname,
            serial,
            minimum,
        } => RData::SOA(SOA::new(
            name(mname)?,
            name(rname)?,
            *serial,
            SOA_TIMERS.0,
            SOA_TIMERS.1,
            SOA_TIMERS.2,
            *minimum,
        )),
    };
    Some(Record::from_rdata(name(&rr.name)?, rr.ttl, rdata))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_fully_qualified_as_with_a_trailing_dot() {
        for s in [
            "www.example.test",
            "example.test",
            "_sip._tcp.example.test",
            "*.example.test",
        ] {
            let n = name(s).unwrap();
            assert_eq!(n, Name::from_ascii(format!("{s}.")).unwrap(), "{s}");
            assert!(n.is_fqdn());
            assert_eq!(n.to_ascii(), format!("{s}."));
        }
        assert!(name("").unwrap().is_root());
    }
}
