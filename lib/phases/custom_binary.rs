//! Phase 04: the self-contained binary format with an index.

use crate::error::Result;
use crate::format::compressed;
use crate::format::metrics::{self, BlockOptions, MetricsFile};
use crate::phases::{record, summary_line, thousands, timed, verify, Context, PhaseOutcome};
use crate::report::{human_bytes, ReportEntry};
use crate::time::format_duration;

/// What a query over a slice of one series read.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryProbe {
    pub series: String,
    pub start: i64,
    pub end: i64,
    pub samples: usize,
    pub open_bytes: u64,
    pub query_bytes: u64,
    pub blocks_read: u64,
    pub blocks_total: u64,
    pub file_bytes: u64,
}

impl QueryProbe {
    /// Bytes read (open plus query) as a share of the file.
    pub fn share(&self) -> f64 {
        (self.open_bytes + self.query_bytes) as f64 / self.file_bytes.max(1) as f64
    }
}

/// Opens `path` and reads the series with the most block bytes (the
/// costliest one to read) over `fraction` of its time range, centred in it.
pub fn probe_query(path: &std::path::Path, fraction: f64) -> Result<Option<QueryProbe>> {
    let file = MetricsFile::open(path)?;
    let Some(series) = (0..file.series().len()).max_by_key(|&i| file.series()[i].data_len) else {
        return Ok(None);
    };
    let blocks = file.blocks(series)?;
    let (lo, hi) = match (blocks.first(), blocks.last()) {
        (Some(a), Some(b)) => (a.first, b.last),
        _ => return Ok(None),
    };
    let span = (hi as f64 - lo as f64) * fraction;
    let mid = lo as f64 + (hi as f64 - lo as f64) / 2.0;
    let (start, end) = ((mid - span / 2.0) as i64, (mid + span / 2.0) as i64);
    // The block list read above was for choosing the range; count only the query.
    let query_start = file.bytes_read();
    let (s, stats) = file.read_range(series, start, end)?;
    Ok(Some(QueryProbe {
        series: s.key.to_string(),
        start,
        end,
        samples: s.len(),
        open_bytes: file.open_bytes(),
        query_bytes: file.bytes_read() - query_start,
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
    let (back, read_ms) = timed(|| MetricsFile::open(&path)?.read_all(&data.source))?;
    verify(&path, &data, &back)?;

    let entry = record(
        ctx,
        ReportEntry::new(
            "04",
            "custom binary (indexed blocks)",
            &path,
            bytes,
            samples,
            &fp,
        ),
        write_ms,
        read_ms,
    )?;

    let phase03 = compressed::encode(&data).0.len() as u64;
    let ndjson = ReportEntry::load(&ctx.output_dir, "01")?;
    let mut lines = vec![
        "Phase 04: a self-contained binary file: header, indexed blocks with CRCs, a directory, a footer".to_string(),
        format!(
            "  {} blocks, each within an aligned {} window, of at most {} samples and about {} bytes; each restarts its codecs and carries a CRC32C.",
            thousands(stats.blocks),
            format_duration(options.window_ns),
            options.max_samples,
            options.max_bytes
        ),
        format!(
            "  Bytes: data {} | block lists {} ({:.1} B a block) | directory {} (of which symbol table {}) | header + footer {}",
            stats.data,
            stats.block_lists,
            stats.block_lists as f64 / stats.blocks.max(1) as f64,
            stats.directory,
            stats.symbols,
            stats.frame
        ),
        format!(
            "  Names and label values are stored once in the symbol table; series refer to them by number. Against phase 03's {} the file is {:+.2}%.",
            human_bytes(phase03),
            100.0 * (bytes as f64 / phase03.max(1) as f64 - 1.0)
        ),
    ];
    if let Some(q) = probe_query(&path, 0.01)? {
        lines.push(format!(
            "  Query: the series with the most bytes, {}, over 1% of its time range ({}): {} samples from {} of {} blocks.",
            q.series,
            format_duration(q.end - q.start),
            q.samples,
            q.blocks_read,
            q.blocks_total
        ));
        lines.push(format!(
            "  It read {} B (footer, header, directory at open) + {} B (one block list, its blocks) = {:.2}% of the file.",
            q.open_bytes,
            q.query_bytes,
            100.0 * q.share()
        ));
    }
    lines.push(summary_line(&entry, ndjson.as_ref()));
    Ok(PhaseOutcome { entry, lines })
}
