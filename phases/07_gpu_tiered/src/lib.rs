//! Phase 07: a tiered time-series engine.
//!
//! Records of the trading schema ([`schema`]) enter through [`Engine::ingest`],
//! which returns once they are in the write-ahead log ([`wal`]) and fsynced.
//! They live first in the hot tier (recent batches as they came), then in the
//! warm tier ([`warm`]: columns in memory, symbols dictionary-encoded, behind
//! a trait the GPU implementation plugs into), then in the cold tier
//! ([`cold`]: Parquet files partitioned by day, sorted by symbol and time),
//! listed in a SQLite catalog ([`catalog`]) that also holds ingestion jobs,
//! data-quality results and the retention log. Queries ([`query`]) filter,
//! sort and limit across the three tiers and stream Arrow batches.

pub mod agg;
pub mod bench;
pub mod cache;
pub mod catalog;
pub mod cold;
pub mod config;
pub mod decode;
pub mod engine;
pub mod error;
pub mod filter;
pub mod gen;
pub mod gpu;
pub mod hot;
pub mod http;
pub mod idempotency;
pub mod jobs;
pub mod output;
pub mod quality;
pub mod query;
pub mod recovery;
pub mod schema;
pub mod server;
pub mod topk;
pub mod wal;
pub mod warm;

pub use config::Config;
pub use engine::Engine;
pub use error::{Error, Result};
pub use schema::Mode;
