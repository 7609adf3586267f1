//! Chunked bodies (RFC 9112 §7.1), followed byte by byte outside chunk data and held to the
//! grammar exactly: a chunk line is hex digits, then only well-formed extensions
//! (`;` name [`=` token or quoted string], whitespace only where the grammar has BWS), then
//! CRLF; a trailer line is a field (`name: value`, no obs-fold, no control characters) and
//! never one that frames, routes or manages the connection. Anything else is invalid: a
//! client's body gets 400, a target's answer 502 (or a closed connection once it has begun).
//! Parsers differ exactly where the grammar is left — what follows a chunk size, a lone LF,
//! a trailer that is not a field — so relaying such bytes verbatim would let the next hop read
//! a different body than the proxy did.

use crate::http1::smuggling::is_token;

/// Position inside a chunked body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Chunk {
    /// The chunk size read so far; in chunk data, the bytes left of it.
    size: u64,
    state: State,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// In the chunk size, after this many hex digits.
    Size(u8),
    /// Whitespace after the size or an extension's value: only more of it or `;` may follow.
    Ws,
    /// After `;` (and whitespace): an extension name must begin.
    NameStart,
    Name,
    /// Whitespace after an extension name: `=` or `;` must follow.
    NameWs,
    /// After `=` (and whitespace): a token or a quoted string must begin.
    ValueStart,
    Token,
    Quoted,
    /// After a backslash in a quoted string.
    QuotedPair,
    /// After a quoted string's closing quote.
    ValueEnd,
    SizeLf,
    Data,
    DataCr,
    DataLf,
    /// At the start of a trailer line (or of the empty line that ends the body).
    TrailerStart,
    /// In a trailer field's name; `Names` tracks which forbidden names it may still be.
    TrailerName(Names),
    TrailerValue,
    TrailerLf,
    EndLf,
}

/// Fields that must not come as trailers (RFC 9110 §6.5.1, and RFC 9113 §8.2.2 for HTTP/2's
/// trailers): they frame or route a message or describe a connection. Relayed in an HTTP/1
/// trailer section, a next hop that merges trailers into the head could act on them.
const FORBIDDEN: [&[u8]; 9] = [
    b"content-length",
    b"transfer-encoding",
    b"host",
    b"te",
    b"trailer",
    b"connection",
    b"keep-alive",
    b"proxy-connection",
    b"upgrade",
];

/// Which of [`FORBIDDEN`] a trailer name read so far (`len` bytes) may still be (bit `i`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Names {
    maybe: u16,
    len: u8,
}

impl Names {
    const ALL: Names = Names {
        maybe: (1 << FORBIDDEN.len()) - 1,
        len: 0,
    };

    fn push(self, b: u8) -> Names {
        let at = usize::from(self.len);
        let mut maybe = self.maybe;
        for (i, name) in FORBIDDEN.iter().enumerate() {
            if name.get(at) != Some(&b.to_ascii_lowercase()) {
                maybe &= !(1 << i);
            }
        }
        Names {
            maybe,
            len: self.len.saturating_add(1),
        }
    }

    /// The name is complete: whether it is one of the forbidden ones.
    fn forbidden(self) -> bool {
        FORBIDDEN
            .iter()
            .enumerate()
            .any(|(i, n)| self.maybe & (1 << i) != 0 && n.len() == usize::from(self.len))
    }
}

pub(crate) enum ChunkFed {
    /// The body continues past these bytes.
    More,
    /// The body ended after this many bytes.
    Done(usize),
    /// Not valid chunked framing.
    Invalid,
}

fn is_ws(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// `qdtext` of a quoted string (RFC 9110 §5.6.4): HTAB, SP, visible ASCII but `"` and `\`,
/// obs-text.
fn is_qdtext(b: u8) -> bool {
    matches!(b, b'\t' | b' ' | 0x21 | 0x23..=0x5b | 0x5d..=0x7e | 0x80..=0xff)
}

/// What a field value (or a quoted pair) may hold: HTAB, SP, visible ASCII, obs-text.
fn is_field_text(b: u8) -> bool {
    matches!(b, b'\t' | b' ' | 0x21..=0x7e | 0x80..=0xff)
}

impl Chunk {
    /// The start of a chunked body.
    pub(crate) fn start() -> Chunk {
        Chunk {
            size: 0,
            state: State::Size(0),
        }
    }

    /// The state after `b` on a chunk line (the size and its extensions); `None`: invalid.
    fn line(&mut self, b: u8) -> Option<State> {
        use State::*;
        Some(match self.state {
            Size(digits) => match (b as char).to_digit(16) {
                Some(d) if digits < 16 => {
                    self.size = self.size * 16 + u64::from(d);
                    Size(digits + 1)
                }
                None if digits > 0 && b == b'\r' => SizeLf,
                None if digits > 0 && b == b';' => NameStart,
                None if digits > 0 && is_ws(b) => Ws,
                _ => return None,
            },
            Ws | NameWs | ValueStart | NameStart if is_ws(b) => self.state,
            Ws | NameWs | Name | Token | ValueEnd if b == b';' => NameStart,
            NameWs | Name if b == b'=' => ValueStart,
            Name | Token | ValueEnd if b == b'\r' => SizeLf,
            Name if is_ws(b) => NameWs,
            Token | ValueEnd if is_ws(b) => Ws,
            NameStart | Name if is_token(b) => Name,
            ValueStart | Token if is_token(b) => Token,
            ValueStart if b == b'"' => Quoted,
            Quoted if b == b'"' => ValueEnd,
            Quoted if b == b'\\' => QuotedPair,
            Quoted if is_qdtext(b) => Quoted,
            QuotedPair if is_field_text(b) => Quoted,
            _ => return None,
        })
    }

    /// The state after `b` past the last chunk (trailer lines and the final empty line);
    /// `None`: invalid.
    fn trailer(&self, b: u8) -> Option<State> {
        use State::*;
        Some(match self.state {
            TrailerStart if b == b'\r' => EndLf,
            TrailerStart if is_token(b) => TrailerName(Names::ALL.push(b)),
            TrailerName(names) if is_token(b) => TrailerName(names.push(b)),
            TrailerName(names) if b == b':' && !names.forbidden() => TrailerValue,
            TrailerValue if b == b'\r' => TrailerLf,
            TrailerValue if is_field_text(b) => TrailerValue,
            TrailerLf if b == b'\n' => TrailerStart,
            _ => return None,
        })
    }

    /// Follow `bytes` (which come after those fed before), telling `data` where chunk data
    /// lies among them (`start..end`), for counting a body's size or taking the framing off.
    pub(crate) fn feed_with(
        &mut self,
        bytes: &[u8],
        data: &mut dyn FnMut(usize, usize),
    ) -> ChunkFed {
        let mut i = 0;
        while i < bytes.len() {
            let b = bytes[i];
            let next = match self.state {
                State::Data => {
                    let take = self.size.min((bytes.len() - i) as u64);
                    // `take` is at most the bytes left in this read.
                    data(i, i + take as usize);
                    i += take as usize;
                    self.size -= take;
                    if self.size == 0 {
                        self.state = State::DataCr;
                    }
                    continue;
                }
                State::SizeLf if b == b'\n' && self.size == 0 => Some(State::TrailerStart),
                State::SizeLf if b == b'\n' => Some(State::Data),
                State::SizeLf => None,
                State::DataCr => (b == b'\r').then_some(State::DataLf),
                State::DataLf => (b == b'\n').then_some(State::Size(0)),
                State::EndLf if b == b'\n' => return ChunkFed::Done(i + 1),
                State::EndLf => None,
                State::TrailerStart
                | State::TrailerName(_)
                | State::TrailerValue
                | State::TrailerLf => self.trailer(b),
                _ => self.line(b),
            };
            let Some(next) = next else {
                return ChunkFed::Invalid;
            };
            self.state = next;
            i += 1;
        }
        ChunkFed::More
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunked(parts: &[&[u8]]) -> (Vec<ChunkFed>, Vec<u8>) {
        let mut c = Chunk::start();
        let mut data = Vec::new();
        let fed = parts
            .iter()
            .map(|p| c.feed_with(p, &mut |a, b| data.extend_from_slice(&p[a..b])))
            .collect();
        (fed, data)
    }

    /// Whether `body`, fed whole and byte by byte, is a complete valid chunked body.
    fn valid(body: &[u8]) -> bool {
        let whole = matches!(chunked(&[body]).0[0], ChunkFed::Done(n) if n == body.len());
        let bytes: Vec<&[u8]> = body.chunks(1).collect();
        let (fed, _) = chunked(&bytes);
        let split = matches!(fed.last(), Some(ChunkFed::Done(1)))
            && fed[..fed.len() - 1]
                .iter()
                .all(|f| matches!(f, ChunkFed::More));
        assert_eq!(whole, split, "{:?}", String::from_utf8_lossy(body));
        whole
    }

    #[test]
    fn chunked_bodies_are_followed_byte_by_byte_with_extensions_and_trailers() {
        let body = b"3;x=y\r\nabc\r\n10\r\n0123456789abcdef\r\n0\r\nT: 1\r\n\r\n";
        let bytes: Vec<&[u8]> = body.chunks(1).collect();
        let (fed, data) = chunked(&bytes);
        assert_eq!(data, b"abc0123456789abcdef");
        assert!(matches!(fed.last(), Some(ChunkFed::Done(1))));
        assert!(fed[..fed.len() - 1]
            .iter()
            .all(|f| matches!(f, ChunkFed::More)));
    }

    #[test]
    fn extensions_and_trailers_that_follow_the_grammar_pass() {
        for ok in [
            &b"3\r\nabc\r\n0\r\n\r\n"[..],
            b"3;a\r\nabc\r\n0;b\r\n\r\n",
            b"3 ;a\r\nabc\r\n0\r\n\r\n",
            b"3\t; a = b ;c\r\nabc\r\n0\r\n\r\n",
            b"3;a=\"q;\\\"x\\\\ \"\r\nabc\r\n0\r\n\r\n",
            b"3;a=\"\"\r\nabc\r\n000\r\n\r\n",
            b"3;a=b;c=\"d\" ;e\r\nabc\r\n0\r\n\r\n",
            b"0\r\nX-T: 1\r\nX-U:\r\nX-V:  a b\t\r\n\r\n",
            b"0\r\nX-Obs: caf\xc3\xa9\r\n\r\n",
            b"0000000000000003\r\nabc\r\n0\r\n\r\n",
        ] {
            assert!(valid(ok), "{:?}", String::from_utf8_lossy(ok));
        }
    }

    #[test]
    fn anything_else_after_a_chunk_size_is_invalid() {
        for bad in [
            &b"zz\r\nhello\r\n"[..],
            b"fffffffffffffffff1\r\n",
            b"3\nabc\r\n",
            b"3\r\nabcX\r\n",
            b"\r\n",
            b"3 \r\nabc\r\n0\r\n\r\n",
            b"3x\r\nabc\r\n0\r\n\r\n",
            b"3;\r\nabc\r\n0\r\n\r\n",
            b"3;a b\r\nabc\r\n0\r\n\r\n",
            b"3;a=\r\nabc\r\n0\r\n\r\n",
            b"3;a=b c\r\nabc\r\n0\r\n\r\n",
            b"3;a=\"b\r\nabc\r\n0\r\n\r\n",
            b"3;a=\"b\"c\r\nabc\r\n0\r\n\r\n",
            b"3;a=\"\x01\"\r\nabc\r\n0\r\n\r\n",
            b"3;a=b \r\nabc\r\n0\r\n\r\n",
            b"3;a\x00\r\nabc\r\n0\r\n\r\n",
            b"3;a\rb\r\nabc\r\n0\r\n\r\n",
            b"3;a\nb\r\nabc\r\n0\r\n\r\n",
            b"3;=b\r\nabc\r\n0\r\n\r\n",
            b"3\r\nabc\r\n0\n\r\n",
            b"-3\r\nabc\r\n0\r\n\r\n",
            b"0x3\r\nabc\r\n0\r\n\r\n",
        ] {
            assert!(!valid(bad), "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn trailer_lines_must_be_fields_that_frame_nothing() {
        for bad in [
            &b"0\r\nno colon\r\n\r\n"[..],
            b"0\r\nX-T : 1\r\n\r\n",
            b"0\r\n: 1\r\n\r\n",
            b"0\r\nX-T: 1\r\n folded\r\n\r\n",
            b"0\r\nX-T: a\x00b\r\n\r\n",
            b"0\r\nX-T: a\x7fb\r\n\r\n",
            b"0\r\nX-T: 1\n\r\n",
            b"0\r\nX-T: 1\r\n\n",
            b"0\r\nContent-Length: 5\r\n\r\n",
            b"0\r\ntransfer-encoding: chunked\r\n\r\n",
            b"0\r\nHOST: b\r\n\r\n",
            b"0\r\nConnection: close\r\n\r\n",
            b"0\r\nTE: trailers\r\n\r\n",
        ] {
            assert!(!valid(bad), "{:?}", String::from_utf8_lossy(bad));
        }
        for ok in [
            &b"0\r\nContent-Lengths: 5\r\n\r\n"[..],
            b"0\r\nHos: b\r\n\r\n",
            b"0\r\nTEN: 1\r\n\r\n",
        ] {
            assert!(valid(ok), "{:?}", String::from_utf8_lossy(ok));
        }
    }
}
