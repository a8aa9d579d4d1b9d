//! The one report record, and the comparative report built from them.
//!
//! Every phase measures what it wrote and records a [`ReportEntry`] in
//! `output/report/NN.json`. The orchestrator (the default binary) gathers the
//! entries measured on the current dataset and renders them as a terminal
//! table, `output/report.md`, `output/report.json` and `output/report.svg`
//! (bytes per sample by phase, log scale).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use comfy_table::{presets::UTF8_FULL_CONDENSED, Cell, CellAlignment, Table};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::files::write_atomic;

/// Directory (inside the output directory) holding one entry per phase.
pub const ENTRY_DIR: &str = "report";

/// What one phase measured in one run.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ReportEntry {
    /// Two-digit phase number, e.g. `"03"`.
    pub phase: String,
    /// Human name of the stage, e.g. `"compressed columnar"`.
    pub name: String,
    /// Path of the artifact the numbers describe.
    pub artifact: String,
    /// Size of the artifact in bytes.
    pub bytes: u64,
    /// Samples stored in it.
    pub samples: u64,
    pub bytes_per_sample: f64,
    /// `ndjson bytes / bytes`, filled in when the NDJSON entry is known.
    pub ratio_to_ndjson: Option<f64>,
    /// Time to encode and write, milliseconds.
    pub encode_ms: f64,
    /// Time to read and decode, milliseconds.
    pub decode_ms: f64,
    /// Whether the stage keeps every bit of every sample.
    pub lossless: bool,
    /// Whether the read-back was compared with the input and found equal.
    pub verified: bool,
    /// Fingerprint of the dataset measured (see `format::dataset::fingerprint`).
    pub dataset: String,
    /// A reference point (another compressor on the same samples), not a phase.
    #[serde(default)]
    pub reference: bool,
    /// Identity of the artifact's contents where the phase records one
    /// (`.metrics` files: `MetricsFile::file_id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_id: Option<String>,
    /// Identity of the file this artifact was made from (rollups: the
    /// phase 04 file they roll up).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_file_id: Option<String>,
    /// The artifact holds no series (a rollup resolution that skipped
    /// every one): it stands for nothing, so no ratio to NDJSON.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub holds_nothing: bool,
}

impl ReportEntry {
    /// A reference compressor whose output did not decode back to the
    /// input: its size means nothing.
    pub fn failed_reference(&self) -> bool {
        self.reference && !self.verified
    }

    /// An entry for an artifact of `bytes` holding `samples`.
    pub fn new(
        phase: &str,
        name: &str,
        artifact: &Path,
        bytes: u64,
        samples: u64,
        dataset: &str,
    ) -> Self {
        ReportEntry {
            phase: phase.into(),
            name: name.into(),
            artifact: artifact.display().to_string(),
            bytes,
            samples,
            bytes_per_sample: if samples == 0 {
                0.0
            } else {
                bytes as f64 / samples as f64
            },
            ratio_to_ndjson: None,
            encode_ms: 0.0,
            decode_ms: 0.0,
            lossless: true,
            verified: false,
            dataset: dataset.into(),
            reference: false,
            file_id: None,
            source_file_id: None,
            holds_nothing: false,
        }
    }

    fn path(output_dir: &Path, phase: &str) -> PathBuf {
        output_dir.join(ENTRY_DIR).join(format!("{phase}.json"))
    }

    /// Records this entry under `output_dir/report/`.
    pub fn save(&self, output_dir: &Path) -> Result<()> {
        let json =
            serde_json::to_vec_pretty(self).map_err(|e| Error::InvalidArgument(e.to_string()))?;
        write_atomic(Self::path(output_dir, &self.phase), &json)?;
        Ok(())
    }

    /// Loads the entry of `phase`, if one was recorded.
    pub fn load(output_dir: &Path, phase: &str) -> Result<Option<ReportEntry>> {
        let path = Self::path(output_dir, phase);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
                Error::corrupt(path.display().to_string(), e.column() as u64, e.to_string())
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io(path, e)),
        }
    }
}

/// The comparative report over every phase measured on one dataset.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    /// Where the dataset came from.
    pub source: String,
    pub dataset: String,
    pub entries: Vec<ReportEntry>,
    /// Entries skipped because they were measured on another dataset.
    pub stale: Vec<String>,
}

impl Report {
    /// Gathers the entries in `output_dir/report/` that match `dataset`,
    /// ordered by phase, with ratios to NDJSON filled in.
    pub fn gather(output_dir: &Path, source: &str, dataset: &str) -> Result<Report> {
        let dir = output_dir.join(ENTRY_DIR);
        let mut entries = Vec::new();
        let mut stale = Vec::new();
        if dir.exists() {
            let mut names: Vec<_> = std::fs::read_dir(&dir)
                .map_err(|e| Error::io(&dir, e))?
                .filter_map(|e| e.ok())
                .filter_map(|e| {
                    let name = e.file_name().to_string_lossy().into_owned();
                    name.strip_suffix(".json").map(str::to_string)
                })
                .collect();
            names.sort();
            for phase in names {
                if let Some(entry) = ReportEntry::load(output_dir, &phase)? {
                    if entry.dataset == dataset {
                        entries.push(entry);
                    } else {
                        stale.push(entry.phase);
                    }
                }
            }
        }
        let mut report = Report {
            source: source.into(),
            dataset: dataset.into(),
            entries,
            stale,
        };
        report.fill_ratios();
        Ok(report)
    }

    /// Sets every entry's ratio to NDJSON from the phase 01 entry.
    pub fn fill_ratios(&mut self) {
        let ndjson = self
            .entries
            .iter()
            .find(|e| e.phase == "01")
            .map(|e| e.bytes);
        for e in &mut self.entries {
            e.ratio_to_ndjson = ndjson
                .filter(|_| e.bytes > 0 && !e.holds_nothing)
                .map(|n| n as f64 / e.bytes as f64);
        }
    }

    /// The terminal table.
    pub fn table(&self) -> Table {
        let mut t = Table::new();
        t.load_preset(UTF8_FULL_CONDENSED);
        t.set_header(vec![
            "phase",
            "stage",
            "bytes",
            "samples",
            "B/sample",
            "vs NDJSON",
            "encode",
            "decode",
            "lossless",
            "verified",
        ]);
        for e in &self.entries {
            let row = self.row(e);
            t.add_row(row.into_iter().enumerate().map(|(i, s)| {
                let c = Cell::new(s);
                if (2..=7).contains(&i) {
                    c.set_alignment(CellAlignment::Right)
                } else {
                    c
                }
            }));
        }
        t
    }

    fn row(&self, e: &ReportEntry) -> Vec<String> {
        // A reference that did not round-trip is shown as failed, never as a number.
        let measured = |text: String| {
            if e.failed_reference() {
                "failed".to_string()
            } else {
                text
            }
        };
        vec![
            e.phase.clone(),
            e.name.clone(),
            measured(human_bytes(e.bytes)),
            e.samples.to_string(),
            measured(format!("{:.3}", e.bytes_per_sample)),
            measured(
                e.ratio_to_ndjson
                    .map(|r| format!("{r:.1}x"))
                    .unwrap_or_else(|| "-".into()),
            ),
            measured(format!("{:.1} ms", e.encode_ms)),
            measured(format!("{:.1} ms", e.decode_ms)),
            yes_no(e.lossless).into(),
            yes_no(e.verified).into(),
        ]
    }

    /// The report as a Markdown document.
    pub fn markdown(&self) -> String {
        let mut md = String::new();
        let _ = writeln!(md, "# squeezed-signals: comparative report\n");
        let _ = writeln!(
            md,
            "Dataset: {} (fingerprint `{}`)\n",
            self.source, self.dataset
        );
        md.push_str("| phase | stage | bytes | samples | B/sample | vs NDJSON | encode | decode | lossless | verified |\n");
        md.push_str("|---|---|--:|--:|--:|--:|--:|--:|---|---|\n");
        for e in &self.entries {
            let _ = writeln!(md, "| {} |", self.row(e).join(" | "));
        }
        md
    }

    /// A horizontal bar chart of bytes per sample by phase, log scale.
    pub fn svg(&self) -> String {
        let rows: Vec<&ReportEntry> = self
            .entries
            .iter()
            .filter(|e| e.bytes_per_sample > 0.0 && !e.failed_reference())
            .collect();
        // About 7.5 px per character of 13 px sans-serif, plus a margin.
        let longest = rows
            .iter()
            .map(|e| e.phase.chars().count() + 1 + e.name.chars().count())
            .max()
            .unwrap_or(10);
        let label_w = 16.0 + 7.5 * longest as f64;
        let (bar_w, row_h, top) = (520.0, 30.0, 50.0);
        let width = label_w + bar_w + 120.0;
        let height = top + row_h * rows.len() as f64 + 50.0;
        let max = rows
            .iter()
            .map(|e| e.bytes_per_sample)
            .fold(1.0f64, f64::max);
        let min = rows.iter().map(|e| e.bytes_per_sample).fold(max, f64::min);
        let lo = 10f64.powf(min.log10().floor().min(0.0));
        let hi = 10f64.powf(max.log10().ceil().max(lo.log10() + 1.0));
        let x =
            |v: f64| label_w + bar_w * (v.max(lo).log10() - lo.log10()) / (hi.log10() - lo.log10());
        let mut s = String::new();
        let _ = writeln!(
            s,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="13">"#
        );
        let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
        let _ = writeln!(
            s,
            r#"<text x="{}" y="24" font-size="16" font-weight="bold">Bytes per sample by phase (log scale)</text>"#,
            label_w
        );
        let mut decade = lo;
        while decade <= hi * 1.0001 {
            let gx = x(decade);
            let _ = writeln!(
                s,
                r##"<line x1="{gx:.1}" y1="{}" x2="{gx:.1}" y2="{}" stroke="#ddd"/><text x="{gx:.1}" y="{}" text-anchor="middle" fill="#666">{}</text>"##,
                top - 8.0,
                height - 35.0,
                height - 18.0,
                trim_float(decade)
            );
            decade *= 10.0;
        }
        for (i, e) in rows.iter().enumerate() {
            let y = top + row_h * i as f64;
            let w = x(e.bytes_per_sample) - label_w;
            let color = match (e.reference, e.lossless) {
                (true, _) => "#9a9a9a",
                (false, true) => "#3b7dd8",
                (false, false) => "#e08a2e",
            };
            let _ = writeln!(
                s,
                r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{} {}</text>"#,
                label_w - 8.0,
                y + 19.0,
                xml_escape(&e.phase),
                xml_escape(&e.name)
            );
            let _ = writeln!(
                s,
                r#"<rect x="{label_w}" y="{:.1}" width="{:.1}" height="{:.1}" fill="{color}"/>"#,
                y + 5.0,
                w.max(1.0),
                row_h - 10.0
            );
            let _ = writeln!(
                s,
                r#"<text x="{:.1}" y="{:.1}">{:.3} B</text>"#,
                label_w + w.max(1.0) + 6.0,
                y + 19.0,
                e.bytes_per_sample
            );
        }
        s.push_str("</svg>\n");
        s
    }

    /// Writes `report.md`, `report.json` and `report.svg` into `output_dir`.
    pub fn write(&self, output_dir: &Path) -> Result<Vec<PathBuf>> {
        let json =
            serde_json::to_vec_pretty(self).map_err(|e| Error::InvalidArgument(e.to_string()))?;
        let files = [
            ("report.md", self.markdown().into_bytes()),
            ("report.json", json),
            ("report.svg", self.svg().into_bytes()),
        ];
        let mut paths = Vec::new();
        for (name, bytes) in files {
            let path = output_dir.join(name);
            write_atomic(&path, &bytes)?;
            paths.push(path);
        }
        Ok(paths)
    }
}

fn yes_no(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

fn trim_float(v: f64) -> String {
    if v >= 1.0 {
        format!("{v:.0}")
    } else {
        format!("{v}")
    }
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// `1536` -> `1.5 KiB`.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(phase: &str, bytes: u64) -> ReportEntry {
        ReportEntry::new(phase, "x", Path::new("a"), bytes, 100, "fp")
    }

    #[test]
    fn gather_keeps_matching_entries_and_fills_ratios() {
        let dir = tempfile::tempdir().unwrap();
        entry("01", 10_000).save(dir.path()).unwrap();
        entry("03", 500).save(dir.path()).unwrap();
        ReportEntry::new("02", "x", Path::new("a"), 1, 1, "other")
            .save(dir.path())
            .unwrap();
        let r = Report::gather(dir.path(), "src", "fp").unwrap();
        assert_eq!(r.entries.len(), 2);
        assert_eq!(r.stale, vec!["02".to_string()]);
        assert_eq!(r.entries[1].ratio_to_ndjson, Some(20.0));
        assert_eq!(r.entries[1].bytes_per_sample, 5.0);
    }

    #[test]
    fn an_artifact_that_holds_nothing_has_no_ratio() {
        let dir = tempfile::tempdir().unwrap();
        entry("01", 10_000).save(dir.path()).unwrap();
        let mut empty = entry("05.1", 68);
        empty.holds_nothing = true;
        empty.save(dir.path()).unwrap();
        let r = Report::gather(dir.path(), "src", "fp").unwrap();
        let e = r.entries.iter().find(|e| e.phase == "05.1").expect("05.1");
        assert!(e.holds_nothing, "kept through the JSON");
        assert_eq!(e.ratio_to_ndjson, None);
        assert!(
            r.markdown()
                .contains("| 05.1 | x | 68 B | 100 | 0.680 | - |"),
            "{}",
            r.markdown()
        );
    }

    #[test]
    fn renders_every_entry_in_every_output() {
        let mut r = Report {
            source: "s".into(),
            dataset: "fp".into(),
            entries: vec![entry("01", 13_000), entry("03", 150)],
            stale: vec![],
        };
        r.fill_ratios();
        let md = r.markdown();
        assert!(
            md.contains("| 03 | x | 150 B | 100 | 1.500 | 86.7x |"),
            "{md}"
        );
        let svg = r.svg();
        assert_eq!(svg.matches("<rect x=").count(), 2);
        assert!(r.table().to_string().contains("86.7x"));
    }

    #[test]
    fn a_failed_reference_is_shown_as_failed_never_as_a_number() {
        let mut failed = entry("ref4", 32_000);
        failed.reference = true;
        failed.verified = false;
        let mut good = entry("ref1", 480);
        good.reference = true;
        good.verified = true;
        let mut r = Report {
            source: "s".into(),
            dataset: "fp".into(),
            entries: vec![entry("01", 13_000), good, failed],
            stale: vec![],
        };
        r.fill_ratios();
        let md = r.markdown();
        assert!(md.contains("| ref4 | x | failed | 100 | failed |"), "{md}");
        assert!(!md.contains("31.2 KiB"), "{md}");
        assert!(md.contains("| ref1 | x | 480 B | 100 | 4.800 |"), "{md}");
        assert_eq!(r.svg().matches("<rect x=").count(), 2, "no bar for it");
    }

    #[test]
    fn human_bytes_rounds_to_units() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(5 * 1024 * 1024), "5.0 MiB");
    }
}
