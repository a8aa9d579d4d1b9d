//! The query engine's command line around [`Engine`]: one query, a script
//! split at its semicolons, a query run several times for its timing, or an
//! interactive REPL (history, multi-line statements, `\d` to list metrics).
//! `06_query_engine` parses its options and calls these.

use std::io::Write;
use std::path::PathBuf;

use crate::course::query_engine::{ident, stats_line};
use crate::error::{Error, Result};
use crate::query::{Engine, OutputFormat};

/// Writes to stdout. A closed pipe (`| head`) ends the process with exit
/// code 0, as a Unix filter ends: this module is the binary's front end,
/// not for use inside a longer-lived program.
pub fn emit(text: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|_| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(0),
        r => r.map_err(|e| Error::io("standard output", e)),
    }
}

pub fn run_one(engine: &Engine, sql: &str, format: OutputFormat, quiet: bool) -> Result<()> {
    let o = engine.query(sql)?;
    let mut text = o.render(format);
    if !text.ends_with('\n') {
        text.push('\n');
    }
    emit(&text)?;
    if !quiet {
        eprintln!("({})", stats_line(&o));
    }
    Ok(())
}

/// Splits a script at semicolons outside quotes.
pub fn statements(script: &str) -> Vec<String> {
    let (mut out, mut cur, mut quote) = (Vec::new(), String::new(), None::<char>);
    for c in script.chars() {
        match (quote, c) {
            (None, '\'' | '"') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, ';') => {
                out.push(std::mem::take(&mut cur));
                continue;
            }
            _ => {}
        }
        cur.push(c);
    }
    out.push(cur);
    out.into_iter()
        .map(|s| s.trim().to_string())
        .filter(|s| {
            !s.is_empty()
                && !s
                    .lines()
                    .all(|l| l.trim().is_empty() || l.trim_start().starts_with("--"))
        })
        .collect()
}

const REPL_HELP: &str = "Enter SQL ending with ';' (it may span lines).
  \\d            list metrics
  \\d METRIC     columns of a metric
  \\format F     table, csv or json
  \\q            quit (also Ctrl-D)";

pub fn describe(engine: &Engine, metric: Option<&str>) -> String {
    let idx = engine.index();
    match metric {
        None => idx
            .metrics()
            .map(|m| {
                format!(
                    "{}  ({} series)\n",
                    ident(m),
                    idx.metric(m).map_or(0, |s| s.len())
                )
            })
            .collect(),
        Some(m) => match idx.metric(m) {
            None => format!("no metric {m}\n"),
            Some(ids) => {
                let labels: Vec<String> = idx.label_names(m).into_iter().collect();
                format!(
                    "{m}: {} series; columns: ts, {}{}value\n",
                    ids.len(),
                    labels.join(", "),
                    if labels.is_empty() { "" } else { ", " }
                )
            }
        },
    }
}

pub fn repl(
    engine: &Engine,
    mut format: OutputFormat,
    history: PathBuf,
    quiet: bool,
) -> Result<()> {
    use rustyline::error::ReadlineError;
    let mut rl = rustyline::DefaultEditor::new()
        .map_err(|e| Error::InvalidArgument(format!("cannot open the terminal: {e}")))?;
    let _ = rl.load_history(&history);
    println!(
        "squeezed-signals query engine: {} series, {} metrics. \\? for help, \\q to quit.",
        engine.file().series().len(),
        engine.index().metrics().count()
    );
    let mut buf = String::new();
    loop {
        let prompt = if buf.is_empty() { "sql> " } else { "...> " };
        let line = match rl.readline(prompt) {
            Ok(l) => l,
            Err(ReadlineError::Interrupted) => {
                buf.clear();
                continue;
            }
            Err(ReadlineError::Eof) => break,
            Err(e) => return Err(Error::InvalidArgument(format!("reading the terminal: {e}"))),
        };
        let trimmed = line.trim();
        if buf.is_empty() && trimmed.starts_with('\\') {
            let _ = rl.add_history_entry(trimmed);
            let mut words = trimmed.split_whitespace();
            match (words.next(), words.next()) {
                (Some("\\q"), _) => break,
                (Some("\\d"), m) => print!("{}", describe(engine, m)),
                (Some("\\format"), Some(f)) => match f {
                    "table" => format = OutputFormat::Table,
                    "csv" => format = OutputFormat::Csv,
                    "json" => format = OutputFormat::Json,
                    other => eprintln!("unknown format {other}: use table, csv or json"),
                },
                _ => println!("{REPL_HELP}"),
            }
            continue;
        }
        if matches!(trimmed, "quit" | "exit") && buf.is_empty() {
            break;
        }
        buf.push_str(&line);
        buf.push('\n');
        if !trimmed.ends_with(';') {
            continue;
        }
        let sql = std::mem::take(&mut buf);
        let _ = rl.add_history_entry(sql.trim());
        for s in statements(&sql) {
            if let Err(e) = run_one(engine, &s, format, quiet) {
                eprintln!("error: {e}");
            }
        }
    }
    if let Some(dir) = history.parent() {
        if dir.is_dir() {
            let _ = rl.save_history(&history);
        }
    }
    Ok(())
}

/// Runs `sql` `repeat` times, prints its result once and, on stderr, the
/// best and median time.
pub fn run_repeated(engine: &Engine, sql: &str, repeat: u32, format: OutputFormat) -> Result<()> {
    let mut times = Vec::with_capacity(repeat as usize);
    for _ in 1..repeat {
        times.push(engine.query(sql)?.elapsed.as_secs_f64() * 1e3);
    }
    let o = engine.query(sql)?;
    times.push(o.elapsed.as_secs_f64() * 1e3);
    times.sort_by(f64::total_cmp);
    let mut text = o.render(format);
    if !text.ends_with('\n') {
        text.push('\n');
    }
    emit(&text)?;
    eprintln!(
        "timing: best {:.4} ms, median {:.4} ms over {} runs; {} rows, {} samples decoded",
        times[0],
        times[times.len() / 2],
        times.len(),
        o.stats.rows_out,
        o.stats.rows_scanned
    );
    Ok(())
}

/// Runs every statement of `script` in order, stopping at the first error.
pub fn run_script(engine: &Engine, script: &str, format: OutputFormat, quiet: bool) -> Result<()> {
    for s in statements(script) {
        run_one(engine, &s, format, quiet)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::statements;

    #[test]
    fn a_script_splits_at_semicolons_outside_quotes_and_drops_comment_only_parts() {
        let s = "SELECT 1 FROM up WHERE host = 'a;b';\n-- only a comment;\n\nSELECT \"x;y\" FROM up ;  ;";
        assert_eq!(
            statements(s),
            vec![
                "SELECT 1 FROM up WHERE host = 'a;b'".to_string(),
                "SELECT \"x;y\" FROM up".to_string()
            ]
        );
        assert!(statements("").is_empty());
        assert_eq!(statements("SELECT 1 FROM up"), vec!["SELECT 1 FROM up"]);
    }
}
