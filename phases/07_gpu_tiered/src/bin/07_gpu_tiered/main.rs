//! Phase 07: the tiered engine from the command line. This file dispatches;
//! each command parses its options, calls the library and prints, in its
//! own file beside this one.

mod admin;
mod aggregate;
mod cli;
mod common;
mod crash_child;
mod demo;
mod gpubench;
mod ingest;
mod jobs;
mod loadtest;
mod query;
mod serve;

use std::process::ExitCode;

use clap::Parser;

use cli::{Args, Command};
use common::{open_read_only, print_error};

fn main() -> ExitCode {
    let args = Args::parse();
    if !matches!(args.command, Command::Serve(_) | Command::Loadtest(_)) {
        // Output piped into a reader that stops early (`| head`) ends this
        // process quietly, as it does any Unix filter, instead of a panic
        // in `println!`. Not for the server and the load generator, whose
        // sockets must not kill them when a peer goes away.
        // SAFETY: restoring the default action of one signal, before any
        // thread exists.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => print_error(&e),
    }
}

fn run(args: Args) -> tiered::Result<()> {
    let config = cli::load_config(&args)?;
    match args.command {
        Command::Demo(a) => demo::run(config, &a),
        Command::Ingest(a) => ingest::run(config, a),
        Command::Query(a) => query::run(&open_read_only(config)?, &a),
        Command::Aggregate(a) => aggregate::run(&open_read_only(config)?, &a),
        Command::Bars(a) => aggregate::latest(config, &a),
        Command::Gpubench(a) => gpubench::run(&a),
        Command::Jobs(a) => jobs::run(config, a),
        Command::Quality(a) => admin::quality(config, a),
        Command::Retention(a) => admin::retention(config, a),
        Command::Stats(a) => admin::stats(config, a),
        Command::Migrate => admin::migrate(config),
        Command::Config => admin::config(&config),
        Command::Scrub(a) => admin::scrub(config, a),
        Command::Repair(a) => admin::repair(&config, a),
        Command::Serve(a) => serve::run(config, a),
        Command::Loadtest(a) => loadtest::run(&a),
        Command::CrashChild(a) => crash_child::run(config, a),
    }
}
