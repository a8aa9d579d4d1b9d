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
    /// Delete finished jobs (done, failed or cancelled) that finished at
    /// least --max-age ago. Pending and running jobs are kept.
    Cleanup {
        /// How long a finished job is kept: e.g. 24h, 90m, 7d, 0s (every
        /// finished job).
        #[arg(long, value_name = "DURATION", default_value = "24h", value_parser = parse_age)]
        max_age: std::time::Duration,
        /// The same in hours (the earlier spelling).
        #[arg(long, hide = true, conflicts_with = "max_age", value_parser = parse_hours)]
        older_than_hours: Option<std::time::Duration>,
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
        JobCommand::Cleanup {
            max_age,
            older_than_hours,
        } => {
            let max_age = older_than_hours.unwrap_or(max_age);
            let n = catalog_only()?.cleanup_jobs(max_age)?;
            println!(
                "deleted {n} finished jobs that finished at least {} ago",
                squeeze::time::format_duration(
                    i64::try_from(max_age.as_nanos()).unwrap_or(i64::MAX)
                )
            );
        }
    }
    Ok(())
}

/// `--max-age`: a duration as `squeeze::time::parse_duration` reads it
/// (`24h`, `90m`, `7d`; never negative).
fn parse_age(text: &str) -> std::result::Result<std::time::Duration, String> {
    squeeze::time::parse_duration(text)
        .map(|ns| std::time::Duration::from_nanos(ns.unsigned_abs()))
        .map_err(|e| e.to_string())
}

/// `--older-than-hours`: a finite number of hours, at least 0 (NaN or a
/// negative age would have deleted every finished job).
fn parse_hours(text: &str) -> std::result::Result<std::time::Duration, String> {
    let hours: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a number of hours"))?;
    if !hours.is_finite() || hours < 0.0 {
        return Err(format!(
            "{text:?}: hours must be a finite number, at least 0"
        ));
    }
    std::time::Duration::try_from_secs_f64(hours * 3600.0).map_err(|e| format!("{text:?}: {e}"))
}
