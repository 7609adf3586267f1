//! The Huffman code of string literals (RFC 7541 §5.2, Appendix B).
//!
//! Decoding walks a state machine four bits at a time: a state is an internal node of the code's
//! binary tree (256 of them for 257 symbols), and [`DECODE`] says, for every state and nibble,
//! which node the walk ends on and which symbol (at most one: the shortest code is five bits
//! long) it completed. Both the tree and the state table are computed at compile time from
//! [`CODES`], so the only hand-copied data is the RFC's own table; building the tree checks that
//! it is a complete prefix code (a typo fails the build).

use super::DecodeError;

/// RFC 7541 Appendix B: `(code, length in bits)` of every symbol, indexed by symbol; 256 is EOS.
/// The code is canonical (codes are assigned in order of length, then of symbol).
#[rustfmt::skip]
pub(super) const CODES: [(u32, u8); 257] = [
    (0x1ff8, 13), (0x7fffd8, 23), (0xfffffe2, 28), (0xfffffe3, 28),  // 0
    (0xfffffe4, 28), (0xfffffe5, 28), (0xfffffe6, 28), (0xfffffe7, 28),  // 4
    (0xfffffe8, 28), (0xffffea, 24), (0x3ffffffc, 30), (0xfffffe9, 28),  // 8
    (0xfffffea, 28), (0x3ffffffd, 30), (0xfffffeb, 28), (0xfffffec, 28),  // 12
    (0xfffffed, 28), (0xfffffee, 28), (0xfffffef, 28), (0xffffff0, 28),  // 16
    (0xffffff1, 28), (0xffffff2, 28), (0x3ffffffe, 30), (0xffffff3, 28),  // 20
    (0xffffff4, 28), (0xffffff5, 28), (0xffffff6, 28), (0xffffff7, 28),  // 24
    (0xffffff8, 28), (0xffffff9, 28), (0xffffffa, 28), (0xffffffb, 28),  // 28
    (0x14, 6), (0x3f8, 10), (0x3f9, 10), (0xffa, 12),  // 32
    (0x1ff9, 13), (0x15, 6), (0xf8, 8), (0x7fa, 11),  // 36
    (0x3fa, 10), (0x3fb, 10), (0xf9, 8), (0x7fb, 11),  // 40
    (0xfa, 8), (0x16, 6), (0x17, 6), (0x18, 6),  // 44
    (0x0, 5), (0x1, 5), (0x2, 5), (0x19, 6),  // 48
    (0x1a, 6), (0x1b, 6), (0x1c, 6), (0x1d, 6),  // 52
    (0x1e, 6), (0x1f, 6), (0x5c, 7), (0xfb, 8),  // 56
    (0x7ffc, 15), (0x20, 6), (0xffb, 12), (0x3fc, 10),  // 60
    (0x1ffa, 13), (0x21, 6), (0x5d, 7), (0x5e, 7),  // 64
    (0x5f, 7), (0x60, 7), (0x61, 7), (0x62, 7),  // 68
    (0x63, 7), (0x64, 7), (0x65, 7), (0x66, 7),  // 72
    (0x67, 7), (0x68, 7), (0x69, 7), (0x6a, 7),  // 76
    (0x6b, 7), (0x6c, 7), (0x6d, 7), (0x6e, 7),  // 80
    (0x6f, 7), (0x70, 7), (0x71, 7), (0x72, 7),  // 84
    (0xfc, 8), (0x73, 7), (0xfd, 8), (0x1ffb, 13),  // 88
    (0x7fff0, 19), (0x1ffc, 13), (0x3ffc, 14), (0x22, 6),  // 92
    (0x7ffd, 15), (0x3, 5), (0x23, 6), (0x4, 5),  // 96
    (0x24, 6), (0x5, 5), (0x25, 6), (0x26, 6),  // 100
    (0x27, 6), (0x6, 5), (0x74, 7), (0x75, 7),  // 104
    (0x28, 6), (0x29, 6), (0x2a, 6), (0x7, 5),  // 108
    (0x2b, 6), (0x76, 7), (0x2c, 6), (0x8, 5),  // 112
    (0x9, 5), (0x2d, 6), (0x77, 7), (0x78, 7),  // 116
    (0x79, 7), (0x7a, 7), (0x7b, 7), (0x7ffe, 15),  // 120
    (0x7fc, 11), (0x3ffd, 14), (0x1ffd, 13), (0xffffffc, 28),  // 124
    (0xfffe6, 20), (0x3fffd2, 22), (0xfffe7, 20), (0xfffe8, 20),  // 128
    (0x3fffd3, 22), (0x3fffd4, 22), (0x3fffd5, 22), (0x7fffd9, 23),  // 132
    (0x3fffd6, 22), (0x7fffda, 23), (0x7fffdb, 23), (0x7fffdc, 23),  // 136
    (0x7fffdd, 23), (0x7fffde, 23), (0xffffeb, 24), (0x7fffdf, 23),  // 140
    (0xffffec, 24), (0xffffed, 24), (0x3fffd7, 22), (0x7fffe0, 23),  // 144
    (0xffffee, 24), (0x7fffe1, 23), (0x7fffe2, 23), (0x7fffe3, 23),  // 148
    (0x7fffe4, 23), (0x1fffdc, 21), (0x3fffd8, 22), (0x7fffe5, 23),  // 152
    (0x3fffd9, 22), (0x7fffe6, 23), (0x7fffe7, 23), (0xffffef, 24),  // 156
    (0x3fffda, 22), (0x1fffdd, 21), (0xfffe9, 20), (0x3fffdb, 22),  // 160
    (0x3fffdc, 22), (0x7fffe8, 23), (0x7fffe9, 23), (0x1fffde, 21),  // 164
    (0x7fffea, 23), (0x3fffdd, 22), (0x3fffde, 22), (0xfffff0, 24),  // 168
    (0x1fffdf, 21), (0x3fffdf, 22), (0x7fffeb, 23), (0x7fffec, 23),  // 172
    (0x1fffe0, 21), (0x1fffe1, 21), (0x3fffe0, 22), (0x1fffe2, 21),  // 176
    (0x7fffed, 23), (0x3fffe1, 22), (0x7fffee, 23), (0x7fffef, 23),  // 180
    (0xfffea, 20), (0x3fffe2, 22), (0x3fffe3, 22), (0x3fffe4, 22),  // 184
    (0x7ffff0, 23), (0x3fffe5, 22), (0x3fffe6, 22), (0x7ffff1, 23),  // 188
    (0x3ffffe0, 26), (0x3ffffe1, 26), (0xfffeb, 20), (0x7fff1, 19),  // 192
    (0x3fffe7, 22), (0x7ffff2, 23), (0x3fffe8, 22), (0x1ffffec, 25),  // 196
    (0x3ffffe2, 26), (0x3ffffe3, 26), (0x3ffffe4, 26), (0x7ffffde, 27),  // 200
    (0x7ffffdf, 27), (0x3ffffe5, 26), (0xfffff1, 24), (0x1ffffed, 25),  // 204
    (0x7fff2, 19), (0x1fffe3, 21), (0x3ffffe6, 26), (0x7ffffe0, 27),  // 208
    (0x7ffffe1, 27), (0x3ffffe7, 26), (0x7ffffe2, 27), (0xfffff2, 24),  // 212
    (0x1fffe4, 21), (0x1fffe5, 21), (0x3ffffe8, 26), (0x3ffffe9, 26),  // 216
    (0xffffffd, 28), (0x7ffffe3, 27), (0x7ffffe4, 27), (0x7ffffe5, 27),  // 220
    (0xfffec, 20), (0xfffff3, 24), (0xfffed, 20), (0x1fffe6, 21),  // 224
    (0x3fffe9, 22), (0x1fffe7, 21), (0x1fffe8, 21), (0x7ffff3, 23),  // 228
    (0x3fffea, 22), (0x3fffeb, 22), (0x1ffffee, 25), (0x1ffffef, 25),  // 232
    (0xfffff4, 24), (0xfffff5, 24), (0x3ffffea, 26), (0x7ffff4, 23),  // 236
    (0x3ffffeb, 26), (0x7ffffe6, 27), (0x3ffffec, 26), (0x3ffffed, 26),  // 240
    (0x7ffffe7, 27), (0x7ffffe8, 27), (0x7ffffe9, 27), (0x7ffffea, 27),  // 244
    (0x7ffffeb, 27), (0xffffffe, 28), (0x7ffffec, 27), (0x7ffffed, 27),  // 248
    (0x7ffffee, 27), (0x7ffffef, 27), (0x7fffff0, 27), (0x3ffffee, 26),  // 252
    (0x3fffffff, 30),  // 256
];

/// The end-of-string symbol: it only ever appears as a prefix of the padding.
const EOS: usize = 256;

/// Marks a child in [`TREE`] that is a symbol (the low bits) rather than an internal node.
const LEAF: u16 = 0x8000;

/// The code as a binary tree: `TREE[node][bit]` is the child reached by `bit`; node 0 is the
/// root.
const TREE: [[u16; 2]; 256] = build_tree();

const fn build_tree() -> [[u16; 2]; 256] {
    // 0 means "no child yet": the root is never anyone's child.
    let mut tree = [[0u16; 2]; 256];
    let mut nodes = 1;
    let mut sym = 0;
    while sym < CODES.len() {
        let (code, len) = CODES[sym];
        assert!(len >= 5 && len <= 30, "code lengths are 5..=30 bits");
        let mut node = 0;
        let mut bit = len - 1;
        while bit > 0 {
            let b = ((code >> bit) & 1) as usize;
            let child = tree[node][b];
            if child == 0 {
                assert!(nodes < 256, "too many internal nodes");
                tree[node][b] = nodes as u16;
                node = nodes;
                nodes += 1;
            } else {
                assert!(child & LEAF == 0, "a code is a prefix of another");
                node = child as usize;
            }
            bit -= 1;
        }
        let b = (code & 1) as usize;
        assert!(tree[node][b] == 0, "a code is a prefix of another");
        tree[node][b] = LEAF | sym as u16;
        sym += 1;
    }
    // 257 leaves of a complete binary tree hang from exactly 256 internal nodes, all of them
    // with both children.
    assert!(nodes == 256, "the code is not complete");
    let mut node = 0;
    while node < 256 {
        assert!(
            tree[node][0] != 0 && tree[node][1] != 0,
            "the code is not complete"
        );
        node += 1;
    }
    tree
}

/// One transition of the decoder: the state (tree node) after four more bits, and what
/// happened on the way.
#[derive(Clone, Copy)]
struct Step {
    next: u8,
    sym: u8,
    flags: u8,
}

/// [`Step::sym`] was completed by these bits.
const EMIT: u8 = 1;
/// The bits completed EOS: an error wherever it appears.
const FAIL: u8 = 2;
/// Ending the string in [`Step::next`] is valid: the bits since the last symbol are at most
/// seven ones (the padding of §5.2).
const ACCEPT: u8 = 4;

/// `DECODE[state][nibble]`. A `static`, not a `const`: indexed at run time, it must be one
/// table in memory rather than a value the compiler may materialize at each use.
static DECODE: [[Step; 16]; 256] = build_decode();

const fn build_decode() -> [[Step; 16]; 256] {
    // The states where a string may end: the root, and the first seven nodes on the all-ones
    // path from it (a prefix of EOS no longer than seven bits).
    let mut accepting = [false; 256];
    accepting[0] = true;
    let mut node = 0;
    let mut depth = 1;
    while depth <= 7 {
        node = TREE[node][1] as usize;
        accepting[node] = true;
        depth += 1;
    }
    let empty = Step {
        next: 0,
        sym: 0,
        flags: 0,
    };
    let mut table = [[empty; 16]; 256];
    let mut state = 0;
    while state < 256 {
        let mut nibble = 0;
        while nibble < 16 {
            let mut node = state;
            let mut step = empty;
            let mut bit = 4;
            while bit > 0 {
                bit -= 1;
                let child = TREE[node][(nibble >> bit) & 1];
                if child & LEAF == 0 {
                    node = child as usize;
                } else if (child & !LEAF) as usize == EOS {
                    step.flags |= FAIL;
                    node = 0;
                } else {
                    step.sym = (child & !LEAF) as u8;
                    step.flags |= EMIT;
                    node = 0;
                }
            }
            step.next = node as u8;
            if accepting[node] {
                step.flags |= ACCEPT;
            }
            table[state][nibble] = step;
            nibble += 1;
        }
        state += 1;
    }
    table
}

/// Appends the decoding of `src` to `out`.
pub(super) fn decode(src: &[u8], out: &mut Vec<u8>) -> Result<(), DecodeError> {
    // The shortest code is 5 bits: at most 8 symbols per 5 bytes.
    out.reserve(src.len() / 5 * 8 + 8);
    let mut state = 0;
    let mut accept = true;
    for &byte in src {
        for nibble in [byte >> 4, byte & 0x0f] {
            let step = DECODE[usize::from(state)][usize::from(nibble)];
            if step.flags & FAIL != 0 {
                return Err(DecodeError::HuffmanEos);
            }
            if step.flags & EMIT != 0 {
                out.push(step.sym);
            }
            state = step.next;
            accept = step.flags & ACCEPT != 0;
        }
    }
    if accept {
        Ok(())
    } else {
        Err(DecodeError::HuffmanPadding)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reference encoder: codes packed most significant bit first, padded with ones.
    fn encode(src: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut acc: u64 = 0;
        let mut bits = 0;
        for &b in src {
            let (code, len) = CODES[usize::from(b)];
            acc = (acc << len) | u64::from(code);
            bits += u32::from(len);
            while bits >= 8 {
                bits -= 8;
                out.push((acc >> bits) as u8);
            }
        }
        if bits > 0 {
            out.push(((acc << (8 - bits)) | (0xff >> bits)) as u8);
        }
        out
    }

    fn decoded(src: &[u8]) -> Result<Vec<u8>, DecodeError> {
        let mut out = Vec::new();
        decode(src, &mut out).map(|()| out)
    }

    #[test]
    fn the_table_is_a_complete_canonical_code() {
        // Kraft: sum of 2^-len over all symbols is exactly 1.
        let kraft: u64 = CODES.iter().map(|&(_, len)| 1u64 << (30 - len)).sum();
        assert_eq!(kraft, 1 << 30);
        // Canonical: sorted by (length, symbol), each code is the previous plus one, shifted.
        let mut order: Vec<usize> = (0..CODES.len()).collect();
        order.sort_by_key(|&s| (CODES[s].1, s));
        let mut expected = 0u32;
        let mut prev_len = CODES[order[0]].1;
        for (i, &s) in order.iter().enumerate() {
            let (code, len) = CODES[s];
            if i > 0 {
                expected = (expected + 1) << (len - prev_len);
            }
            assert_eq!(code, expected, "symbol {s}");
            prev_len = len;
        }
        assert_eq!(CODES[EOS], (0x3fff_ffff, 30));
    }

    #[test]
    fn every_byte_value_round_trips() {
        for b in 0..=255u8 {
            assert_eq!(decoded(&encode(&[b])), Ok(vec![b]), "byte {b}");
            assert_eq!(decoded(&encode(&[b, b, b])), Ok(vec![b, b, b]), "byte {b}");
        }
        let all: Vec<u8> = (0..=255).collect();
        assert_eq!(decoded(&encode(&all)), Ok(all.clone()));
        let reversed: Vec<u8> = all.iter().rev().copied().collect();
        assert_eq!(decoded(&encode(&reversed)), Ok(reversed));
    }

    #[test]
    fn strings_of_the_rfc_examples_decode() {
        let cases: [(&[u8], &[u8]); 4] = [
            (
                &[
                    0xf1, 0xe3, 0xc2, 0xe5, 0xf2, 0x3a, 0x6b, 0xa0, 0xab, 0x90, 0xf4, 0xff,
                ],
                b"www.example.com",
            ),
            (&[0xa8, 0xeb, 0x10, 0x64, 0x9c, 0xbf], b"no-cache"),
            (&[0x64, 0x02], b"302"),
            (&[0xae, 0xc3, 0x77, 0x1a, 0x4b], b"private"),
        ];
        for (src, text) in cases {
            assert_eq!(decoded(src).as_deref(), Ok(text));
            assert_eq!(encode(text), src);
        }
    }

    #[test]
    fn the_empty_string_and_up_to_seven_bits_of_padding_are_valid() {
        assert_eq!(decoded(&[]), Ok(vec![]));
        // '0' is 00000: three bits of padding.
        assert_eq!(decoded(&[0b0000_0111]), Ok(b"0".to_vec()));
        // 'a' (00011) '0' (00000) then 6 bits of ones.
        assert_eq!(decoded(&[0b0001_1000, 0b0011_1111]), Ok(b"a0".to_vec()));
        // ':' is 1011100 (7 bits) then one bit of padding.
        assert_eq!(decoded(&[0b1011_1001]), Ok(b":".to_vec()));
    }

    #[test]
    fn bad_padding_is_an_error() {
        // Padding that is not all ones.
        assert_eq!(decoded(&[0b0000_0000]), Err(DecodeError::HuffmanPadding));
        assert_eq!(decoded(&[0b0000_0110]), Err(DecodeError::HuffmanPadding));
        // Eight bits of padding: a whole byte of ones after a symbol that ended on a boundary.
        assert_eq!(decoded(&[0xff]), Err(DecodeError::HuffmanPadding));
        // 'a' then 11 bits of ones.
        assert_eq!(
            decoded(&[0b0001_1111, 0xff]),
            Err(DecodeError::HuffmanPadding)
        );
        // A symbol cut short: the first 8 of the 10 bits of '!' (11111110|00).
        assert_eq!(decoded(&[0xfe]), Err(DecodeError::HuffmanPadding));
        // ... and the whole 13 bits of byte 0 (11111111|11000) followed by proper padding.
        assert_eq!(decoded(&[0xff, 0b1100_0111]), Ok(vec![0]));
    }

    #[test]
    fn eos_in_the_string_is_an_error() {
        // EOS alone: 30 ones, padded with two more.
        assert_eq!(decoded(&[0xff; 4]), Err(DecodeError::HuffmanEos));
        // After a symbol: '0' (00000), EOS (30 ones), five bits of padding.
        let src = [0b0000_0111, 0xff, 0xff, 0xff, 0xff];
        assert_eq!(decoded(&src), Err(DecodeError::HuffmanEos));
    }
}
