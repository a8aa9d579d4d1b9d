//! Where records live, one module per place: the write-ahead log, the
//! Parquet cold tier and the SQLite catalog that lists it, the idempotency
//! keys of stored batches, the hot and warm tiers in memory (the warm tier on
//! a GPU when there is one), and the cache of finished answers. Each module
//! knows only the ones listed before it here and the vocabulary; the
//! [`engine`](crate::engine) puts them together.

pub mod bars;
pub mod cache;
pub mod catalog;
pub mod cold;
pub mod gpu;
pub mod hot;
pub mod idempotency;
pub mod objects;
pub mod table;
pub mod wal;
pub mod warm;
