//! The deterministic dataset generator of phase 00.
//!
//! Two profiles:
//!
//! - **observability** (default): what a Prometheus server scraping a small
//!   fleet actually stores. Each *target* (a host running a service) is
//!   scraped every `interval`, at its own offset within the interval, with a
//!   few milliseconds of jitter and an occasional missed scrape; every series
//!   of a target shares the target's scrape timestamps. Values look like what
//!   exporters write: CPU % with two decimals, byte counts as integers,
//!   temperatures in half degrees, counters that only go up (and reset when a
//!   process restarts), `up` and configuration values that almost never
//!   change, latency quantiles in microseconds.
//! - **squeezed**: a reconstruction of the original Python course's generator:
//!   a few metrics per host, sine plus Gaussian noise at full `f64` precision,
//!   timestamps with uniform jitter of ±1 s at nanosecond resolution and
//!   independent per series. It is harder to compress, which is the point of
//!   comparing the two.
//! - **market**: trades of a handful of stock symbols, the second schema of
//!   the query engine. Trades arrive as a Poisson process whose rate swings
//!   (bursts), prices follow a random walk on a one-cent tick, sizes are
//!   round lots mostly, and each trade is a buy (+1) or a sell (-1). Each
//!   numeric field is a series labelled with its symbol: `trade_price`,
//!   `trade_size`, `trade_side`, all on the trade's timestamp. `--series`
//!   is the number of symbols (at most 16; three series each), `--points`
//!   the total samples, `--interval` the mean time between a symbol's trades.
//!
//! Everything is drawn from one ChaCha8 stream seeded with `seed`, so a seed
//! always gives the same dataset on every machine.

use std::f64::consts::TAU;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, LogNormal, Normal, Poisson};

use crate::error::{Error, Result};
use crate::model::{Dataset, Labels, Series, SeriesKey};
use crate::time::NANOS_PER_SECOND;

/// Which kind of data to generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Profile {
    /// A realistic observability mix (Prometheus-style scrapes).
    Observability,
    /// A reconstruction of the original Python course's generator.
    Squeezed,
    /// Trades of a few stock symbols: price, size and side per trade.
    Market,
}

/// What to generate.
#[derive(Debug, Clone)]
pub struct GenerateConfig {
    pub profile: Profile,
    /// Number of series.
    pub series: usize,
    /// Total number of samples, spread evenly over the series.
    pub points: u64,
    /// Scrape interval in nanoseconds.
    pub interval_ns: i64,
    /// Maximum scrape jitter in nanoseconds (observability profile).
    pub jitter_ns: i64,
    pub seed: u64,
    /// Time of the first scrape, Unix nanoseconds.
    pub start_ns: i64,
}

impl Default for GenerateConfig {
    fn default() -> Self {
        GenerateConfig {
            profile: Profile::Observability,
            series: 50,
            points: 50_000,
            interval_ns: 15 * NANOS_PER_SECOND,
            jitter_ns: 5_000_000,
            seed: 42,
            // 2024-01-01T00:00:00Z
            start_ns: 1_704_067_200 * NANOS_PER_SECOND,
        }
    }
}

impl GenerateConfig {
    fn validate(&self) -> Result<()> {
        if self.series == 0 {
            return Err(Error::InvalidArgument("--series must be at least 1".into()));
        }
        if self.points < self.series as u64 {
            return Err(Error::InvalidArgument(format!(
                "--points {} is fewer than --series {}: every series needs a sample",
                self.points, self.series
            )));
        }
        if self.interval_ns <= 0 {
            return Err(Error::InvalidArgument("--interval must be positive".into()));
        }
        if self.jitter_ns < 0 || self.jitter_ns.saturating_mul(2) >= self.interval_ns {
            return Err(Error::InvalidArgument(
                "--jitter must be less than half the interval".into(),
            ));
        }
        // The last scrape must still be a time i64 nanoseconds can hold.
        let slots = self.points.div_ceil(self.series as u64) as i128 + 2;
        let end = self.start_ns as i128 + slots * self.interval_ns as i128;
        if end > i64::MAX as i128 {
            return Err(Error::InvalidArgument(format!(
                "--points {} at --interval {} per series runs past 2262-04-11, the last time \
                 i64 nanoseconds hold: use fewer points or a shorter interval",
                self.points,
                crate::time::format_duration(self.interval_ns)
            )));
        }
        Ok(())
    }

    fn describe(&self) -> String {
        let series = match self.profile {
            Profile::Market => format!("symbols={}", self.series.clamp(1, SYMBOLS.len())),
            _ => format!("series={}", self.series),
        };
        format!(
            "generated: profile={:?} {series} points={} interval={} jitter={} seed={}",
            self.profile,
            self.points,
            crate::time::format_duration(self.interval_ns),
            crate::time::format_duration(self.jitter_ns),
            self.seed
        )
        .to_lowercase()
    }
}

/// Generates a dataset.
pub fn generate(config: &GenerateConfig) -> Result<Dataset> {
    config.validate()?;
    let series = match config.profile {
        Profile::Observability => observability(config),
        Profile::Squeezed => squeezed(config),
        Profile::Market => market(config),
    };
    Ok(Dataset::new(config.describe(), series))
}

/// Samples for series `i` of `n` when `total` are spread evenly.
fn points_for(i: usize, n: usize, total: u64) -> usize {
    let base = total / n as u64;
    (base + u64::from((i as u64) < total % n as u64)) as usize
}

const REGIONS: [&str; 3] = ["us-east-1", "eu-west-1", "ap-south-1"];
const SERVICES: [(&str, u16); 4] = [("api", 8080), ("web", 8081), ("db", 9187), ("cache", 9121)];

/// The metric families every target exposes, in the order series are taken.
#[derive(Debug, Clone, Copy)]
enum Family {
    Cpu,
    Memory,
    Temperature,
    Requests {
        method: &'static str,
        status: &'static str,
        rate: f64,
    },
    NetworkBytes,
    Up,
    MaxFds,
    Latency {
        quantile: &'static str,
        median_ms: f64,
    },
    DiskFree,
}

const FAMILIES: [Family; 12] = [
    Family::Cpu,
    Family::Memory,
    Family::Requests {
        method: "GET",
        status: "200",
        rate: 40.0,
    },
    Family::Latency {
        quantile: "0.5",
        median_ms: 12.0,
    },
    Family::Latency {
        quantile: "0.99",
        median_ms: 85.0,
    },
    Family::Up,
    Family::Temperature,
    Family::NetworkBytes,
    Family::Requests {
        method: "POST",
        status: "500",
        rate: 0.05,
    },
    Family::Latency {
        quantile: "0.9",
        median_ms: 40.0,
    },
    Family::DiskFree,
    Family::MaxFds,
];

impl Family {
    fn key(&self, target: &Labels) -> SeriesKey {
        let mut labels = target.clone();
        let mut add = |k: &str, v: &str| {
            labels.insert(k.to_string(), v.to_string());
        };
        let metric = match self {
            Family::Cpu => {
                add("mode", "busy");
                "cpu_usage_percent"
            }
            Family::Memory => "memory_used_bytes",
            Family::Temperature => {
                add("sensor", "package");
                "node_temperature_celsius"
            }
            Family::Requests { method, status, .. } => {
                add("method", method);
                add("status", status);
                "http_requests_total"
            }
            Family::NetworkBytes => {
                add("device", "eth0");
                "network_transmit_bytes_total"
            }
            Family::Up => "up",
            Family::MaxFds => "process_max_fds",
            Family::Latency { quantile, .. } => {
                add("quantile", quantile);
                "http_request_duration_seconds"
            }
            Family::DiskFree => {
                add("mountpoint", "/");
                "disk_free_bytes"
            }
        };
        SeriesKey::new(metric, labels)
    }
}

fn round_to(v: f64, decimals: i32) -> f64 {
    let scale = 10f64.powi(decimals);
    (v * scale).round() / scale
}

/// Value generator state for one series.
struct ValueModel {
    family: Family,
    level: f64,
    phase: f64,
    walk: f64,
}

impl ValueModel {
    fn new(family: Family, rng: &mut ChaCha8Rng) -> Self {
        let level = match family {
            Family::Cpu => rng.gen_range(15.0..55.0),
            Family::Memory => {
                (rng.gen_range(2.0..12.0f64) * 1024.0 * 1024.0 * 1024.0 / 4096.0).round() * 4096.0
            }
            Family::Temperature => rng.gen_range(42.0..58.0),
            Family::Requests { .. } | Family::NetworkBytes => rng.gen_range(0..5_000_000u64) as f64,
            Family::Up => 1.0,
            Family::MaxFds => [1024.0, 65_536.0, 1_048_576.0][rng.gen_range(0..3)],
            Family::Latency { median_ms, .. } => median_ms / 1000.0,
            Family::DiskFree => (rng.gen_range(20.0..400.0f64) * 1e9 / 4096.0).round() * 4096.0,
        };
        ValueModel {
            family,
            level,
            phase: rng.gen_range(0.0..TAU),
            walk: 0.0,
        }
    }

    /// The value at time `t_ns` (seconds since start `s`).
    fn next(&mut self, s: f64, interval_s: f64, rng: &mut ChaCha8Rng) -> f64 {
        let day = (TAU * s / 86_400.0 + self.phase).sin();
        let noise = |rng: &mut ChaCha8Rng, sd: f64| {
            Normal::new(0.0, sd).map(|n| n.sample(rng)).unwrap_or(0.0)
        };
        match self.family {
            Family::Cpu => {
                self.walk = (self.walk * 0.98 + noise(rng, 1.5)).clamp(-20.0, 20.0);
                let fast = 6.0 * (TAU * s / 900.0 + self.phase).sin();
                round_to(
                    (self.level + 18.0 * day + fast + self.walk + noise(rng, 2.0))
                        .clamp(0.0, 100.0),
                    2,
                )
            }
            Family::Memory => {
                // A random walk in whole pages, with a daily swell.
                let pages = noise(rng, 2_000.0).round() + 150.0 * day;
                self.level = (self.level + pages * 4096.0).max(256.0 * 1024.0 * 1024.0);
                (self.level / 4096.0).round() * 4096.0
            }
            Family::Temperature => {
                self.walk = (self.walk * 0.995 + noise(rng, 0.2)).clamp(-5.0, 5.0);
                ((self.level + 6.0 * day + self.walk) * 2.0).round() / 2.0
            }
            Family::Requests { rate, .. } => {
                if rng.gen_bool(1.0 / 20_000.0) {
                    // The process restarted: the counter starts again from zero.
                    self.level = 0.0;
                }
                let mean = (rate * interval_s * (1.0 + 0.5 * day)).max(1e-9);
                let inc = Poisson::new(mean).map(|p| p.sample(rng)).unwrap_or(0.0);
                self.level += inc;
                self.level
            }
            Family::NetworkBytes => {
                if rng.gen_bool(1.0 / 50_000.0) {
                    self.level = 0.0;
                }
                let inc = (1.5e6 * interval_s / 15.0 * (1.0 + 0.4 * day) + noise(rng, 2e5))
                    .max(0.0)
                    .round();
                self.level += inc;
                self.level
            }
            Family::Up => {
                // Rare outages of a few scrapes.
                if self.level == 1.0 && rng.gen_bool(1.0 / 8_000.0) {
                    self.level = 0.0;
                } else if self.level == 0.0 && rng.gen_bool(0.3) {
                    self.level = 1.0;
                }
                self.level
            }
            Family::MaxFds => self.level,
            Family::Latency { median_ms, .. } => {
                // Summary quantiles move slowly; the exporter reports microseconds.
                if rng.gen_bool(0.6) {
                    let jitter = LogNormal::new(0.0, 0.25)
                        .map(|d| d.sample(rng))
                        .unwrap_or(1.0);
                    self.level = median_ms / 1000.0 * (1.0 + 0.3 * day) * jitter;
                }
                round_to(self.level, 6)
            }
            Family::DiskFree => {
                if rng.gen_bool(0.02) {
                    let delta = (noise(rng, 5e7) / 4096.0).round() * 4096.0;
                    self.level = (self.level + delta).max(0.0);
                }
                self.level
            }
        }
    }
}

fn observability(config: &GenerateConfig) -> Vec<Series> {
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
    let interval_s = config.interval_ns as f64 / NANOS_PER_SECOND as f64;
    let jitter_ms = config.jitter_ns / 1_000_000;
    let jitter = Normal::new(0.0, (jitter_ms as f64 / 2.0).max(1e-9)).ok();
    let mut out = Vec::with_capacity(config.series);
    let mut target = 0usize;
    while out.len() < config.series {
        let (service, port) = SERVICES[target % SERVICES.len()];
        let region = REGIONS[(target / SERVICES.len()) % REGIONS.len()];
        let host = format!("{service}-{:02}", target / SERVICES.len() + 1);
        let target_labels = Labels::from([
            ("host".to_string(), host.clone()),
            ("instance".to_string(), format!("{host}:{port}")),
            ("job".to_string(), service.to_string()),
            ("region".to_string(), region.to_string()),
        ]);
        let families: Vec<Family> = FAMILIES
            .iter()
            .copied()
            .take(config.series - out.len())
            .collect();
        let counts: Vec<usize> = (0..families.len())
            .map(|f| points_for(out.len() + f, config.series, config.points))
            .collect();
        let needed = counts.iter().copied().max().unwrap_or(0);
        // One scrape schedule per target, shared by all its series.
        let offset_ms = rng.gen_range(0..(config.interval_ns / 1_000_000).max(1));
        let mut times = Vec::with_capacity(needed);
        let mut slot = 0i64;
        while times.len() < needed {
            slot += 1;
            if rng.gen_bool(0.002) {
                continue; // a missed scrape
            }
            let j = match (&jitter, jitter_ms) {
                (Some(d), ms) if ms > 0 => (d.sample(&mut rng).round() as i64).clamp(-ms, ms),
                _ => 0,
            };
            times.push(
                config.start_ns + (slot - 1) * config.interval_ns + (offset_ms + j) * 1_000_000,
            );
        }
        for (family, count) in families.into_iter().zip(counts) {
            let mut model = ValueModel::new(family, &mut rng);
            let mut series = Series::new(family.key(&target_labels));
            series.timestamps = times[..count].to_vec();
            series.values = series
                .timestamps
                .iter()
                .map(|&t| model.next((t - config.start_ns) as f64 / 1e9, interval_s, &mut rng))
                .collect();
            out.push(series);
        }
        target += 1;
    }
    out
}

/// Symbols and starting prices of the market profile.
const SYMBOLS: [(&str, f64); 16] = [
    ("AAPL", 189.25),
    ("MSFT", 374.5),
    ("NVDA", 495.2),
    ("AMZN", 151.9),
    ("GOOG", 140.1),
    ("META", 352.8),
    ("TSLA", 248.4),
    ("JPM", 170.05),
    ("V", 260.3),
    ("XOM", 102.7),
    ("UNH", 527.6),
    ("JNJ", 156.4),
    ("WMT", 157.9),
    ("PG", 146.6),
    ("MA", 426.1),
    ("HD", 346.2),
];

fn market(config: &GenerateConfig) -> Vec<Series> {
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
    let symbols = config.series.clamp(1, SYMBOLS.len());
    let mut out = Vec::with_capacity(symbols * 3);
    for (i, &(symbol, start_price)) in SYMBOLS.iter().take(symbols).enumerate() {
        // Each trade is three samples (price, size, side).
        let trades = (config.points / 3 / symbols as u64
            + u64::from((i as u64) < config.points / 3 % symbols as u64))
        .max(1);
        let labels = Labels::from([("symbol".to_string(), symbol.to_string())]);
        let mut price = Series::new(SeriesKey::new("trade_price", labels.clone()));
        let mut size = Series::new(SeriesKey::new("trade_size", labels.clone()));
        let mut side = Series::new(SeriesKey::new("trade_side", labels));
        let mut t = config.start_ns;
        let mut cents = (start_price * 100.0).round();
        let mut intensity = 1.0f64;
        let noise = Normal::new(0.0, 1.0).ok();
        for _ in 0..trades {
            // Bursts: the rate drifts and occasionally jumps tenfold.
            intensity = (intensity * 0.98 + 0.02).max(0.1);
            if rng.gen_bool(0.002) {
                intensity = 10.0;
            }
            let mean_gap = config.interval_ns as f64 / intensity;
            let gap = -mean_gap * (1.0 - rng.gen::<f64>()).ln();
            t = t.saturating_add(gap.max(1_000.0) as i64 / 1_000 * 1_000); // microsecond stamps
            let step = noise.map(|n| n.sample(&mut rng)).unwrap_or(0.0);
            cents = (cents + (step * cents * 0.0004).round()).max(1.0);
            let lots = if rng.gen_bool(0.8) {
                rng.gen_range(1..=10) * 100
            } else {
                rng.gen_range(1..=99)
            };
            price.push(t, cents / 100.0);
            size.push(t, lots as f64);
            side.push(t, if rng.gen_bool(0.5) { 1.0 } else { -1.0 });
        }
        out.extend([price, size, side]);
    }
    out
}

fn squeezed(config: &GenerateConfig) -> Vec<Series> {
    const METRICS: [(&str, f64, f64, f64); 5] = [
        ("cpu_usage", 50.0, 20.0, 5.0),
        ("memory_usage", 60.0, 10.0, 2.0),
        ("disk_io_ops", 200.0, 80.0, 25.0),
        ("network_bytes", 1e6, 4e5, 1e5),
        ("http_requests", 100.0, 30.0, 10.0),
    ];
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
    let interval = config.interval_ns;
    (0..config.series)
        .map(|i| {
            let (metric, base, amp, sd) = METRICS[i % METRICS.len()];
            let host = format!("server-{}", (b'a' + (i / METRICS.len() % 26) as u8) as char);
            let region = ["us-east", "us-west", "eu-central"][i / METRICS.len() % 3];
            let labels = Labels::from([
                (
                    "host".to_string(),
                    format!("{host}{}", i / (METRICS.len() * 26)),
                ),
                ("region".to_string(), region.to_string()),
            ]);
            let noise = Normal::new(0.0, sd).ok();
            let phase = rng.gen_range(0.0..TAU);
            let mut s = Series::new(SeriesKey::new(metric, labels));
            let n = points_for(i, config.series, config.points);
            for k in 0..n as i64 {
                let jitter = rng.gen_range(-NANOS_PER_SECOND..=NANOS_PER_SECOND);
                let t = config.start_ns + k * interval + jitter;
                let x = (t - config.start_ns) as f64 / 3600e9;
                let v = base
                    + amp * (TAU * x / 24.0 + phase).sin()
                    + noise.map(|d| d.sample(&mut rng)).unwrap_or(0.0);
                s.push(t, v.max(0.0));
            }
            s
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small(profile: Profile) -> GenerateConfig {
        GenerateConfig {
            profile,
            series: 30,
            points: 3_000,
            ..GenerateConfig::default()
        }
    }

    #[test]
    fn same_seed_same_data_other_seed_other_data() {
        let a = generate(&small(Profile::Observability)).unwrap();
        let b = generate(&small(Profile::Observability)).unwrap();
        assert_eq!(a.bit_diff(&b), None);
        let c = generate(&GenerateConfig {
            seed: 7,
            ..small(Profile::Observability)
        })
        .unwrap();
        assert!(a.bit_diff(&c).is_some());
    }

    #[test]
    fn a_run_past_2262_is_refused_not_wrapped() {
        let config = GenerateConfig {
            series: 1,
            points: 1_000,
            interval_ns: 365 * 86_400 * 1_000_000_000,
            jitter_ns: 0,
            ..GenerateConfig::default()
        };
        let err = generate(&config).unwrap_err().to_string();
        assert!(err.contains("past 2262"), "{err}");
    }

    #[test]
    fn counts_are_exact_and_time_ordered() {
        for profile in [Profile::Observability, Profile::Squeezed] {
            let d = generate(&small(profile)).unwrap();
            assert_eq!(d.series.len(), 30);
            assert_eq!(d.sample_count(), 3_000);
            for s in &d.series {
                assert!(s.timestamps.windows(2).all(|w| w[0] < w[1]), "{}", s.key);
            }
        }
    }

    #[test]
    fn observability_values_look_like_exporters_wrote_them() {
        let d = generate(&small(Profile::Observability)).unwrap();
        for s in &d.series {
            let m = s.key.metric.as_str();
            for &v in &s.values {
                match m {
                    "memory_used_bytes"
                    | "disk_free_bytes"
                    | "http_requests_total"
                    | "network_transmit_bytes_total" => {
                        assert_eq!(v.fract(), 0.0, "{m} {v}")
                    }
                    "cpu_usage_percent" => {
                        assert!((0.0..=100.0).contains(&v));
                        assert_eq!(round_to(v, 2).to_bits(), v.to_bits());
                    }
                    "up" => assert!(v == 0.0 || v == 1.0),
                    _ => {}
                }
            }
            if m.ends_with("_total") {
                let resets = s.values.windows(2).filter(|w| w[1] < w[0]).count();
                assert!(resets <= 1, "{m} reset {resets} times in 100 samples");
            }
        }
    }

    #[test]
    fn series_of_a_target_share_timestamps_and_jitter_is_milliseconds() {
        let d = generate(&small(Profile::Observability)).unwrap();
        let host = d.series[0].key.labels["host"].clone();
        let same: Vec<_> = d
            .series
            .iter()
            .filter(|s| s.key.labels["host"] == host)
            .collect();
        assert!(same.len() > 1);
        assert!(same
            .iter()
            .all(|s| s.timestamps[..50] == same[0].timestamps[..50]));
        assert!(d
            .series
            .iter()
            .all(|s| s.timestamps.iter().all(|t| t % 1_000_000 == 0)));
    }

    #[test]
    fn market_trades_are_ticks_lots_and_sides() {
        let d = generate(&GenerateConfig {
            profile: Profile::Market,
            series: 4,
            points: 3 * 4 * 500,
            interval_ns: NANOS_PER_SECOND,
            ..GenerateConfig::default()
        })
        .unwrap();
        assert_eq!(d.series.len(), 12);
        assert_eq!(d.sample_count(), 6000);
        for s in &d.series {
            assert!(s.timestamps.windows(2).all(|w| w[0] < w[1]), "{}", s.key);
            assert!(s.key.labels.contains_key("symbol"));
            for &v in &s.values {
                match s.key.metric.as_str() {
                    "trade_price" => assert_eq!((v * 100.0).round() / 100.0, v, "one-cent tick"),
                    "trade_size" => assert!(v >= 1.0 && v.fract() == 0.0),
                    "trade_side" => assert!(v == 1.0 || v == -1.0),
                    other => panic!("unexpected metric {other}"),
                }
            }
        }
        // The three series of a symbol share the trade timestamps.
        let aapl: Vec<_> = d
            .series
            .iter()
            .filter(|s| s.key.labels["symbol"] == "AAPL")
            .collect();
        assert!(aapl.iter().all(|s| s.timestamps == aapl[0].timestamps));
    }

    #[test]
    fn bad_configs_are_refused() {
        let bad = [
            GenerateConfig {
                series: 0,
                ..GenerateConfig::default()
            },
            GenerateConfig {
                points: 3,
                series: 5,
                ..GenerateConfig::default()
            },
            GenerateConfig {
                interval_ns: 0,
                ..GenerateConfig::default()
            },
            GenerateConfig {
                jitter_ns: 10 * NANOS_PER_SECOND,
                ..GenerateConfig::default()
            },
        ];
        for c in bad {
            assert!(generate(&c).is_err(), "{c:?}");
        }
    }
}
