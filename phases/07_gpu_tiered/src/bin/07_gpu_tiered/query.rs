//! `query`: rows across the tiers, filtered, sorted and limited.

use std::io::Write;
use std::time::Instant;

use tiered::engine::Engine;
use tiered::error::{Error, Result};
use tiered::filter::{Filter, Scalar};
use tiered::output;
use tiered::read::query::{Query, QueryStats, Sort};

use crate::common::{csv_line, time_arg, write_out, Format};

#[derive(Debug, clap::Args)]
pub struct QueryArgs {
    /// symbol = S (repeat for IN).
    #[arg(long)]
    pub symbol: Vec<String>,
    /// timestamp >= T (UTC time or nanoseconds).
    #[arg(long)]
    pub from: Option<String>,
    /// timestamp < T.
    #[arg(long)]
    pub to: Option<String>,
    /// A condition `column OP value`, OP one of = > >= < <= in; for `in`,
    /// values separated by `|`: `side=buy`, `price>=100`, `exchange in kraken|binance`.
    #[arg(long = "where")]
    pub conditions: Vec<String>,
    /// Sort by this column.
    #[arg(long)]
    pub sort: Option<String>,
    /// Sort descending.
    #[arg(long, requires = "sort")]
    pub desc: bool,
    #[arg(long)]
    pub limit: Option<usize>,
    /// Output columns, comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub columns: Option<Vec<String>>,
    /// How rows are printed. `csv` and `json` (one object a line) stream
    /// rows as they are read: if the query then fails (a damaged file,
    /// say), the rows before it are already out, the error goes to stderr
    /// and the exit status is 1, so check it before using the output.
    /// `table` prints nothing until every row is read.
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
    /// Print only counts: rows per tier, pruning, bytes read, time.
    #[arg(long)]
    pub stats: bool,
    /// Run the query this many times more first (untimed answer, same
    /// process, so the later runs find the files checked and their footers
    /// cached), then print the median and best time of all runs.
    #[arg(long, default_value_t = 0)]
    pub repeat: usize,
}

/// A `--where` condition, read against the store's columns.
pub fn condition(engine: &Engine, text: &str) -> Result<Filter> {
    Filter::parse(text, engine.schema()).map_err(|e| match e {
        Error::InvalidArgument(why) => Error::InvalidArgument(format!("--where {why}")),
        e => e,
    })
}

fn build_query(engine: &Engine, q: &QueryArgs) -> Result<Query> {
    let mut filters = Vec::new();
    match q.symbol.len() {
        0 => {}
        1 => filters.push(Filter::eq("symbol", q.symbol[0].as_str())),
        _ => filters.push(Filter::is_in("symbol", q.symbol.iter().map(String::as_str))),
    }
    if q.from.is_some() || q.to.is_some() {
        let from = q
            .from
            .as_deref()
            .map(|t| time_arg("--from", t))
            .transpose()?;
        let to = q.to.as_deref().map(|t| time_arg("--to", t)).transpose()?;
        filters.push(Filter::range(
            "timestamp",
            from.map(Scalar::Int),
            to.map(Scalar::Int),
        ));
    }
    for c in &q.conditions {
        filters.push(condition(engine, c)?);
    }
    Ok(Query {
        filters,
        sort: q.sort.as_ref().map(|c| Sort {
            column: c.clone(),
            descending: q.desc,
        }),
        limit: q.limit,
        columns: q.columns.clone(),
        batch_size: None,
    })
}

pub fn run(engine: &Engine, q: &QueryArgs) -> Result<()> {
    let query = build_query(engine, q)?;
    let mut times = Vec::with_capacity(q.repeat + 1);
    for _ in 0..q.repeat {
        let started = Instant::now();
        let (_, s) = engine.query(&query)?.collect_batch()?;
        times.push(started.elapsed().as_secs_f64() * 1e3);
        eprintln!("{}", stats_line(s.rows_out, &s));
    }
    let started = Instant::now();
    let mut stream = engine.query(&query)?;
    let schema = stream.schema();
    let names: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut table = comfy_table::Table::new();
    table.load_preset(comfy_table::presets::UTF8_BORDERS_ONLY);
    table.set_header(names.clone());
    let mut rows = 0u64;
    if matches!(q.format, Format::Csv) && !q.stats {
        write_out(&mut out, &csv_line(&names)?)?;
    }
    for batch in stream.by_ref() {
        let batch = batch?;
        rows += batch.num_rows() as u64;
        if q.stats {
            continue;
        }
        for r in 0..batch.num_rows() {
            let cells: Vec<String> = batch
                .columns()
                .iter()
                .map(|c| output::cell(c.as_ref(), r))
                .collect();
            match q.format {
                Format::Table => {
                    table.add_row(cells);
                }
                Format::Csv => write_out(&mut out, &csv_line(&cells)?)?,
                Format::Json => {
                    let obj = output::json_row(&batch, r);
                    write_out(&mut out, &serde_json::Value::Object(obj).to_string())?;
                }
            }
        }
    }
    if matches!(q.format, Format::Table) && !q.stats {
        write_out(&mut out, &table.to_string())?;
    }
    let _ = out.flush();
    eprintln!("{}", stats_line(rows, &stream.stats));
    if q.repeat > 0 {
        times.push(started.elapsed().as_secs_f64() * 1e3);
        times.sort_by(f64::total_cmp);
        eprintln!(
            "timing: median {:.2} ms, best {:.2} ms over {} runs",
            times[times.len() / 2],
            times[0],
            times.len()
        );
    }
    Ok(())
}

pub fn stats_line(rows: u64, s: &QueryStats) -> String {
    format!(
        "{rows} rows in {:.2} ms (hot {}, warm {}, cold {}); cold: {} of {} files pruned, {} of {} row groups pruned, {} of {} pages pruned, {} bytes read ({} more to check files whole the first time, in {:.2} ms; {} bytes of pages checked in {:.2} ms)",
        s.elapsed.as_secs_f64() * 1e3,
        s.hot_rows,
        s.warm_rows,
        s.cold_rows,
        s.cold.files_pruned,
        s.cold.files_total,
        s.cold.row_groups_pruned,
        s.cold.row_groups_total,
        s.cold.pages_pruned,
        s.cold.pages_total,
        s.cold.bytes_read,
        s.cold.bytes_verified,
        s.cold.verify_ms(),
        s.cold.bytes_checked,
        s.cold.check_ms()
    ) + &if s.hot_batches_skipped + s.cold.topk_files_skipped + s.cold.topk_row_groups_skipped > 0 {
        format!(
            "; top-K skipped {} hot batches, {} files and {} row groups by their statistics",
            s.hot_batches_skipped, s.cold.topk_files_skipped, s.cold.topk_row_groups_skipped
        )
    } else {
        String::new()
    }
}
