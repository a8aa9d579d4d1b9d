//! Phase 06: SQL over the phase-04 file: one query, a script, or a REPL.

use std::io::{IsTerminal, Read};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use squeeze::cli::{exit_with, CommonArgs};
use squeeze::error::Error;
use squeeze::format::metrics;
use squeeze::query::{shell, Engine, OutputFormat};

/// Phase 06: query the phase-04 file with SQL.
///
/// The label index picks series, block statistics (first/last time, min/max
/// value) prune blocks before they are read, and what is left is decoded a
/// column at a time. With a query, runs it and prints the result; with
/// --demo, runs the phase's demo queries (what `cargo run` does); with
/// neither, reads queries from standard input, or opens a REPL on a
/// terminal (history, multi-line: end a query with `;`).
///
/// The subset: SELECT columns (ts, value, label names, *), time_bucket('5m', ts),
/// aggregates count sum avg min max first last stddev percentile(value, p)
/// median twap; WHERE with = != < <= > >= IN BETWEEN AND OR NOT on labels,
/// ts and value; GROUP BY labels and one time bucket; ORDER BY; LIMIT;
/// EXPLAIN, EXPLAIN ANALYZE. Table functions: ohlcv(price, 'bar', optional volume),
/// rolling(metric, 'mean|std|min|max|sum|count', n or 'duration'),
/// asof_join(left, right, 'tolerance').
///
/// Aggregates (count, sum, avg, min, max over time buckets or the whole
/// range, no condition on value) are answered from phase 05's rollups
/// beside the file where they give the raw answer; EXPLAIN names the file.
#[derive(Debug, Parser)]
#[command(
    version,
    after_help = "Examples:\n  06_query_engine \"SELECT host, avg(value) FROM cpu_usage_percent GROUP BY host\"\n  06_query_engine --format csv \"SELECT * FROM cpu_usage_percent WHERE region = 'eu-west-1' LIMIT 10\"\n  06_query_engine \"EXPLAIN ANALYZE SELECT ts, value FROM up WHERE host = 'db-01' AND ts >= '2024-01-01T01:00:00Z' LIMIT 5\"\n  06_query_engine \"SELECT * FROM ohlcv(trade_price, '1m') WHERE symbol = 'AAPL' LIMIT 5\"\n  06_query_engine --demo\n  06_query_engine            (REPL)"
)]
struct Args {
    #[command(flatten)]
    common: CommonArgs,
    /// The query to run.
    query: Option<String>,
    /// The .metrics file (default: the phase-04 artifact in the output directory).
    #[arg(long)]
    file: Option<PathBuf>,
    /// How results are printed.
    #[arg(long, value_enum, default_value = "table")]
    format: OutputFormat,
    /// Run the phase's demo queries on the output directory's file.
    #[arg(long, conflicts_with = "query")]
    demo: bool,
    /// Read raw blocks only, never phase 05's rollups.
    #[arg(long)]
    no_rollups: bool,
    /// Do not print the line on rows, time and blocks read (it goes to stderr).
    #[arg(long, short)]
    quiet: bool,
    /// Print the metrics of the file (one per line, with their series and columns) and exit.
    #[arg(long, conflicts_with_all = ["query", "demo"])]
    metrics: bool,
    /// Run the query this many times and report the best and median time
    /// (to stderr); the result is printed once.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    repeat: u32,
}

fn main() -> ExitCode {
    let args = Args::parse();
    exit_with((|| {
        let ctx = args.common.context();
        if args.demo {
            for line in squeeze::course::query_engine::run(&ctx)? {
                squeeze::cli::say(line);
            }
            return Ok(());
        }
        let path = args
            .file
            .clone()
            .unwrap_or_else(|| ctx.path(metrics::FILE_NAME));
        let engine = if args.no_rollups {
            Engine::open(&path)?
        } else {
            Engine::open_with_rollups(&path)?
        };
        if args.metrics {
            let names: Vec<String> = engine.index().metrics().map(String::from).collect();
            for m in names {
                shell::emit(&shell::describe(&engine, Some(&m)))?;
            }
            return Ok(());
        }
        match &args.query {
            Some(q) if args.repeat > 1 => shell::run_repeated(&engine, q, args.repeat, args.format),
            Some(q) => shell::run_one(&engine, q, args.format, args.quiet),
            None if std::io::stdin().is_terminal() => {
                shell::repl(&engine, args.format, ctx.path(".query_history"), args.quiet)
            }
            None => {
                let mut script = String::new();
                std::io::stdin()
                    .read_to_string(&mut script)
                    .map_err(|e| Error::io("standard input", e))?;
                shell::run_script(&engine, &script, args.format, args.quiet)
            }
        }
    })())
}
