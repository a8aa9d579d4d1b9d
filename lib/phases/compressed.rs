//! Phase 03: compressed columnar, with the ablation table that shows what
//! each technique buys.

use comfy_table::{presets::UTF8_FULL_CONDENSED, Cell, CellAlignment, Table};

use crate::codec::delta::{self, TimestampScheme};
use crate::codec::varint::{len_u64, zigzag};
use crate::error::Result;
use crate::format::compressed::{self, scheme_name, Breakdown};
use crate::model::Dataset;
use crate::phases::{summary_line, timed, verify, Context, PhaseOutcome};
use crate::report::ReportEntry;

/// Bytes the dataset's columns take under each step of the technique ladder.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ablation {
    pub samples: u64,
    pub ts_raw: u64,
    pub ts_delta: u64,
    pub ts_dod: u64,
    pub ts_dod_tick: u64,
    pub ts_dod_tick_rle: u64,
    pub ts_gorilla: u64,
    pub ts_chosen: u64,
    pub values_raw: u64,
    pub values_xor: u64,
}

fn varints(values: impl Iterator<Item = i64>) -> u64 {
    values.map(|v| len_u64(zigzag(v)) as u64).sum()
}

/// Measures every step of the ladder on `data`.
pub fn ablation(data: &Dataset, breakdown: &Breakdown) -> Ablation {
    let mut a = Ablation {
        ts_chosen: breakdown.timestamps,
        values_xor: breakdown.values,
        ..Ablation::default()
    };
    let mut buf = Vec::new();
    for s in &data.series {
        let ts = &s.timestamps;
        let n = ts.len() as u64;
        a.samples += n;
        a.ts_raw += 8 * n;
        a.values_raw += 8 * n;
        let first = ts.first().map(|&t| len_u64(zigzag(t)) as u64).unwrap_or(0);
        let first_delta = delta::deltas(ts)
            .next()
            .map(|d| len_u64(zigzag(d)) as u64)
            .unwrap_or(0);
        a.ts_delta += first + varints(delta::deltas(ts));
        a.ts_dod += first + first_delta + varints(delta::scaled_dods(ts, 1));
        let tick = delta::tick(ts);
        let first_scaled = delta::deltas(ts)
            .next()
            .map(|d| len_u64(zigzag(d / tick as i64)) as u64 + len_u64(tick) as u64)
            .unwrap_or(0);
        a.ts_dod_tick += first + first_scaled + varints(delta::scaled_dods(ts, tick));
        for (scheme, slot) in [
            (TimestampScheme::VarintZeroRuns, &mut a.ts_dod_tick_rle),
            (TimestampScheme::GorillaBuckets, &mut a.ts_gorilla),
        ] {
            buf.clear();
            delta::encode(ts, scheme, &mut buf);
            // Minus the scheme byte, so every row counts the same fields.
            *slot += buf.len() as u64 - 1;
        }
    }
    a
}

impl Ablation {
    /// The table printed by phase 03.
    pub fn table(&self) -> Table {
        let per = |b: u64| format!("{:.3}", b as f64 / self.samples.max(1) as f64);
        let rows = [
            ("timestamps", "raw i64", self.ts_raw),
            ("timestamps", "delta (zigzag varint)", self.ts_delta),
            ("timestamps", "delta-of-delta (zigzag varint)", self.ts_dod),
            (
                "timestamps",
                "  + tick scaling (÷ GCD of deltas)",
                self.ts_dod_tick,
            ),
            (
                "timestamps",
                "  + run-length coded zero runs",
                self.ts_dod_tick_rle,
            ),
            (
                "timestamps",
                "  Gorilla buckets instead of varints",
                self.ts_gorilla,
            ),
            (
                "timestamps",
                "smaller of the two per series, + scheme byte (stored)",
                self.ts_chosen,
            ),
            ("values", "raw f64", self.values_raw),
            ("values", "Gorilla XOR (stored)", self.values_xor),
        ];
        let mut t = Table::new();
        t.load_preset(UTF8_FULL_CONDENSED);
        t.set_header(vec!["column", "technique", "bytes", "B/sample", "vs raw"]);
        for (col, name, bytes) in rows {
            let raw = if col == "values" {
                self.values_raw
            } else {
                self.ts_raw
            };
            t.add_row(vec![
                Cell::new(col),
                Cell::new(name),
                Cell::new(bytes).set_alignment(CellAlignment::Right),
                Cell::new(per(bytes)).set_alignment(CellAlignment::Right),
                Cell::new(format!("{:.1}x", raw as f64 / bytes.max(1) as f64))
                    .set_alignment(CellAlignment::Right),
            ]);
        }
        t
    }
}

pub fn run(ctx: &Context) -> Result<PhaseOutcome> {
    let (data, fp) = ctx.load_dataset()?;
    let path = ctx.path(compressed::FILE_NAME);
    let samples = data.sample_count();
    let ((bytes, breakdown), write_ms) = timed(|| compressed::write(&data, &path))?;
    let (back, read_ms) = timed(|| compressed::read(&path))?;
    verify(&path, &data, &back)?;

    let mut entry = ReportEntry::new("03", "compressed columnar", &path, bytes, samples, &fp);
    entry.encode_ms = write_ms;
    entry.decode_ms = read_ms;
    entry.verified = true;
    entry.save(&ctx.output_dir)?;

    let ablation = ablation(&data, &breakdown);
    let ndjson = ReportEntry::load(&ctx.output_dir, "01")?;
    let ticks: std::collections::BTreeMap<u64, usize> = data
        .series
        .iter()
        .map(|s| delta::tick(&s.timestamps))
        .fold(Default::default(), |mut m, t| {
            *m.entry(t).or_default() += 1;
            m
        });
    let common_tick = ticks
        .iter()
        .max_by_key(|(_, &n)| n)
        .map(|(&t, _)| t)
        .unwrap_or(1);
    let mut lines = vec![
        "Phase 03: compressed columnar: delta-of-delta timestamps, Gorilla XOR values, varint framing".to_string(),
        format!(
            "  Timestamps: deltas between scrapes are nearly constant, so their differences (delta-of-deltas) are tiny; \
             every delta of most series is a multiple of {}, so they are coded in those ticks.",
            crate::time::format_duration(common_tick as i64)
        ),
        format!(
            "  Per series the smaller timestamp coding wins: {} series chose {}, {} chose {}.",
            breakdown.scheme_counts[0],
            scheme_name(0),
            breakdown.scheme_counts[1],
            scheme_name(1)
        ),
        "  Values: each is XORed with the previous one; equal values cost 1 bit, close ones only their differing middle bits.".into(),
        format!(
            "  Bytes: {} timestamps, {} values, {} names, labels, lengths and checksum.",
            breakdown.timestamps, breakdown.values, breakdown.metadata
        ),
        "  What each technique buys:".into(),
    ];
    lines.extend(
        ablation
            .table()
            .to_string()
            .lines()
            .map(|l| format!("  {l}")),
    );
    lines.push(summary_line(&entry, ndjson.as_ref()));
    Ok(PhaseOutcome { entry, lines })
}
