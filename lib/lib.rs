//! # squeeze — the library behind squeezed-signals
//!
//! squeezed-signals is a course: eight numbered binaries that take one
//! metrics dataset from NDJSON to compressed, indexed storage, measuring every
//! step. This crate is where the work happens; the binaries only parse
//! arguments, call it and print.
//!
//! | module | what it is for |
//! |--------|----------------|
//! | [`model`] | samples, series, label sets, the dataset |
//! | [`generate`] | the deterministic dataset generator of phase 00 |
//! | [`import`] | reading real metrics: CSV, Prometheus text, Influx line protocol |
//! | [`codec`] | bit I/O, varints, delta-of-delta, run-lengths, Gorilla XOR, packed integers, the adaptive value codec |
//! | [`format`](mod@format) | the on-disk formats: canonical dataset, NDJSON, columnar, Gorilla, adaptive, `.metrics` |
//! | [`matcher`] | series selectors (`metric{label="value"}`) |
//! | [`downsample`] | rollups and their measured loss (phase 05) |
//! | [`reference`](mod@reference) | zstd, pco and tsz on the same samples, for comparison |
//! | [`query`] | the phase 06 query engine: SQL subset, label index, block pruning, time-series functions |
//! | [`course`] | each phase as a library call that writes, reads back, verifies and reports; [`course::Phase`] lists them |
//! | [`report`] | the one report record and the comparative report |
//! | [`error`] | the one error type |
//! | [`bytes`] | the bounds-checked reader every decoder reads untrusted bytes with |
//! | [`files`] | writing files so that a failure never leaves a partial artifact |
//! | [`time`] | timestamps and durations as users write them |
//! | [`cli`] | the options every phase binary shares |

pub mod bytes;
pub mod cli;
pub mod codec;
pub mod course;
pub mod downsample;
pub mod error;
pub mod files;
pub mod format;
pub mod generate;
pub mod import;
pub mod matcher;
pub mod model;
pub mod query;
pub mod reference;
pub mod report;
pub mod time;

pub use error::{Error, Result};
pub use model::{Dataset, Labels, Series, SeriesKey};
