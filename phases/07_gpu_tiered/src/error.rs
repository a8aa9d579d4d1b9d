//! The one error type of the tiered engine.
//!
//! Errors say what went wrong and where: the file and byte offset of a WAL
//! record, the Parquet file, the configuration key, the column of a batch.

use std::path::{Path, PathBuf};

/// The crate's result alias.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in the tiered engine.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An operating-system I/O error on a named file or directory.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// Bytes on disk that are present but wrong (checksum, framing, footer).
    #[error("{what} is corrupt at byte {offset}: {reason}")]
    Corrupt {
        what: String,
        offset: u64,
        reason: String,
    },

    /// A batch that does not fit the store's schema, or a value out of range.
    #[error("invalid batch: {0}")]
    Schema(String),

    /// A configuration file or environment variable that cannot be used.
    #[error("configuration: {0}")]
    Config(String),

    /// An argument or request the engine refuses (bad filter, unknown column).
    #[error("{0}")]
    InvalidArgument(String),

    /// Something asked for by name that does not exist (a job id, a file).
    #[error("{0} not found")]
    NotFound(String),

    /// An Arrow encoding or decoding error, with what was being done.
    #[error("{context}: {source}")]
    Arrow {
        context: String,
        #[source]
        source: arrow_schema::ArrowError,
    },

    /// A Parquet error on a named file.
    #[error("{path}: {source}")]
    Parquet {
        path: PathBuf,
        #[source]
        source: parquet::errors::ParquetError,
    },

    /// A SQLite error from the catalog.
    #[error("catalog {path}: {source}")]
    Catalog {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },

    /// The engine stopped accepting writes after a failed WAL write or fsync:
    /// the state of the log on disk is unknown, so it must be reopened.
    #[error("the write-ahead log failed earlier ({0}); reopen the store to recover")]
    Poisoned(String),

    /// The store's parts disagree (catalog, cold files, WAL) in a way that
    /// opening it would have to guess about; nothing was changed. The text
    /// lists what disagrees and how to repair it.
    #[error("{0}")]
    Inconsistent(String),

    /// The cold tier's Delta table could not be read or written (delta-rs'
    /// error, without its backtrace).
    #[error("{0}")]
    Table(String),

    /// An idempotency key sent again with a different batch: the first
    /// batch stays stored, the second is refused.
    #[error("{0}")]
    KeyConflict(String),

    /// The store cannot take more now (a tier past its bound while moves
    /// between tiers fail); nothing was stored. Try again after
    /// `retry_after_s` seconds.
    #[error("{message}")]
    Busy { message: String, retry_after_s: u64 },

    /// A job was cancelled while it ran.
    #[error("job {0} was cancelled")]
    Cancelled(i64),
}

impl Error {
    /// An I/O error on `path`.
    pub fn io(path: impl AsRef<Path>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.as_ref().to_path_buf(),
            source,
        }
    }

    /// An Arrow error while doing `context`.
    pub fn arrow(context: impl Into<String>, source: arrow_schema::ArrowError) -> Self {
        Error::Arrow {
            context: context.into(),
            source,
        }
    }

    /// A Parquet error on `path`.
    pub fn parquet(path: impl AsRef<Path>, source: parquet::errors::ParquetError) -> Self {
        Error::Parquet {
            path: path.as_ref().to_path_buf(),
            source,
        }
    }

    /// A catalog error on the database at `path`.
    pub fn catalog(path: impl AsRef<Path>, source: rusqlite::Error) -> Self {
        Error::Catalog {
            path: path.as_ref().to_path_buf(),
            source,
        }
    }

    /// Corrupt bytes in `what` at `offset`.
    pub fn corrupt(what: impl Into<String>, offset: u64, reason: impl Into<String>) -> Self {
        Error::Corrupt {
            what: what.into(),
            offset,
            reason: reason.into(),
        }
    }
}
