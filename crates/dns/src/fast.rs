//! Answers kept encoded: for every name and type whose answer cannot change from one query to
//! the next (only simple-policy value record sets without health checks at the name), the
//! whole UDP answer is encoded once per zone snapshot — by the full path itself, so by
//! hickory — with and without EDNS. A query that matches one is answered by copying it and
//! patching the ID, the RD and CD flags and the question as the client wrote it (its case
//! kept); hickory's decoding, the answer logic and hickory's encoding are skipped. NXDOMAIN
//! and NODATA are kept too, as each zone's SOA answer ([`negative`]). Anything else (other
//! policies, aliases, health checks, CNAMEs followed, wildcards, empty non-terminals, EDNS
//! options such as client subnet, several questions, TCP) takes the full path.
//!
//! Why: after batching, hickory's per-query decode and encode and the allocations around
//! them were most of Flotilla's user-space CPU per answer (docs/benchmarks.md).

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use flotilla_config::dns::{RecordData, RecordType, Routing};
use hickory_proto::op::{Edns, Message, Query};
use hickory_proto::rr::{Name, RecordType as WireType};

use crate::server::Handler;
use crate::udp::{answer_datagram, Reply};
use crate::zones::{Zone, ZoneSet};

#[path = "fast_negative.rs"]
mod negative;
use negative::{wire_name, Negatives, SOA_QUERY_TYPE};

/// The types kept encoded at each name.
const TYPES: [WireType; 8] = [
    WireType::A,
    WireType::AAAA,
    WireType::CNAME,
    WireType::TXT,
    WireType::MX,
    WireType::SRV,
    WireType::NS,
    WireType::SOA,
];
/// The header's size; the question starts here.
const HEADER: usize = 12;
/// OPT's record type.
const OPT: u16 = 41;

/// One name and type's answers.
#[derive(Debug)]
struct Entry {
    /// The answer to a query without EDNS.
    plain: Box<[u8]>,
    /// The answer to a query with an option-less EDNS OPT (version 0).
    edns: Box<[u8]>,
    /// Whether it holds data (counted as answered, else as negative).
    positive: bool,
}

/// The kept answers of one zone snapshot.
pub struct FastAnswers {
    /// The snapshot they were made from (held, so the pointer comparison is sound).
    zones: Arc<ZoneSet>,
    /// By the question's name in wire form, lowercase, followed by its type (big endian).
    by_question: HashMap<Box<[u8]>, Entry>,
    /// NXDOMAIN and NODATA.
    negatives: Negatives,
}

/// What a query asks, when it is simple enough for a kept answer.
struct Simple {
    /// Where the question (name, type, class) ends.
    question_end: usize,
    /// Whether it carries an OPT record.
    edns: bool,
    /// Whether the name's labels are letters, digits, `-` and `_` only (no escapes when
    /// read as text: the negative answers' condition).
    plain_labels: bool,
}

impl FastAnswers {
    /// Nothing kept (before the first snapshot is seen).
    pub fn empty() -> FastAnswers {
        FastAnswers {
            zones: Arc::new(ZoneSet::default()),
            by_question: HashMap::new(),
            negatives: Negatives::default(),
        }
    }

    /// Whether these answers were made from `zones`.
    pub fn is_of(&self, zones: &Arc<ZoneSet>) -> bool {
        Arc::ptr_eq(&self.zones, zones)
    }

    /// How many names and types are kept.
    pub fn len(&self) -> usize {
        self.by_question.len()
    }

    /// Whether nothing is kept.
    pub fn is_empty(&self) -> bool {
        self.by_question.is_empty()
    }

    /// Encodes the answers of every fixed name and type of `zones` through the full path (a
    /// private handler, so the server's counters do not see it).
    pub async fn build(zones: Arc<ZoneSet>) -> FastAnswers {
        let handler = Handler::detached(Arc::clone(&zones));
        let src = SocketAddr::from((Ipv4Addr::LOCALHOST, 53));
        let reply = Reply::default();
        let mut by_question = HashMap::new();
        let mut fixed = Vec::new();
        let mut soa_answers = Vec::new();
        for zone in zones.zones() {
            soa_answers.push(match Name::from_ascii(zone.name()) {
                Ok(mut apex) => {
                    apex.set_fqdn(true);
                    encode(&handler, &apex, SOA_QUERY_TYPE, src, &reply).await
                }
                Err(_) => None,
            });
            for name in fixed_names(zone) {
                if !zones.zone_for(name).is_some_and(|z| std::ptr::eq(z, zone)) {
                    continue; // a more specific zone answers for it
                }
                if !zone.sets(name, RecordType::Cname).is_empty() {
                    continue; // its answers to other types follow the chain
                }
                let Ok(mut qname) = Name::from_ascii(name) else {
                    continue;
                };
                qname.set_fqdn(true);
                let Some(wire) = wire_name(name) else {
                    continue;
                };
                fixed.push(wire.clone());
                for t in TYPES {
                    let Some(entry) = encode(&handler, &qname, t, src, &reply).await else {
                        continue;
                    };
                    let mut key = wire.clone();
                    key.extend_from_slice(&u16::from(t).to_be_bytes());
                    // The most specific zone's answer wins (zones come most specific first).
                    by_question.entry(key.into_boxed_slice()).or_insert(entry);
                }
            }
        }
        let mut negatives = Negatives::new(&zones, soa_answers);
        for name in &fixed {
            negatives.set_fixed(name);
        }
        FastAnswers {
            zones,
            by_question,
            negatives,
        }
    }

    /// Writes the kept answer to `query` into `out`; `None` (and `out` untouched) when there
    /// is none, else whether the answer holds data.
    pub fn answer(&self, query: &[u8], out: &mut Vec<u8>) -> Option<bool> {
        let mut key = [0u8; 257];
        let simple = parse(query, &mut key)?;
        let qname_len = simple.question_end - 4 - HEADER;
        let Some(entry) = self.by_question.get(&key[..qname_len + 2]) else {
            let qtype = u16::from_be_bytes([key[qname_len], key[qname_len + 1]]);
            let (name, end) = (&key[..qname_len], simple.question_end);
            return (simple.plain_labels
                && self
                    .negatives
                    .answer(query, name, qtype, end, simple.edns, out))
            .then_some(false);
        };
        let template = if simple.edns {
            &entry.edns
        } else {
            &entry.plain
        };
        out.clear();
        out.extend_from_slice(template);
        out[..2].copy_from_slice(&query[..2]);
        out[2] |= query[2] & 0x01; // RD
        out[3] |= query[3] & 0x10; // CD
        out[HEADER..simple.question_end].copy_from_slice(&query[HEADER..simple.question_end]);
        Some(entry.positive)
    }
}

/// The names of `zone` whose answers are fixed: every set there is simple-policy values
/// without a health check, and (wildcards being answered under the asker's name) not a
/// wildcard. The apex is always one when its own sets are.
fn fixed_names(zone: &Zone) -> Vec<&str> {
    let mut names: Vec<&str> = zone
        .config
        .records
        .iter()
        .map(|r| r.name.as_str())
        .chain(std::iter::once(zone.name()))
        .filter(|n| !n.contains('*'))
        .collect();
    names.sort_unstable();
    names.dedup();
    names.retain(|n| {
        zone.config
            .records
            .iter()
            .filter(|r| r.name == *n)
            .all(|r| {
                r.routing == Routing::Simple
                    && r.health_check.is_none()
                    && matches!(r.data, RecordData::Values(_))
            })
    });
    names
}

/// The answers to `qname`/`t` with and without EDNS, made by the full path; `None` when the
/// full path gives none or a truncated one.
async fn encode(
    handler: &Handler,
    qname: &Name,
    t: WireType,
    src: SocketAddr,
    reply: &Reply,
) -> Option<Entry> {
    let mut answers = [Vec::new(), Vec::new()];
    for (with_edns, out) in [false, true].into_iter().zip(answers.iter_mut()) {
        let mut m = Message::new();
        m.set_id(0);
        m.set_recursion_desired(false);
        m.add_query(Query::query(qname.clone(), t));
        if with_edns {
            m.set_edns(Edns::new());
        }
        let query = m.to_vec().ok()?;
        if !answer_datagram(handler, &query, src, reply).await {
            return None;
        }
        *out = reply.buf().clone();
    }
    let [plain, edns] = answers;
    let (decoded, with_edns) = (
        Message::from_vec(&plain).ok()?,
        Message::from_vec(&edns).ok()?,
    );
    if decoded.truncated() || with_edns.truncated() {
        return None; // too large for one datagram: the full path truncates per query
    }
    Some(Entry {
        positive: !decoded.answers().is_empty(),
        plain: plain.into_boxed_slice(),
        edns: edns.into_boxed_slice(),
    })
}

/// Reads a query this module can answer: one question of class IN, no other records but an
/// option-less version-0 OPT, nothing after. Writes the question's name (wire form,
/// lowercase) and type into `key`.
fn parse(q: &[u8], key: &mut [u8; 257]) -> Option<Simple> {
    if q.len() < HEADER + 5 || q[2] & 0xF8 != 0 {
        return None; // a response, or not a standard query
    }
    let count = |i: usize| u16::from_be_bytes([q[i], q[i + 1]]);
    let additional = count(10);
    if count(4) != 1 || count(6) != 0 || count(8) != 0 || additional > 1 {
        return None;
    }
    let mut at = HEADER;
    let mut plain_labels = true;
    loop {
        let len = usize::from(*q.get(at)?);
        if len > 63 || at + len + 1 - HEADER > 255 {
            return None; // a pointer, a reserved label type, or too long
        }
        let label = q.get(at..at + len + 1)?;
        for (k, b) in key[at - HEADER..].iter_mut().zip(label) {
            *k = b.to_ascii_lowercase();
        }
        plain_labels &= label[1..]
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_');
        at += len + 1;
        if len == 0 {
            break;
        }
    }
    let name_len = at - HEADER;
    let rest = q.get(at..at + 4)?;
    if rest[2..4] != [0, 1] {
        return None; // not class IN
    }
    key[name_len..name_len + 2].copy_from_slice(&rest[..2]);
    at += 4;
    let question_end = at;
    if additional == 1 {
        // OPT: root owner, type 41, any payload size, extended RCODE 0, version 0, no data.
        let opt = q.get(at..at + 11)?;
        if opt[0] != 0
            || opt[1..3] != OPT.to_be_bytes()
            || opt[5..7] != [0, 0]
            || opt[9..11] != [0, 0]
        {
            return None;
        }
        at += 11;
    }
    (at == q.len()).then_some(Simple {
        question_end,
        edns: additional == 1,
        plain_labels,
    })
}

#[cfg(test)]
#[path = "fast_tests.rs"]
mod tests;
