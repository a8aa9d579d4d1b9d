//! What one migration's commit to the cold tier's Delta table costs, and
//! how it grows with the table: 500 commits of 10 files each (`add`
//! actions and the store's `txn`, as a migration spanning 10 days writes
//! them) to a table on the local disk, each timed; then the open and read
//! of the whole table that every store open does.
//!
//! `cargo run --release -p gpu-tiered --example table_commit_cost`

use std::time::Instant;

use tiered::gen::START_NS;
use tiered::schema::Mode;
use tiered::store::cold::{self, ColdFile};
use tiered::store::objects::ColdStore;
use tiered::store::table::ColdTable;

const COMMITS: u64 = 500;
const FILES: i64 = 10;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let table = ColdTable::create(
        &ColdStore::local(dir.path()),
        &Mode::Trading.schema(),
        "example",
    )?;
    let mut ms = Vec::new();
    for lsn in 1..=COMMITS {
        let files: Vec<ColdFile> = (0..FILES)
            .map(|day| {
                let partition = cold::partition_of_day(19_723 + day);
                ColdFile {
                    path: std::path::Path::new(&partition).join(cold::file_name(lsn, lsn)),
                    partition,
                    rows: 100_000,
                    min_ts: START_NS,
                    max_ts: START_NS + 1,
                    symbols: vec!["BTC/USD".into(), "ETH/USD".into()],
                    bytes: 2_000_000,
                    lsn_lo: lsn,
                    lsn_hi: lsn,
                    crc32c: 0,
                }
            })
            .collect();
        let start = Instant::now();
        table.add(&files, lsn)?;
        ms.push(start.elapsed().as_secs_f64() * 1e3);
    }
    let mean = |xs: &[f64]| xs.iter().sum::<f64>() / xs.len() as f64;
    let mut sorted = ms.clone();
    sorted.sort_by(f64::total_cmp);
    let n = ms.len();
    println!(
        "{COMMITS} commits of {FILES} files: median {:.1} ms, p99 {:.1} ms; the first 10 {:.1} ms each, the last 10 {:.1} ms each ({} files in the table by then)",
        sorted[n / 2],
        sorted[n * 99 / 100],
        mean(&ms[..10]),
        mean(&ms[n - 10..]),
        COMMITS as i64 * FILES
    );
    let start = Instant::now();
    let state = ColdTable::open(&ColdStore::local(dir.path()), "example")?.state()?;
    println!(
        "open and read of the table ({} versions, {} files): {:.1} ms",
        state.version + 1,
        state.files.len(),
        start.elapsed().as_secs_f64() * 1e3
    );
    Ok(())
}
