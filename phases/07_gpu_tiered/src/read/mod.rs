//! Reading the store: queries across the tiers ([`query`], with [`topk`]
//! for a sort with a limit), bars per symbol and bucket ([`aggregate`]), the
//! newest bars of a symbol from the catalog's materialised ones ([`bars`]), and
//! data quality ([`quality`]). Each adds methods to the
//! [`Engine`](crate::Engine) or takes one; the engine knows nothing of them.

pub mod aggregate;
pub mod bars;
pub mod quality;
pub mod query;
pub mod topk;

use arrow_array::RecordBatch;

use crate::engine::Engine;
use crate::error::Result;
use crate::filter::Pred;
use crate::store::cold::{self, ColdFile, ScanStats};

/// Streams the rows of cold file `f` that satisfy `preds` into `each`, as
/// the four columns bars are made of (timestamp, symbol, price, volume), in
/// batches of `query.output_batch_size`, its footer through the engine's
/// cache; `each` returns whether to go on.
pub(crate) fn scan_trades(
    engine: &Engine,
    f: &ColdFile,
    preds: &[Pred],
    scan: &mut ScanStats,
    each: impl FnMut(RecordBatch) -> Result<bool>,
) -> Result<()> {
    cold::scan_file(
        engine.cold_store(),
        f,
        engine.schema(),
        preds,
        &[0, 1, 2, 3],
        engine.config().query.output_batch_size.max(1),
        scan,
        Some(engine.meta_cache()),
        each,
    )
}
