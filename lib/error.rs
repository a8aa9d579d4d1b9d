//! The one error type of the library.
//!
//! Every fallible function returns [`Result<T>`]. Errors say *what* went wrong
//! and *where*: the file, the line or the byte offset, and the reason. Nothing
//! on an input path panics; a decoder that meets bytes it cannot trust returns
//! [`Error::Corrupt`] or [`Error::Truncated`].

use std::path::{Path, PathBuf};

/// The library's result alias.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in squeezed-signals.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An operating-system I/O error on a named file.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A line of a text input (CSV, Prometheus, Influx, NDJSON) that cannot
    /// be read (`line` 0: the file as a whole, printed without a line).
    #[error("{}: {reason}", line_of(path, *line))]
    Parse {
        path: PathBuf,
        line: u64,
        reason: String,
    },

    /// Bytes that end before the structure they describe is complete.
    #[error("{what} is truncated at byte {offset}: {reason}")]
    Truncated {
        what: String,
        offset: u64,
        reason: String,
    },

    /// Bytes that are present but wrong: bad magic, bad checksum, an impossible value.
    #[error("{what} is corrupt at byte {offset}: {reason}")]
    Corrupt {
        what: String,
        offset: u64,
        reason: String,
    },

    /// An input file a phase needs does not exist yet.
    #[error("{path} not found: {hint}")]
    MissingInput { path: PathBuf, hint: String },

    /// A read-back that does not equal what was written.
    #[error("verification failed for {artifact}: {reason}")]
    Verify { artifact: String, reason: String },

    /// A query that cannot be parsed; the message names the position.
    #[error("syntax error: {0}")]
    Syntax(String),

    /// A query that parses but uses SQL the engine does not run.
    #[error("unsupported: {0}")]
    Unsupported(String),

    /// A query that names a metric, column or function that does not exist,
    /// or uses one wrongly.
    #[error("{0}")]
    Query(String),

    /// A bad argument or option given by the user or a caller.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
}

impl Error {
    /// Wraps an I/O error with the path it happened on.
    pub fn io(path: impl AsRef<Path>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.as_ref().to_path_buf(),
            source,
        }
    }

    /// A truncation error for `what` at `offset`.
    pub fn truncated(what: impl Into<String>, offset: u64, reason: impl Into<String>) -> Self {
        Error::Truncated {
            what: what.into(),
            offset,
            reason: reason.into(),
        }
    }

    /// A corruption error for `what` at `offset`.
    pub fn corrupt(what: impl Into<String>, offset: u64, reason: impl Into<String>) -> Self {
        Error::Corrupt {
            what: what.into(),
            offset,
            reason: reason.into(),
        }
    }

    /// Prefixes the `what` of a decoding error with its context (a file, a series).
    pub fn within(self, context: impl std::fmt::Display) -> Self {
        match self {
            Error::Truncated {
                what,
                offset,
                reason,
            } => Error::Truncated {
                what: format!("{context}: {what}"),
                offset,
                reason,
            },
            Error::Corrupt {
                what,
                offset,
                reason,
            } => Error::Corrupt {
                what: format!("{context}: {what}"),
                offset,
                reason,
            },
            other => other,
        }
    }
}

/// `FILE:LINE`, or `FILE` alone when the fault is not on one line (0).
fn line_of(path: &std::path::Path, line: u64) -> String {
    if line == 0 {
        path.display().to_string()
    } else {
        format!("{}:{line}", path.display())
    }
}
