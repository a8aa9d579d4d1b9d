//! Phase 07: a tiered time-series engine.
//!
//! Records of the trading schema ([`schema`]) enter through [`Engine::ingest`],
//! which returns once they are in the write-ahead log ([`store::wal`]) and
//! fsynced. They live first in the hot tier ([`store::hot`]: recent batches as
//! they came), then in the warm tier ([`store::warm`]: columns in memory,
//! symbols dictionary-encoded, behind a trait the GPU implementation
//! [`store::gpu`] plugs into), then in the cold tier ([`store::cold`]: Parquet
//! files partitioned by day, sorted by symbol and time), listed in a SQLite
//! catalog ([`store::catalog`]) that also holds ingestion jobs, data-quality
//! results and the retention log. Queries ([`read`]) filter, sort, limit and
//! aggregate across the three tiers and stream Arrow batches.
//!
//! # Layers
//!
//! Each layer uses only the layers above it in this list, never one below
//! it, and no two modules use each other, a folder counting as one module
//! (its `mod.rs` declares and re-exports its children, which may use it);
//! `tests/layers.rs` checks both:
//!
//! 1. The vocabulary: [`error`], [`schema`], [`config`], [`filter`] (conditions
//!    and their `column OP value` text), [`gen`] (generated trades),
//!    [`output`] (rows as text).
//! 2. [`agg`]: exact sums and the per-group partials every tier reduces to.
//! 3. [`store`]: one module per place records live, each knowing nothing of
//!    the others above it: [`store::wal`], [`store::cold`],
//!    [`store::catalog`], [`store::idempotency`], [`store::hot`],
//!    [`store::warm`], [`store::gpu`], [`store::cache`].
//! 4. [`engine`]: the tiers together: opening and recovery, ingest, migration
//!    between tiers, retention.
//! 5. [`read`]: queries, top-K, aggregates and data quality over the engine.
//! 6. [`ingest`]: one decoder per body or file format, and ingestion jobs.
//! 7. [`api`]: the HTTP API and its client.
//!
//! The binary (`src/bin/07_gpu_tiered/`) parses arguments, calls this
//! library and prints, one file per command.

pub mod config;
pub mod error;
pub mod filter;
pub mod gen;
pub mod output;
pub mod schema;

pub mod agg;
pub mod api;
pub mod engine;
pub mod ingest;
pub mod read;
pub mod store;

pub use config::Config;
pub use engine::Engine;
pub use error::{Error, Result};
pub use schema::Mode;
