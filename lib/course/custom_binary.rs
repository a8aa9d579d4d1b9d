//! Phase 04: the self-contained binary format with an index.

use crate::course::{record, summary_line, thousands, timed, verify, Context, PhaseOutcome};
use crate::error::Result;
use crate::format::metrics::{self, BlockOptions, MetricsFile};
use crate::format::{adaptive, gorilla};
use crate::report::{human_bytes, ReportEntry};
use crate::time::format_duration;

/// What a query over a slice of one series read.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryProbe {
    pub series: String,
    /// The queried range, nanoseconds, inclusive.
    pub start: i64,
    pub end: i64,
    pub samples: usize,
    /// Bytes read by opening the file (footer, header; version 3: the root;
    /// versions 1, 2: the whole directory).
    pub open_bytes: u64,
    /// Bytes read to find the series by its key (version 3: one name page
    /// and one index page).
    pub lookup_bytes: u64,
    /// Bytes read by the query itself (blocks, shared timestamp columns;
    /// versions 1, 2: the block list too).
    pub query_bytes: u64,
    pub blocks_read: u64,
    pub blocks_total: u64,
    pub file_bytes: u64,
}

impl QueryProbe {
    /// Bytes read (open, lookup and query) as a share of the file.
    pub fn share(&self) -> f64 {
        (self.open_bytes + self.lookup_bytes + self.query_bytes) as f64
            / self.file_bytes.max(1) as f64
    }
}

/// Picks the series with the most block bytes (the costliest one to read)
/// and its range, then measures, on a fresh lazy open, a query for it over
/// `fraction` of its time range, centred in it: open, look the key up,
/// read the range.
pub fn probe_query(path: &std::path::Path, fraction: f64) -> Result<Option<QueryProbe>> {
    let (key, start, end) = {
        let file = MetricsFile::open(path)?;
        let Some(series) = (0..file.series().len()).max_by_key(|&i| file.series()[i].data_len)
        else {
            return Ok(None);
        };
        let blocks = file.blocks(series)?;
        let (lo, hi) = match (blocks.first(), blocks.last()) {
            (Some(a), Some(b)) => (a.first, b.last),
            _ => return Ok(None),
        };
        let span = (hi as f64 - lo as f64) * fraction;
        let mid = lo as f64 + (hi as f64 - lo as f64) / 2.0;
        let key = file.series()[series].key.clone();
        (key, (mid - span / 2.0) as i64, (mid + span / 2.0) as i64)
    };
    let file = MetricsFile::open_lazy(path)?;
    let Some(series) = file.find(&key)? else {
        return Ok(None);
    };
    let lookup_bytes = file.bytes_read();
    let (s, stats) = file.read_range(series, start, end)?;
    Ok(Some(QueryProbe {
        series: s.key.to_string(),
        start,
        end,
        samples: s.len(),
        open_bytes: file.open_bytes(),
        lookup_bytes,
        query_bytes: file.bytes_read() - lookup_bytes,
        blocks_read: stats.blocks_read,
        blocks_total: stats.blocks_total,
        file_bytes: file.len(),
    }))
}

pub fn run(ctx: &Context, options: BlockOptions) -> Result<PhaseOutcome> {
    let (data, fp) = ctx.load_dataset()?;
    let path = ctx.path(metrics::FILE_NAME);
    let samples = data.sample_count();
    let ((bytes, stats), write_ms) = timed(|| metrics::write(&data, &path, options))?;
    let ((back, file_id), read_ms) = timed(|| {
        let f = MetricsFile::open(&path)?;
        Ok((f.read_all(&data.source)?, f.file_id()))
    })?;
    verify(&path, &data, &back)?;

    let mut entry = ReportEntry::new(
        "04",
        "custom binary (indexed blocks)",
        &path,
        bytes,
        samples,
        &fp,
    );
    entry.file_id = Some(file_id);
    let entry = record(ctx, entry, write_ms, read_ms)?;

    let phase03 = gorilla::encode(&data).0.len() as u64;
    let phase03b = adaptive::encode(&data).0.len() as u64;
    let version2 = metrics::encode_v2(&data, metrics::v2_options())?.len() as u64;
    let ndjson = ReportEntry::load(&ctx.output_dir, "01")?;
    let change = |base: u64| 100.0 * (bytes as f64 / base.max(1) as f64 - 1.0);
    let mut lines = vec![
        "Phase 04: a self-contained binary file: header, blocks with CRCs, shared timestamp columns, a paged index, a footer".to_string(),
        format!(
            "  {} series in {} pieces: a piece is one series within an aligned {} window, at most {} samples and about {} bytes; the pieces' items share {} blocks (short series pack together), each with a CRC32C.",
            thousands(data.series.len() as u64),
            thousands(stats.pieces),
            format_duration(options.window_ns),
            options.max_samples,
            options.max_bytes,
            thousands(stats.blocks)
        ),
        format!(
            "  Timestamps: {} of {} pieces read one of {} shared columns (series scraped together share one); the rest keep theirs in their block.{}",
            thousands(stats.shared_ts_pieces),
            thousands(stats.pieces),
            thousands(stats.shared_columns),
            if stats.parted_columns > 0 {
                format!(
                    " {} columns larger than {} B are stored in parts, so that a query reads the parts it needs.",
                    thousands(stats.parted_columns),
                    options.max_bytes
                )
            } else {
                String::new()
            }
        ),
        format!(
            "  Values: {} pieces are a constant kept in the index, {} repeat an earlier piece's values and point to them; the rest are adaptive blocks (03b).",
            thousands(stats.constant_pieces),
            thousands(stats.shared_value_pieces)
        ),
        format!(
            "  Bytes: blocks {} (of which inline timestamps {}) | shared timestamp columns {} | index pages {} ({:.1} B a piece) | name pages {} | root {} | header + footer {}",
            stats.data,
            stats.inline_timestamps,
            stats.columns,
            stats.index,
            stats.index as f64 / stats.pieces.max(1) as f64,
            stats.names,
            stats.root,
            stats.frame
        ),
        format!(
            "  Against phase 03's {} the file is {:+.2}%; against phase 03b's {} (no index, no random access), {:+.2}%; against version 2 of this format ({}, {:.3} B/sample), {:+.2}%.",
            human_bytes(phase03),
            change(phase03),
            human_bytes(phase03b),
            change(phase03b),
            human_bytes(version2),
            version2 as f64 / samples.max(1) as f64,
            change(version2)
        ),
    ];
    if let Some(q) = probe_query(&path, 0.01)? {
        lines.push(format!(
            "  Query: the series with the most bytes, {}, over 1% of its time range ({}): {} samples from {} of {} pieces.",
            q.series,
            format_duration(q.end - q.start),
            q.samples,
            q.blocks_read,
            q.blocks_total
        ));
        lines.push(format!(
            "  It read {} B (footer, header, root at open) + {} B (its name page and index page) + {} B (its blocks and timestamp column) = {:.2}% of the file.",
            q.open_bytes,
            q.lookup_bytes,
            q.query_bytes,
            100.0 * q.share()
        ));
    }
    lines.push(summary_line(&entry, ndjson.as_ref()));
    Ok(PhaseOutcome { entry, lines })
}
