//! Helpers for the integration tests: run a phase binary in a temporary
//! output directory and look at what it printed and wrote.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Path of a built phase binary.
pub fn bin(name: &str) -> PathBuf {
    match name {
        "00_generate" => env!("CARGO_BIN_EXE_00_generate").into(),
        "01_ndjson" => env!("CARGO_BIN_EXE_01_ndjson").into(),
        "02_columnar" => env!("CARGO_BIN_EXE_02_columnar").into(),
        "03_compressed" => env!("CARGO_BIN_EXE_03_compressed").into(),
        "04_custom_binary" => env!("CARGO_BIN_EXE_04_custom_binary").into(),
        "05_downsampling" => env!("CARGO_BIN_EXE_05_downsampling").into(),
        "06_query_engine" => env!("CARGO_BIN_EXE_06_query_engine").into(),
        "squeezed-signals" => env!("CARGO_BIN_EXE_squeezed-signals").into(),
        other => panic!("unknown binary {other}"),
    }
}

/// Runs `name` with `args` and `--output-dir dir`.
pub fn run_in(dir: &Path, name: &str, args: &[&str]) -> Output {
    Command::new(bin(name))
        .args(args)
        .arg("--output-dir")
        .arg(dir)
        .output()
        .expect("failed to start phase binary")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts success and returns stdout.
pub fn ok(o: Output) -> String {
    assert!(o.status.success(), "failed: {}\n{}", stderr(&o), stdout(&o));
    stdout(&o)
}

/// Generates a small dataset in `dir`.
pub fn small_dataset(dir: &Path) -> String {
    ok(run_in(
        dir,
        "00_generate",
        &["--points", "3000", "--series", "15"],
    ))
}

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// Names of the files in `dir` (not recursive), sorted.
pub fn files_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Runs `name` in `dir` with `input` on standard input (for text too long
/// for a command-line argument).
pub fn run_with_stdin(dir: &Path, name: &str, args: &[&str], input: &[u8]) -> Output {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = Command::new(bin(name))
        .args(args)
        .arg("--output-dir")
        .arg(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("failed to start phase binary");
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(input)
            .expect("failed to write standard input");
    }
    child
        .wait_with_output()
        .expect("phase binary did not finish")
}
