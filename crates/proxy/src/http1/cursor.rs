//! Where a message body ends: bodies are relayed as they are framed (a length, chunks, or until
//! the connection closes), so the proxy only has to know how many of the bytes it reads belong
//! to the body, and that chunked framing is valid before passing it on.

use super::chunked::{Chunk, ChunkFed};
use super::response::RespBody;
use crate::http1::smuggling::BodyKind;

/// Progress through one body.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Cursor {
    /// This many bytes are left.
    Length(u64),
    Chunked(Chunk),
    /// Everything until end of stream.
    UntilClose,
    Done,
}

/// The chunked framing was invalid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BadFraming;

impl Cursor {
    pub(crate) fn request(kind: BodyKind) -> Cursor {
        match kind {
            BodyKind::None | BodyKind::Length(0) => Cursor::Done,
            BodyKind::Length(n) => Cursor::Length(n),
            BodyKind::Chunked => Cursor::Chunked(Chunk::start()),
        }
    }

    pub(crate) fn response(kind: RespBody) -> Cursor {
        match kind {
            RespBody::None | RespBody::Length(0) => Cursor::Done,
            RespBody::Length(n) => Cursor::Length(n),
            RespBody::Chunked => Cursor::Chunked(Chunk::start()),
            RespBody::Close => Cursor::UntilClose,
        }
    }

    pub(crate) fn is_done(&self) -> bool {
        matches!(self, Cursor::Done)
    }

    /// How many of `bytes` (which follow what was fed before) belong to the body; `data` is
    /// told where payload lies among them (chunk data without its framing). The cursor is
    /// [`Cursor::Done`] once the body is complete.
    pub(crate) fn advance(
        &mut self,
        bytes: &[u8],
        data: &mut dyn FnMut(usize, usize),
    ) -> Result<usize, BadFraming> {
        match self {
            Cursor::Done => Ok(0),
            Cursor::UntilClose => {
                data(0, bytes.len());
                Ok(bytes.len())
            }
            Cursor::Length(left) => {
                // At most `bytes.len()`, a usize.
                let take = (*left).min(bytes.len() as u64) as usize;
                data(0, take);
                *left -= take as u64;
                if *left == 0 {
                    *self = Cursor::Done;
                }
                Ok(take)
            }
            Cursor::Chunked(chunk) => match chunk.feed_with(bytes, data) {
                ChunkFed::More => Ok(bytes.len()),
                ChunkFed::Done(used) => {
                    *self = Cursor::Done;
                    Ok(used)
                }
                ChunkFed::Invalid => Err(BadFraming),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(mut c: Cursor, parts: &[&str]) -> (Vec<usize>, String, bool) {
        let mut used = Vec::new();
        let mut payload = String::new();
        for p in parts {
            let mut ranges = Vec::new();
            let n = c
                .advance(p.as_bytes(), &mut |a, b| ranges.push((a, b)))
                .unwrap();
            for (a, b) in ranges {
                payload.push_str(&p[a..b]);
            }
            used.push(n);
        }
        (used, payload, c.is_done())
    }

    #[test]
    fn lengths_stop_at_the_end_of_the_body() {
        let (used, payload, done) = run(Cursor::request(BodyKind::Length(5)), &["abc", "defGET"]);
        assert_eq!((used, payload.as_str(), done), (vec![3, 2], "abcde", true));
        assert!(Cursor::request(BodyKind::None).is_done());
    }

    #[test]
    fn chunks_are_followed_across_reads_and_their_data_found() {
        let (used, payload, done) = run(
            Cursor::response(RespBody::Chunked),
            &["3\r\nab", "c\r\n0\r\nX-T: 1\r\n\r\nextra"],
        );
        assert_eq!(used, vec![5, 16]);
        assert_eq!(payload, "abc");
        assert!(done);
        let mut c = Cursor::request(BodyKind::Chunked);
        assert_eq!(c.advance(b"zz\r\n", &mut |_, _| {}), Err(BadFraming));
    }

    #[test]
    fn until_close_takes_everything() {
        let (used, payload, done) = run(Cursor::response(RespBody::Close), &["ab", "cd"]);
        assert_eq!((used, payload.as_str(), done), (vec![2, 2], "abcd", false));
    }
}
