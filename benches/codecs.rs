//! Encode and decode throughput of our Gorilla-style codecs, side by side
//! with the `tsz` crate (Gorilla in Rust) on the same samples.
//!
//! `cargo bench --bench codecs`. Throughput is in samples (one timestamp
//! and one value) per second. Round trips are checked once, outside the
//! timed loops.

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use squeeze::codec::delta::{self, TimestampScheme};
use squeeze::codec::xor;
use squeeze::Dataset;
use tsz::stream::{BufferedReader, BufferedWriter};
use tsz::{DataPoint, Decode, Encode, StdDecoder, StdEncoder};

#[path = "common.rs"]
mod common;

/// tsz wants u64 timestamps whose first delta fits 14 bits: give it each
/// series in its own tick (ms for generated data, s for Beringei).
fn tsz_input(d: &Dataset) -> Vec<Vec<(u64, f64)>> {
    d.series
        .iter()
        .map(|s| {
            let tick = delta::tick(&s.timestamps) as i64;
            let t0 = s.timestamps.first().copied().unwrap_or(0);
            s.timestamps
                .iter()
                .zip(&s.values)
                .map(|(&t, &v)| (((t - t0) / tick) as u64 + 1, v))
                .collect()
        })
        .collect()
}

fn tsz_encode(series: &[Vec<(u64, f64)>]) -> Vec<Box<[u8]>> {
    series
        .iter()
        .map(|s| {
            let mut e = StdEncoder::new(0, BufferedWriter::new());
            for &(t, v) in s {
                e.encode(DataPoint::new(t, v));
            }
            e.close()
        })
        .collect()
}

fn tsz_decode(blobs: &[Box<[u8]>]) -> usize {
    let mut n = 0;
    for b in blobs {
        let mut d = StdDecoder::new(BufferedReader::new(b.clone()));
        while let Ok(p) = d.next() {
            black_box(p);
            n += 1;
        }
    }
    n
}

/// Every series' columns back to back in one buffer each, as the file
/// formats store them, with the end offset of each series.
struct Encoded {
    ts: Vec<u8>,
    ts_ends: Vec<usize>,
    vals: Vec<u8>,
    val_ends: Vec<usize>,
}

impl Encoded {
    fn ts(&self, i: usize) -> &[u8] {
        &self.ts[if i == 0 { 0 } else { self.ts_ends[i - 1] }..self.ts_ends[i]]
    }
    fn vals(&self, i: usize) -> &[u8] {
        &self.vals[if i == 0 { 0 } else { self.val_ends[i - 1] }..self.val_ends[i]]
    }
}

fn ours_encode(d: &Dataset, scheme: TimestampScheme) -> Encoded {
    let n = d.sample_count() as usize;
    let mut e = Encoded {
        ts: Vec::with_capacity(n),
        ts_ends: Vec::with_capacity(d.series.len()),
        vals: Vec::with_capacity(n * 3),
        val_ends: Vec::with_capacity(d.series.len()),
    };
    for s in &d.series {
        delta::encode(&s.timestamps, scheme, &mut e.ts);
        e.ts_ends.push(e.ts.len());
        xor::encode(&s.values, &mut e.vals);
        e.val_ends.push(e.vals.len());
    }
    e
}

fn ours_decode(d: &Dataset, e: &Encoded, ts: &mut Vec<i64>, vs: &mut Vec<f64>) {
    for (i, s) in d.series.iter().enumerate() {
        ts.clear();
        vs.clear();
        delta::decode(e.ts(i), s.len(), ts).expect("valid");
        xor::decode(e.vals(i), s.len(), vs).expect("valid");
        black_box((&ts, &vs));
    }
}

fn check_round_trips(d: &Dataset, tsz: &[Vec<(u64, f64)>]) {
    for scheme in TimestampScheme::ALL {
        let e = ours_encode(d, scheme);
        for (i, s) in d.series.iter().enumerate() {
            let (mut ts, mut vs) = (Vec::new(), Vec::new());
            delta::decode(e.ts(i), s.len(), &mut ts).unwrap();
            xor::decode(e.vals(i), s.len(), &mut vs).unwrap();
            assert_eq!(ts, s.timestamps);
            assert!(vs
                .iter()
                .zip(&s.values)
                .all(|(a, b)| a.to_bits() == b.to_bits()));
        }
    }
    let blobs = tsz_encode(tsz);
    assert_eq!(tsz_decode(&blobs), tsz.iter().map(Vec::len).sum::<usize>());
}

fn bench(c: &mut Criterion) {
    for (name, d) in common::datasets() {
        let samples = d.sample_count();
        let tsz_in = tsz_input(&d);
        check_round_trips(&d, &tsz_in);

        let mut g = c.benchmark_group(format!("encode/{name}"));
        g.throughput(Throughput::Elements(samples));
        for scheme in TimestampScheme::ALL {
            g.bench_function(BenchmarkId::new("squeeze", scheme.name()), |b| {
                b.iter(|| ours_encode(black_box(&d), scheme))
            });
        }
        g.bench_function("squeeze/timestamps-only", |b| {
            b.iter(|| {
                let mut buf = Vec::new();
                for s in &d.series {
                    buf.clear();
                    delta::encode(&s.timestamps, TimestampScheme::GorillaBuckets, &mut buf);
                }
                buf.len()
            })
        });
        g.bench_function("squeeze/values-only", |b| {
            b.iter(|| {
                let mut buf = Vec::new();
                for s in &d.series {
                    buf.clear();
                    xor::encode(&s.values, &mut buf);
                }
                buf.len()
            })
        });
        g.bench_function("tsz", |b| b.iter(|| tsz_encode(black_box(&tsz_in))));
        g.finish();

        let mut g = c.benchmark_group(format!("decode/{name}"));
        g.throughput(Throughput::Elements(samples));
        let (mut ts, mut vs) = (Vec::new(), Vec::new());
        for scheme in TimestampScheme::ALL {
            let e = ours_encode(&d, scheme);
            g.bench_function(BenchmarkId::new("squeeze", scheme.name()), |b| {
                b.iter(|| ours_decode(&d, &e, &mut ts, &mut vs))
            });
        }
        let e = ours_encode(&d, TimestampScheme::GorillaBuckets);
        g.bench_function("squeeze/timestamps-only", |b| {
            b.iter(|| {
                for (i, s) in d.series.iter().enumerate() {
                    ts.clear();
                    delta::decode(e.ts(i), s.len(), &mut ts).expect("valid");
                }
                ts.len()
            })
        });
        g.bench_function("squeeze/values-only", |b| {
            b.iter(|| {
                for (i, s) in d.series.iter().enumerate() {
                    vs.clear();
                    xor::decode(e.vals(i), s.len(), &mut vs).expect("valid");
                }
                vs.len()
            })
        });
        let blobs = tsz_encode(&tsz_in);
        g.bench_function("tsz", |b| b.iter(|| tsz_decode(black_box(&blobs))));
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
