//! Negative answers kept encoded: NXDOMAIN for a name that does not exist in a hosted zone
//! and NODATA for a type absent at a fixed name are the same message for every such query
//! but for the ID, the RD and CD bits, the question and the response code: the zone's SOA in
//! the authority section. Each zone's is made once per snapshot by the full path (its answer
//! to the apex's CAA, which is NODATA) and copied under the client's question.
//!
//! The SOA's compression pointers: hickory's encoder never points into the echoed question
//! (the question is stored as one whole-question entry, type and class included, which no
//! name's labels can equal), so every pointer in the authority section points into the
//! authority section itself. They are moved by the difference between the question's length
//! and the template's when the answer is written, and the bytes are then exactly the full
//! path's (fast_tests.rs compares them).
//!
//! Which names are negative is decided as [`crate::zones::Zone::owner_for`] and
//! [`crate::answer::answer`] do, but on the question's wire form and without allocating:
//! every name at or above an owner name inside its own zone is "present"; a name that is not
//! present and whose closest present ancestor has no wildcard child does not exist. Anything
//! else (present names other than fixed ones, wildcards, names outside every zone, labels
//! beyond letters, digits, `-` and `_`) is left to the full path.

use std::collections::HashMap;

use hickory_proto::rr::{Name, RecordType as WireType};
use hickory_proto::serialize::binary::BinEncodable;

use super::{Entry, HEADER, OPT};
use crate::zones::ZoneSet;

/// The most a UDP answer may be with EDNS (the full path's offer) and without (its buffer).
const EDNS_MAX: usize = crate::server::EDNS_PAYLOAD as usize;
const PLAIN_MAX: usize = crate::udp::NO_EDNS_MAX as usize;
/// SOA's record type.
const SOA: u16 = 6;
/// An OPT record as the full path writes it: root owner, type, payload, RCODE, version, flags,
/// no data.
const OPT_LEN: usize = 11;

/// What is known of a present name (one at or above an owner name, in its own zone).
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Present {
    /// Index of its zone's [`Soa`] in [`Negatives::soas`].
    zone: usize,
    /// `*.NAME` is an owner name: names below it may be answered by the wildcard.
    wildcard_child: bool,
    /// Its answers are kept (every kept type): other types get NODATA.
    fixed: bool,
}

/// One zone's negative answer, encoded.
#[derive(Debug)]
struct Soa {
    /// The header of the NODATA answer (ID 0, no RD or CD), counts included.
    header: [u8; HEADER],
    /// The SOA record as written after the template's question.
    record: Box<[u8]>,
    /// Where in `record` a compression pointer sits.
    pointers: Box<[usize]>,
    /// Where `record` began in the template (what its pointers are relative to).
    at: usize,
    /// The OPT record of the EDNS answer.
    opt: [u8; OPT_LEN],
}

/// The negative answers of one zone snapshot, and what is present in its zones.
#[derive(Debug, Default)]
pub(super) struct Negatives {
    soas: Vec<Soa>,
    /// By lowercase wire-form name.
    present: HashMap<Box<[u8]>, Present>,
}

/// `name` (relative form, no trailing dot) in wire form: the keys of the kept answers.
pub(super) fn wire_name(name: &str) -> Option<Vec<u8>> {
    let mut n = Name::from_ascii(name).ok()?;
    n.set_fqdn(true);
    n.to_bytes().ok()
}

impl Negatives {
    /// Marks the present names of `zones` and keeps each zone's SOA answer from `soa_answers`
    /// (the full path's answers to the apex's CAA, zone by zone in `zones.zones()` order).
    /// Nothing at all is kept if any owner name cannot be read as a wire name: a present name
    /// missed would make its names NXDOMAIN.
    pub(super) fn new(zones: &ZoneSet, soa_answers: Vec<Option<Entry>>) -> Negatives {
        let mut soas = Vec::new();
        let mut present: HashMap<Box<[u8]>, Present> = HashMap::new();
        for (zone, answer) in zones.zones().zip(soa_answers) {
            let Some(soa) = answer.and_then(|a| Soa::new(&a)) else {
                // Its names would find a less specific zone's: keep nothing.
                return Negatives::default();
            };
            let index = soas.len();
            soas.push(soa);
            let owners = zone.config.records.iter().map(|r| r.name.as_str());
            for owner in owners.chain(std::iter::once(zone.name())) {
                let mut name = owner;
                let mut wildcard_child = false;
                loop {
                    let here = zones.zone_for(name).is_some_and(|z| std::ptr::eq(z, zone));
                    if here {
                        let Some(key) = wire_name(name) else {
                            return Negatives::default();
                        };
                        let p = present.entry(key.into_boxed_slice()).or_default();
                        p.zone = index;
                        p.wildcard_child |= wildcard_child;
                    }
                    wildcard_child = name == owner && owner.starts_with("*.");
                    match name.split_once('.') {
                        Some((_, parent)) if name != zone.name() => name = parent,
                        _ => break,
                    }
                }
            }
        }
        Negatives { soas, present }
    }

    /// Marks `name` (wire form) as fixed: its other types get NODATA.
    pub(super) fn set_fixed(&mut self, name: &[u8]) {
        if let Some(p) = self.present.get_mut(name) {
            p.fixed = true;
        }
    }

    /// The negative answer to `name` (lowercase wire form) of type `qtype`, if it is one this
    /// keeps: its zone's SOA and whether it is NXDOMAIN.
    fn lookup(&self, name: &[u8], qtype: u16) -> Option<(&Soa, bool)> {
        if !negative_type(qtype) {
            return None;
        }
        if let Some(p) = self.present.get(name) {
            // NODATA, for a fixed name's types that are not kept (their answers would be).
            let kept = super::TYPES.iter().any(|&t| u16::from(t) == qtype);
            return (p.fixed && !kept).then(|| (&self.soas[p.zone], false));
        }
        let mut at = 0;
        loop {
            let len = usize::from(*name.get(at)?);
            if len == 0 {
                return None; // no zone: REFUSED by the full path
            }
            at += len + 1;
            if let Some(p) = self.present.get(name.get(at..)?) {
                // The closest encloser: NXDOMAIN unless its wildcard answers.
                return (!p.wildcard_child).then(|| (&self.soas[p.zone], true));
            }
        }
    }

    /// Writes the negative answer to `query` (whose question, `name` in lowercase wire form
    /// and `qtype`, ends at `question_end`) into `out`; false (and `out` untouched) when it
    /// is not one kept here.
    pub(super) fn answer(
        &self,
        query: &[u8],
        name: &[u8],
        qtype: u16,
        question_end: usize,
        edns: bool,
        out: &mut Vec<u8>,
    ) -> bool {
        let Some((soa, nxdomain)) = self.lookup(name, qtype) else {
            return false;
        };
        let len = question_end + soa.record.len() + if edns { OPT_LEN } else { 0 };
        if len > if edns { EDNS_MAX } else { PLAIN_MAX } {
            return false; // the full path truncates
        }
        out.clear();
        out.extend_from_slice(&soa.header);
        out[..2].copy_from_slice(&query[..2]);
        out[2] |= query[2] & 0x01; // RD
        out[3] |= query[3] & 0x10; // CD
        if nxdomain {
            out[3] |= 3;
        }
        out[10..12].copy_from_slice(&u16::from(edns).to_be_bytes());
        out.extend_from_slice(&query[HEADER..question_end]);
        let start = out.len();
        out.extend_from_slice(&soa.record);
        for &p in soa.pointers.iter() {
            let at = start + p;
            let target = usize::from(u16::from_be_bytes([out[at], out[at + 1]]) & 0x3FFF);
            // Within the record (checked when kept), so below 0x3FFF here too (len ≤ 4096).
            let moved = (target - soa.at + start) as u16 | 0xC000;
            out[at..at + 2].copy_from_slice(&moved.to_be_bytes());
        }
        if edns {
            out.extend_from_slice(&soa.opt);
        }
        true
    }
}

/// Whether a query type gets the plain negative answer: not the zone transfers (REFUSED) nor
/// the other meta types and OPT, which take the full path in doubt.
fn negative_type(qtype: u16) -> bool {
    qtype != 0 && qtype != OPT && !(128..=255).contains(&qtype)
}

impl Soa {
    /// Reads the full path's NODATA answer (with EDNS) into its parts; `None` unless it is
    /// one question, one SOA record whose pointers all point inside it, and one OPT.
    fn new(entry: &Entry) -> Option<Soa> {
        let m = &entry.edns;
        if m.len() < HEADER {
            return None;
        }
        let counts: Vec<u16> = (4..12)
            .step_by(2)
            .map(|i| u16::from_be_bytes([m[i], m[i + 1]]))
            .collect();
        if counts != [1, 0, 1, 1] || m[3] & 0x0F != 0 {
            return None;
        }
        let at = name_end(m, HEADER, &mut Vec::new())? + 4;
        let mut pointers = Vec::new();
        let owner_end = name_end(m, at, &mut pointers)?;
        let fixed = m.get(owner_end..owner_end + 10)?;
        if fixed[..2] != SOA.to_be_bytes() {
            return None;
        }
        let rdlen = usize::from(u16::from_be_bytes([fixed[8], fixed[9]]));
        let rdata = owner_end + 10;
        let mname_end = name_end(m, rdata, &mut pointers)?;
        let rname_end = name_end(m, mname_end, &mut pointers)?;
        let end = rname_end + 20;
        if end != rdata + rdlen
            || end + OPT_LEN != m.len()
            || m[end + 1..end + 3] != OPT.to_be_bytes()
        {
            return None;
        }
        for &p in &pointers {
            let target = usize::from(u16::from_be_bytes([m[p], m[p + 1]]) & 0x3FFF);
            if !(at..p).contains(&target) {
                return None; // into the question or forward: not kept
            }
        }
        // The same record without EDNS.
        let plain = &entry.plain;
        if plain.get(at..)? != &m[at..end] {
            return None;
        }
        Some(Soa {
            header: m[..HEADER].try_into().ok()?,
            record: m[at..end].into(),
            pointers: pointers.iter().map(|p| p - at).collect(),
            at,
            opt: m[end..].try_into().ok()?,
        })
    }
}

/// Where the name at `at` in `m` ends; its compression pointer's position pushed on
/// `pointers`.
fn name_end(m: &[u8], mut at: usize, pointers: &mut Vec<usize>) -> Option<usize> {
    loop {
        let len = *m.get(at)?;
        match len {
            0 => return Some(at + 1),
            l if l & 0xC0 == 0xC0 => {
                m.get(at + 1)?;
                pointers.push(at);
                return Some(at + 2);
            }
            l if l < 64 => at += usize::from(l) + 1,
            _ => return None,
        }
    }
}

/// The type asked of each apex for its NODATA answer: not a kept type, so always NODATA.
pub(super) const SOA_QUERY_TYPE: WireType = WireType::CAA;

#[cfg(test)]
#[path = "fast_negative_tests.rs"]
mod tests;
