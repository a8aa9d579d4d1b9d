//! What several commands share: opening the store (and saying what
//! recovery did), time arguments, output and the tiers' counts.

use std::io::Write;

use clap::ValueEnum;

use tiered::config::Config;
use tiered::engine::{Engine, TierStats};
use tiered::error::{Error, Result};

/// How rows are printed.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Format {
    Table,
    Csv,
    Json,
}

/// Opens the store to read and write, and says on stderr what recovery did.
pub fn open(config: Config) -> Result<Engine> {
    let engine = Engine::open(config)?;
    if let Some((bytes, why)) = &engine.recovery().torn_tail {
        eprintln!("recovery: cut a torn WAL tail of {bytes} bytes ({why})");
    }
    for note in &engine.opened().segment_notes {
        eprintln!("recovery: {note}");
    }
    for note in &engine.opened().table_notes {
        eprintln!("recovery: {note}");
    }
    if let Some(kept) = &engine.recovery().cut_kept {
        eprintln!("recovery: the bytes cut are kept in {}", kept.display());
    }
    if let Some(note) = &engine.opened().bars {
        eprintln!("recovery: {note}");
    }
    for id in &engine.opened().interrupted_jobs {
        eprintln!(
            "recovery: job {id} was running when its process stopped: marked failed (interrupted)"
        );
    }
    for (p, proof) in &engine.opened().deleted {
        eprintln!("recovery: deleted {} ({proof})", p.display());
    }
    for note in &engine.opened().left {
        eprintln!("recovery: {note}");
    }
    for q in &engine.opened().quarantined {
        eprintln!(
            "recovery: quarantined {} -> {} ({})",
            q.from.display(),
            q.to.display(),
            q.why
        );
    }
    Ok(engine)
}

/// Opens the store to read only (changing nothing), and says on stderr what
/// a read-write open would have done.
pub fn open_read_only(config: Config) -> Result<Engine> {
    let engine = Engine::open_read_only(config)?;
    for what in &engine.opened().not_done {
        eprintln!(
            "recovery not done (opened read-only; the next command that writes does it): {what}"
        );
    }
    Ok(engine)
}

pub fn time_arg(flag: &str, s: &str) -> Result<i64> {
    tiered::filter::parse_time_or_ns(s).map_err(|why| {
        Error::InvalidArgument(format!(
            "{flag} {why} (write a time such as 2024-01-01T00:00:00Z, or integer nanoseconds)"
        ))
    })
}

/// One CSV record (RFC 4180, by the `csv` crate): a field holding a comma,
/// a quote or a line break is quoted, so that a symbol such as `a,b`
/// stays one field.
pub fn csv_line<S: AsRef<[u8]>>(cells: &[S]) -> Result<String> {
    let mut w = csv::WriterBuilder::new()
        .terminator(csv::Terminator::Any(b'\n'))
        .from_writer(Vec::new());
    w.write_record(cells)
        .map_err(|e| Error::InvalidArgument(format!("writing CSV: {e}")))?;
    let mut bytes = w
        .into_inner()
        .map_err(|e| Error::InvalidArgument(format!("writing CSV: {e}")))?;
    if bytes.last() == Some(&b'\n') {
        bytes.pop();
    }
    String::from_utf8(bytes).map_err(|e| Error::InvalidArgument(format!("writing CSV: {e}")))
}

pub fn write_out(out: &mut impl Write, line: &str) -> Result<()> {
    match writeln!(out, "{line}") {
        Ok(()) => Ok(()),
        // A closed pipe (`| head`) ends the output quietly.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(0),
        Err(e) => Err(Error::io("<stdout>", e)),
    }
}

pub fn pct(part: u64, total: u64) -> f64 {
    if total == 0 {
        0.0
    } else {
        100.0 * part as f64 / total as f64
    }
}

pub fn print_tiers(s: &TierStats) {
    let t = s.total();
    println!("   Total: {t} records");
    println!(
        "   Hot tier:  {:>12} records ({:.1}%)",
        s.hot_records,
        pct(s.hot_records, t)
    );
    println!(
        "   Warm tier: {:>12} records ({:.1}%) on {}, {:.1} MB",
        s.warm_records,
        pct(s.warm_records, t),
        s.warm_device,
        s.warm_bytes as f64 / 1e6
    );
    if let Some(m) = &s.warm_device_memory {
        println!("              GPU memory: {m}");
    }
    println!(
        "   Cold tier: {:>12} records ({:.1}%) in {} Parquet files, {:.1} MB",
        s.cold_records,
        pct(s.cold_records, t),
        s.cold_files,
        s.cold_bytes as f64 / 1e6
    );
}

/// Resident memory of this process in MB (Linux; 0 elsewhere).
pub fn rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<f64>().ok())
        .map(|pages| pages * 4096.0 / 1e6)
        .unwrap_or(0.0)
}

pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Prints an error as every command does, and the exit code for it.
pub fn print_error(e: &Error) -> std::process::ExitCode {
    eprintln!("error: {e}");
    std::process::ExitCode::FAILURE
}
