//! Phase 06: SQL over the phase-04 file: one query, a script, or a REPL.

use std::io::{IsTerminal, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use squeeze::cli::{exit_with, CommonArgs};
use squeeze::course::query_engine::{ident, stats_line};
use squeeze::error::{Error, Result};
use squeeze::format::metrics;
use squeeze::query::{Engine, OutputFormat};

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

/// Writes to stdout; a closed pipe (`| head`) ends the program quietly.
fn emit(text: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|_| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(0),
        r => r.map_err(|e| Error::io("standard output", e)),
    }
}

fn run_one(engine: &Engine, sql: &str, format: OutputFormat, quiet: bool) -> Result<()> {
    let o = engine.query(sql)?;
    let mut text = o.render(format);
    if !text.ends_with('\n') {
        text.push('\n');
    }
    emit(&text)?;
    if !quiet {
        eprintln!("({})", stats_line(&o));
    }
    Ok(())
}

/// Splits a script at semicolons outside quotes.
fn statements(script: &str) -> Vec<String> {
    let (mut out, mut cur, mut quote) = (Vec::new(), String::new(), None::<char>);
    for c in script.chars() {
        match (quote, c) {
            (None, '\'' | '"') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, ';') => {
                out.push(std::mem::take(&mut cur));
                continue;
            }
            _ => {}
        }
        cur.push(c);
    }
    out.push(cur);
    out.into_iter()
        .map(|s| s.trim().to_string())
        .filter(|s| {
            !s.is_empty()
                && !s
                    .lines()
                    .all(|l| l.trim().is_empty() || l.trim_start().starts_with("--"))
        })
        .collect()
}

const REPL_HELP: &str = "Enter SQL ending with ';' (it may span lines).
  \\d            list metrics
  \\d METRIC     columns of a metric
  \\format F     table, csv or json
  \\q            quit (also Ctrl-D)";

fn describe(engine: &Engine, metric: Option<&str>) -> String {
    let idx = engine.index();
    match metric {
        None => idx
            .metrics()
            .map(|m| {
                format!(
                    "{}  ({} series)\n",
                    ident(m),
                    idx.metric(m).map_or(0, |s| s.len())
                )
            })
            .collect(),
        Some(m) => match idx.metric(m) {
            None => format!("no metric {m}\n"),
            Some(ids) => {
                let labels: Vec<String> = idx.label_names(m).into_iter().collect();
                format!(
                    "{m}: {} series; columns: ts, {}{}value\n",
                    ids.len(),
                    labels.join(", "),
                    if labels.is_empty() { "" } else { ", " }
                )
            }
        },
    }
}

fn repl(engine: &Engine, mut format: OutputFormat, history: PathBuf, quiet: bool) -> Result<()> {
    use rustyline::error::ReadlineError;
    let mut rl = rustyline::DefaultEditor::new()
        .map_err(|e| Error::InvalidArgument(format!("cannot open the terminal: {e}")))?;
    let _ = rl.load_history(&history);
    println!(
        "squeezed-signals query engine: {} series, {} metrics. \\? for help, \\q to quit.",
        engine.file().series().len(),
        engine.index().metrics().count()
    );
    let mut buf = String::new();
    loop {
        let prompt = if buf.is_empty() { "sql> " } else { "...> " };
        let line = match rl.readline(prompt) {
            Ok(l) => l,
            Err(ReadlineError::Interrupted) => {
                buf.clear();
                continue;
            }
            Err(ReadlineError::Eof) => break,
            Err(e) => return Err(Error::InvalidArgument(format!("reading the terminal: {e}"))),
        };
        let trimmed = line.trim();
        if buf.is_empty() && trimmed.starts_with('\\') {
            let _ = rl.add_history_entry(trimmed);
            let mut words = trimmed.split_whitespace();
            match (words.next(), words.next()) {
                (Some("\\q"), _) => break,
                (Some("\\d"), m) => print!("{}", describe(engine, m)),
                (Some("\\format"), Some(f)) => match f {
                    "table" => format = OutputFormat::Table,
                    "csv" => format = OutputFormat::Csv,
                    "json" => format = OutputFormat::Json,
                    other => eprintln!("unknown format {other}: use table, csv or json"),
                },
                _ => println!("{REPL_HELP}"),
            }
            continue;
        }
        if matches!(trimmed, "quit" | "exit") && buf.is_empty() {
            break;
        }
        buf.push_str(&line);
        buf.push('\n');
        if !trimmed.ends_with(';') {
            continue;
        }
        let sql = std::mem::take(&mut buf);
        let _ = rl.add_history_entry(sql.trim());
        for s in statements(&sql) {
            if let Err(e) = run_one(engine, &s, format, quiet) {
                eprintln!("error: {e}");
            }
        }
    }
    if let Some(dir) = history.parent() {
        if dir.is_dir() {
            let _ = rl.save_history(&history);
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    let args = Args::parse();
    exit_with((|| {
        let ctx = args.common.context();
        if args.demo {
            for line in squeeze::course::query_engine::run(&ctx)? {
                println!("{line}");
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
                emit(&describe(&engine, Some(&m)))?;
            }
            return Ok(());
        }
        match &args.query {
            Some(q) if args.repeat > 1 => {
                let mut times = Vec::with_capacity(args.repeat as usize);
                for _ in 1..args.repeat {
                    times.push(engine.query(q)?.elapsed.as_secs_f64() * 1e3);
                }
                let o = engine.query(q)?;
                times.push(o.elapsed.as_secs_f64() * 1e3);
                times.sort_by(f64::total_cmp);
                let mut text = o.render(args.format);
                if !text.ends_with('\n') {
                    text.push('\n');
                }
                emit(&text)?;
                eprintln!(
                    "timing: best {:.4} ms, median {:.4} ms over {} runs; {} rows, {} samples decoded",
                    times[0],
                    times[times.len() / 2],
                    times.len(),
                    o.stats.rows_out,
                    o.stats.rows_scanned
                );
                Ok(())
            }
            Some(q) => run_one(&engine, q, args.format, args.quiet),
            None if std::io::stdin().is_terminal() => {
                repl(&engine, args.format, ctx.path(".query_history"), args.quiet)
            }
            None => {
                let mut script = String::new();
                std::io::stdin()
                    .read_to_string(&mut script)
                    .map_err(|e| Error::io("standard input", e))?;
                for s in statements(&script) {
                    run_one(&engine, &s, args.format, args.quiet)?;
                }
                Ok(())
            }
        }
    })())
}
