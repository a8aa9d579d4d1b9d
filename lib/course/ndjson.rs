//! Phase 01: the NDJSON baseline.

use crate::course::{record, summary_line, timed, verify, Context, PhaseOutcome};
use crate::error::Result;
use crate::format::ndjson;
use crate::report::ReportEntry;

pub fn run(ctx: &Context) -> Result<PhaseOutcome> {
    let (data, fp) = ctx.load_dataset()?;
    let path = ctx.path(ndjson::FILE_NAME);
    let samples = data.sample_count();

    let bar = ctx.progress(samples, "write");
    let (bytes, write_ms) = timed(|| ndjson::write(&data, &path, &bar))?;
    bar.finish_and_clear();
    let bar = ctx.progress(samples, "read");
    let (back, read_ms) = timed(|| ndjson::read(&path, &data.source, &bar))?;
    bar.finish_and_clear();
    verify(&path, &data, &back)?;

    let entry = record(
        ctx,
        ReportEntry::new("01", "NDJSON", &path, bytes, samples, &fp),
        write_ms,
        read_ms,
    )?;

    let repeated = ndjson::repeated_bytes(&data);
    let mut lines = vec!["Phase 01: NDJSON, one JSON object per sample".to_string()];
    lines.push(format!(
        "  Each line repeats the field names, the metric name and every label: {:.1} of its {:.1} bytes on average ({:.0}%).",
        repeated as f64 / samples.max(1) as f64,
        entry.bytes_per_sample,
        100.0 * repeated as f64 / bytes.max(1) as f64
    ));
    lines.push(
        "  The numbers are decimal text: a nanosecond timestamp takes 19 digits, a value up to 24 characters.".into(),
    );
    lines.push("  NaN and infinities are written as strings (\"NaN\", \"+Inf\", \"-Inf\", \"NaN(0x...)\") so the round trip stays bit-exact.".into());
    lines.push(summary_line(&entry, None));
    Ok(PhaseOutcome { entry, lines })
}
