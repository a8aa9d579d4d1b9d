//! The book and the README say what the program prints: every quote of a
//! run in them is marked with the command that printed it, and this test
//! runs the command and compares. `SSIG_BLESS=1 cargo test --release --test
//! book` rewrites the quoted blocks that differ; review them with `git diff`.
//!
//! # Markers
//!
//! A marker is an HTML comment, invisible in the rendered book, right before
//! what it checks. Its first line says what it is; `key: value` lines may
//! follow.
//!
//! ```text
//! <!-- run: 04_custom_binary inspect --blocks 2
//!      show: 1-10, "every CRC32C matches", "list 49"-end -->
//! ```
//!
//! - `run: CMD`: the fenced block after the marker (or, without one, the
//!   lines up to the next blank line: a Markdown table) is what `CMD` prints
//!   on standard output.
//! - `show: ITEMS`, with `run:`: only some of those lines. An item is a line
//!   number (`3`), the next line containing a text (`"every CRC32C"`), or
//!   a range of them (`1-10`, `"┌"-"└"`, `"list 49"-end`; a range's end is
//!   the first line at or after its start that contains the text); one `…`
//!   line stands for the lines left out between two items.
//! - `quote: CMD` with `figures: "12 of 50 series match", "1429 bytes"`: `CMD`
//!   prints each figure, and the paragraph after the marker (or the table:
//!   several `quote:` markers may stand before one) quotes it word for word.
//! - `each line runs`: every command of the `sh` block after the marker runs
//!   and succeeds, in order. `fresh: yes` runs them in a new directory, as
//!   on a fresh clone; `points: N` makes every `--points` N (small data);
//!   `skip: WORD` leaves out the lines that name WORD, and says so.
//! - `slow: yes`, with any of the above: a run of minutes (thirty days of
//!   data), checked only with `SSIG_BOOK_SLOW=1` (best with `--release`).
//! - `needs: PATH`, with any of the above: skip the marker, and say so,
//!   where PATH is missing (`../shared/data/beringei-5000.csv` on a clone
//!   without the shared data).
//! - `not run: WHY`: a `text` block that is not the output of a command (a
//!   drawing, an example of a format).
//!
//! In the files of [`CHAPTERS`] every ```` ```text ```` block carries a
//! `run:` or a `not run:` marker, so that no quote of a run goes unchecked
//! by being forgotten.
//!
//! # How commands run
//!
//! With `sh -c`, in a scratch directory whose `output/` holds the whole
//! course on the default data (`squeezed-signals -q`: seed 42, 50,000
//! samples), with the phase binaries of this build first on `PATH`.
//! `cargo run --release --bin NAME --` is read as `NAME` and `cargo run
//! --release --` as `squeezed-signals`, so a marker may name a command as
//! the prose shows it. `../shared` beside the scratch directory is the
//! project's (the Beringei data); a marker with `needs: PATH` (relative to
//! where the commands run) is skipped, and says so, where PATH is missing.
//! Markers run file by file, in order; each `run:` or `quote:` command runs
//! once and its output is reused. A marker must leave `output/` as the
//! course wrote it: one that writes elsewhere says `--output-dir`.
//!
//! # What may differ
//!
//! Only what changes from run to run: a duration (`12.3 ms`, `in 0.45 s`,
//! `93.1 M samples/s`) compares equal to any other, and a run of spaces or
//! of a table's rules (`───`) to a run of any length, since a table column
//! is as wide as its longest duration. Everything else, every size, count
//! and ratio, must be equal.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// Files in which every ```` ```text ```` block must be marked, in the order
/// they run; markers in the other chapters are checked after them.
const CHAPTERS: &[&str] = &[
    "docs/src/introduction.md",
    "docs/src/00-generate.md",
    "docs/src/01-ndjson.md",
    "docs/src/02-columnar.md",
    "docs/src/03-compressed.md",
    "docs/src/03b-beyond-gorilla.md",
    "docs/src/03c-entropy-coding.md",
    "docs/src/04-custom-binary.md",
    "docs/src/05-downsampling.md",
    "docs/src/06-query-engine.md",
    "docs/src/results.md",
    "docs/src/format.md",
    "README.md",
];

// ---------------------------------------------------------------------------
// Markers

#[derive(Debug, Clone, PartialEq)]
enum Kind {
    Run {
        command: String,
        show: Option<String>,
    },
    Quote {
        command: String,
        figures: Vec<String>,
    },
    EachLine {
        fresh: bool,
        points: Option<String>,
        skip: Vec<String>,
    },
    NotRun,
}

#[derive(Debug)]
struct Marker {
    kind: Kind,
    /// A file the commands need, relative to where they run: without it
    /// the marker is skipped, and says so.
    needs: Option<String>,
    /// A run of minutes (thirty days of data): checked only with
    /// `SSIG_BOOK_SLOW=1`, best in a release build.
    slow: bool,
    /// 1-based line of the comment, for messages.
    line: usize,
    /// Index of the first line after the comment.
    after: usize,
}

/// The `key: value` fields of a comment's text; a line that starts no field
/// continues the one before. The first field is the marker's kind.
fn fields(body: &str) -> Vec<(String, String)> {
    const KEYS: [&str; 10] = [
        "run", "quote", "show", "figures", "fresh", "points", "skip", "needs", "slow", "not run",
    ];
    let mut out: Vec<(String, String)> = Vec::new();
    for line in body.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if line == "each line runs" {
            out.push((line.to_string(), String::new()));
            continue;
        }
        let key = line
            .split_once(':')
            .map(|(k, v)| (k.trim(), v.trim()))
            .filter(|(k, _)| KEYS.contains(k));
        match (key, out.last_mut()) {
            (Some((k, v)), _) => out.push((k.to_string(), v.to_string())),
            (None, Some((_, v))) => {
                v.push(' ');
                v.push_str(line);
            }
            (None, None) => return Vec::new(),
        }
    }
    out
}

/// Double-quoted strings separated by commas: `"a", "b \"c\""`.
fn quoted_list(text: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace() || *c == ',') {
            chars.next();
        }
        match chars.next() {
            None => return Ok(out),
            Some('"') => {
                let mut s = String::new();
                loop {
                    match chars.next() {
                        None => return Err(format!("unclosed quote in {text:?}")),
                        Some('"') => break,
                        Some('\\') => s.extend(chars.next()),
                        Some(c) => s.push(c),
                    }
                }
                out.push(s);
            }
            Some(c) => return Err(format!("expected a quoted figure at {c:?} in {text:?}")),
        }
    }
}

/// A marker's kind and its conditions: what it needs, whether it is slow.
type Parsed = (Kind, Option<String>, bool);

fn parse_marker(body: &str) -> Result<Option<Parsed>, String> {
    let fields = fields(body);
    let Some((first, value)) = fields.first() else {
        return Ok(None);
    };
    let get = |key: &str| {
        fields
            .iter()
            .skip(1)
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
    };
    let allowed: &[&str] = match first.as_str() {
        "run" => &["show", "needs", "slow"],
        "quote" => &["figures", "needs", "slow"],
        "each line runs" => &["fresh", "points", "skip", "needs", "slow"],
        "not run" => &[],
        _ => return Ok(None),
    };
    if let Some((k, _)) = fields
        .iter()
        .skip(1)
        .find(|(k, _)| !allowed.contains(&k.as_str()))
    {
        return Err(format!("`{k}:` does not go with `{first}`"));
    }
    let kind = match first.as_str() {
        "run" => Kind::Run {
            command: value.clone(),
            show: get("show"),
        },
        "quote" => {
            let figures = quoted_list(&get("figures").unwrap_or_default())?;
            if figures.is_empty() {
                return Err("`quote:` needs `figures:`".into());
            }
            Kind::Quote {
                command: value.clone(),
                figures,
            }
        }
        "each line runs" => Kind::EachLine {
            fresh: get("fresh").is_some_and(|v| v == "yes"),
            points: get("points"),
            skip: get("skip")
                .map(|v| v.split_whitespace().map(String::from).collect())
                .unwrap_or_default(),
        },
        _ => {
            if value.is_empty() {
                return Err("`not run:` says why".into());
            }
            Kind::NotRun
        }
    };
    Ok(Some((
        kind,
        get("needs"),
        get("slow").is_some_and(|v| v == "yes"),
    )))
}

/// The markers of a file, outside its fenced blocks.
fn markers(lines: &[&str]) -> Result<Vec<Marker>, String> {
    let mut out = Vec::new();
    let mut fence = false;
    let mut i = 0;
    while i < lines.len() {
        let t = lines[i].trim_start();
        if t.starts_with("```") {
            fence = !fence;
        } else if !fence && t.starts_with("<!--") {
            let end = (i..lines.len())
                .find(|&j| lines[j].contains("-->"))
                .ok_or(format!("line {}: comment never closed", i + 1))?;
            let body = lines[i..=end].join("\n");
            let body = body
                .trim()
                .trim_start_matches("<!--")
                .trim_end_matches("-->");
            match parse_marker(body) {
                Ok(Some((kind, needs, slow))) => out.push(Marker {
                    kind,
                    needs,
                    slow,
                    line: i + 1,
                    after: end + 1,
                }),
                Ok(None) => {}
                Err(e) => return Err(format!("line {}: {e}", i + 1)),
            }
            i = end + 1;
            continue;
        }
        i += 1;
    }
    Ok(out)
}

/// What a marker checks: the content lines `[start, end)` of the fenced
/// block after it (`fence` is its opening line), or of the paragraph.
#[derive(Debug, PartialEq)]
struct Target {
    start: usize,
    end: usize,
    fence: Option<usize>,
}

fn target(lines: &[&str], mut k: usize) -> Option<Target> {
    // Blank lines and other comments (stacked markers) may come between.
    loop {
        while k < lines.len() && lines[k].trim().is_empty() {
            k += 1;
        }
        if k < lines.len() && lines[k].trim_start().starts_with("<!--") {
            k = (k..lines.len()).find(|&j| lines[j].contains("-->"))? + 1;
            continue;
        }
        break;
    }
    let first = lines.get(k)?;
    if first.trim_start().starts_with("```") {
        let close = (k + 1..lines.len()).find(|&j| lines[j].trim_start().starts_with("```"))?;
        Some(Target {
            start: k + 1,
            end: close,
            fence: Some(k),
        })
    } else {
        let end = (k..lines.len())
            .find(|&j| lines[j].trim().is_empty())
            .unwrap_or(lines.len());
        Some(Target {
            start: k,
            end,
            fence: None,
        })
    }
}

// ---------------------------------------------------------------------------
// What may differ

const DURATION_UNITS: [&str; 7] = ["M samples/s", "M/s", "ms", "µs", "us", "ns", "s"];

/// Replaces every duration (`12.3 ms`, `0.45 s`, `93.1 M samples/s`) with
/// `<duration>`. A number glued to a word or an `=` (`jitter=5ms`,
/// `interval=15s`) is a setting, not a measurement, and stays; so does a
/// bare `s` without a space before it (`15s`).
fn mask_durations(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut i = 0;
    while i < line.len() {
        let rest = &line[i..];
        let glued =
            line[..i].ends_with(|c: char| c.is_alphanumeric() || matches!(c, '.' | '_' | '='));
        if rest.starts_with(|c: char| c.is_ascii_digit()) && !glued {
            let n = rest
                .find(|c: char| !(c.is_ascii_digit() || c == '.'))
                .unwrap_or(rest.len());
            let after = &rest[n..];
            let spaced = after.strip_prefix(' ');
            let unit = DURATION_UNITS.iter().find(|u| {
                let text = spaced.unwrap_or(after);
                text.starts_with(**u)
                    && !text[u.len()..].starts_with(|c: char| c.is_alphanumeric())
                    && (**u != "s" || spaced.is_some())
            });
            match unit {
                Some(u) => {
                    out.push_str("<duration>");
                    i += n + usize::from(spaced.is_some()) + u.len();
                }
                None => {
                    out.push_str(&rest[..n]);
                    i += n;
                }
            }
            continue;
        }
        let c = rest.chars().next().unwrap_or(' ');
        out.push(c);
        i += c.len_utf8();
    }
    out
}

/// A line as it is compared: durations masked, runs of spaces and of table
/// rules collapsed, trailing spaces gone.
fn normalize_line(line: &str) -> String {
    let masked = mask_durations(line);
    let mut out = String::with_capacity(masked.len());
    let mut prev = None;
    for c in masked.trim_end().chars() {
        if matches!(c, ' ' | '─' | '═') && prev == Some(c) {
            continue;
        }
        out.push(c);
        prev = Some(c);
    }
    out
}

fn normalize<S: AsRef<str>>(lines: &[S]) -> Vec<String> {
    let mut v: Vec<String> = lines.iter().map(|l| normalize_line(l.as_ref())).collect();
    while v.last().is_some_and(|l| l.is_empty()) {
        v.pop();
    }
    v
}

// ---------------------------------------------------------------------------
// `show:` items

#[derive(Debug, Clone, PartialEq)]
enum Point {
    Line(usize),
    Containing(String),
    End,
}

fn show_items(spec: &str) -> Result<Vec<(Point, Option<Point>)>, String> {
    let mut items = Vec::new();
    let mut chars = spec.chars().peekable();
    let point = |chars: &mut std::iter::Peekable<std::str::Chars>| -> Result<Point, String> {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        match chars.peek().copied() {
            Some('"') => {
                chars.next();
                let mut s = String::new();
                loop {
                    match chars.next() {
                        None => return Err(format!("unclosed quote in show: {spec}")),
                        Some('"') => return Ok(Point::Containing(s)),
                        Some('\\') => s.extend(chars.next()),
                        Some(c) => s.push(c),
                    }
                }
            }
            Some(c) if c.is_ascii_digit() => {
                let mut n = String::new();
                while chars.peek().is_some_and(|c| c.is_ascii_digit()) {
                    n.extend(chars.next());
                }
                match n.parse::<usize>() {
                    Ok(n) if n >= 1 => Ok(Point::Line(n)),
                    _ => Err(format!("line numbers start at 1 in show: {spec}")),
                }
            }
            Some('e') => {
                let word: String = chars.by_ref().take(3).collect();
                if word == "end" {
                    Ok(Point::End)
                } else {
                    Err(format!("expected end in show: {spec}"))
                }
            }
            other => Err(format!("unexpected {other:?} in show: {spec}")),
        }
    };
    loop {
        let from = point(&mut chars)?;
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let to = if chars.peek() == Some(&'-') {
            chars.next();
            Some(point(&mut chars)?)
        } else {
            None
        };
        items.push((from, to));
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        match chars.next() {
            None => return Ok(items),
            Some(',') => {}
            Some(c) => return Err(format!("unexpected {c:?} in show: {spec}")),
        }
    }
}

/// The lines `show:` picks, with a `…` line for each gap between items.
fn select(output: &str, spec: &str) -> Result<Vec<String>, String> {
    let lines: Vec<&str> = output.lines().collect();
    let find = |p: &Point, from: usize| -> Result<usize, String> {
        match p {
            Point::Line(n) if *n <= lines.len() => Ok(n - 1),
            Point::Line(n) => Err(format!("line {n}: the output has {} lines", lines.len())),
            Point::Containing(s) => (from..lines.len())
                .find(|&i| lines[i].contains(s.as_str()))
                .ok_or(format!("no line containing {s:?} (from line {})", from + 1)),
            Point::End => Ok(lines.len().saturating_sub(1)),
        }
    };
    let mut out = Vec::new();
    let mut next = 0;
    for (from, to) in show_items(spec)? {
        let a = find(&from, next)?;
        let b = match &to {
            Some(p) => find(p, a)?,
            None => a,
        };
        if a < next || b < a {
            return Err(format!(
                "show: {spec}: items out of order at line {}",
                a + 1
            ));
        }
        if a > next && !out.is_empty() {
            out.push("…".to_string());
        }
        out.extend(lines[a..=b].iter().map(|l| l.trim_end().to_string()));
        next = b + 1;
    }
    Ok(out)
}

// ---------------------------------------------------------------------------
// Running commands

/// `cargo run --release --bin NAME --` → `NAME`, `cargo run --release --`
/// → `squeezed-signals`: what the prose shows, as the scratch directory
/// runs it.
fn translate(command: &str) -> String {
    const CARGO: &str = "cargo run --release";
    let mut out = String::new();
    let mut rest = command;
    while let Some(at) = rest.find(CARGO) {
        out.push_str(&rest[..at]);
        rest = &rest[at + CARGO.len()..];
        let mut name = "squeezed-signals";
        if let Some(r) = rest.strip_prefix(" --bin ") {
            let end = r.find(' ').unwrap_or(r.len());
            name = &r[..end];
            rest = &r[end..];
        }
        if rest == " --" {
            rest = "";
        } else if let Some(r) = rest.strip_prefix(" -- ") {
            rest = r;
            out.push_str(name);
            out.push(' ');
            continue;
        }
        out.push_str(name);
    }
    out.push_str(rest);
    out
}

/// Every `--points N` made `--points points`.
fn with_points(command: &str, points: &str) -> String {
    let mut out = String::new();
    let mut rest = command;
    while let Some(at) = rest.find("--points ") {
        out.push_str(&rest[..at + "--points ".len()]);
        rest = &rest[at + "--points ".len()..];
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        out.push_str(points);
        rest = &rest[digits..];
    }
    out.push_str(rest);
    out
}

/// The commands of an `sh` block: continuation lines joined, comments and
/// blank lines left out.
fn commands(lines: &[&str]) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for line in lines {
        let t = line.trim();
        if cur.is_empty() && (t.is_empty() || t.starts_with('#')) {
            continue;
        }
        match t.strip_suffix('\\') {
            Some(part) => {
                cur.push_str(part);
                cur.push(' ');
            }
            None => {
                cur.push_str(t);
                out.push(std::mem::take(&mut cur));
            }
        }
    }
    if !cur.trim().is_empty() {
        out.push(cur);
    }
    out
}

struct Runner {
    scratch: tempfile::TempDir,
    course: PathBuf,
    path: String,
    cache: HashMap<String, Result<String, String>>,
    fresh: usize,
}

impl Runner {
    fn new() -> Runner {
        let scratch = tempfile::tempdir().expect("scratch directory");
        let course = scratch.path().join("repo");
        std::fs::create_dir_all(course.join("output")).expect("output/");
        // `../shared` from the course directory is the project's.
        #[cfg(unix)]
        if let Ok(real) = Path::new(ROOT).join("../shared").canonicalize() {
            std::os::unix::fs::symlink(real, scratch.path().join("shared")).expect("link");
        }
        let bins = Path::new(env!("CARGO_BIN_EXE_00_generate"))
            .parent()
            .expect("the binaries' directory")
            .to_path_buf();
        let path = match std::env::var_os("PATH") {
            Some(p) => format!("{}:{}", bins.display(), p.to_string_lossy()),
            None => bins.display().to_string(),
        };
        let runner = Runner {
            scratch,
            course,
            path,
            cache: HashMap::new(),
            fresh: 0,
        };
        if let Err(e) = runner.sh(&runner.course, "squeezed-signals -q") {
            panic!("the course on the default data failed: {e}");
        }
        runner
    }

    /// Runs a command with `sh -c` in `dir`; its standard output, or why it failed.
    fn sh(&self, dir: &Path, command: &str) -> Result<String, String> {
        let out = Command::new("sh")
            .arg("-c")
            .arg(translate(command))
            .current_dir(dir)
            .env("PATH", &self.path)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot start sh: {e}"))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(format!(
                "`{}` failed ({}): {}{}",
                translate(command),
                out.status,
                String::from_utf8_lossy(&out.stderr),
                String::from_utf8_lossy(&out.stdout)
            ))
        }
    }

    /// Runs a `run:` or `quote:` command in the course directory, once.
    fn output(&mut self, command: &str) -> Result<String, String> {
        if let Some(r) = self.cache.get(command) {
            return r.clone();
        }
        let r = self.sh(&self.course, command);
        self.cache.insert(command.to_string(), r.clone());
        r
    }

    /// A new directory beside the course, with an empty `output/` as a clone has.
    fn fresh_dir(&mut self) -> PathBuf {
        self.fresh += 1;
        let dir = self.scratch.path().join(format!("fresh-{}", self.fresh));
        std::fs::create_dir_all(dir.join("output")).expect("fresh output/");
        dir
    }

    /// Whether what a marker needs is there.
    fn has(&self, needs: &Option<String>) -> bool {
        needs.as_ref().is_none_or(|p| self.course.join(p).exists())
    }
}

// ---------------------------------------------------------------------------
// Checking a file

#[derive(Default)]
struct Outcome {
    failures: Vec<String>,
    notes: Vec<String>,
    checked: usize,
}

/// The paragraph after a marker, on one line with single spaces.
fn paragraph(lines: &[&str], t: &Target) -> String {
    lines[t.start..t.end]
        .join(" ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

fn first_difference(want: &[String], got: &[String]) -> String {
    for i in 0..want.len().max(got.len()) {
        let (w, g) = (want.get(i), got.get(i));
        if w != g {
            return format!(
                "first difference at line {} of the block:\n  book: {}\n  run:  {}",
                i + 1,
                w.map_or("(none)", |s| s.as_str()),
                g.map_or("(none)", |s| s.as_str())
            );
        }
    }
    String::new()
}

/// The block's new text: the run's lines, keeping each old line that
/// compares equal to its new one (its timings stay those of the run that
/// wrote the book).
fn blessed(old: &[&str], new: &[String]) -> Vec<String> {
    new.iter()
        .enumerate()
        .map(|(i, n)| match old.get(i) {
            Some(o) if old.len() == new.len() && normalize_line(o) == normalize_line(n) => {
                o.to_string()
            }
            _ => n.clone(),
        })
        .collect()
}

/// What a check does: rewrite differing blocks, run the slow markers.
#[derive(Clone, Copy)]
struct Mode {
    bless: bool,
    slow: bool,
}

fn check_file(runner: &mut Runner, rel: &str, mode: Mode, all_marked: bool, out: &mut Outcome) {
    let Mode { bless, slow } = mode;
    let path = Path::new(ROOT).join(rel);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{rel}: {e}"));
    let lines: Vec<&str> = text.lines().collect();
    let found = match markers(&lines) {
        Ok(m) => m,
        Err(e) => {
            out.failures.push(format!("{rel}: {e}"));
            return;
        }
    };
    let mut edits: Vec<(usize, usize, Vec<String>)> = Vec::new();
    let mut marked_fences = Vec::new();
    for m in &found {
        let at = format!("{rel}:{}", m.line);
        let Some(t) = target(&lines, m.after) else {
            out.failures
                .push(format!("{at}: nothing follows the marker"));
            continue;
        };
        if m.slow && !slow {
            marked_fences.extend(t.fence);
            out.notes
                .push(format!("{at}: skipped: slow (SSIG_BOOK_SLOW=1 runs it)"));
            continue;
        }
        if m.kind != Kind::NotRun && !runner.has(&m.needs) {
            marked_fences.extend(t.fence);
            out.notes.push(format!(
                "{at}: skipped: there is no {}",
                m.needs.as_deref().unwrap_or_default()
            ));
            continue;
        }
        match &m.kind {
            Kind::NotRun => marked_fences.extend(t.fence),
            Kind::Run { command, show } => {
                marked_fences.extend(t.fence);
                out.checked += 1;
                let printed = match runner.output(command) {
                    Ok(o) => o,
                    Err(e) => {
                        out.failures.push(format!("{at}: {e}"));
                        continue;
                    }
                };
                let got = match show {
                    Some(spec) => match select(&printed, spec) {
                        Ok(g) => g,
                        Err(e) => {
                            out.failures
                                .push(format!("{at}: {e}\n--- the run printed\n{printed}"));
                            continue;
                        }
                    },
                    None => printed.lines().map(|l| l.trim_end().to_string()).collect(),
                };
                let mut got = got;
                while got.last().is_some_and(|l| l.is_empty()) {
                    got.pop();
                }
                let want = &lines[t.start..t.end];
                if normalize(want) == normalize(&got) {
                    continue;
                }
                if bless {
                    edits.push((t.start, t.end, blessed(want, &got)));
                } else {
                    out.failures.push(format!(
                        "{at}: the block differs from what `{command}` prints\n{}\n--- the run printed (SSIG_BLESS=1 cargo test --release --test book writes it)\n{}",
                        first_difference(&normalize(want), &normalize(&got)),
                        got.join("\n")
                    ));
                }
            }
            Kind::Quote { command, figures } => {
                out.checked += 1;
                let printed = match runner.output(command) {
                    Ok(o) => o,
                    Err(e) => {
                        out.failures.push(format!("{at}: {e}"));
                        continue;
                    }
                };
                let printed_n = normalize(&printed.lines().collect::<Vec<_>>()).join("\n");
                let prose = paragraph(&lines, &t);
                for f in figures {
                    if !printed_n.contains(&normalize_line(f)) {
                        out.failures.push(format!(
                            "{at}: `{command}` does not print {f:?}; it printed\n{printed}"
                        ));
                    }
                    if !prose.contains(f.as_str()) {
                        out.failures.push(format!(
                            "{at}: the text after the marker does not quote {f:?}"
                        ));
                    }
                }
            }
            Kind::EachLine {
                fresh,
                points,
                skip,
            } => {
                let dir = if *fresh {
                    runner.fresh_dir()
                } else {
                    runner.course.clone()
                };
                let mut skipped = 0;
                for c in commands(&lines[t.start..t.end]) {
                    if skip.iter().any(|w| c.contains(w.as_str())) {
                        skipped += 1;
                        continue;
                    }
                    let c = match points {
                        Some(p) => with_points(&c, p),
                        None => c,
                    };
                    out.checked += 1;
                    if let Err(e) = runner.sh(&dir, &c) {
                        out.failures.push(format!("{at}: {e}"));
                        break;
                    }
                }
                if skipped > 0 {
                    out.notes.push(format!(
                        "{at}: left out {skipped} line(s) naming {}",
                        skip.join(" ")
                    ));
                }
            }
        }
    }
    if all_marked {
        let mut fence = false;
        for (i, l) in lines.iter().enumerate() {
            let t = l.trim_start();
            if !t.starts_with("```") {
                continue;
            }
            if !fence && t.trim_end() == "```text" && !marked_fences.contains(&i) {
                out.failures.push(format!(
                    "{rel}:{}: a text block without a marker: `<!-- run: COMMAND -->` if a command prints it, `<!-- not run: why -->` if not",
                    i + 1
                ));
            }
            fence = !fence;
        }
    }
    if !edits.is_empty() {
        let mut new: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
        edits.sort_by_key(|e| std::cmp::Reverse(e.0));
        for (start, end, block) in edits {
            new.splice(start..end, block);
        }
        let mut joined = new.join("\n");
        if text.ends_with('\n') {
            joined.push('\n');
        }
        std::fs::write(&path, joined).unwrap_or_else(|e| panic!("{rel}: {e}"));
        out.notes.push(format!("{rel}: blessed"));
    }
}

/// The chapters of [`CHAPTERS`], then the other Markdown files of the book.
fn files() -> Vec<(String, bool)> {
    let mut out: Vec<(String, bool)> = CHAPTERS.iter().map(|f| (f.to_string(), true)).collect();
    let mut others: Vec<String> = std::fs::read_dir(Path::new(ROOT).join("docs/src"))
        .expect("docs/src")
        .filter_map(|e| e.ok())
        .map(|e| format!("docs/src/{}", e.file_name().to_string_lossy()))
        .filter(|f| f.ends_with(".md") && !CHAPTERS.contains(&f.as_str()))
        .collect();
    others.sort();
    out.extend(others.into_iter().map(|f| (f, false)));
    out
}

#[test]
fn the_book_and_the_readme_say_what_the_program_prints() {
    let bless = std::env::var_os("SSIG_BLESS").is_some();
    let slow = std::env::var_os("SSIG_BOOK_SLOW").is_some();
    assert!(
        !(bless && cfg!(debug_assertions)),
        "bless with a release build (cargo test --release --test book): the blocks keep the timings of the run"
    );
    let mut runner = Runner::new();
    let mut outcome = Outcome::default();
    for (file, all_marked) in files() {
        check_file(
            &mut runner,
            &file,
            Mode { bless, slow },
            all_marked,
            &mut outcome,
        );
    }
    for n in &outcome.notes {
        eprintln!("{n}");
    }
    eprintln!("{} markers checked", outcome.checked);
    assert!(
        outcome.failures.is_empty(),
        "{}",
        outcome.failures.join("\n\n")
    );
    assert!(
        outcome.checked >= 10,
        "only {} markers checked",
        outcome.checked
    );
}

// ---------------------------------------------------------------------------
// The checker's own rules

#[test]
fn durations_compare_equal_to_any_other() {
    assert_eq!(
        normalize_line("  wrote in 54.2 ms, read back in 3.1 ms, verified"),
        normalize_line("  wrote in 4.0 ms, read back in 13.25 ms, verified")
    );
    assert_eq!(mask_durations("in 0.45 s."), "in <duration>.");
    assert_eq!(
        mask_durations("12.0 µs, 93.1 M samples/s"),
        "<duration>, <duration>"
    );
}

#[test]
fn settings_and_sizes_are_not_durations() {
    for s in [
        "jitter=5ms",
        "interval=15s",
        "(2.5m)",
        "4.2h",
        "10 samples",
        "1429 B",
        "3 series",
    ] {
        assert_eq!(mask_durations(s), s);
    }
}

#[test]
fn table_columns_of_any_width_compare_equal() {
    assert_eq!(
        normalize_line("│ 00    ┆  4.1 ms ┆ yes │"),
        normalize_line("│ 00    ┆ 118.7 ms ┆ yes │")
    );
    assert_eq!(normalize_line("┌───┬──┐"), normalize_line("┌─┬─────┐"));
    assert_ne!(
        normalize_line("│ 785.9 KiB │"),
        normalize_line("│ 785.8 KiB │")
    );
}

#[test]
fn show_picks_lines_and_marks_each_gap() {
    let out = "a\nb\nc\nchecked 3\nd\nlist 1\nlist 2\ne\n";
    assert_eq!(
        select(out, r#"1-2, "checked", "list 2"-end"#).unwrap(),
        ["a", "b", "…", "checked 3", "…", "list 2", "e"]
    );
    assert_eq!(
        select(out, r#""c"-"list 1""#).unwrap(),
        ["c", "checked 3", "d", "list 1"]
    );
    assert!(select(out, r#""missing""#).is_err());
    assert!(select(out, "3, 1").is_err());
}

#[test]
fn cargo_run_is_read_as_the_binary() {
    assert_eq!(
        translate("cargo run --release --bin 04_custom_binary -- inspect --blocks 2"),
        "04_custom_binary inspect --blocks 2"
    );
    assert_eq!(
        translate("cargo run --release --bin 01_ndjson"),
        "01_ndjson"
    );
    assert_eq!(
        translate("cargo run --release -- --report-only   # gather"),
        "squeezed-signals --report-only   # gather"
    );
    assert_eq!(translate("cargo run --release"), "squeezed-signals");
    assert_eq!(
        with_points("00_generate --points 200000 --series 100", "20000"),
        "00_generate --points 20000 --series 100"
    );
}

#[test]
fn markers_are_read_with_their_fields() {
    let text = "<!-- run: 04_custom_binary inspect\n     show: 1-3 -->\n```text\nx\n```\n<!-- just a comment -->\n<!-- quote: 01_ndjson\n     figures: \"188.4 bytes\", \"86%\" -->\nIt is 188.4 bytes, 86%.\n";
    let lines: Vec<&str> = text.lines().collect();
    let m = markers(&lines).unwrap();
    assert_eq!(m.len(), 2);
    assert_eq!(
        m[0].kind,
        Kind::Run {
            command: "04_custom_binary inspect".into(),
            show: Some("1-3".into())
        }
    );
    assert_eq!(
        target(&lines, m[0].after),
        Some(Target {
            start: 3,
            end: 4,
            fence: Some(2)
        })
    );
    assert_eq!(
        m[1].kind,
        Kind::Quote {
            command: "01_ndjson".into(),
            figures: vec!["188.4 bytes".into(), "86%".into()]
        }
    );
    assert!(parse_marker("run: x\nfigures: \"a\"").is_err());
    assert_eq!(
        parse_marker("quote: x\nneeds: ../shared/a.csv\nfigures: \"1\"")
            .unwrap()
            .unwrap()
            .1
            .as_deref(),
        Some("../shared/a.csv")
    );
}
