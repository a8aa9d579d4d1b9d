//! Records from outside: the decoders of request bodies ([`decode`]: JSON,
//! NDJSON and Arrow IPC) and of files ([`files`]: CSV and Parquet), and
//! ingestion jobs recorded in the catalog ([`jobs`]: files, or the trade
//! generator, with progress and cancellation).

pub mod decode;
pub mod files;
pub mod jobs;
