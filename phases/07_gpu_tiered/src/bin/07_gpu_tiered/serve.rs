//! `serve`: the HTTP API until Ctrl-C or SIGTERM.

use std::io::Write;

use tiered::api::server::{self, Limits};
use tiered::config::Config;
use tiered::engine::Engine;
use tiered::error::{Error, Result};
use tiered::ingest::jobs;

use crate::common::open;

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on (port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub addr: String,
    /// Largest ingest body, in MB (default: server.max_body_mb, 64).
    #[arg(long)]
    pub max_body_mb: Option<f64>,
    /// Longest a request may take before it is answered 408, in seconds
    /// (default: server.request_timeout_s, 30).
    #[arg(long)]
    pub timeout_s: Option<f64>,
}

pub fn run(mut config: Config, args: ServeArgs) -> Result<()> {
    let ServeArgs {
        addr,
        max_body_mb,
        timeout_s,
    } = args;
    config.server.max_body_mb = max_body_mb.unwrap_or(config.server.max_body_mb);
    config.server.request_timeout_s = timeout_s.unwrap_or(config.server.request_timeout_s);
    config.check()?;
    jobs::check_import_dir(&config)?;
    let limits = Limits::from_config(&config);
    serve(open(config)?, &addr, &limits)
}

fn serve(engine: Engine, addr: &str, limits: &Limits) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::io("<tokio runtime>", e))?;
    let engine = std::sync::Arc::new(engine);
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| Error::io(addr, e))?;
        let local = listener.local_addr().map_err(|e| Error::io(addr, e))?;
        let stop = shutdown_signal().map_err(|e| Error::io("<signal handlers>", e))?;
        let s = engine.stats()?;
        println!(
            "listening on http://{local} ({} records: hot {}, warm {} on {}, cold {}); Ctrl-C stops",
            s.total(),
            s.hot_records,
            s.warm_records,
            s.warm_device,
            s.cold_records
        );
        let _ = std::io::stdout().flush();
        server::serve(listener, engine.clone(), limits, stop)
            .await
            .map_err(|e| Error::io(addr, e))
    })?;
    // In-flight requests have finished: every acknowledged write is in the
    // fsynced WAL. Stop running jobs before their next batch.
    let jobs = engine.with_catalog(|c| c.jobs())?;
    for j in jobs.iter().filter(|j| !j.state.is_finished()) {
        engine.with_catalog(|c| c.cancel_job(j.id))?;
    }
    runtime.shutdown_timeout(limits.shutdown_grace);
    let s = engine.stats()?;
    println!(
        "shut down: {} records durable ({} fsyncs this run), WAL {} bytes",
        s.total(),
        s.wal_fsyncs,
        s.wal_bytes
    );
    Ok(())
}

/// The signals that stop the server, registered at once: a signal that
/// arrives after the address is announced but before the accept loop first
/// polls must not take the default action (killing the process without a
/// clean shutdown).
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut term = signal(SignalKind::terminate())?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => {},
            _ = term.recv() => {},
        }
        println!("shutting down: finishing requests in flight");
    })
}
