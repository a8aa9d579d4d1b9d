//! An S3 server for the tests and the S3 examples: `s3s-fs` (an S3
//! server over a local folder, from the `s3s` project) on 127.0.0.1, in
//! this process, with signature checking on, counting every request it
//! answers by method and path. Stopped when dropped.

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// The bucket every server has.
pub const BUCKET: &str = "squeezed";
/// The credentials it accepts.
pub const KEY_ID: &str = "test-access-key";
pub const SECRET: &str = "test-secret-key";

/// Requests the server answered: (method, path) in order.
type Log = Arc<Mutex<Vec<(String, String)>>>;

/// An S3 server over a folder, on a port of its own, stopped when dropped.
pub struct Server {
    pub endpoint: String,
    root: PathBuf,
    log: Log,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    pub fn start(root: &Path) -> Server {
        use s3s::auth::SimpleAuth;
        use s3s::service::S3ServiceBuilder;
        std::fs::create_dir_all(root.join(BUCKET)).unwrap();
        let fs = s3s_fs::FileSystem::new(root).unwrap();
        let mut b = S3ServiceBuilder::new(fs);
        b.set_auth(SimpleAuth::from_single(KEY_ID, SECRET));
        let service = b.build();
        let log: Log = Arc::default();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let served = log.clone();
        let create = Arc::new(tokio::sync::Mutex::new(()));
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                addr_tx.send(listener.local_addr().unwrap()).unwrap();
                let mut rx = rx;
                loop {
                    let (socket, _) = tokio::select! {
                        r = listener.accept() => match r { Ok(c) => c, Err(_) => continue },
                        _ = &mut rx => break,
                    };
                    let svc = service.clone();
                    let log = served.clone();
                    let create = create.clone();
                    let counted = hyper::service::service_fn(
                        move |req: hyper::Request<hyper::body::Incoming>| {
                            log.lock()
                                .unwrap()
                                .push((req.method().to_string(), req.uri().path().to_string()));
                            let svc = svc.clone();
                            let create = create.clone();
                            async move {
                                // s3s-fs checks `If-None-Match: *` and then
                                // writes: two such PUTs at once could both
                                // pass. S3 makes the check and the write one
                                // step; so does this lock.
                                let _one = if req.headers().contains_key("if-none-match") {
                                    Some(create.lock().await)
                                } else {
                                    None
                                };
                                hyper::service::Service::call(&svc, req).await
                            }
                        },
                    );
                    tokio::spawn(async move {
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(hyper_util::rt::TokioIo::new(socket), counted)
                            .await;
                    });
                }
            });
        });
        let addr = addr_rx.recv().unwrap();
        Server {
            endpoint: format!("http://{addr}"),
            root: root.to_path_buf(),
            log,
            stop: Some(tx),
            thread: Some(thread),
        }
    }

    /// GETs of objects since `from` (an index into the log), by key
    /// (`/bucket/` stripped).
    pub fn gets_since(&self, from: usize) -> BTreeMap<String, usize> {
        let mut out = BTreeMap::new();
        for (m, p) in self.log.lock().unwrap()[from..].iter() {
            if m == "GET" {
                if let Some(key) = p.strip_prefix(&format!("/{BUCKET}/")) {
                    // The request path is percent-encoded (`=` is `%3D`).
                    let key = key.replace("%3D", "=").replace("%3d", "=");
                    *out.entry(key).or_default() += 1;
                }
            }
        }
        out
    }

    /// The folder the server serves (a folder per bucket).
    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn requests(&self) -> usize {
        self.log.lock().unwrap().len()
    }

    /// Object keys under `prefix` in the bucket, from the server's folder.
    pub fn keys(&self, prefix: &str) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        let top = self.root.join(BUCKET).join(prefix);
        let mut dirs = vec![top.clone()];
        while let Some(d) = dirs.pop() {
            for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
                let p = e.path();
                if p.is_dir() {
                    dirs.push(p);
                } else if let Ok(rel) = p.strip_prefix(&top) {
                    out.insert(rel.to_string_lossy().replace('\\', "/"));
                }
            }
        }
        out
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The engine's credentials for these servers: the AWS variables
/// `object_store` reads, set once for the test binary (every test uses the
/// same ones, so no test sees them change).
pub fn credentials() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        std::env::set_var("AWS_ACCESS_KEY_ID", KEY_ID);
        std::env::set_var("AWS_SECRET_ACCESS_KEY", SECRET);
        std::env::set_var("AWS_REGION", "us-east-1");
    });
}
