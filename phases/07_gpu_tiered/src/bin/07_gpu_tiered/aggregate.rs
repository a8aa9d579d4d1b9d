//! `aggregate`: bars per symbol and time bucket across the tiers.

use std::io::Write;

use tiered::agg::{Bar, Buckets, MAX_BUCKETS};
use tiered::engine::Engine;
use tiered::error::{Error, Result};
use tiered::filter::Filter;
use tiered::output;
use tiered::store::bars::Timeframe;

use crate::common::{csv_line, write_out};
use crate::common::{time_arg, Format};
use crate::query::condition;

#[derive(Debug, clap::Args)]
pub struct AggArgs {
    /// symbol = S (repeat for IN); all symbols when absent.
    #[arg(long)]
    pub symbol: Vec<String>,
    /// Start of the first bucket (UTC time or nanoseconds).
    #[arg(long)]
    pub from: String,
    /// End (exclusive).
    #[arg(long)]
    pub to: String,
    /// Bucket width, e.g. 1s, 1min, 1h, 1d.
    #[arg(long, default_value = "1min")]
    pub every: String,
    /// A condition `column OP value`, as for `query --where`.
    #[arg(long = "where")]
    pub conditions: Vec<String>,
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
    /// Print only counts: groups, rows per tier, where the warm share ran, time.
    #[arg(long)]
    pub stats: bool,
    /// Run the aggregate this many times more first (same process, so the
    /// later runs find the files checked and their footers cached), then
    /// print the median and best time of all runs.
    #[arg(long, default_value_t = 0)]
    pub repeat: usize,
}

pub fn run(engine: &Engine, a: &AggArgs) -> Result<()> {
    let every = squeeze::time::parse_duration(&a.every)
        .ok()
        .filter(|&e| e > 0)
        .ok_or_else(|| {
            Error::InvalidArgument(format!("--every {:?}: use e.g. 1s, 1min, 1h", a.every))
        })?;
    let buckets = Buckets::new(
        time_arg("--from", &a.from)?,
        time_arg("--to", &a.to)?,
        every,
        MAX_BUCKETS,
    )?;
    let mut filters = Vec::new();
    match a.symbol.len() {
        0 => {}
        1 => filters.push(Filter::eq("symbol", a.symbol[0].as_str())),
        _ => filters.push(Filter::is_in("symbol", a.symbol.iter().map(String::as_str))),
    }
    for c in &a.conditions {
        filters.push(condition(engine, c)?);
    }
    let mut times = Vec::with_capacity(a.repeat + 1);
    for _ in 0..a.repeat {
        times.push(engine.aggregate(&filters, &buckets)?.1.total_ms);
    }
    let (bars, s) = engine.aggregate(&filters, &buckets)?;
    if a.repeat > 0 {
        times.push(s.total_ms);
        print_timing(&mut times);
    }
    if !a.stats {
        write_bars(&bars, a.format)?;
    }
    eprintln!(
        "{} groups from {} hot + {} warm + {} cold rows; hot {:.2} ms, warm {:.2} ms on {}, cold {:.2} ms ({} of {} files read); {:.2} ms in all",
        s.groups,
        s.hot_rows,
        s.warm_rows,
        s.cold_rows,
        s.hot_ms,
        s.warm_ms,
        s.warm_device,
        s.cold_ms,
        s.cold.files_total - s.cold.files_pruned,
        s.cold.files_total,
        s.total_ms
    );
    Ok(())
}

#[derive(Debug, clap::Args)]
pub struct BarsArgs {
    /// The symbol (required unless --rebuild).
    #[arg(long, required_unless_present = "rebuild")]
    pub symbol: Option<String>,
    /// 1m, 5m, 1h or 1d (the same lengths written otherwise, such as 60s
    /// or 1min, are taken too).
    #[arg(long, default_value = "1h")]
    pub timeframe: String,
    /// How many bars, newest last.
    #[arg(long, default_value_t = 100)]
    pub limit: usize,
    /// Compute them from the raw rows of every tier instead of the
    /// catalog's bars (the reference they must equal).
    #[arg(long)]
    pub from_raw: bool,
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
    /// Run the lookup this many times more first, then print the median
    /// and best time of all runs.
    #[arg(long, default_value_t = 0)]
    pub repeat: usize,
    /// Rebuild the catalog's bars from every cold file (opens the store to
    /// write), then answer if --symbol is given.
    #[arg(long)]
    pub rebuild: bool,
}

pub fn latest(config: tiered::config::Config, a: &BarsArgs) -> Result<()> {
    let engine = if a.rebuild {
        let engine = crate::common::open(config)?;
        match engine.rebuild_bars(true)? {
            Some(note) => eprintln!("{note}"),
            None => eprintln!("bars are off (cold_tier.bars_kept is 0): nothing to rebuild"),
        }
        engine
    } else {
        crate::common::open_read_only(config)?
    };
    let Some(symbol) = &a.symbol else {
        return Ok(());
    };
    let tf = Timeframe::parse(&a.timeframe)?;
    let run = || {
        if a.from_raw {
            engine.latest_bars_from_raw(symbol, tf, a.limit)
        } else {
            engine.latest_bars(symbol, tf, a.limit)
        }
    };
    let mut times = Vec::with_capacity(a.repeat + 1);
    for _ in 0..a.repeat {
        times.push(run()?.1.total_ms);
    }
    let (bars, s) = run()?;
    if a.repeat > 0 {
        times.push(s.total_ms);
        print_timing(&mut times);
    }
    write_bars(&bars, a.format)?;
    match (&s.why_raw, s.source) {
        (Some(why), _) => eprintln!(
            "{} from the raw rows ({why}): {} cold rows from {} files, {} memory rows; {:.2} ms",
            count_bars(bars.len()),
            s.cold_rows,
            s.cold_files_read,
            s.memory_rows,
            s.total_ms
        ),
        (None, "raw") => eprintln!(
            "{} from the raw rows: {} cold rows from {} files, {} memory rows; {:.2} ms",
            count_bars(bars.len()),
            s.cold_rows,
            s.cold_files_read,
            s.memory_rows,
            s.total_ms
        ),
        _ => eprintln!(
            "{}: {} from the catalog merged with {} rows in memory; {:.2} ms",
            count_bars(bars.len()),
            s.catalog_bars,
            s.memory_rows,
            s.total_ms
        ),
    }
    Ok(())
}

fn count_bars(n: usize) -> String {
    if n == 1 {
        "1 bar".into()
    } else {
        format!("{n} bars")
    }
}

/// Writes bars to stdout as a table, CSV or JSON lines.
pub fn write_bars(bars: &[Bar], format: Format) -> Result<()> {
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let names = [
        "symbol",
        "time",
        "trades",
        "open",
        "high",
        "low",
        "close",
        "volume",
        "mean_price",
    ];
    let rows = bars.iter().map(|b| {
        vec![
            b.symbol.to_string(),
            output::fmt_ns(b.time),
            b.trades.to_string(),
            b.open.to_string(),
            b.high.to_string(),
            b.low.to_string(),
            b.close.to_string(),
            b.volume.to_string(),
            (b.price_sum / b.trades as f64).to_string(),
        ]
    });
    {
        match format {
            Format::Table => {
                let mut table = comfy_table::Table::new();
                table.load_preset(comfy_table::presets::UTF8_BORDERS_ONLY);
                table.set_header(names);
                for r in rows {
                    table.add_row(r);
                }
                write_out(&mut out, &table.to_string())?;
            }
            Format::Csv => {
                write_out(&mut out, &csv_line(&names)?)?;
                for r in rows {
                    write_out(&mut out, &csv_line(&r)?)?;
                }
            }
            Format::Json => {
                for b in bars {
                    let num = |v: f64| {
                        serde_json::Number::from_f64(v)
                            .map(serde_json::Value::Number)
                            .unwrap_or(serde_json::Value::Null)
                    };
                    let v = serde_json::json!({
                        "symbol": &*b.symbol,
                        "time": output::fmt_ns(b.time),
                        "trades": b.trades,
                        "open": num(b.open),
                        "high": num(b.high),
                        "low": num(b.low),
                        "close": num(b.close),
                        "volume": num(b.volume),
                        "mean_price": num(b.price_sum / b.trades as f64),
                    });
                    write_out(&mut out, &v.to_string())?;
                }
            }
        }
    }
    match out.flush() {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            return Err(Error::io("<stdout>", e))
        }
        _ => {}
    }
    Ok(())
}

/// The median and best of `times` (ms), on stderr.
pub fn print_timing(times: &mut [f64]) {
    times.sort_by(f64::total_cmp);
    if let (Some(mid), Some(best)) = (times.get(times.len() / 2), times.first()) {
        eprintln!(
            "timing: median {mid:.2} ms, best {best:.2} ms over {} runs",
            times.len()
        );
    }
}
