//! Phase 06 as a library call: open the phase-04 file, index it, and run
//! three queries that show what the index and the block statistics buy.

use std::fmt::Write as _;

use super::{thousands, Context};
use crate::error::{Error, Result};
use crate::format::metrics;
use crate::model::Series;
use crate::query::{Engine, Output, Table, Value};
use crate::report::human_bytes;
use crate::time::format_duration;

/// File name of the phase 06 artifact: the demo queries with their results.
pub const FILE_NAME: &str = "06_queries.md";

/// Quotes an identifier for SQL when it is not a plain lower-case name.
pub fn ident(name: &str) -> String {
    let plain = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if plain {
        name.to_string()
    } else {
        format!("\"{}\"", name.replace('"', "\"\""))
    }
}

/// Quotes a string literal for SQL.
pub fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// A label used as a column: `labels.` before a name that is also a
/// sample column (`ts`, `value`).
fn label_column(k: &str) -> String {
    if matches!(k, "ts" | "time" | "timestamp" | "value") {
        format!("labels.{}", ident(k))
    } else {
        ident(k)
    }
}

/// The metric of `key` as SQL, and its first eight labels as conditions
/// (`host = 'a' AND … AND `, empty without labels).
fn selector(key: &crate::model::SeriesKey) -> (String, String) {
    let labels: Vec<String> = key
        .labels
        .iter()
        .take(8)
        .map(|(k, v)| format!("{} = {}", label_column(k), literal(v)))
        .collect();
    let where_labels = if labels.is_empty() {
        String::new()
    } else {
        format!("{} AND ", labels.join(" AND "))
    };
    (ident(&key.metric), where_labels)
}

/// The queries the phase runs on a file: (title, SQL).
pub fn demo_queries(engine: &Engine) -> Result<Vec<(String, String)>> {
    let file = engine.file();
    let first = file
        .series()
        .first()
        .ok_or_else(|| Error::InvalidArgument(format!("{} holds no series", metrics::FILE_NAME)))?;
    // The exact first and last timestamps (block bounds may be rounded).
    let blocks = file.blocks(0)?;
    let (mut head, mut tail) = (Series::default(), Series::default());
    if let (Some(a), Some(b)) = (blocks.first(), blocks.last()) {
        file.read_block(0, a, &mut head)?;
        file.read_block(0, b, &mut tail)?;
    }
    let (start, end) = match (head.timestamps.first(), tail.timestamps.last()) {
        (Some(&a), Some(&b)) => (a, b),
        _ => {
            return Err(Error::InvalidArgument(
                "the first series has no samples".into(),
            ))
        }
    };
    let (m, where_labels) = selector(&first.key);
    let ts = |t: i64| literal(&crate::query::table::format_time(t));
    let hour = 3_600_000_000_000i64.min((end - start).max(1));
    let pct1 = ((end - start) / 100).max(1);
    let group = first
        .key
        .labels
        .keys()
        .next()
        .map(|l| label_column(l))
        .unwrap_or_default();
    let mut out = vec![
        (
            format!("One series, one hour ({})", format_duration(hour)),
            format!(
                "SELECT count(*), min(value), avg(value), max(value), last(value) FROM {m} WHERE {where_labels}ts >= {} AND ts < {}",
                ts(start),
                ts(start + hour)
            ),
        ),
        (
            format!("One series, 1% of the time range ({})", format_duration(pct1)),
            format!(
                "EXPLAIN ANALYZE SELECT ts, value FROM {m} WHERE {where_labels}ts >= {} AND ts < {}",
                ts(start + 50 * pct1),
                ts(start + 51 * pct1)
            ),
        ),
    ];
    if !group.is_empty() {
        let high = high_value(engine, 0)?;
        out.push((
            format!("Every {} series: 15-minute buckets where value is high", first.key.metric),
            format!(
                "SELECT time_bucket('15m', ts) AS t, {group}, count(*), avg(value), max(value) FROM {m} WHERE value > {high} GROUP BY t, {group} ORDER BY t DESC, {group} LIMIT 8"
            ),
        ));
    }
    Ok(out)
}

/// Whether two answers are the same rows: keys, counts and maxima bit
/// for bit, averages within a relative 1e-12.
fn same_rows(a: &Table, b: &Table) -> bool {
    a.columns == b.columns
        && a.rows.len() == b.rows.len()
        && a.rows.iter().zip(&b.rows).all(|(x, y)| {
            x.iter().zip(y).all(|(x, y)| match (x, y) {
                (Value::Float(x), Value::Float(y)) => {
                    x.to_bits() == y.to_bits() || (x - y).abs() <= 1e-12 * x.abs().max(y.abs())
                }
                _ => x == y,
            })
        })
}

/// The hourly query over the whole range of the longest gauge series that
/// the 1 h rollups hold, answered from them and from raw blocks: what each
/// read, and whether the rows agree. `None` without usable rollups.
fn rollup_demo(path: &std::path::Path, raw: &Engine) -> Result<Option<Vec<String>>> {
    let rolled = Engine::open_with_rollups(path)?;
    let Some(r) = rolled.rollups() else {
        return Ok(None);
    };
    let Some(hourly) = r.files.iter().find(|f| f.res.name == "1h") else {
        return Ok(r.note.as_ref().map(|n| vec![format!("  Rollups: {n}.")]));
    };
    let file = raw.file();
    let mut best: Option<usize> = None;
    for (i, info) in file.series().iter().enumerate() {
        let key = crate::downsample::rollup_key(&info.key, "count", &hourly.res);
        if best.is_none_or(|b| info.data_len > file.series()[b].data_len)
            && hourly.file.find(&key)?.is_some()
        {
            best = Some(i);
        }
    }
    let Some(i) = best else {
        return Ok(None);
    };
    let (m, where_labels) = selector(&file.series()[i].key);
    let where_clause = where_labels.trim_end_matches(" AND ");
    let sql = format!(
        "SELECT time_bucket('1h', ts) AS h, avg(value), max(value), count(*) FROM {m}{}{where_clause} GROUP BY h",
        if where_clause.is_empty() { "" } else { " WHERE " }
    );
    let (a, b) = (raw.query(&sql)?, rolled.query(&sql)?);
    let extra_open = b.stats.open_bytes.saturating_sub(a.stats.open_bytes);
    let from_rollups = b.stats.bytes_read + extra_open;
    let mut lines = vec![
        String::new(),
        "  Hourly averages of the longest gauge series over its whole range, answered from the 1h rollups:".into(),
        format!("  > {sql}"),
    ];
    lines.extend(shown(&b.table, 6).lines().map(|l| format!("  {l}")));
    lines.push(format!("  {}", stats_line(&b)));
    lines.push(format!(
        "  From raw blocks: {} read; from rollups {} ({} + {} opening the rollup file), {:.0}x less; same rows (counts and maxima bit for bit, averages within 1e-12): {}.",
        human_bytes(a.stats.bytes_read),
        human_bytes(from_rollups),
        human_bytes(b.stats.bytes_read),
        human_bytes(extra_open),
        a.stats.bytes_read as f64 / from_rollups.max(1) as f64,
        if same_rows(&a.table, &b.table) { "yes" } else { "NO" }
    ));
    Ok(Some(lines))
}

/// A threshold above most values of series 0: its 90th percentile block max.
fn high_value(engine: &Engine, series: usize) -> Result<String> {
    let mut maxes: Vec<f64> = engine
        .file()
        .blocks(series)?
        .iter()
        .map(|b| b.max)
        .filter(|m| m.is_finite())
        .collect();
    maxes.sort_by(f64::total_cmp);
    let v = maxes
        .get(maxes.len().saturating_sub(1) * 9 / 10)
        .copied()
        .unwrap_or(0.0);
    Ok(crate::query::table::format_float(v))
}

/// One line on what a query read.
pub fn stats_line(o: &Output) -> String {
    let s = &o.stats;
    let rollups: String = s
        .rollup_series
        .iter()
        .map(|(file, _, n, _)| format!("; {n} series from {file}"))
        .collect();
    format!(
        "{} rows in {:.3} ms; read {} of {} blocks ({:.2}%), {} ({:.2}% of the file); {} blocks pruned by time, {} by value{rollups}",
        s.rows_out,
        o.elapsed.as_secs_f64() * 1e3,
        s.blocks_read,
        s.file_blocks,
        s.blocks_read as f64 * 100.0 / s.file_blocks.max(1) as f64,
        human_bytes(s.bytes_read),
        s.bytes_read as f64 * 100.0 / s.file_bytes.max(1) as f64,
        s.blocks_pruned_time,
        s.blocks_pruned_value
    )
}

fn shown(t: &Table, max: usize) -> String {
    let mut head = t.clone();
    head.rows.truncate(max);
    let mut s = head.pretty();
    if t.rows.len() > max {
        let _ = write!(s, "\n… {} more rows", t.rows.len() - max);
    }
    s
}

/// Runs the phase: the demo queries, then a full scan of every metric.
pub fn run(ctx: &Context) -> Result<Vec<String>> {
    let path = ctx.path(metrics::FILE_NAME);
    let engine = Engine::open(&path)?;
    let mut lines = vec![
        "Phase 06: query the phase-04 file with SQL, using its label index and block statistics."
            .to_string(),
        format!(
            "  {}: {} series of {} metrics in {} blocks (what the index prunes; version 3: pieces); opening read {} (footer, directory: every key and index page).",
            path.display(),
            engine.file().series().len(),
            engine.index().metrics().count(),
            engine.file().piece_count(),
            human_bytes(engine.file().open_bytes())
        ),
    ];
    let mut md = String::from("# Phase 06: demo queries\n\n");
    for (title, sql) in demo_queries(&engine)? {
        let o = engine.query(&sql)?;
        lines.push(String::new());
        lines.push(format!("  {title}:"));
        lines.push(format!("  > {sql}"));
        let text = if o.explain {
            o.render(crate::query::OutputFormat::Table)
        } else {
            shown(&o.table, 12)
        };
        for l in text.lines() {
            lines.push(format!("  {l}"));
        }
        lines.push(format!("  {}", stats_line(&o)));
        let _ = write!(
            md,
            "## {title}\n\n```sql\n{sql}\n```\n\n```text\n{}\n```\n\n{}\n\n",
            o.render(crate::query::OutputFormat::Table).trim_end(),
            stats_line(&o)
        );
    }
    if let Some(more) = rollup_demo(&path, &engine)? {
        for l in &more {
            let _ = writeln!(md, "{}", l.trim_start());
        }
        lines.extend(more);
    }
    // Full scan: avg(value) of every metric, all samples decoded.
    let metrics: Vec<String> = engine.index().metrics().map(String::from).collect();
    let (mut samples, mut secs) = (0u64, 0.0f64);
    for m in &metrics {
        let o = engine.query(&format!("SELECT avg(value) FROM {}", ident(m)))?;
        samples += o.stats.rows_scanned;
        secs += o.elapsed.as_secs_f64();
    }
    let scan = format!(
        "Full scan: SELECT avg(value) over each of the {} metrics: {} samples in {:.2} ms, {:.1} M samples/s on one core.",
        metrics.len(),
        thousands(samples),
        secs * 1e3,
        samples as f64 / secs.max(1e-9) / 1e6
    );
    lines.push(String::new());
    lines.push(format!("  {scan}"));
    let _ = writeln!(md, "{scan}");
    lines.push(
        "  Labels pick series through the inverted index; each block's first/last time and min/max value prune it before any byte of it is read."
            .into(),
    );
    lines.push(format!(
        "  Try: cargo run --release --bin 06_query_engine (a REPL), or with a query; wrote {}.",
        ctx.path(FILE_NAME).display()
    ));
    crate::files::write_atomic(ctx.path(FILE_NAME), md.as_bytes())?;
    Ok(lines)
}
