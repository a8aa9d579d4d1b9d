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

/// Rows as comparable strings, floats by their bits.
pub fn row_keys(b: &RecordBatch) -> Vec<String> {
    use arrow_array::cast::AsArray;
    use arrow_array::types::{Float64Type, Int32Type, Int64Type, TimestampNanosecondType};
    use arrow_schema::DataType;
    (0..b.num_rows())
        .map(|r| {
            b.columns()
                .iter()
                .map(|c| match c.data_type() {
                    DataType::Float64 => c
                        .as_primitive::<Float64Type>()
                        .value(r)
                        .to_bits()
                        .to_string(),
                    DataType::Utf8 => c.as_string::<i32>().value(r).to_string(),
                    DataType::Timestamp(..) => c
                        .as_primitive::<TimestampNanosecondType>()
                        .value(r)
                        .to_string(),
                    DataType::Int64 => c.as_primitive::<Int64Type>().value(r).to_string(),
                    DataType::Int32 => c.as_primitive::<Int32Type>().value(r).to_string(),
                    other => panic!("no key for {other}"),
                })
                .collect::<Vec<_>>()
                .join("|")
        })
        .collect()
}

/// Every file under `dir` with its bytes, by path relative to `dir`.
pub fn files_under(dir: &Path) -> std::collections::BTreeMap<std::path::PathBuf, Vec<u8>> {
    let mut out = std::collections::BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(dir).unwrap().to_path_buf();
                out.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

/// The cold tier's Delta table holds exactly the catalog's files, and the
/// store's transaction version in it is the catalog's watermark.
pub fn assert_table_agrees(config: &Config) {
    use std::collections::BTreeSet;
    use tiered::store::catalog::Catalog;
    use tiered::store::table::ColdTable;
    let catalog = Catalog::open_read_only(&config.catalog_path()).unwrap();
    let (id, _) = catalog.store_id().unwrap().unwrap();
    let listed: BTreeSet<_> = catalog
        .files()
        .unwrap()
        .into_iter()
        .map(|f| f.path)
        .collect();
    let state = ColdTable::open(&tiered::store::objects::ColdStore::of(config).unwrap(), &id)
        .unwrap()
        .state()
        .unwrap();
    let held: BTreeSet<_> = state.files.iter().map(|f| f.path.clone()).collect();
    assert_eq!(held, listed, "the table's files are the catalog's");
    // No txn yet: this store never committed a migration (watermark 0).
    assert_eq!(
        state.committed_through.unwrap_or(0),
        catalog.watermark().unwrap()
    );
}

/// Writes trading-mode `batches` as a CSV file with a header, floats in
/// their shortest exact form (so that the ingester reads back the same
/// bits).
pub fn write_trades_csv(path: &Path, batches: impl IntoIterator<Item = RecordBatch>) {
    use arrow_array::cast::AsArray;
    use arrow_array::types::{Float64Type, Int32Type, Int64Type, TimestampNanosecondType};
    use std::io::Write;
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    writeln!(
        out,
        "timestamp,symbol,price,volume,side,exchange,trade_id,flags"
    )
    .unwrap();
    for b in batches {
        let ts = b.column(0).as_primitive::<TimestampNanosecondType>();
        let sym = b.column(1).as_string::<i32>();
        let price = b.column(2).as_primitive::<Float64Type>();
        let vol = b.column(3).as_primitive::<Float64Type>();
        let side = b.column(4).as_string::<i32>();
        let ex = b.column(5).as_string::<i32>();
        let id = b.column(6).as_primitive::<Int64Type>();
        let flags = b.column(7).as_primitive::<Int32Type>();
        for r in 0..b.num_rows() {
            writeln!(
                out,
                "{},{},{:?},{:?},{},{},{},{}",
                ts.value(r),
                sym.value(r),
                price.value(r),
                vol.value(r),
                side.value(r),
                ex.value(r),
                id.value(r),
                flags.value(r)
            )
            .unwrap();
        }
    }
    out.flush().unwrap();
}
