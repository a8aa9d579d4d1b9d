//! CSV records as RFC 4180 defines them: read by the `csv` crate, and held
//! to the RFC's quoting rules, which the crate (like Python's `csv`) does
//! not enforce.
//!
//! The crate reads `"1"2` as the field `12` and `AC"ME` as `AC"ME`, and
//! takes an unterminated quote at the end of a file as a field. RFC 4180
//! (section 2, rules 5 to 7) and Go's `encoding/csv` refuse all three: a
//! field is either quoted from its first to its last character, with every
//! quote inside it doubled, or holds no quote at all. A reader that guesses
//! changes data without saying so; this one stops at the record and says
//! why. Everything else (delimiters, CRLF, quoted line breaks, blank lines,
//! `#` comment lines when asked) is the crate's.
//!
//! The check looks at each record's raw bytes, kept by a small tee on the
//! input as the crate reads it; memory stays at one record plus the crate's
//! read-ahead.

use std::cell::RefCell;
use std::io::Read;
use std::rc::Rc;

/// A record that could not be read: where it starts and why.
#[derive(Debug)]
pub struct RecordError {
    /// 1-based line where the record starts (0 when unknown).
    pub line: u64,
    pub reason: String,
    /// The I/O error, when reading failed rather than parsing.
    pub io: Option<std::io::Error>,
}

/// Bytes read from the input that the checks have not passed yet.
#[derive(Default)]
struct Pending {
    /// Offset in the input of `bytes[0]`.
    base: u64,
    bytes: Vec<u8>,
}

/// Passes reads through, keeping a copy of what was read.
struct Tee<R> {
    inner: R,
    pending: Rc<RefCell<Pending>>,
}

impl<R: Read> Read for Tee<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.pending.borrow_mut().bytes.extend_from_slice(&buf[..n]);
        Ok(n)
    }
}

/// Strict RFC 4180 records from `R`.
pub struct Records<R: Read> {
    reader: csv::Reader<Tee<R>>,
    pending: Rc<RefCell<Pending>>,
}

impl<R: Read> Records<R> {
    /// Records of any number of fields, no header handling, `#` lines
    /// skipped as comments when `comments` is set.
    pub fn new(input: R, comments: bool) -> Self {
        let pending = Rc::new(RefCell::new(Pending::default()));
        let reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .comment(comments.then_some(b'#'))
            .from_reader(Tee {
                inner: input,
                pending: Rc::clone(&pending),
            });
        Records { reader, pending }
    }

    /// Reads the next record into `record`; `Ok(false)` at the end.
    pub fn read(&mut self, record: &mut csv::StringRecord) -> Result<bool, RecordError> {
        let line = self.reader.position().line();
        match self.reader.read_record(record) {
            Ok(true) => {}
            Ok(false) => return Ok(false),
            Err(e) => {
                let line = e.position().map_or(line, |p| p.line());
                let reason = format!("not CSV: {e}");
                return Err(match e.into_kind() {
                    csv::ErrorKind::Io(io) => RecordError {
                        line,
                        reason,
                        io: Some(io),
                    },
                    _ => RecordError {
                        line,
                        reason,
                        io: None,
                    },
                });
            }
        }
        let (start, line) = record
            .position()
            .map_or((0, line), |p| (p.byte(), p.line()));
        let end = self.reader.position().byte();
        let mut pending = self.pending.borrow_mut();
        let from = start.saturating_sub(pending.base) as usize;
        let to = (end.saturating_sub(pending.base) as usize).min(pending.bytes.len());
        if let Some(raw) = pending.bytes.get(from..to) {
            check_quotes(raw).map_err(|reason| RecordError {
                line,
                reason,
                io: None,
            })?;
        }
        let drop = to.min(pending.bytes.len());
        pending.bytes.drain(..drop);
        pending.base += drop as u64;
        Ok(true)
    }
}

/// Checks one record's raw bytes (up to its line end) against RFC 4180's
/// quoting rules.
pub fn check_quotes(raw: &[u8]) -> Result<(), String> {
    let n = raw.len();
    let mut i = 0;
    let mut field = 1;
    loop {
        if raw.get(i) == Some(&b'"') {
            i += 1;
            loop {
                match raw.get(i) {
                    None => {
                        return Err(format!(
                            "field {field}: a quoted field that never closes (a missing \")"
                        ))
                    }
                    Some(b'"') if raw.get(i + 1) == Some(&b'"') => i += 2,
                    Some(b'"') => {
                        i += 1;
                        break;
                    }
                    Some(_) => i += 1,
                }
            }
            match raw.get(i) {
                None | Some(b'\r' | b'\n') => return Ok(()),
                Some(b',') => i += 1,
                Some(&c) => {
                    return Err(format!(
                        "field {field}: {:?} after the closing quote (a quote inside a quoted \
                         field is written twice: \"\")",
                        char::from(c)
                    ))
                }
            }
        } else {
            while i < n && !matches!(raw[i], b',' | b'\r' | b'\n') {
                if raw[i] == b'"' {
                    return Err(format!(
                        "field {field}: a double quote inside an unquoted field (quote the \
                         whole field and write the quote twice)"
                    ));
                }
                i += 1;
            }
            if raw.get(i) != Some(&b',') {
                return Ok(());
            }
            i += 1;
        }
        field += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(text: &str) -> Result<Vec<Vec<String>>, String> {
        let mut records = Records::new(text.as_bytes(), true);
        let mut record = csv::StringRecord::new();
        let mut out = Vec::new();
        while records
            .read(&mut record)
            .map_err(|e| format!("{}: {}", e.line, e.reason))?
        {
            out.push(record.iter().map(str::to_string).collect());
        }
        Ok(out)
    }

    #[test]
    fn what_rfc_4180_allows_reads_as_the_crate_reads_it() {
        let got = read_all("a,\"b,c\",\"d\"\"e\"\r\n\"multi\nline\",,\"\"\n\n# comment\nlast,1,2")
            .unwrap();
        assert_eq!(
            got,
            vec![
                vec!["a", "b,c", "d\"e"],
                vec!["multi\nline", "", ""],
                vec!["last", "1", "2"],
            ]
        );
    }

    #[test]
    fn bad_quoting_is_an_error_naming_the_line_and_field() {
        for (text, want) in [
            (
                "ok,1,1\na,1704067200,\"1\"2\n",
                "2: field 3: '2' after the closing quote",
            ),
            ("t,\"AC\"ME,1\n", "1: field 2: 'M' after the closing quote"),
            (
                "t,AC\"ME,1\n",
                "1: field 2: a double quote inside an unquoted field",
            ),
            (
                "ok,1,1\nx,1,\"1",
                "2: field 3: a quoted field that never closes",
            ),
        ] {
            let err = read_all(text).unwrap_err();
            assert!(err.starts_with(want), "{text:?}: {err}");
        }
    }

    #[test]
    fn long_inputs_keep_only_a_record_in_memory() {
        let text: String = (0..20_000).map(|i| format!("s{i},\"{i}\",{i}\n")).collect();
        let mut records = Records::new(text.as_bytes(), false);
        let mut record = csv::StringRecord::new();
        let mut n = 0;
        while records.read(&mut record).unwrap() {
            n += 1;
            assert!(records.pending.borrow().bytes.len() < 64 * 1024);
        }
        assert_eq!(n, 20_000);
    }

    proptest::proptest! {
        #[test]
        fn the_check_never_panics(text in "[a,\"\r\n#]{0,40}") {
            let _ = read_all(&text);
            let _ = check_quotes(text.as_bytes());
        }
    }
}
