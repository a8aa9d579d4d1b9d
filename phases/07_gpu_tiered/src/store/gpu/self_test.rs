//! The self-test a device passes before the engine uses it: the same
//! appends, migrations, queries and aggregates through [`GpuWarm`] and the
//! CPU tier on generated data, compared bit for bit.

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::Float64Type;
use arrow_array::RecordBatch;

use super::{guarded, Gpu, GpuWarm};
use crate::agg::Buckets;
use crate::error::{Error, Result};
use crate::schema::Mode;
use crate::store::warm::{CpuWarm, WarmTier};

/// Runs the same appends, migrations and queries through a [`GpuWarm`] on
/// `gpu` and through [`CpuWarm`], and compares the answers bit for bit.
pub fn self_test(gpu: &Arc<Gpu>, mode: Mode) -> std::result::Result<(), String> {
    guarded("self-test", || {
        run_self_test(gpu, mode).map_err(|e| e.to_string())
    })
}

fn run_self_test(gpu: &Arc<Gpu>, mode: Mode) -> Result<()> {
    // Small staging chunks, so that appends go through both pinned buffers.
    let mut dev = GpuWarm::new(gpu.clone(), mode, 4096)?.with_stage_rows(1000);
    let (lo, hi, want) = compare_with_cpu(&mut dev, mode)?;
    if dev.count_time_range(lo, hi)? != want {
        return Err(Error::InvalidArgument(
            "GPU self-test: range count differs".into(),
        ));
    }
    Ok(())
}

/// Runs appends, a migration, queries and aggregates through `dev` and a
/// [`CpuWarm`] and compares them bit for bit; returns a time range and the
/// CPU tier's count of rows in it (for a device's range count).
pub(crate) fn compare_with_cpu(dev: &mut dyn WarmTier, mode: Mode) -> Result<(i64, i64, u64)> {
    use crate::filter::{bind_all, Filter, Scalar};
    let mut g = crate::gen::Generator::new(mode, 99, 20);
    let mut cpu = CpuWarm::new(mode);
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
        // A tier may overshoot a limit by whole chunks: cut both.
        let cut = |v: Vec<RecordBatch>| -> Vec<RecordBatch> {
            let mut left = limit.unwrap_or(usize::MAX);
            v.into_iter()
                .filter_map(|x| {
                    let take = x.num_rows().min(left);
                    left -= take;
                    (take > 0).then(|| x.slice(0, take))
                })
                .collect()
        };
        let a = cut(cpu.scan(&preds, &all, limit)?);
        let b = cut(dev.scan(&preds, &all, limit)?);
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
    // Aggregates: per bucket and symbol on the device, the same partials
    // (bit for bit) as the CPU tier's fold.
    let minute = 60_000_000_000;
    let aggregates: Vec<(Vec<Filter>, Buckets)> = vec![
        (
            vec![],
            Buckets::new(start, start + 3_600 * 1_000_000_000, minute, 1 << 20)?,
        ),
        (
            vec![Filter::eq("symbol", g.symbol(3))],
            Buckets::new(
                start + 7 * 1_000_000_000,
                start + 900 * 1_000_000_000,
                1_000_000_000,
                1 << 20,
            )?,
        ),
        (
            vec![
                Filter::is_in("symbol", [g.symbol(1), g.symbol(7)]),
                Filter::range("volume", Some(Scalar::Float(0.5)), None),
            ],
            Buckets::new(
                start,
                start + 86_400 * 1_000_000_000,
                3_600 * 1_000_000_000,
                1 << 20,
            )?,
        ),
        (
            vec![Filter::eq("symbol", "NOT/THERE")],
            Buckets::new(start, start + 3_600 * 1_000_000_000, minute, 1 << 20)?,
        ),
    ];
    for (filters, buckets) in aggregates {
        let preds = bind_all(&filters, &schema)?;
        let want = cpu.aggregate(&preds, &buckets)?;
        let got = dev.aggregate(&preds, &buckets)?;
        if want != got {
            return Err(Error::InvalidArgument(format!(
                "GPU self-test: aggregate {filters:?} differs ({} groups on the CPU, {} on the GPU)",
                want.len(),
                got.len()
            )));
        }
        if want.is_empty()
            != filters
                .iter()
                .any(|f| format!("{f:?}").contains("NOT/THERE"))
        {
            return Err(Error::InvalidArgument(format!(
                "GPU self-test: aggregate {filters:?} found no rows"
            )));
        }
    }
    Ok((lo, hi, want))
}

/// The same rows (bit for bit) in the same order, however they are batched.
pub(crate) fn same(what: &str, a: &[RecordBatch], b: &[RecordBatch]) -> Result<()> {
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
