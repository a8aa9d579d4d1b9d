//! Phase 02: columnar MessagePack.

use crate::course::{record, summary_line, timed, verify, Context, PhaseOutcome};
use crate::error::Result;
use crate::format::columnar;
use crate::report::ReportEntry;

pub fn run(ctx: &Context) -> Result<PhaseOutcome> {
    let (data, fp) = ctx.load_dataset()?;
    let path = ctx.path(columnar::FILE_NAME);
    let samples = data.sample_count();
    let (bytes, write_ms) = timed(|| columnar::write(&data, &path))?;
    let (back, read_ms) = timed(|| columnar::read(&path))?;
    verify(&path, &data, &back)?;

    let entry = record(
        ctx,
        ReportEntry::new("02", "columnar MessagePack", &path, bytes, samples, &fp),
        write_ms,
        read_ms,
    )?;

    let ndjson = ReportEntry::load(&ctx.output_dir, "01")?;
    let lines = vec![
        "Phase 02: columnar MessagePack, metadata once, then a timestamp column and a value column per series".to_string(),
        format!(
            "  Names and labels are stored once for each of the {} series instead of once per sample.",
            data.series.len()
        ),
        "  The columns are still wide: MessagePack spends 9 bytes on a nanosecond timestamp and 9 on an f64.".into(),
        "  So about 18 bytes a sample remain; phase 03 attacks the width.".into(),
        summary_line(&entry, ndjson.as_ref()),
    ];
    Ok(PhaseOutcome { entry, lines })
}
