//! The static table (RFC 7541 Appendix A) and the dynamic table (§2.3.2, §4) shared by the
//! encoder and the decoder.

use std::collections::VecDeque;

/// What every dynamic table entry costs beyond its name and value (§4.1).
pub(super) const ENTRY_OVERHEAD: usize = 32;

/// RFC 7541 Appendix A; index `i` of the protocol is `STATIC[i - 1]`.
pub(super) static STATIC: [(&[u8], &[u8]); 61] = [
    (b":authority", b""),
    (b":method", b"GET"),
    (b":method", b"POST"),
    (b":path", b"/"),
    (b":path", b"/index.html"),
    (b":scheme", b"http"),
    (b":scheme", b"https"),
    (b":status", b"200"),
    (b":status", b"204"),
    (b":status", b"206"),
    (b":status", b"304"),
    (b":status", b"400"),
    (b":status", b"404"),
    (b":status", b"500"),
    (b"accept-charset", b""),
    (b"accept-encoding", b"gzip, deflate"),
    (b"accept-language", b""),
    (b"accept-ranges", b""),
    (b"accept", b""),
    (b"access-control-allow-origin", b""),
    (b"age", b""),
    (b"allow", b""),
    (b"authorization", b""),
    (b"cache-control", b""),
    (b"content-disposition", b""),
    (b"content-encoding", b""),
    (b"content-language", b""),
    (b"content-length", b""),
    (b"content-location", b""),
    (b"content-range", b""),
    (b"content-type", b""),
    (b"cookie", b""),
    (b"date", b""),
    (b"etag", b""),
    (b"expect", b""),
    (b"expires", b""),
    (b"from", b""),
    (b"host", b""),
    (b"if-match", b""),
    (b"if-modified-since", b""),
    (b"if-none-match", b""),
    (b"if-range", b""),
    (b"if-unmodified-since", b""),
    (b"last-modified", b""),
    (b"link", b""),
    (b"location", b""),
    (b"max-forwards", b""),
    (b"proxy-authenticate", b""),
    (b"proxy-authorization", b""),
    (b"range", b""),
    (b"referer", b""),
    (b"refresh", b""),
    (b"retry-after", b""),
    (b"server", b""),
    (b"set-cookie", b""),
    (b"strict-transport-security", b""),
    (b"transfer-encoding", b""),
    (b"user-agent", b""),
    (b"vary", b""),
    (b"via", b""),
    (b"www-authenticate", b""),
];

/// The entries of [`STATIC`] named `name`: the index of the first one and how many there are
/// (they are contiguous). A `match` on the bytes compiles to a comparison of lengths followed
/// by a few comparisons of bytes, cheaper than scanning the table.
fn static_names(name: &[u8]) -> Option<(usize, usize)> {
    Some(match name {
        b":authority" => (1, 1),
        b":method" => (2, 2),
        b":path" => (4, 2),
        b":scheme" => (6, 2),
        b":status" => (8, 7),
        b"accept-charset" => (15, 1),
        b"accept-encoding" => (16, 1),
        b"accept-language" => (17, 1),
        b"accept-ranges" => (18, 1),
        b"accept" => (19, 1),
        b"access-control-allow-origin" => (20, 1),
        b"age" => (21, 1),
        b"allow" => (22, 1),
        b"authorization" => (23, 1),
        b"cache-control" => (24, 1),
        b"content-disposition" => (25, 1),
        b"content-encoding" => (26, 1),
        b"content-language" => (27, 1),
        b"content-length" => (28, 1),
        b"content-location" => (29, 1),
        b"content-range" => (30, 1),
        b"content-type" => (31, 1),
        b"cookie" => (32, 1),
        b"date" => (33, 1),
        b"etag" => (34, 1),
        b"expect" => (35, 1),
        b"expires" => (36, 1),
        b"from" => (37, 1),
        b"host" => (38, 1),
        b"if-match" => (39, 1),
        b"if-modified-since" => (40, 1),
        b"if-none-match" => (41, 1),
        b"if-range" => (42, 1),
        b"if-unmodified-since" => (43, 1),
        b"last-modified" => (44, 1),
        b"link" => (45, 1),
        b"location" => (46, 1),
        b"max-forwards" => (47, 1),
        b"proxy-authenticate" => (48, 1),
        b"proxy-authorization" => (49, 1),
        b"range" => (50, 1),
        b"referer" => (51, 1),
        b"refresh" => (52, 1),
        b"retry-after" => (53, 1),
        b"server" => (54, 1),
        b"set-cookie" => (55, 1),
        b"strict-transport-security" => (56, 1),
        b"transfer-encoding" => (57, 1),
        b"user-agent" => (58, 1),
        b"vary" => (59, 1),
        b"via" => (60, 1),
        b"www-authenticate" => (61, 1),
        _ => return None,
    })
}

/// Where `(name, value)` is in the static table: the index of an entry with that name, and of
/// the entry with both, if any.
pub(super) fn static_lookup(name: &[u8], value: &[u8]) -> (Option<usize>, Option<usize>) {
    let Some((first, count)) = static_names(name) else {
        return (None, None);
    };
    let exact = (first..first + count).find(|&i| STATIC[i - 1].1 == value);
    (Some(first), exact)
}

/// The static entry at protocol index `index` (1-based).
pub(super) fn static_entry(index: usize) -> Option<(&'static [u8], &'static [u8])> {
    STATIC.get(index.wrapping_sub(1)).copied()
}

/// One field held by a dynamic table: name and value in one allocation.
#[derive(Debug)]
struct Entry {
    bytes: Vec<u8>,
    name_len: usize,
}

/// How many evicted entries' buffers are kept to be reused by the next insertions, so that a
/// table in its steady state (one in, one out) does not allocate.
const SPARE_BUFFERS: usize = 8;

/// A dynamic table: newest entry first, its size accounted as §4.1 says, entries evicted
/// oldest first (§4.4).
#[derive(Debug)]
pub(super) struct DynamicTable {
    entries: VecDeque<Entry>,
    size: usize,
    max_size: usize,
    spare: Vec<Vec<u8>>,
}

impl DynamicTable {
    pub(super) fn new(max_size: usize) -> DynamicTable {
        DynamicTable {
            entries: VecDeque::new(),
            size: 0,
            max_size,
            spare: Vec::new(),
        }
    }

    /// The sum of the entries' sizes (§4.1).
    #[cfg(test)]
    pub(super) fn size(&self) -> usize {
        self.size
    }

    pub(super) fn max_size(&self) -> usize {
        self.max_size
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Entry `i`, 0 being the newest (protocol index 62).
    pub(super) fn get(&self, i: usize) -> Option<(&[u8], &[u8])> {
        self.entries.get(i).map(|e| e.bytes.split_at(e.name_len))
    }

    /// A new maximum size, evicting what no longer fits (§4.3).
    pub(super) fn set_max_size(&mut self, max_size: usize) {
        self.max_size = max_size;
        self.evict_to(max_size);
    }

    /// A cleared buffer for the next [`DynamicTable::insert`], reused when possible.
    pub(super) fn buffer(&mut self) -> Vec<u8> {
        self.spare.pop().unwrap_or_default()
    }

    /// Adds `bytes` (a name of `name_len` bytes followed by its value) as the newest entry,
    /// first evicting the oldest ones until it fits; an entry larger than the whole table
    /// empties it and is not added (§4.4).
    pub(super) fn insert(&mut self, bytes: Vec<u8>, name_len: usize) {
        let size = bytes.len() + ENTRY_OVERHEAD;
        if size > self.max_size {
            self.evict_to(0);
            self.recycle(bytes);
            return;
        }
        self.evict_to(self.max_size - size);
        self.size += size;
        self.entries.push_front(Entry { bytes, name_len });
    }

    /// Where `(name, value)` is: the first entry with that name, and the entry with both.
    pub(super) fn find(&self, name: &[u8], value: &[u8]) -> (Option<usize>, Option<usize>) {
        let mut named = None;
        for (i, e) in self.entries.iter().enumerate() {
            let (n, v) = e.bytes.split_at(e.name_len);
            if n == name {
                if v == value {
                    return (named.or(Some(i)), Some(i));
                }
                named = named.or(Some(i));
            }
        }
        (named, None)
    }

    fn evict_to(&mut self, limit: usize) {
        while self.size > limit {
            let Some(e) = self.entries.pop_back() else {
                // Sizes are only ever added for entries pushed: empty means zero.
                self.size = 0;
                break;
            };
            self.size -= e.bytes.len() + ENTRY_OVERHEAD;
            self.recycle(e.bytes);
        }
    }

    fn recycle(&mut self, mut bytes: Vec<u8>) {
        if self.spare.len() < SPARE_BUFFERS {
            bytes.clear();
            self.spare.push(bytes);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_name_match_agrees_with_the_static_table() {
        for (i, &(name, value)) in STATIC.iter().enumerate() {
            let index = i + 1;
            let (named, exact) = static_lookup(name, value);
            let first = STATIC.iter().position(|e| e.0 == name).map(|p| p + 1);
            assert_eq!(named, first, "{}", String::from_utf8_lossy(name));
            assert_eq!(exact, Some(index), "{}", String::from_utf8_lossy(name));
            assert_eq!(static_entry(index), Some((name, value)));
        }
        assert_eq!(static_entry(0), None);
        assert_eq!(static_entry(62), None);
        assert_eq!(static_lookup(b"x-unknown", b""), (None, None));
        assert_eq!(static_lookup(b":status", b"302"), (Some(8), None));
    }

    #[test]
    fn entries_are_evicted_oldest_first_and_a_huge_one_empties_the_table() {
        let mut t = DynamicTable::new(100);
        let add = |t: &mut DynamicTable, n: &[u8], v: &[u8]| {
            let mut b = t.buffer();
            b.extend_from_slice(n);
            b.extend_from_slice(v);
            t.insert(b, n.len());
        };
        add(&mut t, b"a", b"1"); // 34
        add(&mut t, b"b", b"2"); // 68
        assert_eq!((t.len(), t.size()), (2, 68));
        add(&mut t, b"c", b"3"); // 102 > 100: "a" goes
        assert_eq!((t.len(), t.size()), (2, 68));
        assert_eq!(t.get(0), Some((&b"c"[..], &b"3"[..])));
        assert_eq!(t.get(1), Some((&b"b"[..], &b"2"[..])));
        assert_eq!(t.find(b"b", b"2"), (Some(1), Some(1)));
        assert_eq!(t.find(b"b", b"x"), (Some(1), None));
        add(&mut t, b"big", &[b'x'; 70]); // 105 > 100
        assert_eq!((t.len(), t.size()), (0, 0));
        add(&mut t, b"d", b"4");
        t.set_max_size(33);
        assert_eq!((t.len(), t.size(), t.max_size()), (0, 0, 33));
    }
}
