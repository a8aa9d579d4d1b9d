//! The predicate program: a query's filters as the `ssig_filter` kernel
//! reads them (`struct Pred` of kernels.cu, one per filter, with the sets
//! and the dictionary-code masks they point into), run over the live rows
//! into a 0/1 byte per row.

use cudarc::driver::{CudaSlice, DevicePtr, DeviceRepr, PushKernelArg};

use super::{cuda, launch_cfg, DevCol, GpuWarm};
use crate::error::{Error, Result};
use crate::filter::{Pred, PredKind};

const OP_INT_RANGE: i32 = 0;
const OP_INT_SET: i32 = 1;
const OP_FLOAT_RANGE: i32 = 2;
const OP_FLOAT_SET: i32 = 3;
const OP_CODE_MASK: i32 = 4;

/// `struct Pred` of kernels.cu.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
struct PredC {
    column: i32,
    op: i32,
    ilo: i64,
    ihi: i64,
    flo: f64,
    fhi: f64,
    lo_kind: i32,
    hi_kind: i32,
    set_off: i32,
    set_len: i32,
}

// SAFETY: plain old data with the layout of the C struct.
unsafe impl DeviceRepr for PredC {}

/// `struct Columns` of kernels.cu: device addresses, 0 where absent.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct ColumnsC(pub(super) [u64; 8]);

// SAFETY: eight device addresses, as the kernel expects them.
unsafe impl DeviceRepr for ColumnsC {}

impl GpuWarm {
    /// The predicate program of `preds`, with its sets and code masks.
    fn program(&self, preds: &[Pred]) -> (Vec<PredC>, Vec<i64>, Vec<f64>, Vec<u8>) {
        let (mut prog, mut iset, mut fset, mut codes) = (Vec::new(), vec![], vec![], vec![]);
        for p in preds {
            let mut c = PredC {
                column: p.column as i32,
                ..PredC::default()
            };
            match &p.kind {
                PredKind::IntRange(lo, hi) => {
                    c.op = OP_INT_RANGE;
                    (c.ilo, c.ihi) = (*lo, *hi);
                }
                PredKind::IntSet(set) => {
                    c.op = OP_INT_SET;
                    c.set_off = iset.len() as i32;
                    c.set_len = set.len() as i32;
                    iset.extend_from_slice(set);
                }
                PredKind::FloatRange(lo, hi) => {
                    c.op = OP_FLOAT_RANGE;
                    let kind = |b: &Option<(f64, bool)>| match b {
                        None => (0, 0.0),
                        Some((v, true)) => (1, *v),
                        Some((v, false)) => (2, *v),
                    };
                    (c.lo_kind, c.flo) = kind(lo);
                    (c.hi_kind, c.fhi) = kind(hi);
                }
                PredKind::FloatSet(set) => {
                    c.op = OP_FLOAT_SET;
                    c.set_off = fset.len() as i32;
                    c.set_len = set.len() as i32;
                    fset.extend_from_slice(set);
                }
                kind @ (PredKind::StrRange(..) | PredKind::StrSet(_)) => {
                    c.op = OP_CODE_MASK;
                    let dict = match p.column {
                        1 => &self.symbols,
                        4 => &self.sides,
                        _ => &self.exchanges,
                    };
                    let mask = dict.matching(kind);
                    c.set_off = codes.len() as i32;
                    c.set_len = mask.len() as i32;
                    codes.extend(mask.into_iter().map(u8::from));
                }
            }
            prog.push(c);
        }
        // Never an empty copy.
        iset.push(0);
        fset.push(0.0);
        codes.push(0);
        (prog, iset, fset, codes)
    }

    /// Device addresses of the live rows of every column.
    pub(super) fn column_addresses(&self) -> ColumnsC {
        let stream = &self.gpu.stream;
        let mut cols = ColumnsC::default();
        for (i, c) in self.columns.iter().enumerate() {
            cols.0[i] = match c {
                DevCol::W64(s) => s.device_ptr(stream).0 + (self.head * 8) as u64,
                DevCol::W32(s) => s.device_ptr(stream).0 + (self.head * 4) as u64,
            };
        }
        cols
    }

    /// A 0/1 byte per live row, on the device: 1 where every predicate holds.
    pub(super) fn mask(&self, preds: &[Pred]) -> Result<CudaSlice<u8>> {
        let n = self.tail - self.head;
        let stream = &self.gpu.stream;
        let (prog, iset, fset, codes) = self.program(preds);
        let prog_d = cuda("uploading the filters", stream.clone_htod(&prog))?;
        let iset_d = cuda("uploading the filters", stream.clone_htod(&iset))?;
        let fset_d = cuda("uploading the filters", stream.clone_htod(&fset))?;
        let codes_d = cuda("uploading the filters", stream.clone_htod(&codes))?;
        let mut mask = cuda("allocating", stream.alloc_zeros::<u8>(n.max(1)))?;
        let cols = self.column_addresses();
        let f = self
            .gpu
            .function("ssig_filter")
            .map_err(Error::InvalidArgument)?;
        let (rows, npreds) = (n as u64, prog.len() as i32);
        let mut b = stream.launch_builder(f);
        b.arg(&cols)
            .arg(&rows)
            .arg(&prog_d)
            .arg(&npreds)
            .arg(&iset_d)
            .arg(&fset_d)
            .arg(&codes_d)
            .arg(&mut mask);
        // SAFETY: every column address covers `rows` live rows (the columns
        // are only replaced under `&mut self`); the sets and masks are the
        // lengths the program names.
        cuda("filter", unsafe { b.launch(launch_cfg(n)) })?;
        Ok(mask)
    }

    /// The live rows (offsets from the head) that satisfy every predicate.
    pub(super) fn select(&self, preds: &[Pred]) -> Result<Vec<u32>> {
        let n = self.tail - self.head;
        let mask = self.mask(preds)?;
        let mask = cuda(
            "copying the selection back",
            self.gpu.stream.clone_dtoh(&mask),
        )?;
        Ok(mask
            .iter()
            .take(n)
            .enumerate()
            .filter(|(_, &m)| m != 0)
            .map(|(i, _)| i as u32)
            .collect())
    }
}
