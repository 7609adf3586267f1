//! HPACK (RFC 7541): the header compression of HTTP/2.
//!
//! The [`Decoder`] reads the header blocks of a client's requests and hands each field to a
//! callback as borrowed bytes, so that the server can check and route a request without
//! building a header map; the [`Encoder`] writes response header blocks.
//!
//! The encoder favours speed over size, since it runs for every response: strings are written
//! raw (never Huffman-coded; valid, and cheaper to produce), an exact match in the static or
//! dynamic table becomes a one-byte reference, and fields whose values change with every
//! response are written without entering the dynamic table so that they do not evict the ones
//! that repeat (see [`Encoder::field`]).

mod huffman;
mod table;
#[cfg(test)]
mod tests;

use table::{static_entry, static_lookup, DynamicTable, ENTRY_OVERHEAD, STATIC};

/// Why a header block could not be decoded: a connection error of type COMPRESSION_ERROR
/// (RFC 9113 §4.3), since the dynamic table can no longer be trusted to match the peer's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum DecodeError {
    /// The block ends inside an integer (an index, a length or a table size).
    #[error("header block ends inside an integer")]
    TruncatedInteger,
    /// An integer does not fit in 32 bits, or is encoded in more bytes than such a value needs.
    #[error("integer in header block is too large")]
    IntegerOverflow,
    /// A string literal's length goes beyond the end of the block.
    #[error("string literal longer than the rest of the header block")]
    TruncatedString,
    /// Index 0 is not a table entry (§6.1).
    #[error("header field index 0")]
    ZeroIndex,
    /// The index is beyond the static and the dynamic table.
    #[error("header field index {index} is beyond the tables")]
    IndexOutOfRange {
        /// The index the peer sent.
        index: usize,
    },
    /// A Huffman-coded string contains the EOS symbol (§5.2).
    #[error("Huffman-coded string contains EOS")]
    HuffmanEos,
    /// A Huffman-coded string ends with padding that is longer than 7 bits or not all ones
    /// (§5.2).
    #[error("invalid padding of a Huffman-coded string")]
    HuffmanPadding,
    /// A dynamic table size update above our SETTINGS_HEADER_TABLE_SIZE (§6.3).
    #[error("dynamic table size update to {size} exceeds the limit of {limit}")]
    TableSizeAboveLimit {
        /// The size the peer asked for.
        size: usize,
        /// Our SETTINGS_HEADER_TABLE_SIZE.
        limit: usize,
    },
    /// A dynamic table size update after the first field of a block (§4.2).
    #[error("dynamic table size update after a header field")]
    LateTableSizeUpdate,
    /// Our SETTINGS_HEADER_TABLE_SIZE went below the peer's table size, and the block does not
    /// begin with the dynamic table size update that must follow (§4.2).
    #[error("header block does not begin with the required dynamic table size update")]
    MissingTableSizeUpdate,
}

/// Why [`Decoder::decode`] failed: the block itself is bad, or the callback rejected a field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum DecodeOutcome<E> {
    /// The block is invalid: a connection error of type COMPRESSION_ERROR.
    #[error(transparent)]
    Compression(#[from] DecodeError),
    /// The callback returned this error. The rest of the block was still decoded into the
    /// dynamic table (without calling the callback again), so the decoder stays in step with
    /// the peer's encoder and the connection can go on: the error may be one for the stream
    /// only (a 431 for SETTINGS_MAX_HEADER_LIST_SIZE, a malformed request).
    #[error("{0}")]
    Rejected(E),
}

/// The largest integer a peer may send: more than any length, index or table size we accept.
const MAX_INT: u64 = u32::MAX as u64;

/// Reads an integer with a `prefix`-bit prefix (§5.1) at `block[*pos]`, moving `pos` past it.
fn read_int(block: &[u8], pos: &mut usize, prefix: u8) -> Result<usize, DecodeError> {
    let mask = (1u8 << prefix) - 1;
    let Some(&first) = block.get(*pos) else {
        return Err(DecodeError::TruncatedInteger);
    };
    *pos += 1;
    let mut value = u64::from(first & mask);
    if value < u64::from(mask) {
        return Ok(value as usize);
    }
    let mut shift = 0;
    loop {
        let Some(&byte) = block.get(*pos) else {
            return Err(DecodeError::TruncatedInteger);
        };
        *pos += 1;
        // Five continuation bytes hold 35 bits: anything longer is either too large or padded
        // with zero groups, which only a peer trying to make us loop would send.
        if shift > 28 {
            return Err(DecodeError::IntegerOverflow);
        }
        value += u64::from(byte & 0x7f) << shift;
        if value > MAX_INT {
            return Err(DecodeError::IntegerOverflow);
        }
        if byte & 0x80 == 0 {
            // At most u32::MAX, which fits in the usize of every target we build for.
            return usize::try_from(value).map_err(|_| DecodeError::IntegerOverflow);
        }
        shift += 7;
    }
}

/// Writes `value` with a `prefix`-bit prefix (§5.1); `first` holds the representation's
/// pattern in the bits above the prefix.
fn write_int(out: &mut Vec<u8>, first: u8, prefix: u8, value: usize) {
    let mask = (1u8 << prefix) - 1;
    if value < usize::from(mask) {
        // Below the mask, a u8.
        out.push(first | value as u8);
        return;
    }
    out.push(first | mask);
    let mut rest = value - usize::from(mask);
    while rest >= 0x80 {
        out.push((rest & 0x7f) as u8 | 0x80);
        rest >>= 7;
    }
    out.push(rest as u8);
}

/// A raw (not Huffman-coded) string literal (§5.2).
fn write_str(out: &mut Vec<u8>, s: &[u8]) {
    write_int(out, 0, 7, s.len());
    out.extend_from_slice(s);
}

/// Where a decoded name or value lies, until the field is complete and the bytes can be
/// borrowed together.
#[derive(Clone, Copy)]
enum Str {
    /// A raw literal: `block[start..end]`.
    Block(usize, usize),
    /// A Huffman-coded literal, decoded into the scratch buffer.
    Scratch(usize, usize),
    /// The name of a table entry (protocol index).
    Name(usize),
    /// The value of a table entry (protocol index).
    Value(usize),
}

/// The entry at protocol index `index` (§2.3.3): static first, then dynamic, newest first.
fn entry(table: &DynamicTable, index: usize) -> Result<(&[u8], &[u8]), DecodeError> {
    if index == 0 {
        return Err(DecodeError::ZeroIndex);
    }
    if index <= STATIC.len() {
        return static_entry(index).ok_or(DecodeError::IndexOutOfRange { index });
    }
    table
        .get(index - STATIC.len() - 1)
        .ok_or(DecodeError::IndexOutOfRange { index })
}

/// The bytes `s` stands for.
fn resolve<'a>(s: Str, block: &'a [u8], scratch: &'a [u8], table: &'a DynamicTable) -> &'a [u8] {
    // The ranges and indexes were checked when they were read, and nothing changed since.
    match s {
        Str::Block(a, b) => block.get(a..b).unwrap_or_default(),
        Str::Scratch(a, b) => scratch.get(a..b).unwrap_or_default(),
        Str::Name(i) => entry(table, i).map_or(&[][..], |e| e.0),
        Str::Value(i) => entry(table, i).map_or(&[][..], |e| e.1),
    }
}

/// Reads a string literal (§5.2) at `block[*pos]`; a Huffman-coded one is decoded at the end
/// of `scratch`.
fn read_str(block: &[u8], pos: &mut usize, scratch: &mut Vec<u8>) -> Result<Str, DecodeError> {
    let huffman = block.get(*pos).is_some_and(|b| b & 0x80 != 0);
    let len = read_int(block, pos, 7)?;
    let start = *pos;
    let end = start
        .checked_add(len)
        .filter(|&end| end <= block.len())
        .ok_or(DecodeError::TruncatedString)?;
    *pos = end;
    if !huffman {
        return Ok(Str::Block(start, end));
    }
    let from = scratch.len();
    huffman::decode(&block[start..end], scratch)?;
    Ok(Str::Scratch(from, scratch.len()))
}

/// The HPACK state of one connection's requests: the dynamic table the client's encoder fills.
#[derive(Debug)]
pub(crate) struct Decoder {
    table: DynamicTable,
    /// Our SETTINGS_HEADER_TABLE_SIZE: the most the peer may make its table.
    limit: usize,
    /// `Decoder::set_max_table_size` went below the table's size: the next block must begin
    /// with a dynamic table size update.
    update_required: bool,
    /// Huffman-decoded names and values of the current field; reused, so that decoding
    /// allocates nothing in the steady state.
    scratch: Vec<u8>,
}

impl Decoder {
    /// `max_table_size`: our SETTINGS_HEADER_TABLE_SIZE (4096 default); the encoder's dynamic
    /// table size updates must not exceed it.
    pub(crate) fn new(max_table_size: usize) -> Decoder {
        Decoder {
            table: DynamicTable::new(max_table_size),
            limit: max_table_size,
            update_required: false,
            scratch: Vec::new(),
        }
    }

    // We never lower our SETTINGS_HEADER_TABLE_SIZE below its first value; tests do.
    #[cfg(test)]
    /// Our SETTINGS_HEADER_TABLE_SIZE changed and the peer acknowledged it. A limit below the
    /// peer's current table size obliges the peer to begin its next block with a dynamic table
    /// size update (§4.2); a block that does not is a [`DecodeError::MissingTableSizeUpdate`].
    pub(crate) fn set_max_table_size(&mut self, n: usize) {
        self.limit = n;
        if n < self.table.max_size() {
            self.update_required = true;
        }
    }

    /// Decode one complete header block (HEADERS + CONTINUATION fragments already joined),
    /// calling `emit(name, value)` for each field in order, pseudo-headers included.
    ///
    /// `emit` returning Err stops the calls, and that error is returned as
    /// [`DecodeOutcome::Rejected`] (the caller uses it to enforce SETTINGS_MAX_HEADER_LIST_SIZE
    /// and to reject bad fields); the rest of the block is still decoded into the dynamic table,
    /// so that a rejected request does not cost the connection. A [`DecodeError`] found after
    /// a rejection wins over it. Slices are only valid during the call (Huffman-decoded strings
    /// live in a scratch buffer owned by the decoder and reused).
    pub(crate) fn decode<E>(
        &mut self,
        block: &[u8],
        emit: &mut impl FnMut(&[u8], &[u8]) -> Result<(), E>,
    ) -> Result<(), DecodeOutcome<E>> {
        let mut pos = 0;
        let mut rejected = None;
        let mut fields = false;
        while let Some(&first) = block.get(pos) {
            if first & 0xe0 == 0x20 {
                // §6.3 dynamic table size update: 001xxxxx.
                if fields {
                    return Err(DecodeError::LateTableSizeUpdate.into());
                }
                let size = read_int(block, &mut pos, 5)?;
                if size > self.limit {
                    return Err(DecodeError::TableSizeAboveLimit {
                        size,
                        limit: self.limit,
                    }
                    .into());
                }
                self.table.set_max_size(size);
                self.update_required = false;
                continue;
            }
            if self.update_required {
                return Err(DecodeError::MissingTableSizeUpdate.into());
            }
            fields = true;
            self.scratch.clear();
            let (name, value, insert) = if first & 0x80 != 0 {
                // §6.1 indexed: 1xxxxxxx.
                let index = read_int(block, &mut pos, 7)?;
                entry(&self.table, index)?;
                (Str::Name(index), Str::Value(index), false)
            } else {
                // §6.2.1 with incremental indexing: 01xxxxxx (6-bit name index);
                // §6.2.2 without indexing: 0000xxxx, §6.2.3 never indexed: 0001xxxx (4-bit).
                let insert = first & 0x40 != 0;
                let index = read_int(block, &mut pos, if insert { 6 } else { 4 })?;
                let name = if index == 0 {
                    read_str(block, &mut pos, &mut self.scratch)?
                } else {
                    entry(&self.table, index)?;
                    Str::Name(index)
                };
                let value = read_str(block, &mut pos, &mut self.scratch)?;
                (name, value, insert)
            };
            // Taken before the name and value borrow the table.
            let mut bytes = if insert {
                self.table.buffer()
            } else {
                Vec::new()
            };
            let n = resolve(name, block, &self.scratch, &self.table);
            let v = resolve(value, block, &self.scratch, &self.table);
            if rejected.is_none() {
                if let Err(e) = emit(n, v) {
                    rejected = Some(e);
                }
            }
            if insert {
                // Copied before inserting: the name may come from an entry the insertion
                // evicts (§4.4).
                bytes.extend_from_slice(n);
                bytes.extend_from_slice(v);
                let name_len = n.len();
                self.table.insert(bytes, name_len);
            }
        }
        if self.update_required {
            return Err(DecodeError::MissingTableSizeUpdate.into());
        }
        match rejected {
            Some(e) => Err(DecodeOutcome::Rejected(e)),
            None => Ok(()),
        }
    }
}

/// The largest dynamic table the encoder keeps, whatever the peer allows: more memory per
/// connection buys little for response headers.
const ENCODER_MAX_TABLE_SIZE: usize = 4096;

/// How a field is written when no exact table match is found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Indexing {
    /// Literal with incremental indexing (§6.2.1): the value is likely to repeat.
    Incremental,
    /// Literal without indexing (§6.2.2): the value changes with nearly every response, and
    /// would only push repeating fields out of the table.
    None,
    /// Literal never indexed (§6.2.3): a secret, which intermediaries must not index either
    /// (§7.1.3).
    Never,
}

/// The encoder's policy, by name.
///
/// Never indexed (secrets): `authorization`, `proxy-authorization`, `cookie`, `set-cookie`.
/// Not indexed (a new value nearly every response): `age`, `content-length`, `content-range`,
/// `date`, `etag`, `expires`, `last-modified`, and the request identifiers `x-request-id`,
/// `x-amzn-requestid`, `x-amz-request-id`, `x-amzn-trace-id`, `x-correlation-id`,
/// `traceparent`, `tracestate`. Everything else is indexed: `content-type`, `server`,
/// `cache-control`, `vary`, `x-instance-id` (one value per target) and the like repeat.
fn indexing(name: &[u8]) -> Indexing {
    match name {
        b"authorization" | b"proxy-authorization" | b"cookie" | b"set-cookie" => Indexing::Never,
        b"age" | b"content-length" | b"content-range" | b"date" | b"etag" | b"expires"
        | b"last-modified" | b"x-request-id" | b"x-amzn-requestid" | b"x-amz-request-id"
        | b"x-amzn-trace-id" | b"x-correlation-id" | b"traceparent" | b"tracestate" => {
            Indexing::None
        }
        _ => Indexing::Incremental,
    }
}

/// The HPACK state of one connection's responses: the dynamic table the client's decoder
/// mirrors.
#[derive(Debug)]
pub(crate) struct Encoder {
    table: DynamicTable,
    /// The smallest table size set since the last block, when the size changed: the next block
    /// signals it, then the current size if that is larger (§4.2).
    pending_update: Option<usize>,
}

impl Default for Encoder {
    fn default() -> Self {
        Encoder::new()
    }
}

impl Encoder {
    /// A dynamic table of 4096 bytes (the peer's default SETTINGS_HEADER_TABLE_SIZE).
    pub(crate) fn new() -> Encoder {
        Encoder {
            table: DynamicTable::new(ENCODER_MAX_TABLE_SIZE),
            pending_update: None,
        }
    }

    /// The peer's SETTINGS_HEADER_TABLE_SIZE changed: shrink/grow the table (to at most 4096
    /// bytes) and emit a dynamic table size update at the start of the next block (RFC 7541
    /// §4.2, §6.3). Call it between blocks, when the SETTINGS frame is processed.
    pub(crate) fn set_max_table_size(&mut self, n: usize) {
        let n = n.min(ENCODER_MAX_TABLE_SIZE);
        if n == self.table.max_size() && self.pending_update.is_none() {
            return;
        }
        self.table.set_max_size(n);
        self.pending_update = Some(self.pending_update.map_or(n, |p| p.min(n)));
    }

    /// Begin a header block (writes a pending size update, if any). Every block must start
    /// with it.
    pub(crate) fn begin(&mut self, out: &mut Vec<u8>) {
        if let Some(smallest) = self.pending_update.take() {
            let size = self.table.max_size();
            if smallest < size {
                write_int(out, 0x20, 5, smallest);
            }
            write_int(out, 0x20, 5, size);
        }
    }

    /// `:status`: static-table indexed for 200/204/206/304/400/404/500, else a literal with
    /// the name indexed, entered into the dynamic table so that a repeated status (a run of
    /// redirects or 503s) takes one byte.
    pub(crate) fn status(&mut self, status: u16, out: &mut Vec<u8>) {
        let index = match status {
            200 => 8,
            204 => 9,
            206 => 10,
            304 => 11,
            400 => 12,
            404 => 13,
            500 => 14,
            _ => {
                let mut digits = [0u8; 5];
                let mut start = digits.len();
                let mut rest = status;
                loop {
                    start -= 1;
                    // A decimal digit.
                    digits[start] = b'0' + (rest % 10) as u8;
                    rest /= 10;
                    if rest == 0 {
                        break;
                    }
                }
                self.indexed_or_inserted(b":status", &digits[start..], Some(8), out);
                return;
            }
        };
        write_int(out, 0x80, 7, index);
    }

    /// One field; `name` must already be lowercase (the caller lowercases HTTP/1 names).
    ///
    /// An exact match in the static or dynamic table becomes an indexed field (§6.1); otherwise
    /// the field is a literal, its name indexed when a table has it, entered into the dynamic
    /// table unless its value changes with every response or is a secret (the list is on
    /// [`indexing`]), or it would take more than half the table.
    pub(crate) fn field(&mut self, name: &[u8], value: &[u8], out: &mut Vec<u8>) {
        debug_assert!(
            !name.iter().any(u8::is_ascii_uppercase),
            "HTTP/2 field names are lowercase"
        );
        let (static_name, static_exact) = static_lookup(name, value);
        match indexing(name) {
            Indexing::Incremental => {
                if let Some(index) = static_exact {
                    write_int(out, 0x80, 7, index);
                } else {
                    self.indexed_or_inserted(name, value, static_name, out);
                }
            }
            Indexing::None => {
                if let Some(index) = static_exact {
                    write_int(out, 0x80, 7, index);
                    return;
                }
                // Names of this policy never enter the dynamic table: only the static one can
                // have them.
                literal(out, 0x00, 4, static_name, name, value);
            }
            Indexing::Never => literal(out, 0x10, 4, static_name, name, value),
        }
    }

    /// A field that has no exact match in the static table: a reference to the dynamic table,
    /// or a literal with incremental indexing (§6.2.1).
    fn indexed_or_inserted(
        &mut self,
        name: &[u8],
        value: &[u8],
        static_name: Option<usize>,
        out: &mut Vec<u8>,
    ) {
        let (dynamic_name, dynamic_exact) = self.table.find(name, value);
        if let Some(i) = dynamic_exact {
            write_int(out, 0x80, 7, i + STATIC.len() + 1);
            return;
        }
        let name_index = static_name.or(dynamic_name.map(|i| i + STATIC.len() + 1));
        let size = name.len() + value.len() + ENTRY_OVERHEAD;
        if size > self.table.max_size() / 2 {
            // It would empty most of the table (all of it if larger), for one field.
            literal(out, 0x00, 4, name_index, name, value);
            return;
        }
        literal(out, 0x40, 6, name_index, name, value);
        let mut bytes = self.table.buffer();
        bytes.extend_from_slice(name);
        bytes.extend_from_slice(value);
        self.table.insert(bytes, name.len());
    }
}

/// A literal field (§6.2): the name as an index when there is one, else as a string.
fn literal(
    out: &mut Vec<u8>,
    first: u8,
    prefix: u8,
    name_index: Option<usize>,
    name: &[u8],
    value: &[u8],
) {
    match name_index {
        Some(index) => write_int(out, first, prefix, index),
        None => {
            write_int(out, first, prefix, 0);
            write_str(out, name);
        }
    }
    write_str(out, value);
}

/// Fuzzing: fields spelled by `data` (names from lowercase letters and `-`, values from
/// visible characters, split at `0x00`/`0x01` bytes), with a table size change from the
/// first byte, encoded over several blocks by [`Encoder`] and decoded back by [`Decoder`]:
/// every block must decode to exactly the fields encoded.
#[cfg(fuzzing)]
pub(crate) fn round_trip(data: &[u8]) {
    let mut enc = Encoder::new();
    let mut dec = Decoder::new(4096);
    if let Some(&b) = data.first() {
        let size = usize::from(b) * 16;
        enc.set_max_table_size(size);
    }
    for block_bytes in data.split(|&b| b == 0x02).take(8) {
        let mut fields: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        for pair in block_bytes.split(|&b| b == 0x00).take(32) {
            let mut parts = pair.splitn(2, |&b| b == 0x01);
            let name: Vec<u8> = parts
                .next()
                .unwrap_or(&[])
                .iter()
                .map(|b| if b % 27 == 26 { b'-' } else { b'a' + b % 27 })
                .collect();
            let value: Vec<u8> = parts
                .next()
                .unwrap_or(&[])
                .iter()
                .map(|b| b' ' + 1 + b % 94)
                .collect();
            if !name.is_empty() {
                fields.push((name, value));
            }
        }
        let mut out = Vec::new();
        enc.begin(&mut out);
        let status = u16::from(block_bytes.first().copied().unwrap_or(0)) + 100;
        enc.status(status, &mut out);
        for (n, v) in &fields {
            enc.field(n, v, &mut out);
        }
        let mut got: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        let decoded = dec.decode(&out, &mut |n: &[u8], v: &[u8]| {
            got.push((n.to_vec(), v.to_vec()));
            Ok::<(), ()>(())
        });
        assert!(decoded.is_ok(), "our own block does not decode");
        let want_status = status.to_string().into_bytes();
        assert_eq!(got.first(), Some(&(b":status".to_vec(), want_status)));
        assert_eq!(&got[1..], &fields[..]);
    }
}
