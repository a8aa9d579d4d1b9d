#!/usr/bin/env python3
"""Peak memory of the phase 07 server under concurrent ingest.

Starts `07_gpu_tiered serve` on a fresh store, has N clients (8 by default)
each send the largest body the server accepts (server.max_body_mb) at the
same time, and reads the server's peak resident memory (VmHWM in
/proc/PID/status) before and after. Once per body format: a JSON array,
NDJSON, an Arrow IPC stream. Clients send `Expect: 100-continue`, as curl
does for large bodies, so a client the server turns away (503) learns it
before it sends its body.

The Arrow body is made by the server itself: a scratch store is filled by a
gen: job and read back with POST /query, Accept: Arrow IPC.

Needs Linux (/proc) and only the Python standard library.
Usage: scripts/server_memory_07.py [--bin target/release/07_gpu_tiered]
       [--clients 8] [--max-body-mb 64] [--slots N] [--formats json,ndjson,arrow]
"""

import argparse
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def start(binary, store, config):
    cfg = store.parent / (store.name + ".json")
    cfg.write_text(json.dumps({"server": config}))
    p = subprocess.Popen(
        [binary, "--storage", str(store), "--config", str(cfg), "serve", "--addr", "127.0.0.1:0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    line = p.stdout.readline()
    m = re.search(r"http://([0-9.]+):(\d+)", line)
    if not m:
        p.kill()
        sys.exit(f"no address in {line!r}")
    return p, (m.group(1), int(m.group(2)))


def stop(p):
    p.send_signal(signal.SIGINT)
    p.communicate(timeout=120)


def memory_mb(pid):
    status = Path(f"/proc/{pid}/status").read_text()
    get = lambda k: int(re.search(k + r":\s+(\d+) kB", status).group(1)) / 1024
    return get("VmHWM"), get("VmRSS")


def request(addr, method, path, body=b"", headers=(), expect=False):
    """One request on its own connection; returns (status, headers, body)."""
    s = socket.create_connection(addr)
    head = f"{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {len(body)}\r\n"
    for k, v in headers:
        head += f"{k}: {v}\r\n"
    if expect:
        head += "Expect: 100-continue\r\n"
    s.sendall(head.encode() + b"\r\n")
    data = b""
    if expect:
        # Wait for 100 Continue, or a final answer sent instead.
        while b"\r\n\r\n" not in data:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        if data.startswith(b"HTTP/1.1 100"):
            data = data.split(b"\r\n\r\n", 1)[1]
            s.sendall(body)
    else:
        s.sendall(body)
    while True:
        chunk = s.recv(1 << 20)
        if not chunk:
            break
        data += chunk
    s.close()
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    hdrs = {l.split(":", 1)[0].lower(): l.split(":", 1)[1].strip() for l in lines[1:] if ":" in l}
    if hdrs.get("transfer-encoding") == "chunked":
        out, i = b"", 0
        while True:
            j = rest.index(b"\r\n", i)
            n = int(rest[i:j], 16)
            if n == 0:
                break
            out += rest[j + 2 : j + 2 + n]
            i = j + 2 + n + 2
        rest = out
    return status, hdrs, rest


def json_records(limit_bytes, ndjson):
    """Simple-mode records, about 85 bytes each, up to limit_bytes."""
    parts, size, i = [], 2, 0
    while True:
        r = '{"timestamp":%d,"symbol":"SYM%02d/USD","price":%.6f,"volume":%.3f}' % (
            1704067200000000000 + i * 1000,
            i % 100,
            100 + (i % 10007) / 7.0,
            (i % 50) / 3.0,
        )
        if size + len(r) + 1 > limit_bytes:
            break
        parts.append(r)
        size += len(r) + 1
        i += 1
    text = "\n".join(parts) + "\n" if ndjson else "[" + ",".join(parts) + "]"
    return text.encode(), i


def arrow_records(binary, limit_bytes, work):
    """An Arrow IPC stream of simple-mode records just under limit_bytes."""
    store = work / "scratch"
    p, addr = start(binary, store, {"max_body_mb": 4096})
    try:
        n = limit_bytes // 30  # an upper bound: a record takes ~33 bytes
        st, _, body = request(addr, "POST", "/jobs", json.dumps({"source": f"gen:{n}:7"}).encode(),
                              [("Content-Type", "application/json")])
        job = json.loads(body)["id"]
        while True:
            _, _, body = request(addr, "GET", f"/jobs/{job}")
            if json.loads(body)["state"] in ("done", "failed"):
                break
            time.sleep(0.2)
        limit = n
        while True:
            q = {"limit": limit, "columns": ["timestamp", "symbol", "price", "volume"], "batch_size": 65536}
            _, _, body = request(addr, "POST", "/query", json.dumps(q).encode(),
                                 [("Content-Type", "application/json"),
                                  ("Accept", "application/vnd.apache.arrow.stream")])
            if len(body) <= limit_bytes:
                return body, limit
            limit = int(limit * limit_bytes / len(body) * 0.999)
    finally:
        stop(p)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bin", default=str(ROOT / "target" / "release" / "07_gpu_tiered"))
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--max-body-mb", type=float, default=None,
                    help="server.max_body_mb (default: the server's default)")
    ap.add_argument("--slots", type=int, default=None,
                    help="server.max_concurrent_ingests (default: the server's default)")
    ap.add_argument("--formats", default="json,ndjson,arrow")
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="ssig-mem-"))
    config = {}
    if args.max_body_mb is not None:
        config["max_body_mb"] = args.max_body_mb
    if args.slots is not None:
        config["max_concurrent_ingests"] = args.slots
    # The effective limit, as the server reads it.
    out = subprocess.run([args.bin, "--storage", str(work / "probe"), "config"],
                         capture_output=True, text=True, check=True).stdout
    effective = json.loads(out[: out.index("\nEnvironment")])["server"]
    effective.update(config)
    limit = int(effective["max_body_mb"] * 1048576)
    print(f"server: {json.dumps(effective)}; {args.clients} clients; body limit {limit} bytes")

    for fmt in args.formats.split(","):
        if fmt == "arrow":
            body, n = arrow_records(args.bin, limit, work)
            ct = "application/vnd.apache.arrow.stream"
        else:
            body, n = json_records(limit, fmt == "ndjson")
            ct = "application/json" if fmt == "json" else "application/x-ndjson"
        store = work / f"store-{fmt}"
        p, addr = start(args.bin, store, config)
        request(addr, "GET", "/health")
        hwm0, rss0 = memory_mb(p.pid)
        results = []

        def client():
            st, hdrs, rbody = request(addr, "POST", "/ingest", body, [("Content-Type", ct)], expect=True)
            results.append((st, rbody[:200]))

        t0 = time.time()
        threads = [threading.Thread(target=client) for _ in range(args.clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        took = time.time() - t0
        hwm, rss = memory_mb(p.pid)
        _, _, stats = request(addr, "GET", "/stats")
        stats = json.loads(stats)
        total = stats["total_records"]
        held = (stats["tiers"]["hot"]["bytes"] + stats["tiers"]["warm"]["bytes"]) / 1048576
        stop(p)
        codes = {}
        for st, _ in results:
            codes[st] = codes.get(st, 0) + 1
        print(
            f"{fmt:6} body {len(body) / 1048576:.1f} MB ({n} records) x {args.clients}: "
            f"answers {codes}, {took:.1f} s; peak RSS {hwm0:.0f} MB before, {hwm:.0f} MB after "
            f"(+{hwm - hwm0:.0f} MB, {(hwm - hwm0) * 1048576 / len(body):.2f} bodies); "
            f"RSS after {rss:.0f} MB; {total} records stored, {held:.0f} MB of them held by the "
            f"hot and warm tiers; the rest of the peak: {hwm - hwm0 - held:.0f} MB"
        )
        for st, b in results:
            if st != 200:
                print(f"    {st}: {b!r}")


if __name__ == "__main__":
    main()
