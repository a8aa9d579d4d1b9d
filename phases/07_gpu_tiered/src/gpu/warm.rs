//! [`GpuWarm`]: the warm tier's columns in device memory.
//!
//! Each schema column is one preallocated device array; 64-bit columns
//! (timestamp, price, volume, trade_id) hold bit patterns as u64, 32-bit
//! ones (symbol, side, exchange codes, flags) as u32, so the copies are
//! lossless by construction (f64 bits, NaN payloads and -0.0 included).
//! Live rows are `[head, tail)`: an append writes at the tail, a migration
//! moves the head; when an append does not fit, the live rows are copied
//! to the front of fresh arrays (device to device), grown if needed.

use std::collections::VecDeque;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int32Type, Int64Type, TimestampNanosecondType};
use arrow_array::{
    ArrayRef, Float64Array, Int32Array, Int64Array, RecordBatch, TimestampNanosecondArray,
};
use arrow_schema::SchemaRef;
use cudarc::driver::{
    CudaSlice, DevicePtr, DeviceRepr, LaunchConfig, PushKernelArg, ValidAsZeroBits,
};

use super::{guarded, Gpu};
use crate::error::{Error, Result};
use crate::filter::{Pred, PredKind};
use crate::schema::{Mode, UTC};
use crate::warm::{CpuWarm, Dict, WarmTier};

/// Bit width of each schema column on the device.
const WIDE: [bool; 8] = [true, false, true, true, false, false, true, false];

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
struct ColumnsC([u64; 8]);

// SAFETY: eight device addresses, as the kernel expects them.
unsafe impl DeviceRepr for ColumnsC {}

enum DevCol {
    W64(CudaSlice<u64>),
    W32(CudaSlice<u32>),
}

fn cuda<T>(what: &str, r: std::result::Result<T, cudarc::driver::DriverError>) -> Result<T> {
    r.map_err(|e| Error::InvalidArgument(format!("GPU warm tier: {what}: {e}")))
}

fn launch_cfg(n: usize) -> LaunchConfig {
    let blocks = n.div_ceil(256).clamp(1, 65_535) as u32;
    LaunchConfig {
        grid_dim: (blocks, 1, 1),
        block_dim: (256, 1, 1),
        shared_mem_bytes: 0,
    }
}

/// The GPU warm tier.
pub struct GpuWarm {
    gpu: Arc<Gpu>,
    mode: Mode,
    schema: SchemaRef,
    columns: Vec<DevCol>,
    capacity: usize,
    head: usize,
    tail: usize,
    /// (LSN, first row, rows) of each record, oldest first.
    records: VecDeque<(u64, usize, usize)>,
    symbols: Dict,
    sides: Dict,
    exchanges: Dict,
}

impl std::fmt::Debug for GpuWarm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GpuWarm")
            .field("device", &self.gpu.name)
            .field("rows", &(self.tail - self.head))
            .field("capacity", &self.capacity)
            .finish()
    }
}

impl GpuWarm {
    /// An empty tier on `gpu` with room for `capacity` rows, preallocated.
    pub fn new(gpu: Arc<Gpu>, mode: Mode, capacity: usize) -> Result<GpuWarm> {
        let capacity = capacity.max(1024);
        let columns = alloc(&gpu, mode, capacity)?;
        Ok(GpuWarm {
            gpu,
            mode,
            schema: mode.schema(),
            columns,
            capacity,
            head: 0,
            tail: 0,
            records: VecDeque::new(),
            symbols: Dict::default(),
            sides: Dict::default(),
            exchanges: Dict::default(),
        })
    }

    fn row_bytes(&self) -> usize {
        self.columns
            .iter()
            .map(|c| match c {
                DevCol::W64(_) => 8,
                DevCol::W32(_) => 4,
            })
            .sum()
    }

    /// Makes room for `n` more rows at the tail.
    fn reserve(&mut self, n: usize) -> Result<()> {
        if self.tail + n <= self.capacity {
            return Ok(());
        }
        let live = self.tail - self.head;
        let capacity = self.capacity.max((live + n).saturating_mul(2));
        let mut fresh = alloc(&self.gpu, self.mode, capacity)?;
        let stream = &self.gpu.stream;
        for (old, new) in self.columns.iter().zip(fresh.iter_mut()) {
            match (old, new) {
                (DevCol::W64(a), DevCol::W64(b)) => cuda(
                    "moving rows",
                    stream.memcpy_dtod(&a.slice(self.head..self.tail), &mut b.slice_mut(0..live)),
                )?,
                (DevCol::W32(a), DevCol::W32(b)) => cuda(
                    "moving rows",
                    stream.memcpy_dtod(&a.slice(self.head..self.tail), &mut b.slice_mut(0..live)),
                )?,
                _ => {
                    return Err(Error::InvalidArgument(
                        "GPU warm tier: column widths".into(),
                    ))
                }
            }
        }
        for r in self.records.iter_mut() {
            r.1 -= self.head;
        }
        self.columns = fresh;
        self.capacity = capacity;
        self.head = 0;
        self.tail = live;
        Ok(())
    }

    /// Rows `[from, from + n)` of column `i` back on the host; with `rows`,
    /// only those (offsets from `from`), gathered on the device.
    fn fetch(
        &self,
        i: usize,
        from: usize,
        n: usize,
        rows: Option<&CudaSlice<u32>>,
    ) -> Result<Fetched> {
        Ok(match &self.columns[i] {
            DevCol::W64(c) => Fetched::W64(self.read(c, "ssig_gather_64", from, n, rows)?),
            DevCol::W32(c) => Fetched::W32(self.read(c, "ssig_gather_32", from, n, rows)?),
        })
    }

    /// Rows `[from, from + n)` of one device column, or with `rows` only
    /// those (offsets from `from`), gathered on the device by `kernel`.
    fn read<T: DeviceRepr + ValidAsZeroBits>(
        &self,
        column: &CudaSlice<T>,
        kernel: &str,
        from: usize,
        n: usize,
        rows: Option<&CudaSlice<u32>>,
    ) -> Result<Vec<T>> {
        let stream = &self.gpu.stream;
        let Some(idx) = rows else {
            return cuda(
                "copying rows back",
                stream.clone_dtoh(&column.slice(from..from + n)),
            );
        };
        let mut out = cuda("allocating", stream.alloc_zeros::<T>(n.max(1)))?;
        let f = self.gpu.function(kernel).map_err(Error::InvalidArgument)?;
        let (base, _g) = column.device_ptr(stream);
        let base = base + (from * std::mem::size_of::<T>()) as u64;
        let count = n as u64;
        let mut b = stream.launch_builder(f);
        b.arg(&base).arg(idx).arg(&count).arg(&mut out);
        // SAFETY: the kernel (of T's width) reads `count` indices below `n`
        // rows of a live column and writes `count` values into `out`.
        cuda("gather", unsafe { b.launch(launch_cfg(n)) })?;
        let mut v = cuda("copying rows back", stream.clone_dtoh(&out))?;
        v.truncate(n);
        Ok(v)
    }

    fn array(&self, i: usize, f: Fetched) -> ArrayRef {
        match (i, f) {
            (0, Fetched::W64(v)) => Arc::new(
                TimestampNanosecondArray::from(v.into_iter().map(|x| x as i64).collect::<Vec<_>>())
                    .with_timezone(UTC),
            ),
            (2 | 3, Fetched::W64(v)) => Arc::new(Float64Array::from(
                v.into_iter().map(f64::from_bits).collect::<Vec<_>>(),
            )),
            (_, Fetched::W64(v)) => Arc::new(Int64Array::from(
                v.into_iter().map(|x| x as i64).collect::<Vec<_>>(),
            )),
            (1, Fetched::W32(v)) => self.symbols.decode(v.into_iter()),
            (4, Fetched::W32(v)) => self.sides.decode(v.into_iter()),
            (5, Fetched::W32(v)) => self.exchanges.decode(v.into_iter()),
            (_, Fetched::W32(v)) => Arc::new(Int32Array::from(
                v.into_iter().map(|x| x as i32).collect::<Vec<_>>(),
            )),
        }
    }

    fn batch(
        &self,
        projection: &[usize],
        from: usize,
        n: usize,
        rows: Option<&CudaSlice<u32>>,
    ) -> Result<RecordBatch> {
        let schema = Arc::new(
            self.schema
                .project(projection)
                .map_err(|e| Error::arrow("projecting the warm tier", e))?,
        );
        let mut columns = Vec::with_capacity(projection.len());
        for &i in projection {
            let f = self.fetch(i, from, n, rows)?;
            columns.push(self.array(i, f));
        }
        RecordBatch::try_new(schema, columns).map_err(|e| Error::arrow("building a warm batch", e))
    }

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

    /// The live rows (offsets from the head) that satisfy every predicate.
    fn select(&self, preds: &[Pred]) -> Result<Vec<u32>> {
        let n = self.tail - self.head;
        let stream = &self.gpu.stream;
        let (prog, iset, fset, codes) = self.program(preds);
        let prog_d = cuda("uploading the filters", stream.clone_htod(&prog))?;
        let iset_d = cuda("uploading the filters", stream.clone_htod(&iset))?;
        let fset_d = cuda("uploading the filters", stream.clone_htod(&fset))?;
        let codes_d = cuda("uploading the filters", stream.clone_htod(&codes))?;
        let mut mask = cuda("allocating", stream.alloc_zeros::<u8>(n.max(1)))?;
        let mut cols = ColumnsC::default();
        let mut guards = Vec::new();
        for (i, c) in self.columns.iter().enumerate() {
            let (ptr, width) = match c {
                DevCol::W64(s) => {
                    let (p, g) = s.device_ptr(stream);
                    guards.push(g);
                    (p, 8)
                }
                DevCol::W32(s) => {
                    let (p, g) = s.device_ptr(stream);
                    guards.push(g);
                    (p, 4)
                }
            };
            cols.0[i] = ptr + (self.head * width) as u64;
        }
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
        // SAFETY: every column address covers `rows` live rows; the sets and
        // masks are the lengths the program names.
        cuda("filter", unsafe { b.launch(launch_cfg(n)) })?;
        drop(guards);
        let mask = cuda("copying the selection back", stream.clone_dtoh(&mask))?;
        Ok(mask
            .iter()
            .take(n)
            .enumerate()
            .filter(|(_, &m)| m != 0)
            .map(|(i, _)| i as u32)
            .collect())
    }

    /// Rows of the timestamp column in `[lo, hi]`, counted on the device
    /// (the range filter + count benchmark).
    pub fn count_time_range(&self, lo: i64, hi: i64) -> Result<u64> {
        let n = self.tail - self.head;
        let stream = &self.gpu.stream;
        let DevCol::W64(ts) = &self.columns[0] else {
            return Err(Error::InvalidArgument(
                "GPU warm tier: column widths".into(),
            ));
        };
        let mut out = cuda("allocating", stream.alloc_zeros::<u64>(1))?;
        let f = self
            .gpu
            .function("ssig_count_range")
            .map_err(Error::InvalidArgument)?;
        let (base, g) = ts.device_ptr(stream);
        let base = base + (self.head * 8) as u64;
        let rows = n as u64;
        let mut b = stream.launch_builder(f);
        b.arg(&base).arg(&rows).arg(&lo).arg(&hi).arg(&mut out);
        // SAFETY: reads `rows` live timestamps, writes one counter.
        cuda("count", unsafe { b.launch(launch_cfg(n)) })?;
        drop(g);
        let v = cuda("copying the count back", stream.clone_dtoh(&out))?;
        Ok(v.first().copied().unwrap_or(0))
    }
}

enum Fetched {
    W64(Vec<u64>),
    W32(Vec<u32>),
}

fn alloc(gpu: &Gpu, mode: Mode, capacity: usize) -> Result<Vec<DevCol>> {
    let n = mode.schema().fields().len();
    let stream = &gpu.stream;
    (0..n)
        .map(|i| {
            Ok(if WIDE[i] {
                DevCol::W64(cuda(
                    "allocating columns",
                    stream.alloc_zeros::<u64>(capacity),
                )?)
            } else {
                DevCol::W32(cuda(
                    "allocating columns",
                    stream.alloc_zeros::<u32>(capacity),
                )?)
            })
        })
        .collect()
}

impl WarmTier for GpuWarm {
    fn device(&self) -> String {
        format!("GPU ({})", self.gpu.name)
    }

    fn append(&mut self, lsn: u64, batch: &RecordBatch) -> Result<()> {
        let n = batch.num_rows();
        self.reserve(n)?;
        let c = batch.columns();
        let mut host64: Vec<(usize, Vec<u64>)> = vec![
            (
                0,
                c[0].as_primitive::<TimestampNanosecondType>()
                    .values()
                    .iter()
                    .map(|&v| v as u64)
                    .collect(),
            ),
            (
                2,
                c[2].as_primitive::<Float64Type>()
                    .values()
                    .iter()
                    .map(|v| v.to_bits())
                    .collect(),
            ),
            (
                3,
                c[3].as_primitive::<Float64Type>()
                    .values()
                    .iter()
                    .map(|v| v.to_bits())
                    .collect(),
            ),
        ];
        let mut host32: Vec<(usize, Vec<u32>)> = vec![(1, self.symbols.encode(&c[1])?)];
        if self.mode == Mode::Trading {
            host32.push((4, self.sides.encode(&c[4])?));
            host32.push((5, self.exchanges.encode(&c[5])?));
            host64.push((
                6,
                c[6].as_primitive::<Int64Type>()
                    .values()
                    .iter()
                    .map(|&v| v as u64)
                    .collect(),
            ));
            host32.push((
                7,
                c[7].as_primitive::<Int32Type>()
                    .values()
                    .iter()
                    .map(|&v| v as u32)
                    .collect(),
            ));
        }
        let (at, stream) = (self.tail, self.gpu.stream.clone());
        for (i, v) in &host64 {
            if let DevCol::W64(d) = &mut self.columns[*i] {
                cuda(
                    "copying rows in",
                    stream.memcpy_htod(v, &mut d.slice_mut(at..at + n)),
                )?;
            }
        }
        for (i, v) in &host32 {
            if let DevCol::W32(d) = &mut self.columns[*i] {
                cuda(
                    "copying rows in",
                    stream.memcpy_htod(v, &mut d.slice_mut(at..at + n)),
                )?;
            }
        }
        cuda("copying rows in", stream.synchronize())?;
        self.records.push_back((lsn, at, n));
        self.tail += n;
        Ok(())
    }

    fn rows(&self) -> u64 {
        (self.tail - self.head) as u64
    }

    fn memory_bytes(&self) -> u64 {
        ((self.tail - self.head) * self.row_bytes()) as u64
            + self.symbols.bytes()
            + self.sides.bytes()
            + self.exchanges.bytes()
    }

    fn records(&self) -> Vec<(u64, u64, u64)> {
        let per = self.row_bytes() as u64;
        self.records
            .iter()
            .map(|&(lsn, _, n)| (lsn, n as u64, n as u64 * per))
            .collect()
    }

    fn export_through(&self, lsn: u64) -> Result<Vec<(u64, RecordBatch)>> {
        let all: Vec<usize> = (0..self.schema.fields().len()).collect();
        self.records
            .iter()
            .take_while(|r| r.0 <= lsn)
            .map(|&(l, from, n)| Ok((l, self.batch(&all, from, n, None)?)))
            .collect()
    }

    fn remove_through(&mut self, lsn: u64) {
        while self.records.front().is_some_and(|r| r.0 <= lsn) {
            if let Some((_, from, n)) = self.records.pop_front() {
                self.head = from + n;
            }
        }
        if self.records.is_empty() {
            self.head = 0;
            self.tail = 0;
        }
    }

    fn scan(
        &self,
        preds: &[Pred],
        projection: &[usize],
        limit: Option<usize>,
    ) -> Result<Vec<RecordBatch>> {
        let n = self.tail - self.head;
        if n == 0 {
            return Ok(Vec::new());
        }
        let limit = limit.unwrap_or(usize::MAX);
        if preds.is_empty() {
            return Ok(vec![self.batch(
                projection,
                self.head,
                n.min(limit),
                None,
            )?]);
        }
        let mut rows = self.select(preds)?;
        rows.truncate(limit);
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let idx = cuda("uploading the selection", self.gpu.stream.clone_htod(&rows))?;
        Ok(vec![self.batch(
            projection,
            self.head,
            rows.len(),
            Some(&idx),
        )?])
    }
}

/// Runs the same appends, migrations and queries through a [`GpuWarm`] on
/// `gpu` and through [`CpuWarm`], and compares the answers bit for bit.
pub fn self_test(gpu: &Arc<Gpu>, mode: Mode) -> std::result::Result<(), String> {
    guarded("self-test", || {
        run_self_test(gpu, mode).map_err(|e| e.to_string())
    })
}

fn run_self_test(gpu: &Arc<Gpu>, mode: Mode) -> Result<()> {
    use crate::filter::{bind_all, Filter, Scalar};
    let mut g = crate::gen::Generator::new(mode, 99, 20);
    let mut cpu = CpuWarm::new(mode);
    let mut dev = GpuWarm::new(gpu.clone(), mode, 4096)?;
    let mut lsn = 0;
    for (rows, migrate) in [(3000, false), (2000, true), (4000, false), (3500, false)] {
        lsn += 1;
        let b = g.batch(rows)?;
        cpu.append(lsn, &b)?;
        dev.append(lsn, &b)?;
        if migrate {
            let (a, d) = (cpu.export_through(lsn - 1)?, dev.export_through(lsn - 1)?);
            same(
                "export",
                &a.into_iter().map(|x| x.1).collect::<Vec<_>>(),
                &d.into_iter().map(|x| x.1).collect::<Vec<_>>(),
            )?;
            cpu.remove_through(lsn - 1);
            dev.remove_through(lsn - 1);
        }
    }
    if (cpu.rows(), cpu.records().len()) != (dev.rows(), dev.records().len()) {
        return Err(Error::InvalidArgument(
            "GPU self-test: row counts differ".into(),
        ));
    }
    let start = crate::gen::START_NS;
    let schema = mode.schema();
    let queries: Vec<(Vec<Filter>, Option<usize>)> = vec![
        (vec![], None),
        (
            vec![Filter::range(
                "timestamp",
                Some(Scalar::Int(start + 100_000_000_000)),
                Some(Scalar::Int(start + 300_000_000_000)),
            )],
            None,
        ),
        (vec![Filter::eq("symbol", g.symbol(3))], None),
        (
            vec![
                Filter::is_in("symbol", [g.symbol(1), g.symbol(7)]),
                Filter::range("price", Some(Scalar::Float(100.0)), None),
            ],
            Some(50),
        ),
        (
            vec![Filter::range("volume", None, Some(Scalar::Float(2.5)))],
            None,
        ),
        (vec![Filter::eq("symbol", "NOT/THERE")], None),
    ];
    let all: Vec<usize> = (0..schema.fields().len()).collect();
    for (filters, limit) in queries {
        let preds = bind_all(&filters, &schema)?;
        let mut a = cpu.scan(&preds, &all, limit)?;
        let b = dev.scan(&preds, &all, limit)?;
        if let Some(l) = limit {
            // The CPU tier may overshoot a limit by whole chunks.
            let mut left = l;
            a = a
                .into_iter()
                .filter_map(|x| {
                    let take = x.num_rows().min(left);
                    left -= take;
                    (take > 0).then(|| x.slice(0, take))
                })
                .collect();
        }
        same(&format!("query {filters:?}"), &a, &b)?;
    }
    let lo = start + 50_000_000_000;
    let hi = start + 250_000_000_000;
    let want: u64 = cpu
        .scan(
            &bind_all(
                &[Filter::range(
                    "timestamp",
                    Some(Scalar::Int(lo)),
                    Some(Scalar::Int(hi + 1)),
                )],
                &schema,
            )?,
            &[0],
            None,
        )?
        .iter()
        .map(|b| b.num_rows() as u64)
        .sum();
    if dev.count_time_range(lo, hi)? != want {
        return Err(Error::InvalidArgument(
            "GPU self-test: range count differs".into(),
        ));
    }
    Ok(())
}

/// The same rows (bit for bit) in the same order, however they are batched.
fn same(what: &str, a: &[RecordBatch], b: &[RecordBatch]) -> Result<()> {
    let fail = |why: &str| {
        Err(Error::InvalidArgument(format!(
            "GPU self-test, {what}: {why}"
        )))
    };
    let rows = |v: &[RecordBatch]| v.iter().map(|x| x.num_rows()).sum::<usize>();
    if rows(a) != rows(b) {
        return fail(&format!(
            "{} rows on the CPU, {} on the GPU",
            rows(a),
            rows(b)
        ));
    }
    if rows(a) == 0 {
        return Ok(());
    }
    let (Some(sa), Some(sb)) = (a.first().map(|x| x.schema()), b.first().map(|x| x.schema()))
    else {
        return Ok(());
    };
    let ca =
        arrow_select::concat::concat_batches(&sa, a).map_err(|e| Error::arrow("self-test", e))?;
    let cb =
        arrow_select::concat::concat_batches(&sb, b).map_err(|e| Error::arrow("self-test", e))?;
    for (i, (x, y)) in ca.columns().iter().zip(cb.columns()).enumerate() {
        let equal = match (
            x.as_primitive_opt::<Float64Type>(),
            y.as_primitive_opt::<Float64Type>(),
        ) {
            (Some(x), Some(y)) => x
                .values()
                .iter()
                .zip(y.values().iter())
                .all(|(p, q)| p.to_bits() == q.to_bits()),
            _ => x.to_data() == y.to_data(),
        };
        if !equal {
            return fail(&format!("column {i} differs"));
        }
    }
    Ok(())
}
