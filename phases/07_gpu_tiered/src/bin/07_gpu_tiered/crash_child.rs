//! `crash-child` (hidden, for the crash tests): numbered batches ingested
//! forever, each announced before and acknowledged after.

use std::io::Write;

use arrow_array::RecordBatch;

use tiered::config::Config;
use tiered::engine::Engine;
use tiered::error::{Error, Result};
use tiered::gen::Generator;
use tiered::schema::Mode;

#[derive(Debug, clap::Args)]
pub struct CrashChildArgs {
    #[arg(long)]
    pub first_batch: u64,
    #[arg(long, default_value_t = 500)]
    pub rows: usize,
}

pub fn run(mut config: Config, CrashChildArgs { first_batch, rows }: CrashChildArgs) -> Result<()> {
    config.mode = Some(Mode::Trading);
    let engine = Engine::open(config)?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut gen = Generator::new(Mode::Trading, 1, 7);
    for n in first_batch.. {
        let batch = gen.batch(rows)?;
        // Stamp the batch's trade ids with its number so that the parent
        // can tell batches apart: ids n*rows .. (n+1)*rows.
        let ids = arrow_array::Int64Array::from_iter_values(
            (0..rows as i64).map(|i| n as i64 * rows as i64 + i),
        );
        let mut cols = batch.columns().to_vec();
        cols[6] = std::sync::Arc::new(ids);
        let batch = RecordBatch::try_new(batch.schema(), cols)
            .map_err(|e| Error::arrow("stamping a batch", e))?;
        writeln!(out, "begin {n}").map_err(|e| Error::io("<stdout>", e))?;
        out.flush().map_err(|e| Error::io("<stdout>", e))?;
        engine.ingest(&batch)?;
        writeln!(out, "ack {n}").map_err(|e| Error::io("<stdout>", e))?;
        out.flush().map_err(|e| Error::io("<stdout>", e))?;
    }
    Ok(())
}
