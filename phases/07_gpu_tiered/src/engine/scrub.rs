//! [`Engine::scrub`]: every byte of the store read and checked.

use super::recovery::ScrubReport;
use super::{lock, Engine};
use crate::error::{Error, Result};
use crate::store::{cold, wal};

impl Engine {
    /// Reads every cold file whole and checks it against the CRC-32C the
    /// catalog recorded, and reads every WAL record and checks its CRC.
    /// Damage is reported, not repaired; a file that cannot be read is
    /// reported as such, not as damage.
    pub fn scrub(&self) -> Result<ScrubReport> {
        let (files, watermark) = {
            let state = self.read();
            (state.cold.clone(), state.watermark)
        };
        let mut report = ScrubReport::default();
        for f in files.iter() {
            let p = self.cold_store().name(&f.path);
            report.files += 1;
            report.bytes += f.bytes;
            match cold::verify(self.cold_store(), f) {
                Ok(()) => {}
                Err(e @ Error::Io { .. }) => report.unreadable.push((p, e.to_string())),
                Err(e) => report.damaged.push((p, e.to_string())),
            }
        }
        let options = wal::ScanOptions {
            owner: self.log_owner.clone(),
            watermark: Some(watermark),
            cut_damaged_tail: false,
        };
        match wal::scan_with(&self.config().wal_dir(), self.schema(), &options, |_, _| {
            Ok(())
        }) {
            Ok(r) => report.wal_records = r.records,
            Err(e) => report.wal_problem = Some(e.to_string()),
        }
        // The kept bars, when they describe the cold tier (stale ones are
        // rebuilt by the next writing open, not damage).
        let symbols: std::collections::BTreeSet<String> = files
            .iter()
            .flat_map(|f| f.symbols.iter().cloned())
            .collect();
        let current = lock(&self.catalog).bars_current()?;
        if self.config().cold_tier.bars_kept == 0 {
            report.bars_not_checked = Some("cold_tier.bars_kept is 0".into());
        } else if !current {
            report.bars_not_checked = Some(
                "they do not describe the cold tier as it is: the next open of the store to \
                 write rebuilds them, or `07_gpu_tiered bars --rebuild`"
                    .into(),
            );
        } else {
            let (pages, problems) = lock(&self.catalog).check_bars(&symbols)?;
            report.bar_pages = pages;
            report.bars_problems = problems;
        }
        Ok(report)
    }
}
