//! The warm tier: recent-but-not-newest records as columns in memory.
//!
//! [`WarmTier`] is the slot the GPU implementation plugs into; [`CpuWarm`]
//! is the CPU implementation. Both hold whole WAL records (one chunk per
//! ingested batch, with its LSN) so that migration to the cold tier moves a
//! prefix of the log and the catalog's watermark stays a single LSN.
//! Strings (symbol, and side and exchange in trading mode) are dictionary
//! encoded as u32 codes; a predicate on them is evaluated once per
//! dictionary entry, then per row on the codes.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int32Type, Int64Type, TimestampNanosecondType};
use arrow_array::Array;
use arrow_array::{
    ArrayRef, Float64Array, Int32Array, Int64Array, RecordBatch, StringArray,
    TimestampNanosecondArray,
};
use arrow_schema::SchemaRef;

use crate::agg::{fold, Buckets, Groups};
use crate::error::{Error, Result};
use crate::filter::{Pred, PredKind, Stats};
use crate::schema::{Mode, UTC};

/// What a warm tier must do. Rows are counted exactly: never capacity.
pub trait WarmTier: Send + Sync {
    /// Where the columns live, for output and `stats`: "CPU" or the GPU's name.
    fn device(&self) -> String;
    /// Adds one WAL record (LSNs arrive in increasing order).
    fn append(&mut self, lsn: u64, batch: &RecordBatch) -> Result<()>;
    /// Live rows.
    fn rows(&self) -> u64;
    /// Bytes of the columns and dictionaries (what the budget limits).
    fn memory_bytes(&self) -> u64;
    /// (LSN, rows, bytes) of each record, oldest first.
    fn records(&self) -> Vec<(u64, u64, u64)>;
    /// The records with LSN <= `lsn` as Arrow batches (for migration).
    fn export_through(&self, lsn: u64) -> Result<Vec<(u64, RecordBatch)>>;
    /// Drops the records with LSN <= `lsn` (after they are durable in the cold tier).
    fn remove_through(&mut self, lsn: u64);
    /// The rows that satisfy every predicate, with the columns in `projection`
    /// (indices into the store schema), oldest record first; at most `limit`
    /// rows when given (whole batches may overshoot it; callers cut).
    fn scan(
        &self,
        preds: &[Pred],
        projection: &[usize],
        limit: Option<usize>,
    ) -> Result<Vec<RecordBatch>>;
    /// The warm tier's share of an aggregate: the rows that satisfy every
    /// predicate, reduced per (symbol, bucket). The default filters with
    /// [`WarmTier::scan`] and folds on the CPU; the GPU tier reduces on the
    /// device and returns only the partials.
    fn aggregate(&self, preds: &[Pred], buckets: &Buckets) -> Result<Groups> {
        aggregate_by_scan(self, preds, buckets)
    }
    /// Device memory, for a tier that lives on a device.
    fn device_memory(&self) -> Option<DeviceMemory> {
        None
    }
}

impl std::fmt::Display for DeviceMemory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mb = |b: u64| b as f64 / 1e6;
        write!(
            f,
            "{:.1} MB allocated for the columns ({:.1} MB live rows), {:.1} MB pinned host staging; device {:.0} of {:.0} MB in use",
            mb(self.allocated),
            mb(self.live),
            mb(self.pinned_host),
            mb(self.device_total.saturating_sub(self.device_free)),
            mb(self.device_total)
        )
    }
}

/// An aggregate by [`WarmTier::scan`], folded on the host.
pub fn aggregate_by_scan<W: WarmTier + ?Sized>(
    tier: &W,
    preds: &[Pred],
    buckets: &Buckets,
) -> Result<Groups> {
    let mut groups = Groups::new();
    fold(
        &mut groups,
        buckets,
        &tier.scan(preds, &[0, 1, 2, 3], None)?,
    )?;
    Ok(groups)
}

/// What a device-resident tier holds on its device, in bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct DeviceMemory {
    /// Allocated for the columns (preallocated capacity).
    pub allocated: u64,
    /// Taken by live rows.
    pub live: u64,
    /// Pinned host memory for staging appends.
    pub pinned_host: u64,
    /// The device's free and total memory, as its driver reports them.
    pub device_free: u64,
    pub device_total: u64,
}

/// A string dictionary: code -> string and back.
#[derive(Debug, Default, Clone)]
pub struct Dict {
    names: Vec<Arc<str>>,
    codes: HashMap<Arc<str>, u32, foldhash::fast::RandomState>,
    bytes: u64,
}

impl Dict {
    /// The code of `s`, adding it if new.
    pub fn code(&mut self, s: &str) -> Result<u32> {
        if let Some(&c) = self.codes.get(s) {
            return Ok(c);
        }
        let c = u32::try_from(self.names.len())
            .map_err(|_| Error::InvalidArgument("more than 2^32 distinct strings".into()))?;
        let s: Arc<str> = Arc::from(s);
        self.bytes += s.len() as u64 + 32;
        self.names.push(s.clone());
        self.codes.insert(s, c);
        Ok(c)
    }

    /// The string of a code.
    pub fn name(&self, code: u32) -> &str {
        self.names.get(code as usize).map(|s| &**s).unwrap_or("")
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// Bytes the dictionary takes (what the budget counts).
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Which codes satisfy a string predicate.
    pub(crate) fn matching(&self, kind: &PredKind) -> Vec<bool> {
        self.names.iter().map(|n| kind.str(n)).collect()
    }

    /// Encodes a string column.
    pub(crate) fn encode(&mut self, col: &ArrayRef) -> Result<Vec<u32>> {
        col.as_string::<i32>()
            .iter()
            .map(|v| self.code(v.unwrap_or("")))
            .collect()
    }

    /// [`Dict::encode`] with the lookups spread over threads: rows whose
    /// string is already known are coded in parallel, then the misses in
    /// row order, so the codes and the dictionary come out the same.
    pub(crate) fn encode_par(&mut self, col: &ArrayRef) -> Result<Vec<u32>> {
        let s = col.as_string::<i32>();
        let n = s.len();
        let threads = std::thread::available_parallelism()
            .map_or(1, |t| t.get())
            .min(n / (1 << 16));
        if threads < 2 {
            return self.encode(col);
        }
        const MISS: u32 = u32::MAX;
        let value = |r: usize| if s.is_null(r) { "" } else { s.value(r) };
        let mut out = vec![MISS; n];
        let per = n.div_ceil(threads);
        let codes = &self.codes;
        std::thread::scope(|sc| {
            for (i, chunk) in out.chunks_mut(per).enumerate() {
                sc.spawn(move || {
                    for (j, o) in chunk.iter_mut().enumerate() {
                        if let Some(&c) = codes.get(value(i * per + j)) {
                            *o = c;
                        }
                    }
                });
            }
        });
        for (r, o) in out.iter_mut().enumerate() {
            if *o == MISS {
                *o = self.code(value(r))?;
            }
        }
        Ok(out)
    }

    /// Decodes codes back to a string column.
    pub(crate) fn decode(&self, codes: impl Iterator<Item = u32>) -> ArrayRef {
        Arc::new(StringArray::from_iter_values(codes.map(|c| self.name(c))))
    }
}

/// One WAL record's rows, column by column, with its time range and its
/// rows grouped by symbol (so that a symbol filter reads only its rows).
#[derive(Debug)]
struct Chunk {
    lsn: u64,
    min_ts: i64,
    max_ts: i64,
    /// Row numbers grouped by symbol code, in row order within a group.
    order: Vec<u32>,
    /// (symbol code, start, end) into `order`, by code.
    postings: Vec<(u32, u32, u32)>,
    ts: Vec<i64>,
    symbol: Vec<u32>,
    price: Vec<f64>,
    volume: Vec<f64>,
    side: Vec<u32>,
    exchange: Vec<u32>,
    trade_id: Vec<i64>,
    flags: Vec<i32>,
}

impl Chunk {
    fn rows(&self) -> usize {
        self.ts.len()
    }

    fn bytes(&self) -> u64 {
        (self.ts.len() * 8
            + self.symbol.len() * 4
            + self.price.len() * 8
            + self.volume.len() * 8
            + self.side.len() * 4
            + self.exchange.len() * 4
            + self.trade_id.len() * 8
            + self.flags.len() * 4
            + self.order.len() * 4
            + self.postings.len() * 12) as u64
    }

    /// Fills the time range and the symbol grouping.
    fn index(&mut self, dict_len: usize) {
        self.min_ts = self.ts.iter().copied().min().unwrap_or(0);
        self.max_ts = self.ts.iter().copied().max().unwrap_or(-1);
        let n = self.symbol.len();
        if dict_len <= n.max(1024) {
            // Counting sort by code: O(rows + dictionary).
            let mut starts = vec![0u32; dict_len + 1];
            for &c in &self.symbol {
                starts[c as usize + 1] += 1;
            }
            for i in 1..starts.len() {
                starts[i] += starts[i - 1];
            }
            for code in 0..dict_len {
                if starts[code + 1] > starts[code] {
                    self.postings
                        .push((code as u32, starts[code], starts[code + 1]));
                }
            }
            let mut fill = starts;
            self.order = vec![0; n];
            for (row, &c) in self.symbol.iter().enumerate() {
                self.order[fill[c as usize] as usize] = row as u32;
                fill[c as usize] += 1;
            }
        } else {
            let mut order: Vec<u32> = (0..n as u32).collect();
            order.sort_by_key(|&r| self.symbol[r as usize]);
            let mut i = 0;
            while i < n {
                let code = self.symbol[order[i] as usize];
                let mut j = i;
                while j < n && self.symbol[order[j] as usize] == code {
                    j += 1;
                }
                self.postings.push((code, i as u32, j as u32));
                i = j;
            }
            self.order = order;
        }
    }
}

/// The CPU warm tier.
#[derive(Debug)]
pub struct CpuWarm {
    mode: Mode,
    schema: SchemaRef,
    chunks: VecDeque<Chunk>,
    symbols: Dict,
    sides: Dict,
    exchanges: Dict,
    rows: u64,
    bytes: u64,
    /// Why the GPU is not used, when one was looked for.
    no_gpu: Option<String>,
}

impl CpuWarm {
    /// An empty tier for a store of `mode`.
    pub fn new(mode: Mode) -> CpuWarm {
        CpuWarm {
            mode,
            schema: mode.schema(),
            chunks: VecDeque::new(),
            symbols: Dict::default(),
            sides: Dict::default(),
            exchanges: Dict::default(),
            rows: 0,
            bytes: 0,
            no_gpu: None,
        }
    }

    /// The CPU tier standing in for a GPU that could not be used, and why
    /// (shown by `device`).
    pub fn instead_of_gpu(mode: Mode, why: String) -> CpuWarm {
        CpuWarm {
            no_gpu: Some(why),
            ..CpuWarm::new(mode)
        }
    }

    /// Distinct symbols seen.
    pub fn symbols(&self) -> &Dict {
        &self.symbols
    }

    fn column(&self, chunk: &Chunk, index: usize, rows: Option<&[u32]>) -> ArrayRef {
        fn pick<T: Copy>(v: &[T], rows: Option<&[u32]>) -> Vec<T> {
            match rows {
                None => v.to_vec(),
                Some(r) => r.iter().map(|&i| v[i as usize]).collect(),
            }
        }
        fn codes<'a>(v: &'a [u32], rows: Option<&'a [u32]>) -> Box<dyn Iterator<Item = u32> + 'a> {
            match rows {
                None => Box::new(v.iter().copied()),
                Some(r) => Box::new(r.iter().map(|&i| v[i as usize])),
            }
        }
        match index {
            0 => Arc::new(TimestampNanosecondArray::from(pick(&chunk.ts, rows)).with_timezone(UTC)),
            1 => self.symbols.decode(codes(&chunk.symbol, rows)),
            2 => Arc::new(Float64Array::from(pick(&chunk.price, rows))),
            3 => Arc::new(Float64Array::from(pick(&chunk.volume, rows))),
            4 => self.sides.decode(codes(&chunk.side, rows)),
            5 => self.exchanges.decode(codes(&chunk.exchange, rows)),
            6 => Arc::new(Int64Array::from(pick(&chunk.trade_id, rows))),
            _ => Arc::new(Int32Array::from(pick(&chunk.flags, rows))),
        }
    }

    fn batch(
        &self,
        chunk: &Chunk,
        projection: &[usize],
        rows: Option<&[u32]>,
    ) -> Result<RecordBatch> {
        let schema = Arc::new(
            self.schema
                .project(projection)
                .map_err(|e| Error::arrow("projecting the warm tier", e))?,
        );
        let columns = projection
            .iter()
            .map(|&i| self.column(chunk, i, rows))
            .collect();
        RecordBatch::try_new(schema, columns).map_err(|e| Error::arrow("building a warm batch", e))
    }
}

/// One predicate prepared against the tier's dictionaries.
enum Prepared<'a> {
    Int(&'a PredKind, usize),
    Float(&'a PredKind, usize),
    Code(Vec<bool>, usize),
}

impl WarmTier for CpuWarm {
    fn device(&self) -> String {
        match &self.no_gpu {
            None => "CPU".into(),
            Some(why) => format!("CPU (no GPU: {why})"),
        }
    }

    fn append(&mut self, lsn: u64, batch: &RecordBatch) -> Result<()> {
        let c = batch.columns();
        let mut chunk = Chunk {
            lsn,
            min_ts: 0,
            max_ts: -1,
            order: Vec::new(),
            postings: Vec::new(),
            ts: c[0]
                .as_primitive::<TimestampNanosecondType>()
                .values()
                .to_vec(),
            symbol: self.symbols.encode(&c[1])?,
            price: c[2].as_primitive::<Float64Type>().values().to_vec(),
            volume: c[3].as_primitive::<Float64Type>().values().to_vec(),
            side: Vec::new(),
            exchange: Vec::new(),
            trade_id: Vec::new(),
            flags: Vec::new(),
        };
        if self.mode == Mode::Trading {
            chunk.side = self.sides.encode(&c[4])?;
            chunk.exchange = self.exchanges.encode(&c[5])?;
            chunk.trade_id = c[6].as_primitive::<Int64Type>().values().to_vec();
            chunk.flags = c[7].as_primitive::<Int32Type>().values().to_vec();
        }
        chunk.index(self.symbols.len());
        self.rows += chunk.rows() as u64;
        self.bytes += chunk.bytes();
        self.chunks.push_back(chunk);
        Ok(())
    }

    fn rows(&self) -> u64 {
        self.rows
    }

    fn memory_bytes(&self) -> u64 {
        self.bytes + self.symbols.bytes + self.sides.bytes + self.exchanges.bytes
    }

    fn records(&self) -> Vec<(u64, u64, u64)> {
        self.chunks
            .iter()
            .map(|c| (c.lsn, c.rows() as u64, c.bytes()))
            .collect()
    }

    fn export_through(&self, lsn: u64) -> Result<Vec<(u64, RecordBatch)>> {
        let all: Vec<usize> = (0..self.schema.fields().len()).collect();
        self.chunks
            .iter()
            .take_while(|c| c.lsn <= lsn)
            .map(|c| Ok((c.lsn, self.batch(c, &all, None)?)))
            .collect()
    }

    fn remove_through(&mut self, lsn: u64) {
        while self.chunks.front().is_some_and(|c| c.lsn <= lsn) {
            if let Some(c) = self.chunks.pop_front() {
                self.rows -= c.rows() as u64;
                self.bytes -= c.bytes();
            }
        }
    }

    fn scan(
        &self,
        preds: &[Pred],
        projection: &[usize],
        limit: Option<usize>,
    ) -> Result<Vec<RecordBatch>> {
        let limit = limit.unwrap_or(usize::MAX);
        let mut found = 0usize;
        let prepared: Vec<Prepared> = preds
            .iter()
            .map(|p| match p.column {
                0 | 6 | 7 => Prepared::Int(&p.kind, p.column),
                2 | 3 => Prepared::Float(&p.kind, p.column),
                1 => Prepared::Code(self.symbols.matching(&p.kind), 1),
                4 => Prepared::Code(self.sides.matching(&p.kind), 4),
                _ => Prepared::Code(self.exchanges.matching(&p.kind), 5),
            })
            .collect();
        let times: Vec<&PredKind> = preds
            .iter()
            .filter(|p| p.column == 0)
            .map(|p| &p.kind)
            .collect();
        let by_symbol = prepared.iter().find_map(|p| match p {
            Prepared::Code(mask, 1) => Some(mask),
            _ => None,
        });
        let mut out = Vec::new();
        for chunk in &self.chunks {
            if found >= limit {
                break;
            }
            let span = Stats::Int(chunk.min_ts, chunk.max_ts);
            if !times.iter().all(|k| k.may_match(&span)) {
                continue;
            }
            if prepared.is_empty() {
                found += chunk.rows();
                out.push(self.batch(chunk, projection, None)?);
                continue;
            }
            let candidates: Box<dyn Iterator<Item = u32> + '_> = match by_symbol {
                Some(mask) => Box::new(
                    chunk
                        .postings
                        .iter()
                        .filter(|(code, _, _)| mask[*code as usize])
                        .flat_map(|&(_, a, b)| chunk.order[a as usize..b as usize].iter().copied()),
                ),
                None => Box::new(0..chunk.rows() as u32),
            };
            let mut sel: Vec<u32> = Vec::new();
            for row in candidates {
                let row = row as usize;
                let keep = prepared.iter().all(|p| match p {
                    Prepared::Int(k, 0) => k.int(chunk.ts[row]),
                    Prepared::Int(k, 6) => k.int(chunk.trade_id[row]),
                    Prepared::Int(k, _) => k.int(chunk.flags[row] as i64),
                    Prepared::Float(k, 2) => k.float(chunk.price[row]),
                    Prepared::Float(k, _) => k.float(chunk.volume[row]),
                    Prepared::Code(m, 1) => m[chunk.symbol[row] as usize],
                    Prepared::Code(m, 4) => m[chunk.side[row] as usize],
                    Prepared::Code(m, _) => m[chunk.exchange[row] as usize],
                });
                if keep {
                    sel.push(row as u32);
                }
            }
            if by_symbol.is_some() {
                sel.sort_unstable();
            }
            if !sel.is_empty() {
                found += sel.len();
                out.push(self.batch(chunk, projection, Some(&sel))?);
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::Filter;
    use crate::gen::Generator;

    #[test]
    fn dictionary_round_trips_and_counts_distinct() {
        let mut d = Dict::default();
        assert_eq!(d.code("BTC").unwrap(), 0);
        assert_eq!(d.code("ETH").unwrap(), 1);
        assert_eq!(d.code("BTC").unwrap(), 0);
        assert_eq!(d.len(), 2);
        assert_eq!(d.name(1), "ETH");
    }

    #[test]
    fn parallel_encoding_gives_the_codes_and_dictionary_of_the_serial_one() {
        // 300k rows (enough for several threads), known and new strings
        // interleaved, nulls coded as "".
        let col: ArrayRef = Arc::new(StringArray::from_iter((0..300_000u32).map(|i| {
            match i % 7 {
                0 => None,
                1 | 2 => Some(format!("S{}", i % 50)),
                _ => Some(format!("S{}", (i * 7919) % 20_011)),
            }
        })));
        let mut serial = Dict::default();
        let mut par = Dict::default();
        for d in [&mut serial, &mut par] {
            d.code("S3").unwrap();
        }
        let a = serial.encode(&col).unwrap();
        let b = par.encode_par(&col).unwrap();
        assert_eq!(a, b);
        assert_eq!(serial.len(), par.len());
        assert!((0..serial.len() as u32).all(|c| serial.name(c) == par.name(c)));
        assert_eq!(par.name(b[0]), "");
    }

    #[test]
    fn export_returns_what_was_appended_and_accounting_is_exact() {
        for mode in [Mode::Simple, Mode::Trading] {
            let mut g = Generator::new(mode, 7, 20);
            let mut w = CpuWarm::new(mode);
            let a = g.batch(1000).unwrap();
            let b = g.batch(500).unwrap();
            w.append(1, &a).unwrap();
            w.append(2, &b).unwrap();
            assert_eq!(w.rows(), 1500);
            // Columns, plus 4 bytes of symbol grouping per row and 12 per
            // distinct symbol of the chunk.
            let per_row = if mode == Mode::Simple { 32 } else { 52 };
            let distinct = |b: &RecordBatch| {
                let s: std::collections::HashSet<&str> =
                    b.column(1).as_string::<i32>().iter().flatten().collect();
                s.len() as u64
            };
            assert_eq!(
                w.records(),
                vec![
                    (1, 1000, 1000 * per_row + 12 * distinct(&a)),
                    (2, 500, 500 * per_row + 12 * distinct(&b))
                ]
            );
            let out = w.export_through(1).unwrap();
            assert_eq!(out.len(), 1);
            assert_eq!(out[0].1, a);
            w.remove_through(1);
            assert_eq!(w.rows(), 500);
            assert_eq!(w.records().len(), 1);
            w.remove_through(2);
            assert_eq!((w.rows(), w.records().len()), (0, 0));
            assert_eq!(
                w.memory_bytes(),
                w.symbols.bytes + w.sides.bytes + w.exchanges.bytes
            );
        }
    }

    #[test]
    fn scan_matches_a_plain_filter() {
        let mode = Mode::Trading;
        let mut g = Generator::new(mode, 3, 10);
        let batch = g.batch(2000).unwrap();
        let mut w = CpuWarm::new(mode);
        w.append(1, &batch).unwrap();
        let schema = mode.schema();
        let filters = [
            Filter::is_in("symbol", [g.symbol(1), g.symbol(2)]),
            Filter::range("price", Some(50.0.into()), None),
            Filter::eq("side", "buy"),
        ];
        let preds = crate::filter::bind_all(&filters, &schema).unwrap();
        let all: Vec<usize> = (0..8).collect();
        let got = w.scan(&preds, &all, None).unwrap();
        let want = crate::filter::filter_batch(&preds, &batch).unwrap();
        let got = arrow_select::concat::concat_batches(&schema, &got).unwrap();
        assert!(want.num_rows() > 0);
        assert_eq!(got, want);
    }
}
