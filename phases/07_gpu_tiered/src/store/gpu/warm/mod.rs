//! [`GpuWarm`]: the warm tier's columns in device memory.
//!
//! Each schema column is one preallocated device array; 64-bit columns
//! (timestamp, price, volume, trade_id) hold bit patterns as u64, 32-bit
//! ones (symbol, side, exchange codes, flags) as u32, so the copies are
//! lossless by construction (f64 bits, NaN payloads and -0.0 included).
//! Live rows are `[head, tail)`: an append writes at the tail, a migration
//! moves the head; when an append does not fit, the live rows are copied
//! to the front of fresh arrays (device to device), grown if needed.

mod aggregate;
mod program;

#[cfg(test)]
pub(crate) use aggregate::ACC_STRIDE;

use std::collections::VecDeque;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int32Type, Int64Type, TimestampNanosecondType};
use arrow_array::{
    ArrayRef, Float64Array, Int32Array, Int64Array, RecordBatch, TimestampNanosecondArray,
};
use arrow_schema::SchemaRef;
use cudarc::driver::{
    CudaEvent, CudaSlice, DevicePtr, DeviceRepr, LaunchConfig, PinnedHostSlice, PushKernelArg,
    ValidAsZeroBits,
};

use super::{guarded, Gpu};
use crate::agg::{Buckets, Groups};
use crate::error::{Error, Result};
use crate::filter::Pred;
use crate::schema::{Mode, UTC};
use crate::store::warm::{aggregate_by_scan, DeviceMemory, Dict, WarmTier};

/// Bit width of each schema column on the device.
const WIDE: [bool; 8] = [true, false, true, true, false, false, true, false];

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
    /// Rows per staging buffer; appends move through pinned host memory in
    /// chunks of this many rows, two buffers in turn (one fills while the
    /// other is copied).
    stage_rows: usize,
    stages: Vec<Stage>,
    /// Why appends use pageable copies, when pinned memory was refused.
    pageable: Option<String>,
}

/// Pinned host buffers for one chunk of an append: every 64-bit column's
/// values, then every 32-bit column's, `rows` each.
struct Stage {
    w64: PinnedHostSlice<u64>,
    w32: PinnedHostSlice<u32>,
    /// Recorded after the copies out of this stage were queued.
    copied: Option<CudaEvent>,
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
            stage_rows: 1 << 20,
            stages: Vec::new(),
            pageable: None,
        })
    }

    /// Sets the rows per staging chunk (small values exercise the chunking).
    pub fn with_stage_rows(mut self, rows: usize) -> GpuWarm {
        self.stage_rows = rows.max(1);
        self.stages.clear();
        self
    }

    /// Allocates the two staging buffers, or records why it could not.
    fn ensure_stages(&mut self) {
        if !self.stages.is_empty() || self.pageable.is_some() {
            return;
        }
        let (n64, n32) = widths(self.mode);
        let ctx = self.gpu.stream.context().clone();
        let rows = self.stage_rows;
        let made = guarded("allocating pinned memory", || {
            (0..2)
                .map(|_| {
                    // SAFETY: the buffers are written before they are read.
                    let w64 = unsafe { ctx.alloc_pinned::<u64>(rows * n64) };
                    let w32 = unsafe { ctx.alloc_pinned::<u32>(rows * n32) };
                    match (w64, w32) {
                        (Ok(w64), Ok(w32)) => Ok(Stage {
                            w64,
                            w32,
                            copied: None,
                        }),
                        (Err(e), _) | (_, Err(e)) => Err(format!("pinned host memory: {e}")),
                    }
                })
                .collect::<std::result::Result<Vec<_>, String>>()
        });
        match made {
            Ok(stages) => self.stages = stages,
            Err(why) => self.pageable = Some(why),
        }
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

    /// Rows of the timestamp column in `[lo, hi]`, counted on the device
    /// (the range filter + count benchmark).
    pub fn count_time_range(&self, lo: i64, hi: i64) -> Result<u64> {
        Ok(self.count_time_range_timed(lo, hi)?.0)
    }

    /// [`GpuWarm::count_time_range`] and the kernel's time on the device, ms.
    pub fn count_time_range_timed(&self, lo: i64, hi: i64) -> Result<(u64, f64)> {
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
        let timing = Some(cudarc::driver::sys::CUevent_flags::CU_EVENT_DEFAULT);
        let before = cuda("timing", stream.record_event(timing))?;
        // SAFETY: reads `rows` live timestamps, writes one counter.
        cuda("count", unsafe { b.launch(launch_cfg(n)) })?;
        let after = cuda("timing", stream.record_event(timing))?;
        drop(g);
        let v = cuda("copying the count back", stream.clone_dtoh(&out))?;
        let ms = cuda("timing", before.elapsed_ms(&after))?;
        Ok((v.first().copied().unwrap_or(0), ms as f64))
    }
}

/// A 64-bit host column, copied to the device as bits.
enum Src64<'a> {
    Int(&'a [i64]),
    Float(&'a [f64]),
}

impl Src64<'_> {
    /// Rows `[from, from + dst.len())` as bits into `dst`.
    fn fill(&self, dst: &mut [u64], from: usize) {
        let to = from + dst.len();
        match self {
            Src64::Int(v) => {
                for (d, x) in dst.iter_mut().zip(&v[from..to]) {
                    *d = *x as u64;
                }
            }
            Src64::Float(v) => {
                for (d, x) in dst.iter_mut().zip(&v[from..to]) {
                    *d = x.to_bits();
                }
            }
        }
    }

    fn bits(&self, from: usize, n: usize) -> Vec<u64> {
        let mut v = vec![0; n];
        self.fill(&mut v, from);
        v
    }
}

enum Fetched {
    W64(Vec<u64>),
    W32(Vec<u32>),
}

/// (64-bit columns, 32-bit columns) of a mode.
fn widths(mode: Mode) -> (usize, usize) {
    let n = mode.schema().fields().len();
    let wide = WIDE[..n].iter().filter(|&&w| w).count();
    (wide, n - wide)
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
        self.ensure_stages();
        let c = batch.columns();
        // Host views of the columns in device order: 64-bit ones as bits.
        let ts = c[0].as_primitive::<TimestampNanosecondType>().values();
        let price = c[2].as_primitive::<Float64Type>().values();
        let volume = c[3].as_primitive::<Float64Type>().values();
        let mut wide: Vec<(usize, Src64)> = vec![
            (0, Src64::Int(ts)),
            (2, Src64::Float(price)),
            (3, Src64::Float(volume)),
        ];
        // Dictionary codes first (the dictionaries change only here).
        let mut narrow: Vec<(usize, Vec<u32>)> = Vec::new();
        let trading = self.mode == Mode::Trading;
        let (symbols, sides, exchanges) = (&mut self.symbols, &mut self.sides, &mut self.exchanges);
        std::thread::scope(|s| -> Result<()> {
            let side = trading.then(|| s.spawn(|| sides.encode_par(&c[4])));
            let exchange = trading.then(|| s.spawn(|| exchanges.encode_par(&c[5])));
            narrow.push((1, symbols.encode_par(&c[1])?));
            for (i, h) in [(4, side), (5, exchange)] {
                if let Some(h) = h {
                    let codes = h.join().map_err(|_| {
                        Error::InvalidArgument("GPU warm tier: encoding failed".into())
                    })??;
                    narrow.push((i, codes));
                }
            }
            Ok(())
        })?;
        let flags: Vec<u32>;
        if trading {
            wide.push((6, Src64::Int(c[6].as_primitive::<Int64Type>().values())));
            flags = c[7]
                .as_primitive::<Int32Type>()
                .values()
                .iter()
                .map(|&v| v as u32)
                .collect();
            narrow.push((7, flags));
        }
        let (at, stream) = (self.tail, self.gpu.stream.clone());
        if self.stages.is_empty() {
            // Pageable copies (pinned memory was refused).
            for (i, src) in &wide {
                let v = src.bits(0, n);
                if let DevCol::W64(d) = &mut self.columns[*i] {
                    cuda(
                        "copying rows in",
                        stream.memcpy_htod(&v, &mut d.slice_mut(at..at + n)),
                    )?;
                }
            }
            for (i, v) in &narrow {
                if let DevCol::W32(d) = &mut self.columns[*i] {
                    cuda(
                        "copying rows in",
                        stream.memcpy_htod(v, &mut d.slice_mut(at..at + n)),
                    )?;
                }
            }
        } else {
            // Chunks through the two pinned buffers in turn: one is filled
            // (a thread per column) while the other's copies run.
            let r = self.stage_rows;
            for (k, from) in (0..n).step_by(r).enumerate() {
                let len = r.min(n - from);
                let stage = &mut self.stages[k % 2];
                if let Some(e) = stage.copied.take() {
                    cuda("waiting for a copy", e.synchronize())?;
                }
                let w64 = cuda("staging", stage.w64.as_mut_slice())?;
                let w32 = cuda("staging", stage.w32.as_mut_slice())?;
                std::thread::scope(|s| {
                    for ((_, src), dst) in wide.iter().zip(w64.chunks_mut(r)) {
                        s.spawn(move || src.fill(&mut dst[..len], from));
                    }
                    for ((_, v), dst) in narrow.iter().zip(w32.chunks_mut(r)) {
                        s.spawn(move || dst[..len].copy_from_slice(&v[from..from + len]));
                    }
                });
                let dst_at = at + from;
                for ((i, _), j) in wide.iter().zip(0..) {
                    if let DevCol::W64(d) = &mut self.columns[*i] {
                        cuda(
                            "copying rows in",
                            stream.memcpy_htod(
                                &w64[j * r..j * r + len],
                                &mut d.slice_mut(dst_at..dst_at + len),
                            ),
                        )?;
                    }
                }
                for ((i, _), j) in narrow.iter().zip(0..) {
                    if let DevCol::W32(d) = &mut self.columns[*i] {
                        cuda(
                            "copying rows in",
                            stream.memcpy_htod(
                                &w32[j * r..j * r + len],
                                &mut d.slice_mut(dst_at..dst_at + len),
                            ),
                        )?;
                    }
                }
                stage.copied = Some(cuda("recording a copy", stream.record_event(None))?);
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

    fn aggregate(&self, preds: &[Pred], buckets: &Buckets) -> Result<Groups> {
        match self.aggregate_on_device(preds, buckets)? {
            Some(groups) => Ok(groups),
            None => aggregate_by_scan(self, preds, buckets),
        }
    }

    fn device_memory(&self) -> Option<DeviceMemory> {
        let (free, total) = self
            .gpu
            .stream
            .context()
            .mem_get_info()
            .unwrap_or((0, self.gpu.total_mem));
        let (n64, n32) = widths(self.mode);
        let pinned = if self.stages.is_empty() {
            0
        } else {
            2 * self.stage_rows * (8 * n64 + 4 * n32)
        };
        Some(DeviceMemory {
            allocated: (self.capacity * self.row_bytes()) as u64,
            live: ((self.tail - self.head) * self.row_bytes()) as u64,
            pinned_host: pinned as u64,
            device_free: free as u64,
            device_total: total as u64,
        })
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
