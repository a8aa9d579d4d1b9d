//! Where the cold tier's bytes live: a local directory, or a prefix of a
//! bucket in S3 or an S3-compatible server (MinIO, Ceph, R2, …), reached
//! through the `object_store` crate (the Apache Arrow project's client,
//! which delta-rs uses as well).
//!
//! Every read, write, listing and deletion of a cold file goes through a
//! [`ColdStore`], by the file's path relative to the tier's root
//! (`year=YYYY/month=MM/day=DD/part-<lo>-<hi>.parquet`). A local tier keeps
//! the durability rules of a directory (staged file, fsync, rename, fsync
//! of the directory); an object store needs none of them: a PUT is atomic
//! (the object is whole or absent) and durable once acknowledged, so a
//! file is uploaded straight to its partition and a crash leaves either
//! nothing or a whole object that recovery can prove a leftover.
//!
//! # Configuration
//!
//! `cold_tier.url` = `s3://bucket/prefix` (or `file:///dir`; absent, the
//! tier is `storage.cold_path` on local disk). Credentials and the region
//! come from the usual AWS environment variables (`AWS_ACCESS_KEY_ID`,
//! `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_REGION`, …, read by
//! `object_store`'s `AmazonS3Builder::from_env`); `cold_tier.endpoint`
//! points at an S3-compatible server (path-style requests), and
//! `cold_tier.allow_http` permits a plain-HTTP one.
//!
//! # Calls
//!
//! `object_store` is asynchronous; the engine is not. Every request runs
//! on one process-wide I/O runtime (two threads, `cold-io`), whose HTTP
//! connections therefore outlive any caller's runtime, and the caller
//! waits on a channel, so a store can be used from a migration thread, a
//! blocking task or an async task of the HTTP server alike.
//!
//! # Counting
//!
//! A remote store counts its requests (GETs, with bytes; PUTs, HEADs,
//! DELETEs and LISTs) so that a query can say what it touched
//! ([`ColdStore::requests`]).

use std::collections::BTreeMap;
use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use bytes::Bytes;
use futures_util::TryStreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::path::Path as ObjPath;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutPayload};

use crate::config::{ColdLocation, Config};
use crate::error::{Error, Result};

/// Where the cold tier lives. Cheap to clone (a remote store is shared).
#[derive(Clone, Debug)]
pub enum ColdStore {
    /// A directory on local disk.
    Local(PathBuf),
    /// A prefix in an object store.
    Remote(Arc<Remote>),
}

/// A cold tier in an object store: the bucket's client, the prefix that is
/// the tier's root, and counters of what was asked of it.
pub struct Remote {
    /// The client, rooted at the bucket.
    store: Arc<dyn ObjectStore>,
    /// The tier's root in the bucket (no leading or trailing `/`).
    prefix: String,
    /// `s3://bucket/prefix/`: the table's location.
    url: url::Url,
    counts: Counters,
}

impl std::fmt::Debug for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Remote")
            .field("url", &self.url.as_str())
            .finish()
    }
}

#[derive(Default)]
struct Counters {
    gets: AtomicU64,
    get_bytes: AtomicU64,
    puts: AtomicU64,
    put_bytes: AtomicU64,
    heads: AtomicU64,
    deletes: AtomicU64,
    lists: AtomicU64,
    /// GETs by object key (for tests and `explain`: which files a query
    /// touched).
    by_key: Mutex<BTreeMap<String, u64>>,
}

/// What was asked of a remote cold tier since it was made (all zero for a
/// local one).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Requests {
    pub gets: u64,
    pub get_bytes: u64,
    pub puts: u64,
    pub put_bytes: u64,
    pub heads: u64,
    pub deletes: u64,
    pub lists: u64,
}

impl Requests {
    /// The counts since `before`.
    pub fn since(&self, before: &Requests) -> Requests {
        Requests {
            gets: self.gets - before.gets.min(self.gets),
            get_bytes: self.get_bytes - before.get_bytes.min(self.get_bytes),
            puts: self.puts - before.puts.min(self.puts),
            put_bytes: self.put_bytes - before.put_bytes.min(self.put_bytes),
            heads: self.heads - before.heads.min(self.heads),
            deletes: self.deletes - before.deletes.min(self.deletes),
            lists: self.lists - before.lists.min(self.lists),
        }
    }
}

/// The process-wide runtime every object-store request runs on.
fn io_runtime() -> Result<&'static tokio::runtime::Runtime> {
    static IO: OnceLock<std::result::Result<tokio::runtime::Runtime, String>> = OnceLock::new();
    IO.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("cold-io")
            .enable_all()
            .build()
            .map_err(|e| e.to_string())
    })
    .as_ref()
    .map_err(|e| Error::Config(format!("starting the cold tier's I/O runtime: {e}")))
}

/// Runs `fut` on the I/O runtime and waits for it; a panic in it is an
/// error, not the caller's end.
fn block<T: Send + 'static>(
    fut: impl Future<Output = object_store::Result<T>> + Send + 'static,
) -> io::Result<T> {
    let rt = io_runtime().map_err(io::Error::other)?;
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    rt.spawn(async move {
        let _ = tx.send(fut.await);
    });
    match rx.recv() {
        Ok(r) => r.map_err(to_io),
        Err(_) => Err(io::Error::other(
            "an object-store request panicked or was cancelled",
        )),
    }
}

fn to_io(e: object_store::Error) -> io::Error {
    match e {
        object_store::Error::NotFound { .. } => io::Error::new(io::ErrorKind::NotFound, e),
        object_store::Error::AlreadyExists { .. } => {
            io::Error::new(io::ErrorKind::AlreadyExists, e)
        }
        other => match no_credentials(&other.to_string()) {
            Some(said) => io::Error::other(said),
            // An answer the S3 client could not parse (an empty or HTML
            // body) is most often a server that is not S3.
            None if other.to_string().contains("Got invalid") => {
                io::Error::other(format!("{other} (is cold_tier.endpoint an S3 server?)"))
            }
            None => io::Error::other(other),
        },
    }
}

/// For the S3 client's refusal of half a key pair in the environment, which
/// half is missing, in the variables' names.
fn half_a_key_pair(message: &str) -> Option<&'static str> {
    if message.contains("Missing SecretAccessKey") {
        Some("AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not: set both, or neither (then the instance's credentials are used)")
    } else if message.contains("Missing AccessKeyId") {
        Some("AWS_SECRET_ACCESS_KEY is set but AWS_ACCESS_KEY_ID is not: set both, or neither (then the instance's credentials are used)")
    } else {
        None
    }
}

/// For an error that came from asking the EC2 instance metadata service
/// for credentials, which `AmazonS3Builder::from_env` does when the
/// environment has none (its default address `169.254.169.254`, or its
/// token and credential paths, appear in the message): the error, saying
/// that no credentials are set and which variables would set them.
pub(crate) fn no_credentials(message: &str) -> Option<String> {
    ["169.254.169.254", "/latest/api/token", "/latest/meta-data/iam"]
        .iter()
        .any(|s| message.contains(s))
        .then(|| format!(
            "no AWS credentials: none are set in the environment (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_WEB_IDENTITY_TOKEN_FILE, or AWS_CONTAINER_CREDENTIALS_FULL_URI), so the client asked the EC2 instance metadata service, which gave none ({message})"
        ))
}

/// The first of the credential variables the S3 client reads that is set
/// but empty (the client would use it as it is).
fn empty_credential_variable() -> Option<&'static str> {
    empty_credential_variable_in(|v| std::env::var_os(v))
}

/// [`empty_credential_variable`] with the environment given as `var`.
fn empty_credential_variable_in(
    var: impl Fn(&str) -> Option<std::ffi::OsString>,
) -> Option<&'static str> {
    [
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
    ]
    .into_iter()
    .find(|v| var(v).is_some_and(|x| x.is_empty()))
}

impl ColdStore {
    /// A local cold tier in `dir`.
    pub fn local(dir: impl Into<PathBuf>) -> ColdStore {
        ColdStore::Local(dir.into())
    }

    /// The cold tier `config` names ([`Config::cold_location`]).
    pub fn of(config: &Config) -> Result<ColdStore> {
        ColdStore::at(&config.cold_location()?)
    }

    /// The cold tier at `location`; for S3, the client (no request is made).
    pub fn at(location: &ColdLocation) -> Result<ColdStore> {
        let (bucket, prefix, endpoint, allow_http, region, timeout_s) = match location {
            ColdLocation::Local(dir) => return Ok(ColdStore::Local(dir.clone())),
            ColdLocation::S3 {
                bucket,
                prefix,
                endpoint,
                allow_http,
                region,
                timeout_s,
            } => (bucket, prefix, endpoint, allow_http, region, *timeout_s),
        };
        let timeout = std::time::Duration::from_secs_f64(timeout_s);
        let bad = |why: &str| Error::Config(format!("cold_tier.url s3://{bucket}/{prefix}: {why}"));
        if let Some(var) = empty_credential_variable() {
            return Err(bad(&format!(
                "{var} is set but empty: unset it, or set it to the credential (an empty one would be sent, and every request refused as a bad signature)"
            )));
        }
        let rt = io_runtime()?;
        let mut b = AmazonS3Builder::from_env()
            .with_bucket_name(bucket)
            .with_http_connector(object_store::client::SpawnedReqwestConnector::new(
                rt.handle().clone(),
            ))
            // A request, and its retries together, within `timeout_s`.
            .with_client_options(
                object_store::ClientOptions::new()
                    .with_timeout(timeout)
                    .with_connect_timeout(timeout.min(std::time::Duration::from_secs(5))),
            )
            .with_retry(object_store::RetryConfig {
                max_retries: 3,
                retry_timeout: timeout,
                ..Default::default()
            });
        if let Some(endpoint) = endpoint {
            b = b
                .with_endpoint(endpoint.trim_end_matches('/'))
                .with_virtual_hosted_style_request(false);
        }
        if *allow_http {
            b = b.with_allow_http(true);
        }
        if let Some(region) = region {
            b = b.with_region(region);
        }
        let store = b.build().map_err(|e| {
            let said = e.to_string();
            bad(half_a_key_pair(&said).unwrap_or(&said))
        })?;
        let table_url = if prefix.is_empty() {
            format!("s3://{bucket}/")
        } else {
            format!("s3://{bucket}/{prefix}/")
        };
        let url = url::Url::parse(&table_url).map_err(|e| bad(&e.to_string()))?;
        register_s3_logstore();
        Ok(ColdStore::Remote(Arc::new(Remote {
            store: Arc::new(store),
            prefix: prefix.clone(),
            url,
            counts: Counters::default(),
        })))
    }

    /// The tier's location as the catalog records it (`meta.cold_location`)
    /// to tell a moved or forgotten one: `s3://bucket/prefix/` (not the
    /// endpoint, which may change), or a local directory relative to the
    /// store's `base` when inside it (`cold`), else absolute.
    pub fn location_key(&self, base: &Path) -> String {
        match self {
            ColdStore::Remote(r) => r.url.to_string(),
            ColdStore::Local(d) => {
                let abs = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
                let (d, base) = (abs(d), abs(base));
                match d.strip_prefix(&base) {
                    Ok(rel) => slashed(rel),
                    Err(_) => d.display().to_string(),
                }
            }
        }
    }

    /// Whether the tier is in an object store.
    pub fn is_remote(&self) -> bool {
        matches!(self, ColdStore::Remote(_))
    }

    /// The local directory of a local tier.
    pub fn local_dir(&self) -> Option<&Path> {
        match self {
            ColdStore::Local(d) => Some(d),
            ColdStore::Remote(_) => None,
        }
    }

    /// The tier's root, for messages: a directory or `s3://bucket/prefix/`.
    pub fn root_name(&self) -> PathBuf {
        match self {
            ColdStore::Local(d) => d.clone(),
            ColdStore::Remote(r) => PathBuf::from(r.url.as_str()),
        }
    }

    /// `rel` as messages name it: a local path, or the object's URL.
    pub fn name(&self, rel: &Path) -> PathBuf {
        match self {
            ColdStore::Local(d) => d.join(rel),
            ColdStore::Remote(r) => PathBuf::from(format!("{}{}", r.url, slashed(rel))),
        }
    }

    /// The table's location and, for a remote tier, the client rooted at
    /// the bucket (delta-rs adds the prefix itself).
    pub fn table_location(&self) -> Result<(url::Url, Option<Arc<dyn ObjectStore>>)> {
        match self {
            ColdStore::Local(d) => {
                let abs = std::path::absolute(d).map_err(|e| Error::io(d, e))?;
                let url = url::Url::from_directory_path(&abs).map_err(|()| {
                    Error::Config(format!("{}: not a directory path", abs.display()))
                })?;
                Ok((url, None))
            }
            ColdStore::Remote(r) => Ok((r.url.clone(), Some(r.store.clone()))),
        }
    }

    /// The size of the file at `rel`.
    pub fn len(&self, rel: &Path) -> io::Result<u64> {
        match self {
            ColdStore::Local(d) => std::fs::metadata(d.join(rel)).map(|m| m.len()),
            ColdStore::Remote(r) => r.head(rel),
        }
    }

    /// Whether anything is at `rel` (a file, or for a local tier a
    /// directory; for a remote one, any object under `rel/`).
    pub fn exists(&self, rel: &Path) -> io::Result<bool> {
        match self {
            ColdStore::Local(d) => Ok(std::fs::symlink_metadata(d.join(rel)).is_ok()),
            ColdStore::Remote(r) => Ok(!r.list(rel, true)?.is_empty()),
        }
    }

    /// Opens the file at `rel` for reads at offsets.
    pub fn open(&self, rel: &Path) -> io::Result<Blob> {
        match self {
            ColdStore::Local(d) => {
                let file = std::fs::File::open(d.join(rel))?;
                let len = file.metadata()?.len();
                Ok(Blob::Local { file, len })
            }
            ColdStore::Remote(r) => {
                let len = r.head(rel)?;
                Ok(Blob::Remote {
                    remote: r.clone(),
                    key: r.key(rel),
                    len,
                })
            }
        }
    }

    /// The whole file at `rel`.
    pub fn read(&self, rel: &Path) -> io::Result<Bytes> {
        match self {
            ColdStore::Local(d) => std::fs::read(d.join(rel)).map(Bytes::from),
            ColdStore::Remote(r) => r.get(r.key(rel), None),
        }
    }

    /// Deletes the file at `rel`; one that is not there is `NotFound`.
    pub fn remove(&self, rel: &Path) -> io::Result<()> {
        match self {
            ColdStore::Local(d) => std::fs::remove_file(d.join(rel)),
            ColdStore::Remote(r) => r.delete(rel),
        }
    }

    /// What was asked of a remote tier so far (zeros for a local one).
    pub fn requests(&self) -> Requests {
        match self {
            ColdStore::Local(_) => Requests::default(),
            ColdStore::Remote(r) => r.requests(),
        }
    }

    /// GETs so far by object key, for a remote tier.
    pub fn gets_by_key(&self) -> BTreeMap<String, u64> {
        match self {
            ColdStore::Local(_) => BTreeMap::new(),
            ColdStore::Remote(r) => r
                .counts
                .by_key
                .lock()
                .map(|m| m.clone())
                .unwrap_or_default(),
        }
    }
}

/// `rel` with `/` between its parts, as object keys and the table's log
/// spell it.
pub fn slashed(rel: &Path) -> String {
    rel.components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

impl Remote {
    fn key(&self, rel: &Path) -> ObjPath {
        let rel = slashed(rel);
        if self.prefix.is_empty() {
            ObjPath::from(rel)
        } else {
            ObjPath::from(format!("{}/{rel}", self.prefix))
        }
    }

    fn requests(&self) -> Requests {
        let c = &self.counts;
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        Requests {
            gets: load(&c.gets),
            get_bytes: load(&c.get_bytes),
            puts: load(&c.puts),
            put_bytes: load(&c.put_bytes),
            heads: load(&c.heads),
            deletes: load(&c.deletes),
            lists: load(&c.lists),
        }
    }

    fn head(&self, rel: &Path) -> io::Result<u64> {
        self.counts.heads.fetch_add(1, Ordering::Relaxed);
        let (store, key) = (self.store.clone(), self.key(rel));
        block(async move { store.head(&key).await }).map(|m| m.size)
    }

    /// The object `key`, whole or the byte `range`.
    fn get(&self, key: ObjPath, range: Option<std::ops::Range<u64>>) -> io::Result<Bytes> {
        let c = &self.counts;
        c.gets.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut m) = c.by_key.lock() {
            *m.entry(key.to_string()).or_default() += 1;
        }
        let store = self.store.clone();
        let bytes = block(async move {
            match range {
                Some(r) => store.get_range(&key, r).await,
                None => store.get(&key).await?.bytes().await,
            }
        })?;
        c.get_bytes.fetch_add(bytes.len() as u64, Ordering::Relaxed);
        Ok(bytes)
    }

    /// Uploads `bytes` as the object at `rel` (one atomic PUT), only if no
    /// object is there (`If-None-Match: *`): an object that is there is
    /// never replaced, and the error is `AlreadyExists`.
    pub fn put_new(&self, rel: &Path, bytes: Bytes) -> io::Result<()> {
        self.counts.puts.fetch_add(1, Ordering::Relaxed);
        self.counts
            .put_bytes
            .fetch_add(bytes.len() as u64, Ordering::Relaxed);
        let (store, key) = (self.store.clone(), self.key(rel));
        block(async move {
            store
                .put_opts(&key, PutPayload::from_bytes(bytes), PutMode::Create.into())
                .await
        })
        .map(|_| ())
    }

    /// Moves the object at `rel` to `to` (S3 has no rename: a copy, then a
    /// delete), with a note `<to>.why` saying where it was and why.
    pub fn set_aside(&self, rel: &Path, to: &Path, why: &str) -> io::Result<()> {
        // A free name: one that a HEAD says is not there (any other answer
        // is an error, never taken for "free").
        let mut to = to.to_path_buf();
        let mut n = 1;
        loop {
            match self.head(&to) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => break,
                Err(e) => return Err(e),
            }
            to = PathBuf::from(format!("{}.{n}", to.display()));
            n += 1;
        }
        let note = PathBuf::from(format!("{}.why", to.display()));
        let text = format!("{}{}\n{why}\n", self.url, slashed(rel));
        self.put_new(&note, Bytes::from(text))?;
        // The copy (a PUT with a source). If it fails, the note goes too:
        // left alone it would hold the name, and every later attempt
        // would fail on it.
        self.counts.puts.fetch_add(1, Ordering::Relaxed);
        let (store, from, dest) = (self.store.clone(), self.key(rel), self.key(&to));
        if let Err(e) = block(async move { store.copy(&from, &dest).await }) {
            self.counts.deletes.fetch_add(1, Ordering::Relaxed);
            let (store, key) = (self.store.clone(), self.key(&note));
            let _ = block(async move { store.delete(&key).await });
            return Err(e);
        }
        self.delete(rel)
    }

    fn delete(&self, rel: &Path) -> io::Result<()> {
        // S3 answers a DELETE of a missing key with success: ask first, so
        // that "not there" is said as it is for a local file.
        self.head(rel)?;
        self.counts.deletes.fetch_add(1, Ordering::Relaxed);
        let (store, key) = (self.store.clone(), self.key(rel));
        block(async move { store.delete(&key).await })
    }

    /// Every object under `rel` (relative to the tier's root), with its
    /// size; `first_only` stops at the first.
    fn list(&self, rel: &Path, first_only: bool) -> io::Result<Vec<(PathBuf, u64)>> {
        self.counts.lists.fetch_add(1, Ordering::Relaxed);
        let store = self.store.clone();
        let under = if rel.as_os_str().is_empty() {
            (!self.prefix.is_empty()).then(|| ObjPath::from(self.prefix.as_str()))
        } else {
            Some(self.key(rel))
        };
        let strip = if self.prefix.is_empty() {
            String::new()
        } else {
            format!("{}/", self.prefix)
        };
        block(async move {
            let mut out = Vec::new();
            let mut stream = store.list(under.as_ref());
            // A key no object_store path can hold (a control character)
            // ends the listing with an error naming it: skipping it would
            // lose the rest of the listing.
            while let Some(meta) = stream.try_next().await? {
                let key = meta.location.to_string();
                let rel = key.strip_prefix(&strip).unwrap_or(&key).to_string();
                out.push((PathBuf::from(rel), meta.size));
                if first_only {
                    break;
                }
            }
            Ok(out)
        })
        .map_err(|e| self.listing_error(e))
    }

    /// A listing's error, said for what it most likely means: S3 answers
    /// a listing 404 only for a bucket that is not there, and a web server
    /// that is not S3 answers it so too.
    fn listing_error(&self, e: io::Error) -> io::Error {
        if e.kind() == io::ErrorKind::NotFound || e.to_string().contains("status code: 404") {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!(
                    "a listing of the bucket was answered 404 (not found): the bucket {:?} does not exist at this endpoint, or cold_tier.endpoint is not an S3 server",
                    self.url.host_str().unwrap_or_default()
                ),
            )
        } else {
            e
        }
    }

    /// Every object in the tier's day partitions (`year=…/…`), relative to
    /// its root, with its size: a listing of the prefix's first level
    /// (with a delimiter), then one of each `year=` folder. Nothing else
    /// under the prefix is listed, so a key there that the client cannot
    /// parse (an empty, `.` or `..` segment: `notes//readme.txt`) does not
    /// stop the tier's listing; one inside a partition still does, with an
    /// error naming it.
    pub fn list_partitions(&self) -> io::Result<Vec<(PathBuf, u64)>> {
        self.counts.lists.fetch_add(1, Ordering::Relaxed);
        let store = self.store.clone();
        let under = (!self.prefix.is_empty()).then(|| ObjPath::from(self.prefix.as_str()));
        let top = block(async move { store.list_with_delimiter(under.as_ref()).await })
            .map_err(|e| self.listing_error(e))?;
        let mut out = Vec::new();
        for folder in &top.common_prefixes {
            if let Some(name) = folder.filename().filter(|n| n.starts_with("year=")) {
                out.extend(self.list(Path::new(name), false)?);
            }
        }
        Ok(out)
    }
}

/// A cold file opened for reads at offsets: a local file, or an object
/// whose size a HEAD gave (each read is one ranged GET).
pub enum Blob {
    Local {
        file: std::fs::File,
        len: u64,
    },
    Remote {
        remote: Arc<Remote>,
        key: ObjPath,
        len: u64,
    },
}

impl Blob {
    /// The file's size in bytes.
    pub fn len(&self) -> u64 {
        match self {
            Blob::Local { len, .. } | Blob::Remote { len, .. } => *len,
        }
    }

    /// Whether the file is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `length` bytes from `start`; fewer than asked is an error.
    pub fn read_at(&self, start: u64, length: usize) -> io::Result<Bytes> {
        match self {
            Blob::Local { file, .. } => {
                use std::os::unix::fs::FileExt;
                let mut buf = vec![0; length];
                file.read_exact_at(&mut buf, start)?;
                Ok(Bytes::from(buf))
            }
            Blob::Remote { remote, key, len } => {
                let end = start
                    .checked_add(length as u64)
                    .filter(|&e| e <= *len)
                    .ok_or_else(|| {
                        io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            format!("bytes {start}..+{length} are past the end ({len} bytes)"),
                        )
                    })?;
                if length == 0 {
                    return Ok(Bytes::new());
                }
                let got = remote.get(key.clone(), Some(start..end))?;
                if got.len() != length {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!("asked for {length} bytes at {start}, got {}", got.len()),
                    ));
                }
                Ok(got)
            }
        }
    }

    /// The whole file, passed to `each` in pieces in order (a local file
    /// in 1 MiB reads, an object in one GET). Returns the bytes passed.
    pub fn read_all(&self, mut each: impl FnMut(&[u8])) -> io::Result<u64> {
        match self {
            Blob::Local { file, .. } => {
                use std::io::Read;
                let mut file = file;
                let mut buf = vec![0u8; 1 << 20];
                let mut total = 0u64;
                loop {
                    let n = file.read(&mut buf)?;
                    if n == 0 {
                        return Ok(total);
                    }
                    each(&buf[..n]);
                    total += n as u64;
                }
            }
            Blob::Remote { remote, key, .. } => {
                let bytes = remote.get(key.clone(), None)?;
                each(&bytes);
                Ok(bytes.len() as u64)
            }
        }
    }
}

impl parquet::file::reader::Length for Blob {
    fn len(&self) -> u64 {
        Blob::len(self)
    }
}

impl parquet::file::reader::ChunkReader for Blob {
    type T = bytes::buf::Reader<Bytes>;

    fn get_read(&self, start: u64) -> parquet::errors::Result<Self::T> {
        use bytes::Buf;
        let length = usize::try_from(self.len().saturating_sub(start))
            .map_err(|e| parquet::errors::ParquetError::External(Box::new(e)))?;
        Ok(self.get_bytes(start, length)?.reader())
    }

    fn get_bytes(&self, start: u64, length: usize) -> parquet::errors::Result<Bytes> {
        Ok(self.read_at(start, length)?)
    }
}

/// Lets delta-rs open tables at `s3://` URLs over a client we give it
/// (`DeltaTableBuilder::with_storage_backend`), with its default log
/// store: a commit is a PUT with `If-None-Match: *` of the next log file
/// (S3's conditional writes, which `object_store` uses by default), so two
/// writers can never both take a version. The `deltalake-aws` crate's log
/// store (DynamoDB locking, the AWS SDK) is not needed for that.
fn register_s3_logstore() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        struct Factory;
        impl deltalake_core::logstore::LogStoreFactory for Factory {
            fn with_options(
                &self,
                prefixed_store: deltalake_core::logstore::ObjectStoreRef,
                root_store: deltalake_core::logstore::ObjectStoreRef,
                location: &url::Url,
                options: &deltalake_core::logstore::StorageConfig,
            ) -> deltalake_core::DeltaResult<Arc<dyn deltalake_core::logstore::LogStore>>
            {
                Ok(deltalake_core::logstore::default_logstore(
                    prefixed_store,
                    root_store,
                    location,
                    options,
                ))
            }
        }
        let registry = deltalake_core::logstore::logstore_factories();
        for scheme in ["s3://", "s3a://"] {
            if let Ok(u) = url::Url::parse(scheme) {
                if !registry.contains_key(&u) {
                    registry.insert(u, Arc::new(Factory));
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_url(url: &str) -> Config {
        let mut c = Config::default();
        c.cold_tier.url = Some(url.into());
        c.cold_tier.endpoint = Some("http://127.0.0.1:1".into());
        c.cold_tier.allow_http = true;
        c.cold_tier.region = Some("us-east-1".into());
        c
    }

    #[test]
    fn urls_are_checked() {
        assert!(matches!(
            ColdStore::of(&with_url("file:///tmp/x")),
            Ok(ColdStore::Local(d)) if d == Path::new("/tmp/x")
        ));
        for bad in [
            "s3:///nobucket",
            "gs://b/p",
            "s3://bkt/../up",
            "s3://bkt/a/./c",
            "s3://bkt/%2E%2E/up",
            "s3://bkt/p?x=1",
            "not a url",
            "s3://user:pw@b/p",
            "s3://user@b/p",
            "s3://bkt:9000/p",
            // An empty segment is a different key: refused, not dropped.
            "s3://bkt//p",
            "s3://bkt/p//q",
            "s3://bkt/p//",
            // Names no S3 bucket can have.
            "s3://ab/p",
            "s3://my%20bucket/p",
            "s3://-b-/p",
            "s3://a..b/p",
            "s3://b.",
        ] {
            let e = ColdStore::of(&with_url(bad)).err().map(|e| e.to_string());
            assert!(
                e.as_deref().is_some_and(|e| e.contains("cold_tier.url")),
                "{bad}: {e:?}"
            );
        }
        // Credentials in the URL are refused, and not repeated back.
        let e = ColdStore::of(&with_url("s3://AKIDEXAMPLE:s3cr3t@b/p"))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            e.contains("AWS_ACCESS_KEY_ID") && !e.contains("s3cr3t"),
            "{e}"
        );
        // S3 keys are at most 1,024 bytes: the longest prefix the tier
        // takes leaves room for its own names, one byte more is refused.
        let long = |n: usize| format!("s3://bkt/{}", "a".repeat(n));
        assert!(ColdStore::of(&with_url(&long(crate::config::MAX_PREFIX_BYTES))).is_ok());
        let e = ColdStore::of(&with_url(&long(crate::config::MAX_PREFIX_BYTES + 1)))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("1,024 bytes"), "{e}");
    }

    #[test]
    fn half_a_key_pair_names_the_missing_variable() {
        // The client's own errors, as it spells them.
        let missing_secret = object_store::Error::Generic {
            store: "S3",
            source: "Missing SecretAccessKey".into(),
        };
        let said = half_a_key_pair(&missing_secret.to_string()).unwrap_or_default();
        assert!(said.contains("AWS_SECRET_ACCESS_KEY is not"), "{said}");
        let said = half_a_key_pair("Generic S3 error: Missing AccessKeyId").unwrap_or_default();
        assert!(said.contains("AWS_ACCESS_KEY_ID is not"), "{said}");
        assert_eq!(half_a_key_pair("connection refused"), None);
    }

    #[test]
    fn prefixes_and_bucket_names_are_kept_as_written() {
        for (url, bucket, prefix) in [
            ("s3://bkt", "bkt", ""),
            ("s3://bkt/", "bkt", ""),
            ("s3://bkt/a/b/", "bkt", "a/b"),
            // Older buckets (and other servers) allow upper case and `_`.
            ("s3://Old_Bucket/p", "Old_Bucket", "p"),
            ("s3://my.bucket-1/p", "my.bucket-1", "p"),
        ] {
            match with_url(url).cold_location() {
                Ok(crate::config::ColdLocation::S3 {
                    bucket: b,
                    prefix: p,
                    ..
                }) => assert_eq!((b.as_str(), p.as_str()), (bucket, prefix), "{url}"),
                other => panic!("{url}: {other:?}"),
            }
        }
    }

    #[test]
    fn an_empty_credential_variable_is_named() {
        let env = |set: &'static [(&'static str, &'static str)]| {
            move |v: &str| {
                set.iter()
                    .find(|(k, _)| *k == v)
                    .map(|(_, x)| std::ffi::OsString::from(x))
            }
        };
        assert_eq!(empty_credential_variable_in(env(&[])), None);
        assert_eq!(
            empty_credential_variable_in(env(&[
                ("AWS_ACCESS_KEY_ID", "AKID"),
                ("AWS_SECRET_ACCESS_KEY", "")
            ])),
            Some("AWS_SECRET_ACCESS_KEY")
        );
        assert_eq!(
            empty_credential_variable_in(env(&[("AWS_SESSION_TOKEN", "")])),
            Some("AWS_SESSION_TOKEN")
        );
        assert_eq!(
            empty_credential_variable_in(env(&[
                ("AWS_ACCESS_KEY_ID", "AKID"),
                ("AWS_SECRET_ACCESS_KEY", "x")
            ])),
            None
        );
    }

    #[test]
    fn a_failed_ask_for_instance_credentials_says_none_are_set() {
        let e = to_io(object_store::Error::Generic {
            store: "S3",
            source: "Error getting credentials: error sending request for url (http://169.254.169.254/latest/api/token)".into(),
        });
        let e = e.to_string();
        assert!(
            e.starts_with("no AWS credentials") && e.contains("AWS_ACCESS_KEY_ID"),
            "{e}"
        );
        // Other errors are passed on as they are.
        let e = to_io(object_store::Error::Generic {
            store: "S3",
            source: "connection refused".into(),
        });
        assert!(!e.to_string().contains("credentials"), "{e}");
    }

    #[test]
    fn remote_names_are_urls_and_keys_are_prefixed() {
        let s = ColdStore::of(&with_url("s3://bkt/a/b/")).expect("builds without contacting it");
        let rel = Path::new("year=2024/month=01/day=02/part-1-2.parquet");
        assert_eq!(
            s.name(rel),
            PathBuf::from("s3://bkt/a/b/year=2024/month=01/day=02/part-1-2.parquet")
        );
        let ColdStore::Remote(r) = &s else {
            panic!("remote")
        };
        assert_eq!(
            r.key(rel).as_ref(),
            "a/b/year=2024/month=01/day=02/part-1-2.parquet"
        );
        assert_eq!(
            s.table_location().map(|l| l.0.to_string()).ok().as_deref(),
            Some("s3://bkt/a/b/")
        );
    }
}
