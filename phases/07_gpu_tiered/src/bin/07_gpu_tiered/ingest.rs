//! `ingest`: CSV or Parquet files into the store.

use std::io::Write;
use std::time::Instant;

use arrow_array::RecordBatch;

use tiered::config::Config;
use tiered::error::{Error, Result};
use tiered::ingest::files::read_file;

use crate::common::{open, print_tiers};
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct IngestArgs {
    pub files: Vec<PathBuf>,
    #[arg(long, default_value_t = 100_000)]
    pub batch_size: usize,
    /// Name this ingest for retries: at most 200 visible ASCII characters.
    #[arg(long)]
    pub idempotency_key: Option<String>,
    /// Print a line per batch: `batch F:B lsn L records R stored|already stored`.
    #[arg(long)]
    pub log_batches: bool,
}

pub fn run(config: Config, args: IngestArgs) -> Result<()> {
    let IngestArgs {
        files,
        batch_size,
        idempotency_key,
        log_batches,
    } = args;
    if let Some(k) = &idempotency_key {
        if k.len() > 200 {
            return Err(Error::InvalidArgument(
                "--idempotency-key: at most 200 characters (batches add :FILE:BATCH)".into(),
            ));
        }
        tiered::store::idempotency::check_key(k)
            .map_err(|e| Error::InvalidArgument(format!("--idempotency-key: {e}")))?;
    }
    let engine = open(config)?;
    let stdout = std::io::stdout();
    for (file_no, f) in files.iter().enumerate() {
        let started = Instant::now();
        let (mut n, mut batch_no, mut skipped) = (0u64, 0u64, 0u64);
        let mut step = |b: RecordBatch| -> Result<bool> {
            let key = idempotency_key
                .as_ref()
                .map(|k| format!("{k}:{file_no}:{batch_no}"));
            let done = engine.ingest_keyed(&b, key.as_deref()).map_err(|e| {
                Error::InvalidArgument(format!("{}: after {n} records: {e}", f.display()))
            })?;
            if log_batches {
                let mut out = stdout.lock();
                writeln!(
                    out,
                    "batch {file_no}:{batch_no} lsn {} records {} {}",
                    done.lsn,
                    done.records,
                    if done.replayed {
                        "already stored"
                    } else {
                        "stored"
                    }
                )
                .and_then(|()| out.flush())
                .map_err(|e| Error::io("<stdout>", e))?;
            }
            skipped += done.replayed as u64;
            n += b.num_rows() as u64;
            batch_no += 1;
            Ok(true)
        };
        read_file(f, f, engine.mode(), batch_size, &mut step)?;
        println!(
            "{}: {n} records in {:.2} s{}",
            f.display(),
            started.elapsed().as_secs_f64(),
            if skipped > 0 {
                format!(" ({skipped} batches were already stored under their keys)")
            } else {
                String::new()
            }
        );
    }
    print_tiers(&engine.stats()?);
    Ok(())
}
