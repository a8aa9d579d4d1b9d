#!/usr/bin/env python3
"""Phase 06 side by side with DuckDB: the same three queries over the same data.

Exports every metric of the phase-04 file to CSV with our engine, converts
each to Parquet with DuckDB, then times in both engines, single-threaded:

  1. one series, one hour: count, min, avg, max
  2. one series, 1% of the time range: the rows
  3. full scan: avg(value) of every metric (summed over the metrics)

Usage (after `cargo run --release`, which writes output/04_custom.metrics):

  python3 scripts/duckdb_compare.py [--output-dir output] [--runs 20]

DuckDB is installed with pip into target/duckdb-venv on first use.
"""

import argparse
import datetime
import re
import subprocess
import sys
import time
from pathlib import Path

import pyenv

ROOT = Path(__file__).resolve().parent.parent


pyenv.ensure("duckdb-venv", ["duckdb"])
import duckdb  # noqa: E402

ENGINE = ROOT / "target" / "release" / "06_query_engine"


def ours(out_dir, sql, runs):
    """Runs a query with --repeat; returns (stdout, best ms)."""
    p = subprocess.run(
        [str(ENGINE), "-o", out_dir, "--format", "csv", "--repeat", str(runs), sql],
        capture_output=True, text=True, check=True,
    )
    m = re.search(r"timing: best ([0-9.]+) ms", p.stderr)
    return p.stdout, float(m.group(1))


def theirs(con, sql, runs):
    best = float("inf")
    rows = None
    for _ in range(runs):
        t = time.perf_counter()
        rows = con.execute(sql).fetchall()
        best = min(best, time.perf_counter() - t)
    return rows, best * 1e3


def ident(name):
    return name if re.fullmatch(r"[a-z_][a-z0-9_]*", name) else '"' + name.replace('"', '""') + '"'


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--output-dir", default="output")
    ap.add_argument("--runs", type=int, default=20)
    args = ap.parse_args()
    if not ENGINE.exists():
        subprocess.run(["cargo", "build", "--release", "--bin", "06_query_engine"], cwd=ROOT, check=True)
    out = Path(args.output_dir)
    work = out / "duckdb"
    work.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect()
    con.execute("SET threads = 1")

    # Every metric to Parquet (ts as a timestamp with nanoseconds).
    listing = subprocess.run([str(ENGINE), "-o", str(out), "--metrics"],
                             capture_output=True, text=True, check=True).stdout
    metrics = [line.split(":")[0] for line in listing.splitlines() if ":" in line]
    parquet = {}
    samples = 0
    for metric in metrics:
        csv_text = subprocess.run(
            [str(ENGINE), "-o", str(out), "--format", "csv", "-q", f"SELECT * FROM {ident(metric)}"],
            capture_output=True, text=True, check=True).stdout
        csv_path = work / f"{metric}.csv"
        csv_path.write_text(csv_text)
        pq = work / f"{metric}.parquet"
        con.execute(f"COPY (SELECT * FROM read_csv('{csv_path}', header=true, "
                    f"types={{'ts': 'TIMESTAMP_NS'}})) TO '{pq}' (FORMAT parquet)")
        parquet[metric] = str(pq)
        samples += csv_text.count("\n") - 1

    # Series 0 of cpu_usage_percent and its time range.
    first = con.execute(f"SELECT host, min(ts), max(ts) FROM '{parquet['cpu_usage_percent']}' "
                        "GROUP BY host ORDER BY host LIMIT 1").fetchone()
    host, t0, t1 = first
    span = (t1 - t0) / 100
    def iso(t):
        return t.isoformat(timespec="microseconds") + "Z"
    hour_end = min(t1, t0 + datetime.timedelta(hours=1))
    a, b = t0 + 50 * span, t0 + 51 * span
    cpu = parquet["cpu_usage_percent"]
    queries = [
        ("one series, one hour",
         f"SELECT count(*), min(value), avg(value), max(value) FROM cpu_usage_percent WHERE host = '{host}' AND ts >= '{iso(t0)}' AND ts < '{iso(hour_end)}'",
         f"SELECT count(*), min(value), avg(value), max(value) FROM '{cpu}' WHERE host = '{host}' AND ts >= '{iso(t0)}' AND ts < '{iso(hour_end)}'"),
        ("one series, 1% of the range",
         f"SELECT ts, value FROM cpu_usage_percent WHERE host = '{host}' AND ts >= '{iso(a)}' AND ts < '{iso(b)}'",
         f"SELECT ts, value FROM '{cpu}' WHERE host = '{host}' AND ts >= '{iso(a)}' AND ts < '{iso(b)}'"),
    ]
    print(f"{samples:,} samples in {len(metrics)} metrics; best of {args.runs} runs, one thread each")
    print(f"{'query':<34} {'squeezed-signals':>17} {'DuckDB (Parquet)':>17}  rows")
    for title, ours_sql, their_sql in queries:
        text, ours_ms = ours(str(out), ours_sql, args.runs)
        rows, their_ms = theirs(con, their_sql, args.runs)
        n_ours = text.count("\n") - 1
        print(f"{title:<34} {ours_ms:>14.3f} ms {their_ms:>14.3f} ms  {n_ours} / {len(rows)}")
        assert n_ours == len(rows), (title, n_ours, len(rows))
    ours_total = their_total = 0.0
    for metric in metrics:
        _, t = ours(str(out), f"SELECT avg(value) FROM {ident(metric)}", args.runs)
        ours_total += t
        _, t = theirs(con, f"SELECT avg(value) FROM '{parquet[metric]}'", args.runs)
        their_total += t
    print(f"{'full scan avg(value), all metrics':<34} {ours_total:>14.3f} ms {their_total:>14.3f} ms"
          f"  ({samples / ours_total / 1e3:.1f} vs {samples / their_total / 1e3:.1f} M samples/s)")
    size = sum(Path(p).stat().st_size for p in parquet.values())
    mfile = out / "04_custom.metrics"
    print(f"bytes: .metrics {mfile.stat().st_size:,}, Parquet (DuckDB defaults) {size:,}")


if __name__ == "__main__":
    main()
