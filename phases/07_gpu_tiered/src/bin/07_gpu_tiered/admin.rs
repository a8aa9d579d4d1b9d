//! Looking after a store: `stats`, `migrate`, `config`, `quality`,
//! `retention`, `scrub` and `repair`.

use tiered::config::{Config, ENV_VARS};
use tiered::error::{Error, Result};
use tiered::read::quality;
use tiered::store::catalog;

use crate::common::{open, open_read_only, print_tiers, time_arg};

#[derive(Debug, clap::Args)]
pub struct QualityArgs {
    pub symbol: String,
    /// Start (inclusive): UTC time or nanoseconds.
    #[arg(long)]
    pub from: String,
    /// End (exclusive).
    #[arg(long)]
    pub to: String,
    /// Expected interval between records, e.g. 1s, 250ms, 1m.
    #[arg(long, default_value = "1s")]
    pub interval: String,
}

#[derive(Debug, clap::Args)]
pub struct RetentionArgs {
    #[arg(long)]
    pub days: u32,
    /// The reference time (default: the clock).
    #[arg(long)]
    pub now: Option<String>,
}

#[derive(Debug, clap::Args)]
pub struct StatsArgs {
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct ScrubArgs {
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct RepairArgs {
    /// Go on even if records would be lost (a damaged cold file whose
    /// records are not in the WAL, or LSNs neither holds); without it,
    /// repair refuses and says what would be lost.
    #[arg(long)]
    pub accept_loss: bool,
}

pub fn quality(config: Config, args: QualityArgs) -> Result<()> {
    let QualityArgs {
        symbol,
        from,
        to,
        interval,
    } = args;
    let engine = open(config)?;
    let start = time_arg("--from", &from)?;
    let end = time_arg("--to", &to)?;
    let interval = squeeze::time::parse_duration(&interval)
        .map_err(|e| Error::InvalidArgument(format!("--interval: {e}")))?;
    let q = quality::check(&engine, &symbol, start, end, interval)?;
    println!("{}", serde_json::to_string_pretty(&q).unwrap_or_default());
    Ok(())
}

pub fn retention(config: Config, RetentionArgs { days, now }: RetentionArgs) -> Result<()> {
    let engine = open(config)?;
    let now = match now {
        Some(t) => time_arg("--now", &t)?,
        None => catalog::now_secs() * 1_000_000_000,
    };
    let gone = engine.retention(days, now)?;
    let rows: u64 = gone.iter().map(|f| f.rows).sum();
    let bytes: u64 = gone.iter().map(|f| f.bytes).sum();
    println!(
        "deleted {} files ({rows} records, {bytes} bytes) in partitions older than {days} days",
        gone.len()
    );
    Ok(())
}

pub fn stats(config: Config, StatsArgs { json }: StatsArgs) -> Result<()> {
    let engine = open_read_only(config)?;
    let s = engine.stats()?;
    if json {
        println!("{}", serde_json::to_string_pretty(&s).unwrap_or_default());
    } else {
        print_tiers(&s);
        println!(
            "WAL: {} bytes on disk; cold: {} files, {} bytes; watermark LSN {}",
            s.wal_bytes, s.cold_files, s.cold_bytes, s.watermark_lsn
        );
    }
    Ok(())
}

pub fn migrate(config: Config) -> Result<()> {
    let engine = open(config)?;
    engine.migrate_all()?;
    print_tiers(&engine.stats()?);
    Ok(())
}

pub fn config(config: &Config) -> Result<()> {
    println!(
        "{}",
        serde_json::to_string_pretty(&config).unwrap_or_default()
    );
    println!("\nEnvironment overrides:");
    for (k, what) in ENV_VARS {
        println!("  {k:<26} {what}");
    }
    Ok(())
}

pub fn scrub(config: Config, ScrubArgs { json }: ScrubArgs) -> Result<()> {
    let engine = open_read_only(config)?;
    let r = engine.scrub()?;
    if json {
        println!("{}", serde_json::to_string_pretty(&r).unwrap_or_default());
    } else {
        println!(
            "cold: {} files, {} bytes read and checked; {} damaged{}",
            r.files,
            r.bytes,
            r.damaged.len(),
            if r.unreadable.is_empty() {
                String::new()
            } else {
                format!(", {} could not be read", r.unreadable.len())
            }
        );
        for (p, why) in &r.damaged {
            println!("  DAMAGED {}: {why}", p.display());
        }
        for (p, why) in &r.unreadable {
            println!("  NOT READ {}: {why}", p.display());
        }
        match &r.wal_problem {
            None => println!("WAL: {} records checked", r.wal_records),
            Some(why) => println!("WAL: DAMAGED: {why}"),
        }
        match &r.bars_not_checked {
            Some(why) => println!("bars: not checked ({why})"),
            None => println!(
                "bars: {} pages checked; {} problems",
                r.bar_pages,
                r.bars_problems.len()
            ),
        }
        for why in &r.bars_problems {
            println!("  DAMAGED bars: {why}");
        }
        if !r.bars_problems.is_empty() {
            println!("  (bars are derived: `07_gpu_tiered bars --rebuild` rebuilds them from the cold files)");
        }
    }
    if r.damaged.is_empty()
        && r.wal_problem.is_none()
        && r.unreadable.is_empty()
        && r.bars_problems.is_empty()
    {
        Ok(())
    } else {
        Err(Error::Inconsistent(format!(
            "scrub found {} damaged cold files{}{}{}",
            r.damaged.len(),
            if r.unreadable.is_empty() {
                String::new()
            } else {
                format!(
                    " and could not read {} (not damage: fix the error it names and scrub again)",
                    r.unreadable.len()
                )
            },
            if r.wal_problem.is_some() {
                " and a damaged WAL"
            } else {
                ""
            },
            if r.bars_problems.is_empty() {
                String::new()
            } else {
                format!(
                    " and {} problems in the catalog's bars (`bars --rebuild` rebuilds them)",
                    r.bars_problems.len()
                )
            }
        )))
    }
}

pub fn repair(config: &Config, RepairArgs { accept_loss }: RepairArgs) -> Result<()> {
    let r = tiered::engine::recovery::repair(config, accept_loss)?;
    for note in &r.notes {
        println!("  {note}");
    }
    for q in &r.quarantined {
        println!(
            "  quarantined {} -> {} ({})",
            q.from.display(),
            q.to.display(),
            q.why
        );
    }
    println!(
        "repaired: {} mode, {} cold files ({} records{}), watermark LSN {}, WAL {}",
        r.mode.map_or("?", |m| m.name()),
        r.files,
        r.rows,
        if r.undescribed > 0 {
            format!(
                ", {} files without a description of their own",
                r.undescribed
            )
        } else {
            String::new()
        },
        r.watermark,
        match r.wal {
            Some((first, next)) if next > first => {
                format!("holds LSNs {first}..={}", next - 1)
            }
            _ => "holds no record".into(),
        }
    );
    Ok(())
}
