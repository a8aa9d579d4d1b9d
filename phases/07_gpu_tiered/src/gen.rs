//! A deterministic generator of trades (the market profile of phase 00, in
//! the trading schema), for the demo, the benchmarks and the tests.

use std::sync::Arc;

use arrow_array::{
    ArrayRef, Float64Array, Int32Array, Int64Array, RecordBatch, StringArray,
    TimestampNanosecondArray,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::error::{Error, Result};
use crate::schema::{Mode, UTC};

/// 2024-01-01T00:00:00Z in nanoseconds.
pub const START_NS: i64 = 1_704_067_200_000_000_000;

const NAMED: [&str; 8] = [
    "BTC/USD", "ETH/USD", "SOL/USD", "ADA/USD", "XRP/USD", "DOT/USD", "AVAX/USD", "LINK/USD",
];
const EXCHANGES: [&str; 4] = ["coinbase", "kraken", "binance", "bitstamp"];

/// Produces batches of trades in time order across symbols.
#[derive(Debug, Clone)]
pub struct Generator {
    mode: Mode,
    rng: ChaCha8Rng,
    symbols: Vec<String>,
    prices: Vec<f64>,
    ts: i64,
    /// Mean gap between consecutive trades (any symbol), in nanoseconds.
    pub mean_gap_ns: i64,
    trade_id: i64,
}

impl Generator {
    /// `n_symbols` symbols (at least one), seeded.
    pub fn new(mode: Mode, seed: u64, n_symbols: usize) -> Generator {
        let n = n_symbols.max(1);
        let symbols: Vec<String> = (0..n)
            .map(|i| match NAMED.get(i) {
                Some(s) => s.to_string(),
                None => format!("S{i:04}/USD"),
            })
            .collect();
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let prices = (0..n).map(|_| rng.gen_range(1.0..1000.0)).collect();
        Generator {
            mode,
            rng,
            symbols,
            prices,
            ts: START_NS,
            mean_gap_ns: 50_000_000,
            trade_id: 1,
        }
    }

    /// The same generator with its first trade at `ts` or just after.
    pub fn starting_at(mut self, ts: i64) -> Generator {
        self.ts = ts;
        self
    }

    /// The name of symbol `i`.
    pub fn symbol(&self, i: usize) -> String {
        self.symbols[i % self.symbols.len()].clone()
    }

    /// All symbol names.
    pub fn symbols(&self) -> &[String] {
        &self.symbols
    }

    /// The timestamp the next trade will have at least.
    pub fn now(&self) -> i64 {
        self.ts
    }

    /// The next `n` trades.
    pub fn batch(&mut self, n: usize) -> Result<RecordBatch> {
        let mut ts = Vec::with_capacity(n);
        let mut sym = Vec::with_capacity(n);
        let mut price = Vec::with_capacity(n);
        let mut volume = Vec::with_capacity(n);
        let k = self.symbols.len();
        for _ in 0..n {
            self.ts += self.rng.gen_range(0..=2 * self.mean_gap_ns);
            let s = self.rng.gen_range(0..k);
            let p = &mut self.prices[s];
            *p *= 1.0 + self.rng.gen_range(-0.001..0.001);
            ts.push(self.ts);
            sym.push(s);
            price.push(*p);
            volume.push((self.rng.gen_range(0.001f64..10.0) * 1000.0).round() / 1000.0);
        }
        let mut columns: Vec<ArrayRef> = vec![
            Arc::new(TimestampNanosecondArray::from(ts).with_timezone(UTC)),
            Arc::new(StringArray::from_iter_values(
                sym.iter().map(|&s| self.symbols[s].as_str()),
            )),
            Arc::new(Float64Array::from(price)),
            Arc::new(Float64Array::from(volume)),
        ];
        if self.mode == Mode::Trading {
            let sides: Vec<&str> = (0..n)
                .map(|_| {
                    if self.rng.gen_bool(0.5) {
                        "buy"
                    } else {
                        "sell"
                    }
                })
                .collect();
            let exchanges: Vec<&str> = (0..n)
                .map(|_| EXCHANGES[self.rng.gen_range(0..EXCHANGES.len())])
                .collect();
            let ids: Vec<i64> = (0..n as i64).map(|i| self.trade_id + i).collect();
            self.trade_id += n as i64;
            let flags: Vec<i32> = (0..n).map(|_| self.rng.gen_range(0..4)).collect();
            columns.push(Arc::new(StringArray::from(sides)));
            columns.push(Arc::new(StringArray::from(exchanges)));
            columns.push(Arc::new(Int64Array::from(ids)));
            columns.push(Arc::new(Int32Array::from(flags)));
        }
        RecordBatch::try_new(self.mode.schema(), columns)
            .map_err(|e| Error::arrow("generating trades", e))
    }
}
