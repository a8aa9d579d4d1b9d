//! `jobs`: ingestion jobs recorded in the catalog.

use clap::Subcommand;
use indicatif::{ProgressBar, ProgressStyle};

use crate::common::{open, print_tiers};
use tiered::config::Config;
use tiered::error::{Error, Result};
use tiered::ingest::jobs;
use tiered::store::catalog;

#[derive(Debug, clap::Args)]
pub struct JobsArgs {
    #[command(subcommand)]
    pub command: JobCommand,
}

#[derive(Debug, Subcommand)]
pub enum JobCommand {
    /// Create a pending job: SOURCE is a .csv or .parquet file, or `gen:RECORDS[:SEED]`.
    Create { source: String },
    /// Run a pending job in this process, with progress.
    Start {
        id: i64,
        #[arg(long, default_value_t = 100_000)]
        batch_size: usize,
    },
    /// A job's state and progress.
    Status { id: i64 },
    /// Cancel a pending or running job.
    Cancel { id: i64 },
    /// Every job, newest first.
    List,
    /// Delete finished jobs older than the given hours.
    Cleanup {
        #[arg(long, default_value_t = 24.0)]
        older_than_hours: f64,
    },
}

pub fn run(config: Config, JobsArgs { command }: JobsArgs) -> Result<()> {
    // Reading and changing job rows needs only the catalog, so status and
    // cancel work while another process runs the job.
    let catalog_only = || -> Result<catalog::Catalog> {
        std::fs::create_dir_all(&config.storage.base_path)
            .map_err(|e| Error::io(&config.storage.base_path, e))?;
        catalog::Catalog::open(&config.catalog_path())
    };
    // Reading job rows changes nothing, not even a missing catalog.
    let catalog_to_read = || -> Result<catalog::Catalog> {
        let path = config.catalog_path();
        if path.exists() {
            catalog::Catalog::open_read_only(&path)
        } else {
            catalog::Catalog::open_in_memory()
        }
    };
    let show = |j: &catalog::Job| {
        let progress = match j.records_total {
            Some(t) if t > 0 => format!(
                "{}/{} ({:.1}%)",
                j.records_done,
                t,
                100.0 * j.records_done as f64 / t as f64
            ),
            _ => format!("{}", j.records_done),
        };
        println!(
            "job {}: {} {} records {}{}",
            j.id,
            j.state,
            j.source,
            progress,
            j.error
                .as_deref()
                .map(|e| format!(" error: {e}"))
                .unwrap_or_default()
        );
    };
    match command {
        JobCommand::Create { source } => {
            jobs::Source::parse(&source)?;
            let id = catalog_only()?.create_job(&source)?;
            println!("created job {id} ({source}); run it with: 07_gpu_tiered jobs start {id}");
        }
        JobCommand::Start { id, batch_size } => {
            let engine = open(config)?;
            let bar = ProgressBar::new(0);
            bar.set_style(
                ProgressStyle::with_template("{bar:30} {pos}/{len} records {per_sec} ETA {eta}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            let result = jobs::run(&engine, id, batch_size, |done, total| {
                if let Some(t) = total {
                    bar.set_length(t);
                }
                bar.set_position(done);
            });
            bar.finish_and_clear();
            match result {
                Ok(n) => println!("job {id}: done, {n} records"),
                Err(Error::Cancelled(_)) => println!("job {id}: cancelled"),
                Err(e) => return Err(e),
            }
            print_tiers(&engine.stats()?);
        }
        JobCommand::Status { id } => show(&catalog_to_read()?.job(id)?),
        JobCommand::Cancel { id } => show(&catalog_only()?.cancel_job(id)?),
        JobCommand::List => {
            let jobs = catalog_to_read()?.jobs()?;
            if jobs.is_empty() {
                println!("no jobs");
            }
            jobs.iter().for_each(show);
        }
        JobCommand::Cleanup { older_than_hours } => {
            let n = catalog_only()?.cleanup_jobs(older_than_hours)?;
            println!("deleted {n} finished jobs older than {older_than_hours} hours");
        }
    }
    Ok(())
}
