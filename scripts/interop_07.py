#!/usr/bin/env python3
"""Proves that phase 07's files are readable by the ecosystem.

Builds a small trading-mode store with the 07_gpu_tiered binary (records in
all three tiers, several WAL segments), then checks:
  - sqlite3 (Python's module) opens the catalog; its rows add up;
  - pyarrow reads every Parquet file, with the schema, row counts and sort
    order the catalog claims;
  - DuckDB reads the cold tier as one hive-partitioned dataset;
  - pyarrow's IPC stream reader reads every WAL segment, records that
    carry an idempotency key included;
  - the trade ids in the WAL and in the cold files together are exactly the
    ingested ones, and the WAL holds every record not yet in the cold tier;
  - after `migrate` and `retention`, the cold tier read as a Delta Lake
    table by the `deltalake` Python package (delta-rs) holds exactly the
    catalog's files, this store's transaction version is the watermark,
    and hourly count/min/max/sum per symbol computed by DataFusion's and
    DuckDB's Python packages over the table equal ours (`aggregate`).

pyarrow, duckdb, deltalake and datafusion are pip-installed into
target/interop-venv on first use.
Usage: scripts/interop_07.py [--bin target/debug/07_gpu_tiered] [--records N]
"""

import argparse
import glob
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyenv

ROOT = Path(__file__).resolve().parent.parent


# moto's S3 server (with its flask front end) serves the cold tier over the
# S3 protocol for the object-storage checks.
pyenv.ensure("interop-venv", ["pyarrow", "duckdb", "deltalake", "datafusion", "boto3", "moto",
                              "flask", "flask_cors"])
import datafusion  # noqa: E402
import duckdb  # noqa: E402
from deltalake import DeltaTable  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.ipc as ipc  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402


def check(cond, what):
    if not cond:
        print(f"FAIL: {what}", file=sys.stderr)
        sys.exit(1)
    print(f"ok: {what}")


def run_ok(argv, **kw):
    """`subprocess.run` that fails with the command's stderr in the message
    (`check=True` with captured output says only the exit status)."""
    done = subprocess.run(argv, capture_output=True, text=True, **kw)
    if done.returncode != 0:
        print(f"FAIL: {' '.join(map(str, argv))} exited {done.returncode}:\n{done.stderr}",
              file=sys.stderr)
        sys.exit(1)
    return done


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=str(ROOT / "target" / "debug" / "07_gpu_tiered"))
    ap.add_argument("--records", type=int, default=200_000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp) / "store"
        config = Path(tmp) / "config.json"
        config.write_text(json.dumps({
            "mode": "trading",
            "storage": {"base_path": str(store)},
            "hot_tier": {"max_records": 20000},
            "wal": {"segment_mb": 0.5},
            "cold_tier": {"row_group_rows": 8192, "page_rows": 1024},
        }))
        run = lambda *a: run_ok([args.bin, "--config", str(config), *a]).stdout  # noqa: E731
        run("demo", str(args.records), "--batch-size", "5000", "--warm-mb", "1",
            "--no-queries", "--writers", "1")
        # Then 1,000 more with idempotency keys: their WAL records carry a
        # key block, which IPC readers must see as padding.
        extra = 1000
        csv_path = Path(tmp) / "keyed.csv"
        with open(csv_path, "w") as fh:
            fh.write("timestamp,symbol,price,volume,side,exchange,trade_id,flags\n")
            for i in range(extra):
                fh.write(f"{1704153600000000000 + i},KEY/USD,{1.5 + i},1,buy,kraken,"
                         f"{args.records + 1 + i},0\n")
        run("ingest", str(csv_path), "--batch-size", "250", "--idempotency-key", "interop")
        again = run("ingest", str(csv_path), "--batch-size", "250", "--idempotency-key", "interop")
        check("4 batches were already stored" in again,
              "ingest --idempotency-key run again stores nothing twice")
        total = args.records + extra
        stats = json.loads(run("stats", "--json"))
        check(stats["hot_records"] + stats["warm_records"] + stats["cold_records"] == total,
              f"tier counts add up to {total}")
        check(stats["cold_records"] > 0 and stats["warm_records"] > 0 and stats["hot_records"] > 0,
              "records in all three tiers")

        db = sqlite3.connect(store / "catalog.sqlite")
        files = db.execute("SELECT path, rows, min_ts, max_ts, symbols, partition FROM files").fetchall()
        check(sum(f[1] for f in files) == stats["cold_records"],
              f"sqlite3: {len(files)} catalog rows add up to the cold records")
        (wm,) = db.execute("SELECT value FROM meta WHERE key = 'cold_watermark_lsn'").fetchone()
        check(int(wm) == stats["watermark_lsn"], "sqlite3: the watermark matches stats")

        cold_ids = set()
        for path, rows, min_ts, max_ts, symbols, partition in files:
            t = pq.read_table(store / "cold" / path)
            assert t.num_rows == rows, path
            assert str(t.schema.field("timestamp").type) == "timestamp[ns, tz=UTC]"
            ts = t.column("timestamp").cast(pa.int64()).to_pylist()
            assert min(ts) == min_ts and max(ts) == max_ts, path
            keys = list(zip(t.column("symbol").to_pylist(), ts))
            assert keys == sorted(keys), f"{path} is not sorted by (symbol, timestamp)"
            assert sorted(set(t.column("symbol").to_pylist())) == json.loads(symbols)
            assert path.startswith(partition)
            md = pq.ParquetFile(store / "cold" / path).metadata
            assert md.row_group(0).column(0).statistics.has_min_max
            cold_ids.update(t.column("trade_id").to_pylist())
        check(True, f"pyarrow: {len(files)} Parquet files: rows, schema, sort order, statistics")

        con = duckdb.connect()
        (n,) = con.execute(
            "SELECT count(*) FROM read_parquet(?, hive_partitioning = true)",
            [str(store / "cold" / "year=*" / "**" / "*.parquet")],
        ).fetchone()
        check(n == stats["cold_records"], f"duckdb: {n} rows in the hive-partitioned cold tier")
        days = con.execute(
            "SELECT count(DISTINCT (year, month, day)) FROM read_parquet(?, hive_partitioning = true)",
            [str(store / "cold" / "year=*" / "**" / "*.parquet")],
        ).fetchone()[0]
        check(days == len({f[5] for f in files}), f"duckdb: {days} day partitions")

        wal_ids = set()
        segments = sorted(glob.glob(str(store / "wal" / "wal-*.arrows")))
        for seg in segments:
            with open(seg, "rb") as fh:
                reader = ipc.open_stream(fh)
                for batch in reader:
                    wal_ids.update(batch.column(6).to_pylist())
        check(len(segments) >= 1, f"pyarrow: {len(segments)} WAL segments read as IPC streams")
        check(len(wal_ids - cold_ids) == stats["hot_records"] + stats["warm_records"],
              "the WAL holds every record not yet in the cold tier")
        check(wal_ids | cold_ids == set(range(1, total + 1)),
              "WAL and cold files together hold exactly the ingested trade ids "
              "(the keyed records read as plain IPC record batches)")

        delta_table(run, store, total)
        shared_table(args.bin, Path(tmp))
        s3_table(args.bin, Path(tmp))


HOUR_NS = 3_600_000_000_000


def delta_table(run, store, total):
    """The cold tier as a Delta Lake table, read by engines we did not write."""
    run("migrate")
    cold = store / "cold"
    db = sqlite3.connect(store / "catalog.sqlite")
    (store_id,) = db.execute("SELECT value FROM meta WHERE key = 'store_id'").fetchone()

    def same_files(what):
        stats = json.loads(run("stats", "--json"))
        dt = DeltaTable(str(cold))
        listed = sorted(r[0] for r in db.execute("SELECT path FROM files"))
        held = sorted(str(Path(u).relative_to(cold)) for u in dt.file_uris())
        check(held == listed, f"deltalake, {what}: the table (version {dt.version()}) holds "
              f"exactly the catalog's {len(listed)} files")
        check(dt.transaction_version(f"squeezed-signals/{store_id}") == stats["watermark_lsn"],
              f"deltalake, {what}: this store's transaction version is the watermark")
        dataset = dt.to_pyarrow_dataset()
        rows = dataset.count_rows()
        check(rows == stats["cold_records"], f"deltalake, {what}: {rows} rows, the cold tier's")
        return dataset

    dataset = same_files("after migrate")
    check(dataset.count_rows() == total, "migrate: every record is in the table")
    ts = dataset.to_table(columns=["timestamp"]).column("timestamp").to_pylist()
    lo, hi = min(ts) // HOUR_NS * HOUR_NS, (max(ts) // HOUR_NS + 1) * HOUR_NS
    ours = {}
    for line in run("aggregate", "--from", str(lo), "--to", str(hi), "--every", "1h",
                    "--format", "json").splitlines():
        bar = json.loads(line)
        ours[(bar["symbol"], bar["time"])] = bar

    sql = f"""SELECT symbol, "timestamp" - ("timestamp" % {HOUR_NS}) AS bucket,
                     count(*) AS trades, min(price) AS low, max(price) AS high,
                     sum(volume) AS volume
              FROM trades GROUP BY 1, 2"""
    ctx = datafusion.SessionContext()
    ctx.register_dataset("trades", dataset)
    by_datafusion = ctx.sql(sql).to_pylist()
    con = duckdb.connect()
    con.register("trades", dataset)
    by_duckdb = [dict(zip(("symbol", "bucket", "trades", "low", "high", "volume"), r))
                 for r in con.execute(sql).fetchall()]
    for name, rows in (("DataFusion", by_datafusion), ("DuckDB", by_duckdb)):
        same = len(rows) == len(ours) > 1
        for r in rows:
            bar = ours.get((r["symbol"], run_time(r["bucket"])))
            same = same and bar is not None and bar["trades"] == r["trades"] \
                and bar["low"] == r["low"] and bar["high"] == r["high"] \
                and abs(bar["volume"] - r["volume"]) <= 1e-9 * abs(bar["volume"])
        check(same, f"{name} over the Delta table: {len(rows)} hourly bars, count/min/max "
              "equal ours, volume sums within 1e-9 (theirs are not exactly rounded)")

    # Filters on every kind of column, pruned by the table's statistics
    # in DataFusion, against the files read whole by pyarrow (no pruning).
    whole = pa.concat_tables([pq.read_table(u) for u in DeltaTable(str(cold)).file_uris()])
    ids = whole.column("trade_id").to_pylist()
    prices = sorted(whole.column("price").to_pylist())
    mid_id, mid_price = sorted(ids)[len(ids) // 2], prices[len(prices) // 2]
    want = sum(1 for i, p in zip(ids, whole.column("price").to_pylist())
               if i < mid_id and p >= mid_price)
    (got,) = ctx.sql(f"SELECT count(*) AS n FROM trades WHERE trade_id < {mid_id} "
                     f"AND price >= {mid_price!r}").to_pylist()
    check(got["n"] == want and want > 0,
          f"DataFusion over the Delta table, filtered on trade_id and price: {want} rows, "
          "as the files hold (the table's statistics prune nothing they should not)")

    # Retention of the first day (the keyed rows are on the second): the
    # table's remove actions first, then the catalog's rows and the files.
    run("retention", "--days", "1", "--now", "2024-01-03T00:00:00Z")
    after = same_files("after retention")
    check(0 < after.count_rows() < total, "retention removed the first day from the table")


def shared_table(binary, tmp):
    """Two stores writing one table (`cold_tier.shared`), read whole by
    DataFusion through the table's reader, and by each store."""
    shared = tmp / "shared"
    runs = []
    for name, first in (("a", 1), ("b", 1_000_001)):
        config = tmp / f"{name}.json"
        config.write_text(json.dumps({
            "mode": "trading",
            "storage": {"base_path": str(tmp / name)},
            "hot_tier": {"max_records": 2000},
            "warm_tier": {"max_memory_mb": 0.1},
            "cold_tier": {"url": shared.as_uri(), "shared": True},
        }))
        csv_path = tmp / f"{name}.csv"
        with open(csv_path, "w") as fh:
            fh.write("timestamp,symbol,price,volume,side,exchange,trade_id,flags\n")
            for i in range(20_000):
                fh.write(f"{1704067200000000000 + i * 7_000_000_000},S{i % 7}/USD,"
                         f"{100 + i % 13}.25,{1 + i % 5},buy,kraken,{first + i},0\n")
        run = lambda *a, c=config: run_ok([binary, "--config", str(c), *a]).stdout  # noqa: E731
        run("ingest", str(csv_path), "--batch-size", "1000")
        runs.append(run)
    for run in runs:
        run("migrate")
    dataset = DeltaTable(str(shared)).to_pyarrow_dataset()
    ctx = datafusion.SessionContext()
    ctx.register_dataset("trades", dataset)
    (row,) = ctx.sql("SELECT count(*) AS n, count(DISTINCT trade_id) AS ids FROM trades").to_pylist()
    check(row["n"] == row["ids"] == 40_000,
          f"DataFusion over the shared table: {row['n']} rows, each trade once, of two stores")
    for name, run in zip("ab", runs):
        ours = json.loads(run("stats", "--json"))
        rows = [json.loads(line) for line in run(
            "aggregate", "--from", "1704067200000000000", "--to", "1704240000000000000",
            "--every", "1d", "--format", "json").splitlines()]
        check(sum(r["trades"] for r in rows) == 40_000 and ours["cold_records"] == 20_000,
              f"store {name} answers over the whole shared table (40,000 trades) "
              "and holds 20,000 of its own")


def s3_table(binary, tmp):
    """The cold tier in an S3 server we did not write (moto's, started
    here on 127.0.0.1 and stopped at the end): ingest, kill -9, restart,
    migrate, then the table read back through the `deltalake` package over
    S3 by DataFusion, and by our own engine."""
    import socket
    import boto3
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    endpoint = f"http://127.0.0.1:{port}"
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1",
                               "-p", str(port)], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    creds = {"AWS_ACCESS_KEY_ID": "interop", "AWS_SECRET_ACCESS_KEY": "interop",
             "AWS_REGION": "us-east-1"}
    try:
        s3 = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="interop",
                          aws_secret_access_key="interop", region_name="us-east-1")
        for _ in range(100):
            try:
                s3.create_bucket(Bucket="cold")
                break
            except Exception:  # not listening yet
                time.sleep(0.1)
        config = tmp / "s3.json"
        config.write_text(json.dumps({
            "mode": "trading",
            "storage": {"base_path": str(tmp / "s3store")},
            "hot_tier": {"max_records": 2000},
            "warm_tier": {"max_memory_mb": 0.1},
            "cold_tier": {"url": "s3://cold/tier", "endpoint": endpoint, "allow_http": True},
        }))
        env = {**os.environ, **creds}
        cmd = lambda *a: [binary, "--config", str(config), *a]  # noqa: E731
        csv_path = tmp / "s3.csv"
        with open(csv_path, "w") as fh:
            fh.write("timestamp,symbol,price,volume,side,exchange,trade_id,flags\n")
            for i in range(30_000):
                fh.write(f"{1704067200000000000 + i * 9_000_000_000},S{i % 5}/USD,"
                         f"{200 + i % 11}.5,{1 + i % 3},sell,kraken,{i + 1},0\n")
        ingest = cmd("ingest", str(csv_path), "--batch-size", "500", "--idempotency-key", "s3")
        kills = 0
        for delay in (0.3, 0.6, 0.9):
            child = subprocess.Popen(ingest, env=env, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
            time.sleep(delay)
            if child.poll() is None:
                child.kill()  # SIGKILL
                kills += 1
            child.wait()
        run_ok(ingest, env=env)
        run_ok(cmd("migrate"), env=env)
        stats = json.loads(run_ok(cmd("stats", "--json"), env=env).stdout)
        check(stats["cold_records"] == 30_000,
              f"ours, over moto's S3 server: 30000 rows after {kills} kills, all migrated")
        opts = {"AWS_ENDPOINT_URL": endpoint, "AWS_ALLOW_HTTP": "true", **creds}
        dt = DeltaTable("s3://cold/tier", storage_options=opts)
        ctx = datafusion.SessionContext()
        ctx.register_dataset("trades", dt.to_pyarrow_dataset())
        (row,) = ctx.sql("SELECT count(*) AS n, count(DISTINCT trade_id) AS ids, "
                         "sum(volume) AS vol FROM trades").to_pylist()
        check(row["n"] == row["ids"] == 30_000 and row["vol"] == sum(1 + i % 3 for i in range(30_000)),
              f"DataFusion over the Delta table in S3 (deltalake, version {dt.version()}): "
              "every trade once, the volumes ours")
    finally:
        server.kill()
        server.wait()


def run_time(ns):
    """Nanoseconds as `aggregate --format json` prints a bucket's time."""
    secs, frac = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{frac:09d}Z"


if __name__ == "__main__":
    main()
