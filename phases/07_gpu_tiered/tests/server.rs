//! The HTTP API, end to end: a server process on an ephemeral port, every
//! endpoint and error code, concurrent ingest and query, shutdown.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tiered::cold::DAY_NS;
use tiered::gen::{Generator, START_NS};
use tiered::http::{encode_segment, Conn, Response};
use tiered::schema::Mode;

struct Server {
    child: Child,
    stdout: BufReader<ChildStdout>,
    addr: String,
}

impl Server {
    fn start(store: &std::path::Path, extra: &[&str]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_07_gpu_tiered"))
            .arg("--storage")
            .arg(store)
            .args(["serve", "--addr", "127.0.0.1:0"])
            .args(extra)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        let addr = line
            .split("http://")
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .unwrap_or_else(|| panic!("no address in {line:?}"))
            .to_string();
        Server {
            child,
            stdout,
            addr,
        }
    }

    fn conn(&self) -> Conn {
        Conn::open(&self.addr).unwrap()
    }

    /// SIGINT, then the rest of stdout and the exit status.
    fn stop(mut self) -> (String, bool) {
        let pid = self.child.id().to_string();
        assert!(Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .unwrap()
            .success());
        let mut rest = String::new();
        self.stdout.read_to_string(&mut rest).unwrap();
        let ok = self.child.wait().unwrap().success();
        (rest, ok)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn json_body(r: &Response) -> Value {
    serde_json::from_slice(&r.body).unwrap_or_else(|e| panic!("{e}: {}", r.text()))
}

fn post_json(c: &mut Conn, path: &str, v: &Value) -> Response {
    c.request(
        "POST",
        path,
        &[("Content-Type", "application/json")],
        v.to_string().as_bytes(),
    )
    .unwrap()
}

fn get(c: &mut Conn, path: &str) -> Response {
    c.request("GET", path, &[], b"").unwrap()
}

fn arrow_body(batch: &arrow_array::RecordBatch) -> Vec<u8> {
    let mut w = arrow_ipc::writer::StreamWriter::try_new(Vec::new(), &batch.schema()).unwrap();
    w.write(batch).unwrap();
    w.finish().unwrap();
    w.into_inner().unwrap()
}

fn total(c: &mut Conn) -> u64 {
    json_body(&get(c, "/stats"))["total_records"]
        .as_u64()
        .unwrap()
}

fn expect_400(r: &Response, field: Option<&str>, text: &str) {
    assert_eq!(r.status, 400, "{}", r.text());
    let v = json_body(r);
    assert!(v["error"].as_str().unwrap().contains(text), "{v}");
    if let Some(f) = field {
        assert_eq!(v["field"], f, "{v}");
    }
}

#[test]
fn every_endpoint_and_every_error_code() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("store"), &["--max-body-mb", "1"]);
    let mut c = server.conn();

    let r = get(&mut c, "/health");
    assert_eq!(r.status, 200);
    let device = json_body(&r)["device"].as_str().unwrap().to_string();
    assert!(
        device.starts_with("CPU") || device.starts_with("GPU ("),
        "{device}"
    );
    let spec = json_body(&get(&mut c, "/openapi.json"));
    for path in [
        "/health",
        "/stats",
        "/ingest",
        "/query",
        "/timeseries/{symbol}",
        "/stream",
        "/jobs",
        "/jobs/{id}",
        "/quality/{symbol}",
        "/openapi.json",
    ] {
        assert!(
            spec["paths"].get(path).is_some(),
            "{path} is not in the OpenAPI document"
        );
    }

    // Ingest in the three encodings.
    let r = post_json(
        &mut c,
        "/ingest",
        &json!([
            {"timestamp": "2024-01-01T00:00:00Z", "symbol": "AAA/USD", "price": 1.5, "volume": 2},
            {"timestamp": 1704067201000000000i64, "symbol": "AAA/USD", "price": 1.75, "volume": 3}
        ]),
    );
    assert_eq!(
        (r.status, json_body(&r)["accepted"].as_u64()),
        (200, Some(2)),
        "{}",
        r.text()
    );
    let nd = b"{\"timestamp\": 1704067202000000000, \"symbol\": \"AAA/USD\", \"price\": 2, \"volume\": 1}\n\n";
    let r = c
        .request(
            "POST",
            "/ingest",
            &[("Content-Type", "application/x-ndjson")],
            nd,
        )
        .unwrap();
    assert_eq!(json_body(&r)["accepted"], 1, "{}", r.text());
    let mut g = Generator::new(Mode::Simple, 3, 5);
    let r = c
        .request(
            "POST",
            "/ingest",
            &[("Content-Type", "application/vnd.apache.arrow.stream")],
            &arrow_body(&g.batch(1000).unwrap()),
        )
        .unwrap();
    assert_eq!(json_body(&r)["accepted"], 1000, "{}", r.text());
    assert_eq!(total(&mut c), 1003);

    // Rejected batches: named fields, nothing stored.
    let rec = |price: Value| json!([{"timestamp": "2024-01-01T00:00:03Z", "symbol": "AAA/USD", "price": 1, "volume": 1}, {"timestamp": "2024-01-01T00:00:04Z", "symbol": "AAA/USD", "price": price, "volume": 1}]);
    expect_400(
        &post_json(&mut c, "/ingest", &rec(json!("cheap"))),
        Some("price"),
        "record 1: field `price` must be a number",
    );
    let r = post_json(
        &mut c,
        "/ingest",
        &json!([{"timestamp": 1, "symbol": "A", "price": 1, "volume": 1, "colour": "red"}]),
    );
    expect_400(&r, Some("colour"), "is not a column");
    expect_400(
        &post_json(
            &mut c,
            "/ingest",
            &json!([{"timestamp": 1, "symbol": "A", "price": 1}]),
        ),
        Some("volume"),
        "is missing",
    );
    expect_400(
        &post_json(
            &mut c,
            "/ingest",
            &json!([{"timestamp": "yesterday", "symbol": "A", "price": 1, "volume": 1}]),
        ),
        Some("timestamp"),
        "is not a date-time",
    );
    expect_400(
        &post_json(
            &mut c,
            "/ingest",
            &json!([{"timestamp": -5, "symbol": "A", "price": 1, "volume": 1}]),
        ),
        None,
        "out of range",
    );
    let r = c
        .request(
            "POST",
            "/ingest",
            &[("Content-Type", "application/json")],
            b"[{\"timestamp\": 1,",
        )
        .unwrap();
    expect_400(&r, None, "not a JSON array");
    let trading = Generator::new(Mode::Trading, 1, 2).batch(10).unwrap();
    let r = c
        .request(
            "POST",
            "/ingest",
            &[("Content-Type", "application/vnd.apache.arrow.stream")],
            &arrow_body(&trading),
        )
        .unwrap();
    expect_400(&r, None, "expected 4 columns");
    let r = c
        .request(
            "POST",
            "/ingest",
            &[("Content-Type", "application/vnd.apache.arrow.stream")],
            b"not arrow",
        )
        .unwrap();
    expect_400(&r, None, "not an Arrow IPC stream");
    let r = c
        .request("POST", "/ingest", &[("Content-Type", "text/csv")], b"a,b")
        .unwrap();
    assert_eq!(r.status, 415, "{}", r.text());
    let big = vec![b' '; 2 << 20];
    let r = c
        .request(
            "POST",
            "/ingest",
            &[("Content-Type", "application/json")],
            &big,
        )
        .unwrap();
    assert_eq!(r.status, 413);
    let mut c = server.conn(); // a 413 may close the connection
    assert_eq!(total(&mut c), 1003);

    // Query: NDJSON and Arrow; errors.
    let q = json!({"filters": [{"column": "symbol", "eq": "AAA/USD"}], "sort": {"column": "timestamp", "descending": true}});
    let r = post_json(&mut c, "/query", &q);
    assert_eq!(r.header("content-type"), Some("application/x-ndjson"));
    let rows: Vec<Value> = r
        .text()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[0]["timestamp"], "2024-01-01T00:00:02.000000000Z");
    let r = c
        .request(
            "POST",
            "/query",
            &[
                ("Content-Type", "application/json"),
                ("Accept", "application/vnd.apache.arrow.stream"),
            ],
            json!({"limit": 700, "batch_size": 100})
                .to_string()
                .as_bytes(),
        )
        .unwrap();
    let reader =
        arrow_ipc::reader::StreamReader::try_new(std::io::Cursor::new(r.body), None).unwrap();
    let n: usize = reader.map(|b| b.unwrap().num_rows()).sum();
    assert_eq!(n, 700);
    expect_400(
        &post_json(
            &mut c,
            "/query",
            &json!({"filters": [{"column": "colour", "eq": 1}]}),
        ),
        None,
        "unknown column `colour`",
    );
    expect_400(
        &post_json(&mut c, "/query", &json!({"limit": 1_000_000_000u64})),
        Some("limit"),
        "limit is larger",
    );
    expect_400(
        &post_json(&mut c, "/query", &json!({"limt": 5})),
        None,
        "unknown field `limt`",
    );

    // Time series.
    let sym = encode_segment("AAA/USD");
    let r = get(
        &mut c,
        &format!("/timeseries/{sym}?start=2024-01-01&end=2024-01-01T00:01:00Z&frequency=1s"),
    );
    let v = json_body(&r);
    let bars = v["bars"].as_array().unwrap();
    assert_eq!(bars.len(), 3, "{v}");
    assert_eq!(
        (bars[0]["open"].as_f64(), bars[0]["trades"].as_u64()),
        (Some(1.5), Some(1))
    );
    let bad = encode_segment("bad symbol!");
    expect_400(
        &get(&mut c, &format!("/timeseries/{bad}?start=0&end=1")),
        Some("symbol"),
        "letters, digits",
    );
    expect_400(
        &get(
            &mut c,
            &format!("/timeseries/{sym}?start=2024-01-02&end=2024-01-01"),
        ),
        Some("start"),
        "after end",
    );
    expect_400(
        &get(&mut c, &format!("/timeseries/{sym}?end=2024-01-01")),
        Some("start"),
        "required",
    );
    expect_400(
        &get(
            &mut c,
            &format!("/timeseries/{sym}?start=0&end=1&frequency=often"),
        ),
        Some("frequency"),
        "frequency",
    );
    expect_400(
        &get(
            &mut c,
            &format!("/timeseries/{sym}?start=2024-01-01&end=2024-12-01&frequency=1s"),
        ),
        Some("frequency"),
        "bars",
    );

    // Jobs.
    let r = post_json(
        &mut c,
        "/jobs",
        &json!({"source": "gen:5000:9", "batch_size": 1000}),
    );
    assert_eq!(r.status, 202, "{}", r.text());
    let id = json_body(&r)["id"].as_i64().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let job = loop {
        let j = json_body(&get(&mut c, &format!("/jobs/{id}")));
        if j["state"] == "done" || j["state"] == "failed" || Instant::now() > deadline {
            break j;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(
        (job["state"].as_str(), job["records_done"].as_u64()),
        (Some("done"), Some(5000)),
        "{job}"
    );
    assert_eq!(
        json_body(&get(&mut c, "/jobs")).as_array().unwrap().len(),
        1
    );
    assert_eq!(
        c.request("DELETE", "/jobs/999", &[], b"").unwrap().status,
        404
    );
    assert_eq!(get(&mut c, "/jobs/999").status, 404);
    expect_400(&get(&mut c, "/jobs/abc"), Some("id"), "not a number");
    expect_400(
        &post_json(&mut c, "/jobs", &json!({"source": "notes.txt"})),
        Some("source"),
        ".csv or .parquet",
    );
    expect_400(
        &post_json(&mut c, "/jobs", &json!({"src": "gen:1"})),
        Some("source"),
        "required",
    );
    assert_eq!(total(&mut c), 6003);

    // Quality: computed, then stored.
    let r = get(
        &mut c,
        &format!("/quality/{sym}?start=2024-01-01&end=2024-01-01T00:00:10Z&interval=1s"),
    );
    let q = json_body(&r);
    assert_eq!(
        (q["filled_buckets"].as_i64(), q["expected_buckets"].as_i64()),
        (Some(3), Some(10)),
        "{q}"
    );
    assert_eq!(
        json_body(&get(&mut c, &format!("/quality/{sym}")))
            .as_array()
            .unwrap()
            .len(),
        1
    );

    let r = get(&mut c, "/no/such/thing");
    assert_eq!(r.status, 404);
    let s = json_body(&get(&mut c, "/stats"));
    assert_eq!(s["total_records"], 6003);
    assert_eq!(s["device"].as_str(), Some(device.as_str()));
    drop(c);
    let (out, ok) = server.stop();
    assert!(ok, "{out}");
    assert!(out.contains("shut down: 6003 records durable"), "{out}");
}

#[test]
fn the_stream_delivers_new_records_of_chosen_symbols() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("store"), &[]);
    let mut sse = TcpStream::connect(&server.addr).unwrap();
    sse.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(
        sse,
        "GET /stream?symbols=LIVE/USD HTTP/1.1\r\nHost: x\r\n\r\n"
    )
    .unwrap();
    let mut reader = BufReader::new(sse);
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    assert!(line.contains("200"), "{line}");
    // Headers are out: the subscription exists. Ingest one record the
    // stream must skip and one it must deliver.
    let mut c = server.conn();
    for s in ["OTHER/USD", "LIVE/USD"] {
        let r = post_json(
            &mut c,
            "/ingest",
            &json!([{"timestamp": 5, "symbol": s, "price": 9.5, "volume": 1}]),
        );
        assert_eq!(r.status, 200);
    }
    let mut seen = String::new();
    while !seen.contains("LIVE/USD") {
        line.clear();
        assert!(reader.read_line(&mut line).unwrap() > 0);
        seen.push_str(&line);
    }
    assert!(seen.contains("event: records"), "{seen}");
    assert!(!seen.contains("OTHER/USD"), "{seen}");
}

#[test]
fn concurrent_ingest_and_query_see_every_accepted_record() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("store"), &[]);
    let addr = server.addr.clone();
    std::thread::scope(|s| {
        for t in 0..4 {
            let addr = addr.clone();
            s.spawn(move || {
                let mut c = Conn::open(&addr).unwrap();
                let mut g = Generator::new(Mode::Simple, t, 3);
                for i in 0..10 {
                    let sym = format!("T{t}-{i}/USD");
                    let b = g.batch(500).unwrap();
                    let mut cols = b.columns().to_vec();
                    cols[1] = std::sync::Arc::new(arrow_array::StringArray::from(vec![sym.as_str(); 500]));
                    let b = arrow_array::RecordBatch::try_new(b.schema(), cols).unwrap();
                    let r = c
                        .request("POST", "/ingest", &[("Content-Type", "application/vnd.apache.arrow.stream")], &arrow_body(&b))
                        .unwrap();
                    assert_eq!(r.status, 200, "{}", r.text());
                    // Read your write, at once.
                    let r = post_json(&mut c, "/query", &json!({"filters": [{"column": "symbol", "eq": sym}], "columns": ["price"]}));
                    assert_eq!(r.text().lines().count(), 500, "{sym}");
                }
            });
        }
        s.spawn(|| {
            let mut c = Conn::open(&addr).unwrap();
            let mut last = 0;
            for _ in 0..20 {
                let n = total(&mut c);
                assert!(n >= last && n.is_multiple_of(500), "{n} after {last}");
                last = n;
            }
        });
    });
    let mut c = server.conn();
    assert_eq!(total(&mut c), 20_000);
}

#[test]
fn cached_time_series_answers_follow_every_write() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let server = Server::start(&store, &[]);
    let mut c = server.conn();
    let ingest = |c: &mut Conn, b: &arrow_array::RecordBatch| {
        let r = c
            .request(
                "POST",
                "/ingest",
                &[("Content-Type", "application/vnd.apache.arrow.stream")],
                &arrow_body(b),
            )
            .unwrap();
        assert_eq!(r.status, 200, "{}", r.text());
    };
    let mut g = Generator::new(Mode::Simple, 7, 3);
    let sym = g.symbol(0);
    ingest(&mut c, &g.batch(2000).unwrap());
    let path = format!(
        "/timeseries/{}?start=2024-01-01&end=2024-01-02&frequency=1min",
        encode_segment(&sym)
    );
    let first = get(&mut c, &path);
    assert_eq!(first.header("x-answer-cache"), Some("miss"));
    let again = get(&mut c, &path);
    assert_eq!(again.header("x-answer-cache"), Some("hit"));
    assert_eq!(again.body, first.body);

    // A write on another day leaves the answer cached.
    let mut later = Generator::new(Mode::Simple, 8, 3).starting_at(START_NS + 5 * DAY_NS);
    ingest(&mut c, &later.batch(100).unwrap());
    assert_eq!(get(&mut c, &path).header("x-answer-cache"), Some("hit"));

    // A write into the day is in the next answer.
    let one = g.batch(1).unwrap();
    let mut cols = one.columns().to_vec();
    cols[1] = std::sync::Arc::new(arrow_array::StringArray::from(vec![sym.as_str()]));
    cols[2] = std::sync::Arc::new(arrow_array::Float64Array::from(vec![1e9]));
    ingest(
        &mut c,
        &arrow_array::RecordBatch::try_new(one.schema(), cols).unwrap(),
    );
    let after = get(&mut c, &path);
    assert_eq!(after.header("x-answer-cache"), Some("miss"));
    assert!(
        after.text().contains("\"high\":1000000000"),
        "{}",
        after.text()
    );

    // Writers into the day race readers; whatever the cache holds at the
    // end is what a fresh server computes.
    std::thread::scope(|s| {
        for t in 0..2u64 {
            let addr = server.addr.clone();
            s.spawn(move || {
                let mut c = Conn::open(&addr).unwrap();
                let mut g = Generator::new(Mode::Simple, 100 + t, 3)
                    .starting_at(START_NS + (t as i64 + 1) * 3_600_000_000_000);
                for _ in 0..30 {
                    ingest(&mut c, &g.batch(200).unwrap());
                }
            });
        }
        for _ in 0..2 {
            let (addr, path) = (server.addr.clone(), path.clone());
            s.spawn(move || {
                let mut c = Conn::open(&addr).unwrap();
                for _ in 0..60 {
                    assert_eq!(get(&mut c, &path).status, 200);
                }
            });
        }
    });
    let cached = get(&mut c, &path);
    let cached = if cached.header("x-answer-cache") == Some("miss") {
        // Computed fresh; ask again to read it from the cache.
        let again = get(&mut c, &path);
        assert_eq!(again.header("x-answer-cache"), Some("hit"));
        again
    } else {
        cached
    };
    drop(c);
    let (_, ok) = server.stop();
    assert!(ok);
    let server = Server::start(&store, &[]);
    let fresh = get(&mut server.conn(), &path);
    assert_eq!(fresh.header("x-answer-cache"), Some("miss"));
    assert_eq!(cached.text(), fresh.text());
}
