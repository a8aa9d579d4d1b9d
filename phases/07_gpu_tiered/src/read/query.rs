//! Queries across the tiers: filter, sort, limit, streamed as Arrow batches.
//!
//! A query takes one snapshot of the tiers (under the engine's read lock):
//! the hot batches, the warm tier's matching rows, and the list of cold
//! files. Cold files are then read outside the lock, each pruned by the
//! catalog (time range, symbols), its row groups by their statistics and its
//! pages by the page index, and filtered exactly.
//!
//! Without a sort, results come cold first, then warm, then hot, and the
//! cold files are read one at a time as the stream is consumed, so a limit
//! stops reading early.
//!
//! With a sort, rows come in the order [`crate::read::topk`] defines: by the sort
//! column, ties to the earlier source (cold files in catalog order, warm,
//! hot) and within it to the earlier row. A sort on a number or timestamp
//! column with a limit takes the top-K path: a bounded buffer of the best
//! `limit` rows, fed by the hot batches, the warm tier, then the cold row
//! groups best statistics first, skipping every hot batch (by its time
//! range, for a sort on time), cold file (by its catalog time range, for a
//! sort on time) and row group (by its min/max) that cannot beat the
//! buffer's current bound. Any other sort reads every source, sorts each
//! stably (keeping its first `limit` rows when there is a limit), and
//! merges them.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow_array::{Array, RecordBatch, UInt32Array};
use arrow_ord::sort::SortOptions;
use arrow_row::{RowConverter, SortField};
use arrow_schema::SchemaRef;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::filter::{bind_all, Filter, Pred, Scalar, Stats};
use crate::read::topk::{self, TopK};
use crate::store::cold::{self, ColdFile, ScanStats};
use crate::store::hot::HotBatch;
use crate::store::objects::ColdStore;

/// Sort order of a query.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sort {
    pub column: String,
    #[serde(default)]
    pub descending: bool,
}

/// What to read.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Query {
    /// All must hold (AND).
    pub filters: Vec<Filter>,
    pub sort: Option<Sort>,
    pub limit: Option<usize>,
    /// Output columns (all when absent), in this order.
    pub columns: Option<Vec<String>>,
    /// Rows per output batch (the configuration's `query.output_batch_size`
    /// when absent).
    pub batch_size: Option<usize>,
}

impl Query {
    /// The trades of one symbol in `[start, end)`, with `columns`.
    pub fn symbol_range(symbol: &str, start: i64, end: i64, columns: &[&str]) -> Query {
        Query {
            filters: vec![
                Filter::eq("symbol", symbol),
                Filter::range(
                    "timestamp",
                    Some(Scalar::Int(start)),
                    Some(Scalar::Int(end)),
                ),
            ],
            columns: Some(columns.iter().map(|c| c.to_string()).collect()),
            ..Query::default()
        }
    }
}

/// Counts of what a query touched.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct QueryStats {
    pub hot_rows: u64,
    /// Hot batches a top-K query skipped by their time range.
    pub hot_batches_skipped: u64,
    pub warm_rows: u64,
    pub cold_rows: u64,
    pub cold: ScanStats,
    pub rows_out: u64,
    #[serde(skip)]
    pub elapsed: Duration,
}

/// A planned query: bound predicates and column positions.
struct Plan {
    preds: Vec<Pred>,
    /// Store columns to read: the output columns, then the sort column if
    /// it is not among them.
    read: Vec<usize>,
    /// How many of `read` are output.
    out: usize,
    /// Position of the sort column within `read`.
    sort: Option<(usize, bool)>,
    limit: Option<usize>,
    batch_size: usize,
    out_schema: SchemaRef,
}

fn plan(engine: &Engine, q: &Query) -> Result<Plan> {
    let schema = engine.schema();
    let preds = bind_all(&q.filters, schema)?;
    let index_of = |name: &str| {
        schema.index_of(name).map_err(|_| {
            Error::InvalidArgument(format!(
                "unknown column `{name}` (columns: {})",
                crate::schema::column_names(schema).join(", ")
            ))
        })
    };
    let mut read: Vec<usize> = match &q.columns {
        None => (0..schema.fields().len()).collect(),
        Some(cols) if cols.is_empty() => {
            return Err(Error::InvalidArgument("columns is empty".into()))
        }
        Some(cols) => cols.iter().map(|c| index_of(c)).collect::<Result<_>>()?,
    };
    let out = read.len();
    let sort = match &q.sort {
        None => None,
        Some(s) => {
            let c = index_of(&s.column)?;
            let pos = match read.iter().position(|&r| r == c) {
                Some(p) => p,
                None => {
                    read.push(c);
                    read.len() - 1
                }
            };
            Some((pos, s.descending))
        }
    };
    let out_schema = Arc::new(
        schema
            .project(&read[..out])
            .map_err(|e| Error::arrow("projecting the output", e))?,
    );
    let batch_size = q
        .batch_size
        .unwrap_or(engine.config().query.output_batch_size)
        .max(1);
    Ok(Plan {
        preds,
        read,
        out,
        sort,
        limit: q.limit,
        batch_size,
        out_schema,
    })
}

/// The result of a query: an iterator of batches, and counts once drained.
pub struct QueryStream {
    plan: Plan,
    cold: ColdStore,
    schema: SchemaRef,
    cache: Arc<cold::MetaCache>,
    /// Cold files still to read (unsorted queries read them lazily).
    pending_files: VecDeque<ColdFile>,
    /// In-memory rows still to emit, in order.
    ready: VecDeque<RecordBatch>,
    /// Hot and warm rows, emitted after the cold files (unsorted).
    tail: Vec<RecordBatch>,
    emitted: usize,
    started: Instant,
    pub stats: QueryStats,
    scan: ScanStats,
    /// An error met reading ahead, returned once the rows before it are out.
    failed: Option<Error>,
    done: bool,
}

impl std::fmt::Debug for QueryStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueryStream")
            .field("stats", &self.stats)
            .finish()
    }
}

impl Engine {
    /// Runs `q`; batches stream from the returned iterator.
    pub fn query(&self, q: &Query) -> Result<QueryStream> {
        let started = Instant::now();
        let plan = plan(self, q)?;
        // One snapshot of every tier.
        let (hot, warm, files) = {
            let state = self.read();
            let hot: Vec<Arc<crate::store::hot::HotBatch>> = state.hot.values().cloned().collect();
            // Unsorted, a limit bounds what any one tier must supply.
            let cap = if plan.sort.is_none() {
                plan.limit
            } else {
                None
            };
            let warm = state.warm.scan(&plan.preds, &plan.read, cap)?;
            (hot, warm, state.cold.clone())
        };
        let files = self.cold_view(files)?;
        let mut stats = QueryStats::default();
        let mut hot_rows = Vec::new();
        let cap = if plan.sort.is_none() {
            plan.limit
        } else {
            None
        };
        // A sort on a number with a limit: the top-K path reads the hot
        // batches itself.
        let top_k = match (plan.sort, plan.limit) {
            (Some((pos, descending)), Some(n)) => {
                let column = plan.read[pos];
                topk::rankable(self.schema().field(column).data_type())
                    .then_some((n, pos, column, descending))
            }
            _ => None,
        };
        for b in hot.iter().filter(|_| top_k.is_none()) {
            if cap.is_some_and(|c| stats.hot_rows as usize >= c) {
                break;
            }
            if let Some(kept) = b.matching(&plan.preds)? {
                stats.hot_rows += kept.num_rows() as u64;
                hot_rows.push(
                    kept.project(&plan.read)
                        .map_err(|e| Error::arrow("projecting hot rows", e))?,
                );
            }
        }
        stats.warm_rows = warm.iter().map(|b| b.num_rows() as u64).sum();
        let mut scan = ScanStats {
            files_total: files.len() as u64,
            ..ScanStats::default()
        };
        let candidates: VecDeque<ColdFile> = files
            .iter()
            .filter(|f| {
                let keep = cold::file_may_match(f, &plan.preds);
                if !keep {
                    scan.files_pruned += 1;
                }
                keep
            })
            .cloned()
            .collect();
        let mut stream = QueryStream {
            plan,
            cold: self.cold_store().clone(),
            schema: self.schema().clone(),
            cache: self.meta_cache().clone(),
            pending_files: candidates,
            ready: VecDeque::new(),
            tail: Vec::new(),
            emitted: 0,
            started,
            stats,
            scan,
            failed: None,
            done: false,
        };
        match stream.plan.sort {
            None => {
                stream.tail = warm;
                stream.tail.extend(hot_rows);
            }
            // LIMIT 0: nothing to read.
            Some(_) if stream.plan.limit == Some(0) => {}
            Some(_) if top_k.is_some() => {
                if let Some((n, pos, column, descending)) = top_k {
                    stream.top_k(n, pos, column, descending, &hot, &warm)?;
                }
            }
            Some(_) => {
                let mut runs = Vec::new();
                let files: Vec<ColdFile> = stream.pending_files.drain(..).collect();
                for rows in stream.read_files(&files) {
                    if let Some(run) = stream.sorted_run(&rows?)? {
                        runs.push(run);
                    }
                }
                for source in [warm, hot_rows] {
                    if let Some(run) = stream.sorted_run(&source)? {
                        runs.push(run);
                    }
                }
                stream.merge(runs)?;
            }
        }
        Ok(stream)
    }
}

impl QueryStream {
    /// Reads one cold file's matching rows (stopping after `want` rows).
    fn read_file(&mut self, f: &ColdFile, want: usize) -> Result<Vec<RecordBatch>> {
        let (cold, schema, plan, cache) = (&self.cold, &self.schema, &self.plan, &self.cache);
        let out = scan_rows(cold, schema, plan, cache, f, want, &mut self.scan)?;
        self.stats.cold_rows += out.iter().map(|b| b.num_rows() as u64).sum::<u64>();
        Ok(out)
    }

    /// Reads every matching row of `files`, in parallel (a file per task,
    /// on rayon's pool), and returns each file's rows, or its error, in the
    /// order of `files`: the same rows and counts as reading them one after
    /// another. Counts are added for the files read without error.
    fn read_files(&mut self, files: &[ColdFile]) -> Vec<Result<Vec<RecordBatch>>> {
        let (cold, schema, plan, cache) = (&self.cold, &self.schema, &self.plan, &self.cache);
        let read = files
            .par_iter()
            .map(|f| -> Result<(Vec<RecordBatch>, ScanStats)> {
                let mut scan = ScanStats::default();
                let out = scan_rows(cold, schema, plan, cache, f, usize::MAX, &mut scan)?;
                Ok((out, scan))
            })
            .collect::<Vec<_>>();
        read.into_iter()
            .map(|r| {
                let (rows, scan) = r?;
                self.stats.cold_rows += rows.iter().map(|b| b.num_rows() as u64).sum::<u64>();
                self.scan.add(&scan);
                Ok(rows)
            })
            .collect()
    }

    /// Sorts a source's rows by the sort column, keeping the first `limit`.
    fn sorted_run(&self, batches: &[RecordBatch]) -> Result<Option<RecordBatch>> {
        let Some((pos, descending)) = self.plan.sort else {
            return Ok(None);
        };
        if batches.iter().all(|b| b.num_rows() == 0) {
            return Ok(None);
        }
        let schema = batches[0].schema();
        let all = arrow_select::concat::concat_batches(&schema, batches)
            .map_err(|e| Error::arrow("gathering rows to sort", e))?;
        // Stable: ties keep the source's row order.
        let idx = topk::sort_indices(all.column(pos), descending, self.plan.limit)?;
        let sorted = arrow_select::take::take_record_batch(&all, &UInt32Array::from(idx))
            .map_err(|e| Error::arrow("sorting", e))?;
        Ok(Some(sorted))
    }

    /// The top-K path (see the module doc): the best `n` rows by the store
    /// column `column` (at `pos` in the rows read), into `ready`.
    fn top_k(
        &mut self,
        n: usize,
        pos: usize,
        column: usize,
        descending: bool,
        hot: &[Arc<HotBatch>],
        warm: &[RecordBatch],
    ) -> Result<()> {
        let mut top = TopK::new(n);
        if n == 0 {
            return Ok(());
        }
        let files: Vec<ColdFile> = self.pending_files.drain(..).collect();
        let source = |i: usize| {
            u32::try_from(i).map_err(|_| Error::InvalidArgument("too many cold files".into()))
        };
        let (warm_src, hot_src) = (source(files.len())?, source(files.len() + 1)?);
        let ranks_of = |b: &RecordBatch| {
            topk::ranks(b.column(pos), descending)
                .ok_or_else(|| Error::InvalidArgument("the sort column has no ranks".into()))
        };
        // Every source in one queue by its best key, smallest first: the
        // warm tier's rows (already in memory, no statistics), each hot
        // batch (by its time range, for a sort on time), each cold file
        // (by its catalog time range, for a sort on time), and once a file
        // is open, each of its row groups (by its min and max). Once an
        // item cannot beat the bound, none after it can: keys only grow
        // and the bound only shrinks.
        #[derive(PartialEq, Eq, PartialOrd, Ord)]
        enum Item {
            Warm,
            Hot(usize),
            File(usize),
            Group(usize, usize),
        }
        let mut queue: BinaryHeap<Reverse<(topk::Key, Item)>> = BinaryHeap::new();
        queue.push(Reverse(((i64::MIN, warm_src, 0), Item::Warm)));
        for (i, b) in hot.iter().enumerate() {
            let best = if column == 0 {
                let (lo, hi) = b.time_range();
                topk::best_rank(&Stats::Int(lo, hi), descending)
            } else {
                None
            };
            queue.push(Reverse((
                (best.unwrap_or(i64::MIN), hot_src, (i as u64) << 32),
                Item::Hot(i),
            )));
        }
        for (i, f) in files.iter().enumerate() {
            let best = if column == 0 {
                topk::best_rank(&Stats::Int(f.min_ts, f.max_ts), descending)
            } else {
                None
            };
            queue.push(Reverse((
                (best.unwrap_or(i64::MIN), source(i)?, 0),
                Item::File(i),
            )));
        }
        let mut readers: Vec<Option<(cold::ColdReader, Vec<cold::RowGroupPick>)>> =
            (0..files.len()).map(|_| None).collect();
        let preds = self.plan.preds.clone();
        let read = self.plan.read.clone();
        let batch_size = self.plan.batch_size.max(65_536);
        let result = (|| -> Result<()> {
            while let Some(Reverse((key, item))) = queue.pop() {
                top.tighten();
                if !top.can_beat(key) {
                    for Reverse((_, rest)) in
                        std::iter::once(Reverse((key, item))).chain(queue.drain())
                    {
                        match rest {
                            Item::Warm => {}
                            Item::Hot(_) => self.stats.hot_batches_skipped += 1,
                            Item::File(_) => {
                                self.scan.files_pruned += 1;
                                self.scan.topk_files_skipped += 1;
                            }
                            Item::Group(..) => {
                                self.scan.row_groups_pruned += 1;
                                self.scan.topk_row_groups_skipped += 1;
                            }
                        }
                    }
                    break;
                }
                match item {
                    Item::Warm => {
                        let mut at = 0u64;
                        for b in warm {
                            top.offer(b, &ranks_of(b)?, warm_src, |r| at + r as u64)?;
                            at += b.num_rows() as u64;
                        }
                    }
                    Item::Hot(i) => {
                        if let Some(kept) = hot[i].matching(&preds)? {
                            self.stats.hot_rows += kept.num_rows() as u64;
                            let rows = kept
                                .project(&read)
                                .map_err(|e| Error::arrow("projecting hot rows", e))?;
                            let first = (i as u64) << 32;
                            top.offer(&rows, &ranks_of(&rows)?, hot_src, |r| first | r as u64)?;
                        }
                    }
                    Item::File(i) => {
                        let f = &files[i];
                        let reader = cold::ColdReader::open(
                            &self.cold,
                            f,
                            &self.schema,
                            &mut self.scan,
                            Some(&self.cache),
                        )?;
                        let picks = reader.row_groups(&preds, &mut self.scan);
                        for (g, pick) in picks.iter().enumerate() {
                            let best = reader
                                .bounds(pick.index, column)
                                .and_then(|s| topk::best_rank(&s, descending));
                            queue.push(Reverse((
                                (
                                    best.unwrap_or(i64::MIN),
                                    source(i)?,
                                    (pick.index as u64) << 32,
                                ),
                                Item::Group(i, g),
                            )));
                        }
                        readers[i] = Some((reader, picks));
                    }
                    Item::Group(i, g) => {
                        let Some((reader, picks)) = &readers[i] else {
                            continue;
                        };
                        let pick = &picks[g..=g];
                        let first = (pick[0].index as u64) << 32;
                        let src = source(i)?;
                        let mut ordinal = 0u64;
                        let mut got = 0u64;
                        reader.read(pick, &preds, &read, batch_size, &mut self.scan, &mut |b| {
                            let r = ranks_of(&b)?;
                            top.offer(&b, &r, src, |k| first | (ordinal + k as u64))?;
                            ordinal += b.num_rows() as u64;
                            got += b.num_rows() as u64;
                            Ok(true)
                        })?;
                        self.stats.cold_rows += got;
                    }
                }
            }
            Ok(())
        })();
        for (reader, _) in readers.into_iter().flatten() {
            reader.finish(&mut self.scan);
        }
        result?;
        self.ready.extend(top.finish(self.plan.batch_size)?);
        Ok(())
    }

    /// Merges sorted runs into `ready`, up to the limit.
    fn merge(&mut self, runs: Vec<RecordBatch>) -> Result<()> {
        let Some((pos, descending)) = self.plan.sort else {
            return Ok(());
        };
        if runs.is_empty() {
            return Ok(());
        }
        let field = SortField::new_with_options(
            runs[0].column(pos).data_type().clone(),
            SortOptions {
                descending,
                nulls_first: false,
            },
        );
        let converter =
            RowConverter::new(vec![field]).map_err(|e| Error::arrow("preparing the merge", e))?;
        let keys = runs
            .iter()
            .map(|r| converter.convert_columns(&[r.column(pos).clone()]))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| Error::arrow("preparing the merge", e))?;
        let total: usize = runs.iter().map(|r| r.num_rows()).sum();
        let want = self.plan.limit.unwrap_or(total).min(total);
        let mut heap = BinaryHeap::new();
        for (run, k) in keys.iter().enumerate() {
            if k.num_rows() > 0 {
                heap.push(Reverse((k.row(0), run, 0usize)));
            }
        }
        let mut picks: Vec<(usize, usize)> = Vec::with_capacity(want);
        while picks.len() < want {
            let Some(Reverse((_, run, i))) = heap.pop() else {
                break;
            };
            picks.push((run, i));
            if i + 1 < keys[run].num_rows() {
                heap.push(Reverse((keys[run].row(i + 1), run, i + 1)));
            }
        }
        for chunk in picks.chunks(self.plan.batch_size) {
            let columns = (0..self.plan.read.len())
                .map(|c| {
                    let arrays: Vec<&dyn Array> =
                        runs.iter().map(|r| r.column(c).as_ref()).collect();
                    arrow_select::interleave::interleave(&arrays, chunk)
                })
                .collect::<std::result::Result<Vec<_>, _>>()
                .map_err(|e| Error::arrow("merging sorted runs", e))?;
            let batch = RecordBatch::try_new(runs[0].schema(), columns)
                .map_err(|e| Error::arrow("merging sorted runs", e))?;
            self.ready.push_back(batch);
        }
        Ok(())
    }

    /// Cuts `batch` to the output columns, the remaining limit and batch size,
    /// queueing what is left.
    fn emit(&mut self, batch: RecordBatch) -> Result<Option<RecordBatch>> {
        let left = self
            .plan
            .limit
            .map(|l| l - self.emitted)
            .unwrap_or(usize::MAX);
        if left == 0 {
            self.done = true;
            return Ok(None);
        }
        let take = batch.num_rows().min(left).min(self.plan.batch_size);
        if take < batch.num_rows() && take < left {
            self.ready
                .push_front(batch.slice(take, batch.num_rows() - take));
        }
        let head = batch.slice(0, take);
        let cols: Vec<usize> = (0..self.plan.out).collect();
        let out = head
            .project(&cols)
            .map_err(|e| Error::arrow("projecting the output", e))?;
        let out = RecordBatch::try_new(self.plan.out_schema.clone(), out.columns().to_vec())
            .map_err(|e| Error::arrow("shaping the output", e))?;
        self.emitted += take;
        self.stats.rows_out += take as u64;
        Ok(Some(out))
    }

    fn finish(&mut self) {
        self.done = true;
        self.stats.cold = self.scan.clone();
        self.stats.elapsed = self.started.elapsed();
    }

    fn next_batch(&mut self) -> Result<Option<RecordBatch>> {
        loop {
            if self.done {
                return Ok(None);
            }
            if self.plan.limit.is_some_and(|l| self.emitted >= l) {
                self.finish();
                return Ok(None);
            }
            if let Some(b) = self.ready.pop_front() {
                if b.num_rows() == 0 {
                    continue;
                }
                return self.emit(b);
            }
            if let Some(e) = self.failed.take() {
                return Err(e);
            }
            if self.plan.limit.is_none() && !self.pending_files.is_empty() {
                // No limit: every file is read whole, so the next few are
                // read at once, one per core, and emitted in order.
                let n = rayon::current_num_threads().min(self.pending_files.len());
                let files: Vec<ColdFile> = self.pending_files.drain(..n).collect();
                for rows in self.read_files(&files) {
                    match rows {
                        Ok(rows) => self.ready.extend(rows),
                        // The rows of the files before it are emitted
                        // first, as a serial read would have; nothing after.
                        Err(e) => {
                            self.pending_files.clear();
                            self.tail.clear();
                            self.failed = Some(e);
                            break;
                        }
                    }
                }
                continue;
            }
            if let Some(f) = self.pending_files.pop_front() {
                let want = self
                    .plan
                    .limit
                    .map(|l| l - self.emitted)
                    .unwrap_or(usize::MAX);
                let rows = self.read_file(&f, want)?;
                self.ready.extend(rows);
                continue;
            }
            if !self.tail.is_empty() {
                let tail = std::mem::take(&mut self.tail);
                self.ready.extend(tail);
                continue;
            }
            self.finish();
            return Ok(None);
        }
    }

    /// Drains the stream into one batch (tests and small results).
    pub fn collect_batch(mut self) -> Result<(RecordBatch, QueryStats)> {
        let mut out = Vec::new();
        while let Some(b) = self.next_batch()? {
            out.push(b);
        }
        let schema = self.plan.out_schema.clone();
        let all = arrow_select::concat::concat_batches(&schema, &out)
            .map_err(|e| Error::arrow("collecting a result", e))?;
        Ok((all, self.stats))
    }

    /// The output schema.
    pub fn schema(&self) -> SchemaRef {
        self.plan.out_schema.clone()
    }
}

impl Iterator for QueryStream {
    type Item = Result<RecordBatch>;

    fn next(&mut self) -> Option<Self::Item> {
        match self.next_batch() {
            Ok(Some(b)) => Some(Ok(b)),
            Ok(None) => None,
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

/// The matching rows of one cold file (stopping after `want` rows, or a
/// batch past them), its counts added to `scan`.
fn scan_rows(
    cold: &ColdStore,
    schema: &SchemaRef,
    plan: &Plan,
    cache: &cold::MetaCache,
    f: &ColdFile,
    want: usize,
    scan: &mut ScanStats,
) -> Result<Vec<RecordBatch>> {
    let (mut out, mut got) = (Vec::new(), 0usize);
    cold::scan_file(
        cold,
        f,
        schema,
        &plan.preds,
        &plan.read,
        plan.batch_size,
        scan,
        Some(cache),
        |b| {
            got += b.num_rows();
            out.push(b);
            Ok(got < want)
        },
    )?;
    Ok(out)
}

/// Indices helper kept for callers that gather rows by position.
pub fn take_rows(batch: &RecordBatch, rows: &[u32]) -> Result<RecordBatch> {
    arrow_select::take::take_record_batch(batch, &UInt32Array::from(rows.to_vec()))
        .map_err(|e| Error::arrow("gathering rows", e))
}
