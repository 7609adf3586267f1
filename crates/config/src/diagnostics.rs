//! Error types and the byte-offset → `LINE:COL` conversion used to report them.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// One problem found in a config file, located precisely enough for an editor to jump to it.
///
/// `flotilla validate` prints these verbatim, one per line, so the format
/// `FILE:LINE:COL: message` is part of the user-facing contract.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The config file exactly as the caller named it (not canonicalised), so messages match
    /// what the user typed on the command line.
    pub file: PathBuf,
    /// 1-based line number.
    pub line: usize,
    /// 1-based column, counted in characters (not bytes) from the start of the line.
    pub column: usize,
    /// Human-readable explanation, without the location prefix.
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file.display(),
            self.line,
            self.column,
            self.message
        )
    }
}

/// Every problem found in one config file, in file order.
///
/// Validation never stops at the first error: users fix a config faster when they see all of
/// its problems at once, like `terraform validate` or a compiler.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    /// Iterates over the diagnostics in file order.
    pub fn iter(&self) -> std::slice::Iter<'_, Diagnostic> {
        self.0.iter()
    }

    /// Number of problems found.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when no problem was found (never the case inside [`ConfigError::Invalid`]).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

impl<'a> IntoIterator for &'a Diagnostics {
    type Item = &'a Diagnostic;
    type IntoIter = std::slice::Iter<'a, Diagnostic>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

/// Why a config could not be loaded.
///
/// Kept to two cases so callers (`flotilla validate`, `POST /v1/reload`) can tell "the file is
/// not there" from "the file is wrong" and report the latter line by line.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read at all (missing, permissions, not UTF-8).
    #[error("{}: cannot read config: {source}", path.display())]
    Io {
        /// The path as given by the caller.
        path: PathBuf,
        /// The underlying operating-system error.
        source: std::io::Error,
    },
    /// The file was read but has one or more problems; displayed one diagnostic per line.
    #[error("{0}")]
    Invalid(Diagnostics),
}

impl ConfigError {
    /// The individual problems, if this is an [`ConfigError::Invalid`] error.
    pub fn diagnostics(&self) -> &[Diagnostic] {
        match self {
            ConfigError::Invalid(d) => &d.0,
            ConfigError::Io { .. } => &[],
        }
    }
}

/// Maps byte offsets of the source text to 1-based line and character column.
pub(crate) struct LineIndex<'s> {
    source: &'s str,
    line_starts: Vec<usize>,
}

impl<'s> LineIndex<'s> {
    pub(crate) fn new(source: &'s str) -> Self {
        let mut line_starts = vec![0];
        line_starts.extend(source.match_indices('\n').map(|(i, _)| i + 1));
        Self {
            source,
            line_starts,
        }
    }

    /// 1-based `(line, column)` of a byte offset; offsets past the end or inside a UTF-8
    /// sequence are clamped rather than panicking.
    pub(crate) fn locate(&self, offset: usize) -> (usize, usize) {
        let mut offset = offset.min(self.source.len());
        while !self.source.is_char_boundary(offset) {
            offset -= 1;
        }
        let line = self.line_starts.partition_point(|&s| s <= offset);
        let start = self
            .line_starts
            .get(line.wrapping_sub(1))
            .copied()
            .unwrap_or(0);
        let column = self
            .source
            .get(start..offset)
            .map_or(0, |s| s.chars().count());
        (line.max(1), column + 1)
    }

    /// Turns raw `(span, message)` pairs into sorted, de-duplicated diagnostics.
    pub(crate) fn finish(&self, file: &Path, raw: Vec<(Range<usize>, String)>) -> Diagnostics {
        let mut out: Vec<Diagnostic> = raw
            .into_iter()
            .map(|(span, message)| {
                let (line, column) = self.locate(span.start);
                Diagnostic {
                    file: file.to_path_buf(),
                    line,
                    column,
                    message,
                }
            })
            .collect();
        out.sort_by_key(|d| (d.line, d.column));
        out.dedup();
        Diagnostics(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locates_lines_and_char_columns() {
        let idx = LineIndex::new("ab\nçd=1\n\nx");
        assert_eq!(idx.locate(0), (1, 1));
        assert_eq!(idx.locate(2), (1, 3));
        assert_eq!(idx.locate(3), (2, 1));
        assert_eq!(idx.locate(6), (2, 3)); // after 'ç' (2 bytes) and 'd'
        assert_eq!(idx.locate(5), (2, 2));
        assert_eq!(idx.locate(4), (2, 1)); // inside 'ç' clamps back
        assert_eq!(idx.locate(10), (4, 1));
        assert_eq!(idx.locate(999), (4, 2));
    }

    #[test]
    fn display_formats() {
        let d = Diagnostic {
            file: PathBuf::from("a/b.toml"),
            line: 3,
            column: 7,
            message: "bad".into(),
        };
        assert_eq!(d.to_string(), "a/b.toml:3:7: bad");
        let e = ConfigError::Invalid(Diagnostics(vec![d.clone(), d]));
        assert_eq!(e.to_string(), "a/b.toml:3:7: bad\na/b.toml:3:7: bad");
    }
}
