//! Phase 06: a query engine over `.metrics` files.
//!
//! A query goes through four steps:
//!
//! 1. **Parse** ([`ast`]): SQL text to a small tree, with `sqlparser`;
//!    anything outside the subset is refused with its position.
//! 2. **Bind** ([`plan`]): names checked against the file (metrics, label
//!    columns, functions), WHERE turned into a [`pred::Pred`].
//! 3. **Plan**: the inverted label index ([`index`]) picks the series; each
//!    series' labels are substituted into the predicate; its block list is
//!    read and every block whose time range or min/max proves the predicate
//!    false for all its rows is pruned, unread.
//! 4. **Execute** ([`exec`]): the remaining blocks are decoded and filtered
//!    a column at a time, then projected, or aggregated per group and time
//!    bucket. `ORDER BY ts LIMIT n` reads blocks in time order and stops
//!    once no unread block can hold a better row.
//!
//! The subset, in one example:
//!
//! ```sql
//! SELECT time_bucket('5m', ts) AS t, host, avg(value), max(value)
//! FROM cpu_usage_percent
//! WHERE region = 'eu-west-1' AND ts >= '2024-01-01T01:00:00Z' AND value > 50
//! GROUP BY t, host ORDER BY t DESC LIMIT 100
//! ```
//!
//! and the time-series table functions `ohlcv(price, 'bar'[, volume])`,
//! `rolling(metric, 'mean|std|min|max|sum|count', window)` and
//! `asof_join(left, right, 'tolerance')`, plus the `twap(value)`
//! aggregate. `docs/src/06-query-engine.md` is the reference.

pub mod ast;
pub mod exec;
pub mod functions;
pub mod index;
pub mod plan;
pub mod pred;
pub mod rollups;
pub mod shell;
pub mod table;

use std::path::Path;
use std::time::{Duration, Instant};

pub use exec::Stats;
pub use table::{OutputFormat, Table, Value};

use crate::error::Result;
use crate::format::metrics::MetricsFile;
use crate::report::human_bytes;

/// An open file with its label index: ready for queries.
pub struct Engine {
    file: MetricsFile,
    index: index::LabelIndex,
    rollups: Option<rollups::Rollups>,
}

/// A query's result with what it read.
#[derive(Debug, Clone)]
pub struct Output {
    pub table: Table,
    pub stats: Stats,
    pub elapsed: Duration,
    /// The table is an EXPLAIN plan (one `plan` column of lines).
    pub explain: bool,
}

impl Output {
    /// The result in `format`; a plan prints as plain lines in any format
    /// but CSV and JSON.
    pub fn render(&self, format: OutputFormat) -> String {
        if self.explain && format == OutputFormat::Table {
            let mut s = String::new();
            for row in &self.table.rows {
                for v in row {
                    s.push_str(&v.render());
                }
                s.push('\n');
            }
            s
        } else {
            self.table.render(format)
        }
    }
}

impl Engine {
    /// Opens a `.metrics` file and indexes its directory.
    pub fn open(path: &Path) -> Result<Self> {
        Ok(Self::new(MetricsFile::open(path)?))
    }

    /// Indexes an open file.
    pub fn new(file: MetricsFile) -> Self {
        let index = index::LabelIndex::build(file.series());
        Engine {
            file,
            index,
            rollups: None,
        }
    }

    /// Opens a `.metrics` file as [`Engine::open`] does, with the rollups
    /// phase 05 made of it ([`rollups::Rollups::beside`]): aggregates they
    /// can answer read them instead of raw blocks.
    pub fn open_with_rollups(path: &Path) -> Result<Self> {
        let mut engine = Self::open(path)?;
        engine.rollups = Some(rollups::Rollups::beside(path, &engine.file)?);
        Ok(engine)
    }

    /// The rollups this engine reads, if it was opened with them.
    pub fn rollups(&self) -> Option<&rollups::Rollups> {
        self.rollups.as_ref()
    }

    pub fn file(&self) -> &MetricsFile {
        &self.file
    }

    pub fn index(&self) -> &index::LabelIndex {
        &self.index
    }

    /// Parses, plans and runs one query. `EXPLAIN` returns the plan as a
    /// one-column table; `EXPLAIN ANALYZE` runs the query and adds what it read.
    pub fn query(&self, sql: &str) -> Result<Output> {
        let start = Instant::now();
        // Each query reads, and counts, the timestamp columns it needs.
        self.file.forget_columns();
        if let Some(r) = &self.rollups {
            r.forget_columns();
        }
        let parsed = ast::parse(sql)?;
        let plan = plan::bind(&parsed, &self.index)?;
        let run = plan.explain != Some(ast::Explain::Plan);
        let (table, stats) =
            exec::execute(&self.file, &self.index, self.rollups.as_ref(), &plan, run)?;
        let table = match plan.explain {
            None => table,
            Some(mode) => Table {
                columns: vec!["plan".into()],
                rows: explain_lines(&plan, &stats, mode == ast::Explain::Analyze)
                    .into_iter()
                    .map(|l| vec![Value::Text(l)])
                    .collect(),
            },
        };
        Ok(Output {
            table,
            stats,
            elapsed: start.elapsed(),
            explain: plan.explain.is_some(),
        })
    }
}

fn pct(part: u64, whole: u64) -> String {
    if whole == 0 {
        "0%".into()
    } else {
        format!("{:.2}%", part as f64 * 100.0 / whole as f64)
    }
}

/// The plan as lines of text (deterministic: no timings).
pub fn explain_lines(plan: &plan::Plan, s: &Stats, analyzed: bool) -> Vec<String> {
    let mut out = vec![format!("source: {}", plan.source.describe())];
    out.push(format!(
        "series: {} in {}",
        s.series_in_metric,
        plan.source.driver()
    ));
    for step in &s.index_steps {
        out.push(format!("  label index: {step}"));
    }
    out.push(format!(
        "  after label conditions: {} series",
        s.series_chosen
    ));
    for (file, res, n, edged) in &s.rollup_series {
        out.push(format!(
            "rollups: {n} series from {file}: its {res} buckets divide the query's{}",
            if *edged == 0 {
                " and the time range falls on their boundaries".to_string()
            } else {
                format!(
                    "; for {edged} of them the time range's edges, which no whole bucket covers, are read raw"
                )
            }
        ));
    }
    if let Some(note) = &s.rollup_note {
        out.push(format!("rollups: {note}"));
    }
    out.push(format!(
        "filter: {}",
        describe_pred(&plan.pred, &plan.schema.nums)
    ));
    out.push(format!(
        "blocks: {} in the chosen series ({} in the file)",
        s.blocks_total, s.file_blocks
    ));
    out.push(format!("  pruned by time: {}", s.blocks_pruned_time));
    out.push(format!(
        "  pruned by value (min/max): {}",
        s.blocks_pruned_value
    ));
    out.push(format!(
        "  to read: {} ({} of the file's blocks), {} ({} of the file); {} need no row filter",
        s.blocks_candidate,
        pct(s.blocks_candidate, s.file_blocks),
        human_bytes(s.bytes_candidate),
        pct(s.bytes_candidate, s.file_bytes),
        s.blocks_whole
    ));
    match &plan.shape {
        plan::Shape::Agg { keys, aggs, .. } => {
            let keys: Vec<String> = keys
                .iter()
                .map(|k| match k {
                    plan::GroupKey::Label(l) => l.clone(),
                    plan::GroupKey::Bucket(1) => "ts".into(),
                    plan::GroupKey::Bucket(w) => {
                        format!("time_bucket({})", crate::time::format_duration(*w))
                    }
                })
                .collect();
            let aggs: Vec<String> = aggs
                .iter()
                .map(|a| match a.func {
                    plan::AggFn::Count => "count(*)".to_string(),
                    plan::AggFn::Percentile(p) => format!(
                        "percentile({}, {p})",
                        plan.schema.nums.get(a.col).map_or("?", String::as_str)
                    ),
                    f => format!(
                        "{}({})",
                        format!("{f:?}").to_lowercase(),
                        plan.schema.nums.get(a.col).map_or("?", String::as_str)
                    ),
                })
                .collect();
            out.push(format!(
                "aggregate: {} grouped by [{}]",
                aggs.join(", "),
                keys.join(", ")
            ));
        }
        plan::Shape::Rows { order, .. } => {
            let early = matches!(order.as_slice(), [(plan::Scalar::Ts, _)]) && plan.limit.is_some();
            out.push(format!(
                "rows: {}",
                if plan.limit.is_none() {
                    "all that pass".to_string()
                } else if order.is_empty() || early {
                    "read blocks in order, stop at LIMIT".to_string()
                } else {
                    "sort all that pass, keep LIMIT".to_string()
                }
            ));
        }
    }
    if let Some(l) = plan.limit {
        out.push(format!("limit: {l}"));
    }
    if analyzed {
        if !s.rollup_series.is_empty() {
            out.push(format!("read: {} rollup buckets", s.rollup_buckets));
        }
        out.push(format!(
            "read: {} blocks ({} of the file's), {} skipped by LIMIT",
            s.blocks_read,
            pct(s.blocks_read, s.file_blocks),
            s.blocks_skipped_limit
        ));
        out.push(format!(
            "bytes: {} read by the query: index, blocks, timestamp columns ({} of the file) + {} read once at open",
            human_bytes(s.bytes_read),
            pct(s.bytes_read, s.file_bytes),
            human_bytes(s.open_bytes)
        ));
        out.push(format!(
            "rows: {} decoded, {} passed the filter, {} returned",
            s.rows_scanned, s.rows_matched, s.rows_out
        ));
    }
    out
}

fn describe_pred(p: &pred::Pred, nums: &[String]) -> String {
    let d = |p: &pred::Pred| describe_pred(p, nums);
    use pred::Pred::*;
    match p {
        Const(b) => if *b { "none" } else { "false" }.into(),
        Label { name, op, value } => format!("{name} {} '{value}'", op.symbol()),
        LabelIn { name, set, negated } => format!(
            "{name} {}IN ({})",
            if *negated { "NOT " } else { "" },
            set.iter()
                .map(|s| format!("'{s}'"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Ts { op, value } => format!("ts {} {}", op.symbol(), table::format_time(*value)),
        Num { col, op, value } => format!(
            "{} {} {}",
            nums.get(*col).map_or("?", String::as_str),
            op.symbol(),
            table::format_float(*value)
        ),
        And(ps) => ps.iter().map(d).collect::<Vec<_>>().join(" AND "),
        Or(ps) => format!("({})", ps.iter().map(d).collect::<Vec<_>>().join(" OR ")),
        Not(p) => format!("NOT ({})", d(p)),
    }
}
