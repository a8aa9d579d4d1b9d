#!/usr/bin/env python3
"""Phase 07 side by side with DuckDB and ClickHouse (chdb) over the same
Parquet files: the queries of chapter 07's table, answers compared, times
as medians.

Builds a store of N generated trades (trading mode, 100 symbols; `demo`),
moves every record to the cold tier (`migrate`), then times each query in
our engine (`07_gpu_tiered query|aggregate --repeat R`, one process, so
that the files are checked and their footers cached after the first run,
as a running server has them) and in DuckDB and chdb over the store's
Parquet files (each query run once to warm up, then R times). Each engine
uses every core. The answers are compared: row counts, and for each query
a checksum of what it returns (sum of prices, of volumes, or of the bars'
counts), so that a faster wrong answer does not count.

Usage (not part of CI; builds the release binary first):

  python3 scripts/peers_07.py [--records 10000000] [--runs 5] [--markdown]

DuckDB, chdb and pyarrow are installed with pip into target/peers-venv (shared with scripts/peers.py) on
first use. A peer that fails a query is shown as failed, never as a time.
"""

import argparse
import glob
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pyenv

ROOT = Path(__file__).resolve().parent.parent

pyenv.ensure("peers-venv", ["duckdb", "chdb", "pyarrow"])
import chdb  # noqa: E402
import duckdb  # noqa: E402

BIN = ROOT / "target" / "release" / "07_gpu_tiered"
START_NS = 1_704_067_200_000_000_000  # tiered::gen::START_NS


def run(args, check=True):
    p = subprocess.run(args, capture_output=True, text=True)
    if check and p.returncode != 0:
        sys.exit(f"{' '.join(map(str, args))} failed:\n{p.stderr}")
    return p


def ours(store, args, runs):
    """Runs one of our commands with --repeat; returns (median ms, stdout)."""
    p = run([BIN, "--storage", store, *args, "--repeat", str(runs - 1)])
    m = re.search(r"timing: median ([0-9.]+) ms", p.stderr)
    if not m:
        sys.exit(f"no timing in: {p.stderr}")
    return float(m.group(1)), p.stdout


def timed(fn, runs):
    fn()  # warm-up: files opened, caches filled
    times = []
    out = None
    for _ in range(runs):
        t = time.perf_counter()
        out = fn()
        times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times), out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--records", type=int, default=10_000_000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--store", default=str(ROOT / "target" / "peers07" / "store"))
    ap.add_argument("--keep", action="store_true", help="reuse the store if it is there")
    ap.add_argument("--markdown", action="store_true")
    ap.add_argument("--no-ingest", action="store_true", help="skip the ingest comparison")
    a = ap.parse_args()

    subprocess.run(
        ["cargo", "build", "--release", "-q", "-p", "gpu-tiered", "--bin", "07_gpu_tiered"],
        cwd=ROOT,
        check=True,
    )
    store = a.store
    if not (a.keep and os.path.isdir(store)):
        shutil.rmtree(store, ignore_errors=True)
        t = time.perf_counter()
        run([BIN, "--storage", store, "--mode", "trading", "demo", str(a.records),
             "--no-queries", "--symbols", "100"])
        run([BIN, "--storage", store, "migrate"])
        print(f"store: {a.records} records in {time.perf_counter() - t:.1f} s", file=sys.stderr)
    stats = json.loads(run([BIN, "--storage", store, "stats", "--json"]).stdout)
    if stats["hot_records"] or stats["warm_records"]:
        sys.exit(f"records left outside the cold tier: {stats}")
    files = sorted(glob.glob(f"{store}/cold/year=*/**/*.parquet", recursive=True))
    print(f"{stats['cold_records']} records in {len(files)} Parquet files", file=sys.stderr)

    # The store's time span and symbols, from DuckDB.
    con = duckdb.connect()
    con.execute(f"CREATE VIEW t AS SELECT * FROM read_parquet({files!r})")
    lo, hi = con.execute("SELECT epoch_ns(min(timestamp)), epoch_ns(max(timestamp)) FROM t").fetchone()
    syms = [r[0] for r in con.execute("SELECT DISTINCT symbol FROM t ORDER BY symbol").fetchall()]
    sym, three = syms[0], syms[1:4]
    span = hi - lo
    first_pct = lo + span // 100
    last_hour = hi - 3_600_000_000_000
    day_end = hi + 1

    ch_src = f"file('{store}/cold/year=*/*/*/*.parquet', Parquet)"
    q3 = ", ".join(f"'{s}'" for s in three)
    # name, ours args, SQL (DuckDB), SQL (ClickHouse), checksum kind
    cases = [
        (
            "one symbol, first 1% of time",
            ["query", "--symbol", sym, "--from", str(lo), "--to", str(first_pct), "--format", "csv"],
            f"SELECT * FROM t WHERE symbol = '{sym}' AND epoch_ns(timestamp) >= {lo} AND epoch_ns(timestamp) < {first_pct}",
            f"SELECT * FROM {ch_src} WHERE symbol = '{sym}' AND toUnixTimestamp64Nano(timestamp) >= {lo} AND toUnixTimestamp64Nano(timestamp) < {first_pct}",
            "rows",
        ),
        (
            "3 symbols, last hour, newest 100",
            ["query", *sum((["--symbol", s] for s in three), []), "--from", str(last_hour),
             "--sort", "timestamp", "--desc", "--limit", "100", "--format", "csv"],
            f"SELECT * FROM t WHERE symbol IN ({q3}) AND epoch_ns(timestamp) >= {last_hour} ORDER BY timestamp DESC LIMIT 100",
            f"SELECT * FROM {ch_src} WHERE symbol IN ({q3}) AND toUnixTimestamp64Nano(timestamp) >= {last_hour} ORDER BY timestamp DESC LIMIT 100",
            "rows",
        ),
        (
            "one symbol, every row",
            ["query", "--symbol", sym, "--format", "csv"],
            f"SELECT * FROM t WHERE symbol = '{sym}'",
            f"SELECT * FROM {ch_src} WHERE symbol = '{sym}'",
            "rows",
        ),
        (
            "volume >= 9.99",
            ["query", "--where", "volume>=9.99", "--format", "csv"],
            "SELECT * FROM t WHERE volume >= 9.99",
            f"SELECT * FROM {ch_src} WHERE volume >= 9.99",
            "rows",
        ),
        (
            "count/sum/min/max per hour x symbol",
            ["aggregate", "--from", str(lo), "--to", str(day_end), "--every", "1h", "--format", "csv"],
            f"SELECT symbol, time_bucket(INTERVAL 1 hour, timestamp) h, count(*) AS n, sum(volume), min(price), max(price) FROM t GROUP BY ALL",
            f"SELECT symbol, toStartOfHour(timestamp) h, count() AS n, sum(volume), min(price), max(price) FROM {ch_src} GROUP BY symbol, h",
            "groups",
        ),
        (
            "1-minute OHLCV bars, one symbol",
            ["aggregate", "--symbol", sym, "--from", str(lo), "--to", str(day_end), "--every", "1m", "--format", "csv"],
            f"SELECT time_bucket(INTERVAL 1 minute, timestamp) m, arg_min(price, timestamp), max(price), min(price), arg_max(price, timestamp), sum(volume), count(*) AS n FROM t WHERE symbol = '{sym}' GROUP BY ALL",
            f"SELECT toStartOfMinute(timestamp) m, argMin(price, timestamp), max(price), min(price), argMax(price, timestamp), sum(volume), count() AS n FROM {ch_src} WHERE symbol = '{sym}' GROUP BY m",
            "groups",
        ),
        (
            "ORDER BY price DESC LIMIT 1000",
            ["query", "--sort", "price", "--desc", "--limit", "1000", "--columns", "symbol,price", "--format", "csv"],
            "SELECT symbol, price FROM t ORDER BY price DESC LIMIT 1000",
            f"SELECT symbol, price FROM {ch_src} ORDER BY price DESC LIMIT 1000",
            "rows",
        ),
    ]

    def ours_sum(out, kind):
        """Rows and the checksum of our CSV: the sum of prices, or of trades."""
        lines = out.strip().splitlines()
        col = lines[0].split(",").index("price" if kind == "rows" else "trades")
        return len(lines) - 1, sum(float(l.split(",")[col]) for l in lines[1:])

    def peer_sum(tab, kind):
        import pyarrow.compute as pc

        col = "price" if kind == "rows" else "n"
        total = pc.sum(tab.column(col)).as_py() if tab.num_rows else 0.0
        return tab.num_rows, float(total or 0.0)

    def same(x, y):
        return x[0] == y[0] and abs(x[1] - y[1]) <= 1e-9 * max(abs(x[1]), abs(y[1]), 1.0)

    # One chdb session for every query, as a program using chdb keeps one.
    from chdb import session as chdb_session

    ch = chdb_session.Session()
    rows_out = []
    for name, args, dsql, csql, kind in cases:
        ms, out = ours(store, args, a.runs)
        mine = ours_sum(out, kind)
        d_ms, d_tab = timed(lambda: con.sql(dsql).to_arrow_table(), a.runs)
        theirs = [peer_sum(d_tab, kind)]
        try:
            c_ms, c_tab = timed(lambda: ch.query(csql, "ArrowTable"), a.runs)
            theirs.append(peer_sum(c_tab, kind))
            c_n = c_tab.num_rows
        except Exception as e:  # a peer that fails is shown as failed
            c_ms, c_n = None, "failed: " + str(e).splitlines()[0][:60]
        agree = all(same(mine, t) for t in theirs)
        rows_out.append((name, mine[0], theirs[0][0], c_n, ms, d_ms, c_ms, agree))

    def f(v):
        return "failed" if v is None else f"{v:.1f}"

    if not a.no_ingest:
        ingest_rows = ingest(store, files, a.records, a.runs)

    head = ["query", "rows (ours / DuckDB / chdb)", "ours ms", "DuckDB ms", "chdb ms", "answers agree"]
    if a.markdown:
        print("| " + " | ".join(head) + " |")
        print("|---|---|--:|--:|--:|---|")
    for name, on, dn, cn, ms, dms, cms, agree in rows_out:
        cells = [name, f"{on} / {dn} / {cn}", f(ms), f(dms), f(cms), "yes" if agree else "NO"]
        print(("| " + " | ".join(cells) + " |") if a.markdown else "  ".join(cells))
    if a.no_ingest:
        return
    print()
    head = ["ingest", "ours M rows/s", "pyarrow M rows/s", "ours / pyarrow"]
    if a.markdown:
        print("| " + " | ".join(head) + " |")
        print("|---|--:|--:|--:|")
    for name, ours_rate, peer_rate in ingest_rows:
        cells = [name, f"{ours_rate / 1e6:.2f}", f"{peer_rate / 1e6:.2f}", f"{ours_rate / peer_rate:.2f}x"]
        print(("| " + " | ".join(cells) + " |") if a.markdown else "  ".join(cells))


def ingest(store, files, records, runs, batch=100_000):
    """Ingest rates, medians of `runs`: ours (`demo --pregenerate`, two
    writers sharing fsyncs, batches of `batch`) into the memory tiers alone
    (budgets large enough that nothing moves to Parquet) and with the
    default budgets (a migration thread writing Parquet meanwhile), against
    pyarrow writing the same rows (read back from the store's Parquet files,
    in memory before the clock starts) as an Arrow IPC stream with an fsync
    after every `batch` rows, and as one zstd Parquet file, fsynced.

    Both sides write right after deleting their previous output (the demo
    deletes its store after generating its batches; pyarrow truncates its
    file), and the runs alternate: on a VM, memory freed a few seconds
    earlier is slow to touch again (the host reclaims it), which halves a
    writer's page-cache bandwidth, so a side that wrote into freshly freed
    pages and one that did not would not be comparable."""
    import pyarrow as pa
    import pyarrow.ipc as ipc
    import pyarrow.parquet as pq

    mine = Path(store).parent / "ingest-ours"
    theirs = Path(store).parent / "ingest-pyarrow"
    shutil.rmtree(mine, ignore_errors=True)
    shutil.rmtree(theirs, ignore_errors=True)
    theirs.mkdir(parents=True)

    def ours_once(extra_env, extra_args):
        p = subprocess.run(
            [BIN, "--storage", mine, "--mode", "trading", "demo", str(records), "--no-queries",
             "--symbols", "100", "--pregenerate", "--batch-size", str(batch), *extra_args],
            capture_output=True, text=True, env={**os.environ, **extra_env})
        if p.returncode != 0:
            sys.exit(f"demo failed:\n{p.stderr}")
        m = re.search(r"records in [0-9.]+ s = ([0-9]+) records/s", p.stdout)
        if not m:
            sys.exit(f"no rate in: {p.stdout}")
        return float(m.group(1))

    table = pa.concat_tables([pq.read_table(f) for f in files]).replace_schema_metadata(None)
    table = table.combine_chunks()
    batches = table.to_batches(max_chunksize=batch)

    def timed_rate(write):
        t = time.perf_counter()
        write()
        return table.num_rows / (time.perf_counter() - t)

    def ipc_stream():
        with open(theirs / "stream.arrows", "wb") as fh:
            w = ipc.new_stream(fh, table.schema)
            for b in batches:
                w.write_batch(b)
                fh.flush()
                os.fsync(fh.fileno())
            w.close()
            fh.flush()
            os.fsync(fh.fileno())

    def parquet_zstd():
        path = theirs / "all.parquet"
        pq.write_table(table, path, compression="zstd")
        fd = os.open(path, os.O_RDONLY)
        os.fsync(fd)
        os.close(fd)

    rates = {k: [] for k in ("memory", "ipc", "migrating", "parquet")}
    for _ in range(runs):
        rates["memory"].append(ours_once({"SSIG_HOT_MAX_RECORDS": str(records)}, ["--warm-mb", "100000"]))
        rates["ipc"].append(timed_rate(ipc_stream))
        rates["migrating"].append(ours_once({}, []))
        rates["parquet"].append(timed_rate(parquet_zstd))
    shutil.rmtree(mine, ignore_errors=True)
    shutil.rmtree(theirs, ignore_errors=True)
    med = {k: statistics.median(v) for k, v in rates.items()}
    print("ingest runs (M rows/s): " + "; ".join(
        f"{k} " + ", ".join(f"{r / 1e6:.1f}" for r in v) for k, v in rates.items()), file=sys.stderr)
    return [
        ("into the memory tiers, WAL fsynced / IPC stream, fsync per 100k rows", med["memory"], med["ipc"]),
        ("while migrating to Parquet / one zstd Parquet file", med["migrating"], med["parquet"]),
    ]


if __name__ == "__main__":
    main()
