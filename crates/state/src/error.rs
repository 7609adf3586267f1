//! Why the state store failed.

use std::path::PathBuf;

/// A state-store failure, worded for the operator's log.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The database file could not be opened or created.
    #[error("cannot open state database {path}: {source}")]
    Open {
        /// The database file.
        path: PathBuf,
        /// What SQLite said.
        source: rusqlite::Error,
    },
    /// The file was written by a newer Flotilla whose schema this one does not know.
    #[error("state database schema version {found} is newer than this flotilla understands ({known}); upgrade flotilla or move the state_dir aside")]
    TooNew {
        /// Version in the file.
        found: u32,
        /// Newest version this build knows.
        known: u32,
    },
    /// A read or write failed.
    #[error("state database: {0}")]
    Sql(#[from] rusqlite::Error),
}
