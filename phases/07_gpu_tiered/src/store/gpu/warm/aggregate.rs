//! The aggregate driver: one accumulator of [`ACC_STRIDE`] cells per
//! (symbol, bucket) group on the device, filled by the `ssig_aggregate`
//! kernel over the rows the predicate program accepts, read back into
//! [`Partial`]s with exact sums.

use std::sync::Arc;

use cudarc::driver::PushKernelArg;

use crate::agg::{Buckets, ExactSum, Groups, Partial, LIMBS};
use crate::error::{Error, Result};
use crate::filter::Pred;

use super::{cuda, launch_cfg, GpuWarm};

/// Cells per group in the device's aggregate (`ACC_STRIDE` of kernels.cu).
pub(crate) const ACC_STRIDE: usize = 15 + 2 * LIMBS;
const A_COUNT: usize = 0;
const A_TS_MIN: usize = 1;
const A_TS_MAX: usize = 2;
const A_OPEN: usize = 3;
const A_CLOSE: usize = 4;
const A_PMIN: usize = 5;
const A_PMAX: usize = 6;
const A_VMIN: usize = 7;
const A_VMAX: usize = 8;
const A_PSPEC: usize = 9;
const A_VSPEC: usize = 12;
const A_PSUM: usize = 15;
const A_VSUM: usize = A_PSUM + LIMBS;
const NO_SLOT: u32 = u32::MAX;
/// Largest accumulator the device aggregate allocates; beyond it the tier
/// filters on the device and folds the matching rows on the host.
const MAX_ACC_BYTES: usize = 512 << 20;

impl GpuWarm {
    /// The aggregate on the device, or `None` when its accumulator would be
    /// larger than [`MAX_ACC_BYTES`].
    pub(super) fn aggregate_on_device(
        &self,
        preds: &[Pred],
        buckets: &Buckets,
    ) -> Result<Option<Groups>> {
        let n = self.tail - self.head;
        let mut groups = Groups::new();
        if n == 0 || self.symbols.is_empty() {
            return Ok(Some(groups));
        }
        // Slots: the symbol codes every symbol predicate accepts.
        let mut accept = vec![true; self.symbols.len()];
        for p in preds.iter().filter(|p| p.column == 1) {
            for (a, m) in accept.iter_mut().zip(self.symbols.matching(&p.kind)) {
                *a &= m;
            }
        }
        let mut slot = vec![NO_SLOT; accept.len()];
        let mut codes = Vec::new();
        for (code, _) in accept.iter().enumerate().filter(|(_, &a)| a) {
            slot[code] = codes.len() as u32;
            codes.push(code as u32);
        }
        if codes.is_empty() {
            return Ok(Some(groups));
        }
        let nbuckets = buckets.count();
        let ngroups = nbuckets.saturating_mul(codes.len() as u64);
        if ngroups.saturating_mul((ACC_STRIDE * 8) as u64) > MAX_ACC_BYTES as u64 {
            return Ok(None);
        }
        let ngroups = ngroups as usize;
        let stream = &self.gpu.stream;
        let mask = self.mask(preds)?;
        let slot_d = cuda("uploading the groups", stream.clone_htod(&slot))?;
        // SAFETY: every cell is written by ssig_agg_init before it is read.
        let mut acc = cuda("allocating the aggregate", unsafe {
            stream.alloc::<u64>(ngroups * ACC_STRIDE)
        })?;
        let g = ngroups as u64;
        let f = self
            .gpu
            .function("ssig_agg_init")
            .map_err(Error::InvalidArgument)?;
        let mut b = stream.launch_builder(f);
        b.arg(&mut acc).arg(&g);
        // SAFETY: writes `g * ACC_STRIDE` cells of `acc`.
        cuda("aggregate", unsafe {
            b.launch(launch_cfg(ngroups * ACC_STRIDE))
        })?;
        let cols = self.column_addresses();
        let (ts, sym, price, volume) = (cols.0[0], cols.0[1], cols.0[2], cols.0[3]);
        let rows = n as u64;
        let nslot_codes = slot.len() as u32;
        let nslots = codes.len() as u32;
        for kernel in ["ssig_agg_rows", "ssig_agg_ends"] {
            let f = self.gpu.function(kernel).map_err(Error::InvalidArgument)?;
            let mut b = stream.launch_builder(f);
            b.arg(&mask).arg(&ts).arg(&sym).arg(&price);
            if kernel == "ssig_agg_rows" {
                b.arg(&volume);
            }
            b.arg(&rows)
                .arg(&slot_d)
                .arg(&nslot_codes)
                .arg(&buckets.start)
                .arg(&buckets.every)
                .arg(&nbuckets)
                .arg(&nslots)
                .arg(&mut acc);
            // SAFETY: reads `rows` live rows of four columns and the mask,
            // and the cells of groups below `nbuckets * nslots`.
            cuda("aggregate", unsafe { b.launch(launch_cfg(n)) })?;
        }
        let cells = cuda("copying the aggregate back", stream.clone_dtoh(&acc))?;
        for (gi, a) in cells.chunks_exact(ACC_STRIDE).enumerate() {
            if a[A_COUNT] == 0 {
                continue;
            }
            let (bucket, s) = ((gi / codes.len()) as u64, gi % codes.len());
            let spec = |at: usize| [a[at], a[at + 1], a[at + 2]];
            let p = Partial {
                count: a[A_COUNT],
                first: ((a[A_TS_MIN] ^ (1 << 63)) as i64, a[A_OPEN]),
                last: ((a[A_TS_MAX] ^ (1 << 63)) as i64, a[A_CLOSE]),
                price_min: a[A_PMIN],
                price_max: a[A_PMAX],
                volume_min: a[A_VMIN],
                volume_max: a[A_VMAX],
                price_sum: ExactSum::from_raw(&a[A_PSUM..A_PSUM + LIMBS], spec(A_PSPEC))?,
                volume_sum: ExactSum::from_raw(&a[A_VSUM..A_VSUM + LIMBS], spec(A_VSPEC))?,
            };
            groups.insert((Arc::from(self.symbols.name(codes[s])), bucket), p);
        }
        Ok(Some(groups))
    }
}
