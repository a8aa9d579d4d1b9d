//! Phase 03: compressed columnar, with the ablation table that shows what
//! each technique buys.

use comfy_table::{presets::UTF8_FULL_CONDENSED, Cell, CellAlignment, Table};

use crate::codec::adaptive_entropy::Choice;
use crate::codec::delta::{self, TimestampScheme};
use crate::codec::varint::{len_u64, zigzag};
use crate::course::{record, summary_line, timed, verify, Context, PhaseOutcome};
use crate::error::Result;
use crate::format::adaptive::{self, value_scheme_name, AdaptiveStats, ENTROPY};
use crate::format::gorilla::{self, scheme_name, Breakdown};
use crate::model::Dataset;
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

/// Phase 03 (Gorilla) and 03b (adaptive), with the `references` run on the same samples.
pub fn run(ctx: &Context, references: crate::reference::References) -> Result<PhaseOutcome> {
    let (data, fp) = ctx.load_dataset()?;
    let path = ctx.path(gorilla::FILE_NAME);
    let samples = data.sample_count();
    let ((bytes, breakdown), write_ms) = timed(|| gorilla::write(&data, &path))?;
    let (back, read_ms) = timed(|| gorilla::read(&path))?;
    verify(&path, &data, &back)?;

    let entry = record(
        ctx,
        ReportEntry::new("03", "compressed columnar", &path, bytes, samples, &fp),
        write_ms,
        read_ms,
    )?;

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
    let (beyond, st03b) = beyond_gorilla(
        ctx,
        &data,
        &fp,
        &breakdown,
        bytes,
        ndjson.as_ref(),
        references,
    )?;
    lines.extend(beyond);
    lines.extend(entropy_coded(
        ctx,
        &data,
        &fp,
        &st03b,
        ndjson.as_ref(),
        references,
    )?);
    Ok(PhaseOutcome { entry, lines })
}

/// 03b: shared timestamp columns and the adaptive value codec, side by side
/// with Gorilla, then the reference compressors on the same samples.
fn beyond_gorilla(
    ctx: &Context,
    data: &Dataset,
    fp: &str,
    breakdown: &Breakdown,
    gbytes: u64,
    ndjson: Option<&ReportEntry>,
    references: crate::reference::References,
) -> Result<(Vec<String>, AdaptiveStats)> {
    let samples = data.sample_count();
    let path = ctx.path(adaptive::FILE_NAME);
    let ((abytes, st), write_ms) = timed(|| adaptive::write(data, &path))?;
    let (back, read_ms) = timed(|| adaptive::read(&path))?;
    verify(&path, data, &back)?;
    let entry = record(
        ctx,
        ReportEntry::new(
            "03b",
            "adaptive columnar (beyond Gorilla)",
            &path,
            abytes,
            samples,
            fp,
        ),
        write_ms,
        read_ms,
    )?;

    let mut lines = vec![
        String::new(),
        "Phase 03b: beyond Gorilla: shared timestamp columns and an adaptive value codec".to_string(),
        format!(
            "  Timestamps: {} series use {} distinct timestamp columns; each is stored once ({}).",
            data.series.len(),
            st.columns,
            if st.columns < data.series.len() as u64 {
                "series scraped together share one"
            } else {
                "no two series share one here"
            }
        ),
        format!(
            "  Values: {} series repeat the values of an earlier series and refer to it; every other block of up to {} values takes the smallest scheme that stores it exactly:",
            st.shared_values,
            adaptive::BLOCK
        ),
    ];
    lines.extend(indent(scheme_table(&st)));
    lines.extend(indent(side_by_side(
        samples, breakdown, gbytes, &st, abytes,
    )));
    lines.push(summary_line(&entry, ndjson));

    // References: other compressors on the same samples, in the same run.
    lines.push("  References on the same samples (not phases):".into());
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED);
    t.set_header(vec![
        "reference",
        "bytes",
        "B/sample",
        "vs adaptive",
        "verified",
    ]);
    for (i, r) in crate::reference::measure(data, references)
        .iter()
        .enumerate()
    {
        let mut e = ReportEntry::new(
            &format!("ref{}", i + 1),
            &format!("reference: {}", r.name),
            std::path::Path::new("(in memory)"),
            r.bytes,
            samples,
            fp,
        );
        e.encode_ms = r.encode_ms;
        e.decode_ms = r.decode_ms;
        e.verified = r.verified;
        e.reference = true;
        if r.bytes > 0 {
            e.save(&ctx.output_dir)?;
        }
        // A reference that did not round-trip is shown as failed, not as a size.
        let measured = |text: String| if r.verified { text } else { "failed".into() };
        t.add_row(vec![
            Cell::new(&r.name),
            Cell::new(measured(r.bytes.to_string())).set_alignment(CellAlignment::Right),
            Cell::new(measured(format!(
                "{:.3}",
                r.bytes as f64 / samples.max(1) as f64
            )))
            .set_alignment(CellAlignment::Right),
            Cell::new(measured(format!(
                "{:.2}x",
                r.bytes as f64 / abytes.max(1) as f64
            )))
            .set_alignment(CellAlignment::Right),
            Cell::new(match (&r.note, r.verified) {
                (Some(n), _) => format!("no: {n}"),
                (None, true) => "yes".into(),
                (None, false) => "no".into(),
            }),
        ]);
    }
    lines.extend(indent(t));
    Ok((lines, st))
}

fn indent(t: Table) -> Vec<String> {
    t.to_string().lines().map(|l| format!("  {l}")).collect()
}

/// pco on each series' value column (default level, one chunk per column),
/// as a column store uses it; `None` if a column did not round-trip.
pub fn pco_values_bytes(data: &Dataset) -> Option<u64> {
    let mut total = 0;
    for s in &data.series {
        let blob =
            pco::standalone::simpler_compress(&s.values, pco::DEFAULT_COMPRESSION_LEVEL).ok()?;
        let back: Vec<f64> = pco::standalone::simple_decompress(&blob).ok()?;
        let same = back.len() == s.values.len()
            && back
                .iter()
                .zip(&s.values)
                .all(|(a, b)| a.to_bits() == b.to_bits());
        if !same {
            return None;
        }
        total += blob.len() as u64;
    }
    Some(total)
}

/// 03c: the same file with entropy-coded value blocks, against 03b and pco.
fn entropy_coded(
    ctx: &Context,
    data: &Dataset,
    fp: &str,
    st03b: &AdaptiveStats,
    ndjson: Option<&ReportEntry>,
    references: crate::reference::References,
) -> Result<Vec<String>> {
    let samples = data.sample_count();
    let path = ctx.path(ENTROPY.file_name);
    let ((bytes, st), write_ms) = timed(|| adaptive::write_as(&ENTROPY, data, &path))?;
    let (back, read_ms) = timed(|| adaptive::read_as(&ENTROPY, &path))?;
    verify(&path, data, &back)?;
    let entry = record(
        ctx,
        ReportEntry::new(
            "03c",
            "entropy-coded columnar (bins + tANS)",
            &path,
            bytes,
            samples,
            fp,
        ),
        write_ms,
        read_ms,
    )?;
    let mut lines = vec![
        String::new(),
        "Phase 03c: entropy coding: decimal integers in bins coded with tANS, delta orders, dictionaries".to_string(),
        format!(
            "  The 03b file with other value blocks: up to {} values each, cut evenly; a table of bins pays for itself only over many values. Each block takes the smallest of:",
            adaptive::ENTROPY_BLOCK
        ),
    ];
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED);
    t.set_header(vec![
        "scheme",
        "blocks",
        "values",
        "bytes",
        "bits/value",
        "why it wins",
    ]);
    for label in 0..ENTROPY.labels {
        if st.scheme_blocks[label] == 0 {
            continue;
        }
        let choice = Choice::of_label(label).expect("labels are choices");
        let bits = st.scheme_bytes[label] as f64 * 8.0 / st.scheme_samples[label].max(1) as f64;
        t.add_row(vec![
            Cell::new(choice.name()),
            Cell::new(st.scheme_blocks[label]).set_alignment(CellAlignment::Right),
            Cell::new(st.scheme_samples[label]).set_alignment(CellAlignment::Right),
            Cell::new(st.scheme_bytes[label]).set_alignment(CellAlignment::Right),
            Cell::new(format!("{bits:.2}")).set_alignment(CellAlignment::Right),
            Cell::new(choice.reason()),
        ]);
    }
    lines.extend(indent(t));
    let per = |b: u64| format!("{:.3}", b as f64 / samples.max(1) as f64);
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED);
    t.set_header(vec![
        "value bytes per sample",
        "adaptive (03b)",
        "entropy (03c)",
        "pco (per column)",
        "03c / pco",
    ]);
    let pco = (references != crate::reference::References::None)
        .then(|| pco_values_bytes(data))
        .flatten();
    t.add_row(vec![
        Cell::new("values"),
        Cell::new(per(st03b.values)).set_alignment(CellAlignment::Right),
        Cell::new(per(st.values)).set_alignment(CellAlignment::Right),
        Cell::new(pco.map(per).unwrap_or_else(|| "not run".into()))
            .set_alignment(CellAlignment::Right),
        Cell::new(
            pco.map(|p| format!("{:.2}", st.values as f64 / p.max(1) as f64))
                .unwrap_or_else(|| "-".into()),
        )
        .set_alignment(CellAlignment::Right),
    ]);
    lines.extend(indent(t));
    lines.push(summary_line(&entry, ndjson));
    Ok(lines)
}

/// Which value scheme the blocks chose, and why it is smaller.
fn scheme_table(st: &AdaptiveStats) -> Table {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED);
    t.set_header(vec![
        "scheme",
        "blocks",
        "values",
        "bytes",
        "bits/value",
        "share of values",
        "why it wins",
    ]);
    let all_values: u64 = st.scheme_samples.iter().sum();
    let rows = [
        (
            0usize,
            "every value in the block has the same bits: 9 bytes for the block",
        ),
        (
            2,
            "every value is k / 10^e exactly: the integers k are bit-packed",
        ),
        (1, "no short exact decimal: XOR with the previous value"),
    ];
    for (k, reason) in rows {
        if st.scheme_blocks[k] == 0 {
            continue;
        }
        let bits = st.scheme_bytes[k] as f64 * 8.0 / st.scheme_samples[k].max(1) as f64;
        t.add_row(vec![
            Cell::new(value_scheme_name(k)),
            Cell::new(st.scheme_blocks[k]).set_alignment(CellAlignment::Right),
            Cell::new(st.scheme_samples[k]).set_alignment(CellAlignment::Right),
            Cell::new(st.scheme_bytes[k]).set_alignment(CellAlignment::Right),
            Cell::new(format!("{bits:.2}")).set_alignment(CellAlignment::Right),
            Cell::new(format!(
                "{:.1}%",
                st.scheme_samples[k] as f64 * 100.0 / all_values.max(1) as f64
            ))
            .set_alignment(CellAlignment::Right),
            Cell::new(reason),
        ]);
    }
    t
}

/// Gorilla (03) and adaptive (03b), bytes per sample, part by part.
fn side_by_side(samples: u64, g: &Breakdown, gbytes: u64, a: &AdaptiveStats, abytes: u64) -> Table {
    let per = |b: u64| format!("{:.3}", b as f64 / samples.max(1) as f64);
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED);
    t.set_header(vec![
        "bytes per sample",
        "Gorilla (03)",
        "adaptive (03b)",
        "adaptive / Gorilla",
    ]);
    for (name, x, y) in [
        ("timestamps", g.timestamps, a.timestamps),
        ("values", g.values, a.values),
        (
            "timestamps + values",
            g.timestamps + g.values,
            a.timestamps + a.values,
        ),
        ("names, lengths, checksum", g.metadata, a.metadata),
        ("whole file", gbytes, abytes),
    ] {
        t.add_row(vec![
            Cell::new(name),
            Cell::new(per(x)).set_alignment(CellAlignment::Right),
            Cell::new(per(y)).set_alignment(CellAlignment::Right),
            Cell::new(format!("{:.2}", y as f64 / x.max(1) as f64))
                .set_alignment(CellAlignment::Right),
        ]);
    }
    t
}
