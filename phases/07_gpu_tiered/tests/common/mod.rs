//! Helpers shared by the phase 07 tests.
#![allow(dead_code)]

use std::path::Path;

use arrow_array::RecordBatch;
use tiered::config::Config;
use tiered::schema::Mode;

/// A configuration for a store in `dir` with small tiers, so that a few
/// thousand records span hot, warm and cold.
pub fn small_config(dir: &Path, mode: Mode) -> Config {
    let mut c = Config {
        mode: Some(mode),
        ..Config::default()
    };
    c.storage.base_path = dir.to_path_buf();
    c.hot_tier.max_records = 1_000;
    c.warm_tier.max_memory_mb = 0.05; // ~52 KB: about 1,800 simple rows
    c.wal.segment_mb = 0.05;
    c.cold_tier.row_group_rows = 512;
    c.cold_tier.page_rows = 64;
    c
}

/// Concatenates batches of one schema.
pub fn concat(batches: &[RecordBatch]) -> RecordBatch {
    arrow_select::concat::concat_batches(&batches[0].schema(), batches).unwrap()
}
