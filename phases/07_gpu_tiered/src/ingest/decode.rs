//! Ingest bodies to record batches: a JSON array of records, NDJSON, or an
//! Arrow IPC stream. Every byte here comes from a client, so every length
//! is checked against the body before it is used, nothing is allocated
//! from a length field, and a failure is an error that says what and
//! where, never a panic.
//!
//! **JSON and NDJSON** are read straight into column vectors: each record
//! is a JSON object whose keys are the store's columns, read key by key by
//! serde (strings borrowed from the body when they hold no escapes), with
//! no intermediate `serde_json::Value` tree. A request therefore holds its
//! body plus its columns (about 30 bytes a simple record), not a tree of
//! values ten times the size of the text.
//!
//! **Arrow IPC streams** are walked message by message and checked before
//! arrow-ipc decodes anything:
//!
//! ```text
//! | 0xFFFFFFFF (4B, optional) | meta_len: i32 LE (4B) | Message flatbuffer (meta_len) | body (bodyLength) |
//! | ... more messages ...                                                                              |
//! | 0xFFFFFFFF | 0x00000000 |   <- end of stream (optional)
//! ```
//!
//! 1. `meta_len` must be at least 0 and fit in what is left of the body;
//!    the flatbuffer is verified (`root_as_message`).
//! 2. `bodyLength` must be at least 0 and fit in what is left.
//! 3. The first message is the schema. Its fields must be the store's
//!    columns (names, order, types: UTC nanosecond timestamps, `Utf8`,
//!    `Float64`, `Int64`, `Int32`), little-endian, with no dictionaries or
//!    children. Only then is anything decoded, against the store's own
//!    schema (arrow-ipc's schema conversion is never run on client bytes).
//! 4. Each record batch: no compression, no variadic buffers, a length of
//!    at least 0, one field node per column with the batch's length and a
//!    null count in `0..=length`, the exact number of buffers (two per
//!    fixed-width column, three per string column), each inside the body,
//!    values buffers large enough for `length` rows. Dictionary batches and
//!    other messages are refused.
//! 5. arrow-ipc's `RecordBatchDecoder` decodes the batch with its own
//!    validation on (offsets, UTF-8, null counts), zero-copy from the body.
//!
//! The decoding runs inside `catch_unwind` as a last line: a panic there is
//! counted ([`decoder_panics`]) and answered as a bad body, never a dead
//! process. A body held in memory is the only allocation that can be large,
//! and the server bounds it before reading it.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use arrow_array::builder::StringBuilder;
use arrow_array::{
    ArrayRef, Float64Array, Int32Array, Int64Array, RecordBatch, TimestampNanosecondArray,
};
use arrow_schema::{DataType, SchemaRef};
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

use crate::error::Error;
use crate::schema::{Mode, UTC};

/// How an ingest body is encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// `application/json`: one JSON array of record objects.
    Json,
    /// `application/x-ndjson`: one record object per line.
    Ndjson,
    /// `application/vnd.apache.arrow.stream`: an Arrow IPC stream.
    ArrowStream,
}

/// Why a body was refused: a message, and the field it is about if any.
#[derive(Clone, Debug, PartialEq)]
pub struct BodyError {
    pub message: String,
    pub field: Option<String>,
}

impl BodyError {
    fn new(message: impl Into<String>) -> BodyError {
        BodyError {
            message: message.into(),
            field: None,
        }
    }

    fn field(row: usize, field: &str, what: &str) -> BodyError {
        BodyError {
            message: format!("record {row}: field `{field}` {what}"),
            field: Some(field.to_string()),
        }
    }
}

impl fmt::Display for BodyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<Error> for BodyError {
    fn from(e: Error) -> Self {
        BodyError::new(e.to_string())
    }
}

static PANICS: AtomicU64 = AtomicU64::new(0);

/// Panics caught while decoding bodies since the process started (each was
/// answered as a bad body). The fuzz test expects none: the checks above
/// should refuse every body before arrow-ipc could panic on it.
pub fn decoder_panics() -> u64 {
    PANICS.load(Ordering::Relaxed)
}

/// Decodes `body` as `format` into one batch of the store's schema (a
/// request is stored whole or not at all), checked by
/// [`crate::schema::validate`].
pub fn decode(mode: Mode, format: Format, body: bytes::Bytes) -> Result<RecordBatch, BodyError> {
    match std::panic::catch_unwind(AssertUnwindSafe(|| match format {
        Format::Json => json_array(mode, &body),
        Format::Ndjson => ndjson(mode, &body),
        Format::ArrowStream => arrow_stream(mode, body.clone()),
    })) {
        Ok(r) => r,
        Err(_) => {
            PANICS.fetch_add(1, Ordering::Relaxed);
            Err(BodyError::new(
                "the body could not be decoded (the decoder failed on it)",
            ))
        }
    }
}

// ---- JSON ----

/// The store's column names, as JSON records spell them.
fn column_names(mode: Mode) -> &'static [&'static str] {
    const TRADING: [&str; 8] = [
        "timestamp",
        "symbol",
        "price",
        "volume",
        "side",
        "exchange",
        "trade_id",
        "flags",
    ];
    match mode {
        Mode::Simple => &TRADING[..4],
        Mode::Trading => &TRADING,
    }
}

/// Column vectors being filled, one record at a time.
struct Columns {
    mode: Mode,
    ts: Vec<i64>,
    symbol: StringBuilder,
    price: Vec<f64>,
    volume: Vec<f64>,
    side: StringBuilder,
    exchange: StringBuilder,
    trade_id: Vec<i64>,
    flags: Vec<i32>,
}

impl Columns {
    /// `body_len` bounds the records: a record takes at least 40 bytes of
    /// JSON, so capacity for `body_len / 40` rows is never more than the
    /// body could fill (and untouched capacity costs no memory).
    fn new(mode: Mode, body_len: usize) -> Columns {
        let rows = body_len / 40;
        let trading = mode == Mode::Trading;
        Columns {
            mode,
            ts: Vec::with_capacity(rows),
            symbol: StringBuilder::new(),
            price: Vec::with_capacity(rows),
            volume: Vec::with_capacity(rows),
            side: StringBuilder::new(),
            exchange: StringBuilder::new(),
            trade_id: Vec::with_capacity(if trading { rows } else { 0 }),
            flags: Vec::with_capacity(if trading { rows } else { 0 }),
        }
    }

    fn rows(&self) -> usize {
        self.ts.len()
    }

    fn finish(mut self) -> Result<RecordBatch, BodyError> {
        let mut columns: Vec<ArrayRef> = vec![
            Arc::new(TimestampNanosecondArray::from(self.ts).with_timezone(UTC)),
            Arc::new(self.symbol.finish()),
            Arc::new(Float64Array::from(self.price)),
            Arc::new(Float64Array::from(self.volume)),
        ];
        if self.mode == Mode::Trading {
            columns.push(Arc::new(self.side.finish()));
            columns.push(Arc::new(self.exchange.finish()));
            columns.push(Arc::new(Int64Array::from(self.trade_id)));
            columns.push(Arc::new(Int32Array::from(self.flags)));
        }
        let batch = RecordBatch::try_new(self.mode.schema(), columns)
            .map_err(|e| Error::arrow("building records", e))?;
        crate::schema::validate(self.mode, &batch)?;
        Ok(batch)
    }
}

/// A string from the body: borrowed unless it had escapes.
struct Text<'de>(Cow<'de, str>);

impl<'de> Deserialize<'de> for Text<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Owned(v.to_string())))
            }
            fn visit_string<E>(self, v: String) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V)
    }
}

/// One JSON value of a record, as little as the checks need: numbers and
/// strings kept, anything else skipped without being stored.
enum Scalar<'de> {
    Int(i64),
    UInt(u64),
    Float(f64),
    Text(Cow<'de, str>),
    Other,
}

impl<'de> Deserialize<'de> for Scalar<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Scalar<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_i64<E>(self, v: i64) -> Result<Scalar<'de>, E> {
                Ok(Scalar::Int(v))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Scalar<'de>, E> {
                Ok(Scalar::UInt(v))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Scalar<'de>, E> {
                Ok(Scalar::Float(v))
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Scalar<'de>, E> {
                Ok(Scalar::Text(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Scalar<'de>, E> {
                Ok(Scalar::Text(Cow::Owned(v.to_string())))
            }
            fn visit_string<E>(self, v: String) -> Result<Scalar<'de>, E> {
                Ok(Scalar::Text(Cow::Owned(v)))
            }
            fn visit_bool<E>(self, _: bool) -> Result<Scalar<'de>, E> {
                Ok(Scalar::Other)
            }
            fn visit_unit<E>(self) -> Result<Scalar<'de>, E> {
                Ok(Scalar::Other)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut s: A) -> Result<Scalar<'de>, A::Error> {
                while s.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Scalar::Other)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Scalar<'de>, A::Error> {
                while m.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Scalar::Other)
            }
        }
        d.deserialize_any(V)
    }
}

/// One record's fields as they arrive, by column position.
#[derive(Default)]
struct Record<'de> {
    ts: Option<i64>,
    symbol: Option<Cow<'de, str>>,
    price: Option<f64>,
    volume: Option<f64>,
    side: Option<Cow<'de, str>>,
    exchange: Option<Cow<'de, str>>,
    trade_id: Option<i64>,
    flags: Option<i32>,
}

/// Reads one record object into [`Columns`]. A field error is left in
/// `error` (serde's error type cannot carry the field), and the parse
/// stops.
struct RecordSeed<'a> {
    cols: &'a mut Columns,
    row: usize,
    error: &'a mut Option<BodyError>,
}

impl RecordSeed<'_> {
    fn fail<E: de::Error>(self, e: BodyError) -> E {
        let text = e.message.clone();
        *self.error = Some(e);
        E::custom(text)
    }
}

impl<'de> DeserializeSeed<'de> for RecordSeed<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

const NOT_AN_OBJECT: &str = "is not a JSON object";

impl<'de> Visitor<'de> for RecordSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a record (a JSON object)")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mode = self.cols.mode;
        let names = column_names(mode);
        let row = self.row;
        let mut r = Record::default();
        while let Some(Text(key)) = map.next_key::<Text<'de>>()? {
            let Some(col) = names.iter().position(|n| *n == key) else {
                let e = BodyError::field(
                    row,
                    &key,
                    &format!("is not a column ({})", names.join(", ")),
                );
                return Err(self.fail(e));
            };
            let name = names[col];
            let value: Scalar<'de> = map.next_value()?;
            let err = |what: &str| BodyError::field(row, name, what);
            let given = match col {
                0 => r.ts.is_some(),
                1 => r.symbol.is_some(),
                2 => r.price.is_some(),
                3 => r.volume.is_some(),
                4 => r.side.is_some(),
                5 => r.exchange.is_some(),
                6 => r.trade_id.is_some(),
                _ => r.flags.is_some(),
            };
            if given {
                return Err(self.fail(err("is given twice")));
            }
            let checked: Result<(), BodyError> = (|| {
                match col {
                    0 => {
                        let bad = || err("must be integer nanoseconds or a UTC time");
                        r.ts = Some(match value {
                            Scalar::Int(v) => v,
                            Scalar::UInt(v) => i64::try_from(v).map_err(|_| bad())?,
                            Scalar::Text(s) => {
                                squeeze::time::parse_timestamp(&s).map_err(|why| {
                                    err(&format!("{why} (write 2024-01-01T00:00:00Z)"))
                                })?
                            }
                            _ => return Err(bad()),
                        })
                    }
                    1 | 4 | 5 => {
                        let Scalar::Text(s) = value else {
                            return Err(err("must be a string"));
                        };
                        match col {
                            1 => r.symbol = Some(s),
                            4 => r.side = Some(s),
                            _ => r.exchange = Some(s),
                        }
                    }
                    2 | 3 => {
                        let v = match value {
                            Scalar::Int(v) => v as f64,
                            Scalar::UInt(v) => v as f64,
                            Scalar::Float(v) => v,
                            _ => return Err(err("must be a number")),
                        };
                        if col == 2 {
                            r.price = Some(v)
                        } else {
                            r.volume = Some(v)
                        }
                    }
                    _ => {
                        let v = match value {
                            Scalar::Int(v) => v,
                            Scalar::UInt(v) => {
                                i64::try_from(v).map_err(|_| err("must be an integer"))?
                            }
                            _ => return Err(err("must be an integer")),
                        };
                        if col == 6 {
                            r.trade_id = Some(v)
                        } else {
                            r.flags = Some(i32::try_from(v).map_err(|_| err("must fit 32 bits"))?)
                        }
                    }
                }
                Ok(())
            })();
            if let Err(e) = checked {
                return Err(self.fail(e));
            }
        }
        let missing = |f: &str| BodyError::field(row, f, "is missing");
        let (Some(ts), Some(symbol), Some(price), Some(volume)) =
            (r.ts, r.symbol.as_ref(), r.price, r.volume)
        else {
            let name = [
                ("timestamp", r.ts.is_none()),
                ("symbol", r.symbol.is_none()),
                ("price", r.price.is_none()),
            ]
            .iter()
            .find(|(_, absent)| *absent)
            .map_or("volume", |(n, _)| n);
            return Err(self.fail(missing(name)));
        };
        if mode == Mode::Trading {
            let (Some(side), Some(exchange), Some(trade_id), Some(flags)) =
                (r.side.as_ref(), r.exchange.as_ref(), r.trade_id, r.flags)
            else {
                let name = [
                    ("side", r.side.is_none()),
                    ("exchange", r.exchange.is_none()),
                    ("trade_id", r.trade_id.is_none()),
                ]
                .iter()
                .find(|(_, absent)| *absent)
                .map_or("flags", |(n, _)| n);
                return Err(self.fail(missing(name)));
            };
            self.cols.side.append_value(side);
            self.cols.exchange.append_value(exchange);
            self.cols.trade_id.push(trade_id);
            self.cols.flags.push(flags);
        }
        self.cols.ts.push(ts);
        self.cols.symbol.append_value(symbol);
        self.cols.price.push(price);
        self.cols.volume.push(volume);
        Ok(())
    }

    // Anything but an object.
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        let row = self.row;
        Err(self.fail(BodyError::new(format!("record {row} {NOT_AN_OBJECT}"))))
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        self.visit_bool(false)
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        self.visit_bool(false)
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        self.visit_bool(false)
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        self.visit_bool(false)
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.visit_bool(false)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        self.visit_bool(false)
    }
}

/// The top-level array of a JSON body.
struct ArraySeed<'a> {
    cols: &'a mut Columns,
    error: &'a mut Option<BodyError>,
}

impl<'de> Visitor<'de> for ArraySeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON array of records")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        loop {
            let row = self.cols.rows();
            let seed = RecordSeed {
                cols: &mut *self.cols,
                row,
                error: &mut *self.error,
            };
            if seq.next_element_seed(seed)?.is_none() {
                return Ok(());
            }
        }
    }
}

/// A JSON array of record objects.
pub fn json_array(mode: Mode, body: &[u8]) -> Result<RecordBatch, BodyError> {
    let mut cols = Columns::new(mode, body.len());
    let mut error = None;
    let mut de = serde_json::Deserializer::from_slice(body);
    let parsed = de
        .deserialize_seq(ArraySeed {
            cols: &mut cols,
            error: &mut error,
        })
        .and_then(|()| de.end());
    if let Err(e) = parsed {
        return Err(error.unwrap_or_else(|| {
            BodyError::new(format!("body is not a JSON array of records: {e}"))
        }));
    }
    cols.finish()
}

/// One record object per line; blank lines are skipped.
pub fn ndjson(mode: Mode, body: &[u8]) -> Result<RecordBatch, BodyError> {
    let mut cols = Columns::new(mode, body.len());
    for (i, line) in body.split(|&b| b == b'\n').enumerate() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let mut error = None;
        let mut de = serde_json::Deserializer::from_slice(line);
        let row = cols.rows();
        let parsed = RecordSeed {
            cols: &mut cols,
            row,
            error: &mut error,
        }
        .deserialize(&mut de)
        .and_then(|()| de.end());
        if let Err(e) = parsed {
            return Err(
                error.unwrap_or_else(|| BodyError::new(format!("line {}: not JSON: {e}", i + 1)))
            );
        }
    }
    cols.finish()
}

// ---- Arrow IPC ----

const CONTINUATION: [u8; 4] = [0xFF; 4];

fn ipc_err(at: usize, what: impl fmt::Display) -> BodyError {
    BodyError::new(format!(
        "body is not an Arrow IPC stream of this store's columns: byte {at}: {what}"
    ))
}

/// Reads a little-endian i32 at `at`, if the body has 4 bytes there.
fn le_i32(body: &[u8], at: usize) -> Option<i32> {
    let b = body.get(at..at.checked_add(4)?)?;
    Some(i32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

/// An Arrow IPC stream, checked as the module documentation lists, then
/// decoded by arrow-ipc against the store's schema.
pub fn arrow_stream(mode: Mode, body: bytes::Bytes) -> Result<RecordBatch, BodyError> {
    let schema = mode.schema();
    let data = arrow_buffer::Buffer::from(body);
    let bytes: &[u8] = data.as_slice();
    let dictionaries: HashMap<i64, ArrayRef> = HashMap::new();
    let mut batches = Vec::new();
    let mut have_schema = false;
    let mut at = 0usize;
    while at < bytes.len() {
        let start = at;
        let mut len = le_i32(bytes, at).ok_or_else(|| ipc_err(at, "truncated message length"))?;
        at += 4;
        if len == -1 && bytes[start..start + 4] == CONTINUATION {
            len = le_i32(bytes, at).ok_or_else(|| ipc_err(at, "truncated message length"))?;
            at += 4;
        }
        if len == 0 {
            if at != bytes.len() {
                return Err(ipc_err(at, "bytes after the end-of-stream marker"));
            }
            break;
        }
        let meta_len = usize::try_from(len)
            .ok()
            .filter(|&l| l <= bytes.len() - at)
            .ok_or_else(|| {
                ipc_err(
                    start,
                    format!(
                        "message length {len} does not fit the {} bytes left",
                        bytes.len() - at
                    ),
                )
            })?;
        let message = arrow_ipc::root_as_message(&bytes[at..at + meta_len])
            .map_err(|e| ipc_err(at, format!("message is not a valid flatbuffer ({e})")))?;
        at += meta_len;
        let body_len = usize::try_from(message.bodyLength())
            .ok()
            .filter(|&l| l <= bytes.len() - at)
            .ok_or_else(|| {
                ipc_err(
                    start,
                    format!(
                        "message body length {} does not fit the {} bytes left",
                        message.bodyLength(),
                        bytes.len() - at
                    ),
                )
            })?;
        let body_at = at;
        at += body_len;
        match message.header_type() {
            arrow_ipc::MessageHeader::Schema => {
                if have_schema {
                    return Err(ipc_err(start, "a second schema message"));
                }
                let fb = message
                    .header_as_schema()
                    .ok_or_else(|| ipc_err(start, "schema message without a schema"))?;
                check_schema(mode, &schema, fb)?;
                have_schema = true;
            }
            arrow_ipc::MessageHeader::RecordBatch => {
                if !have_schema {
                    return Err(ipc_err(start, "record batch before the schema"));
                }
                let fb = message
                    .header_as_record_batch()
                    .ok_or_else(|| ipc_err(start, "record batch message without a batch"))?;
                check_batch(&schema, fb, body_len).map_err(|what| ipc_err(start, what))?;
                let buf = data.slice_with_length(body_at, body_len);
                let version = message.version();
                let batch = arrow_ipc::reader::RecordBatchDecoder::try_new(
                    &buf,
                    fb,
                    schema.clone(),
                    &dictionaries,
                    &version,
                )
                .and_then(|d| d.read_record_batch())
                .map_err(|e| ipc_err(start, e))?;
                batches.push(batch);
            }
            arrow_ipc::MessageHeader::DictionaryBatch => {
                return Err(ipc_err(
                    start,
                    "dictionary-encoded columns are not accepted (send plain Utf8 strings)",
                ))
            }
            other => return Err(ipc_err(start, format!("unexpected {other:?} message"))),
        }
    }
    if !have_schema {
        return Err(ipc_err(0, "no schema message"));
    }
    let all = arrow_select::concat::concat_batches(&schema, &batches)
        .map_err(|e| BodyError::new(format!("Arrow IPC body: {e}")))?;
    crate::schema::validate(mode, &all)?;
    Ok(all)
}

/// A flatbuffer field's type, for messages.
fn describe(field: &arrow_ipc::Field) -> String {
    let t = field.type_type();
    match t {
        arrow_ipc::Type::Int => field.type_as_int().map_or("Int".into(), |i| {
            format!(
                "{}Int{}",
                if i.is_signed() { "" } else { "U" },
                i.bitWidth()
            )
        }),
        arrow_ipc::Type::FloatingPoint => field
            .type_as_floating_point()
            .map_or("FloatingPoint".into(), |p| {
                format!("FloatingPoint({:?})", p.precision())
            }),
        arrow_ipc::Type::Timestamp => field.type_as_timestamp().map_or("Timestamp".into(), |ts| {
            format!(
                "Timestamp({:?}, {})",
                ts.unit(),
                ts.timezone().unwrap_or("no time zone")
            )
        }),
        other => format!("{other:?}"),
    }
}

/// The schema message must name the store's columns with their types.
fn check_schema(mode: Mode, want: &SchemaRef, fb: arrow_ipc::Schema) -> Result<(), BodyError> {
    let schema_err = |m: String| BodyError::from(Error::Schema(m));
    if fb.endianness() != arrow_ipc::Endianness::Little {
        return Err(schema_err("the stream is big-endian".into()));
    }
    let fields: Vec<arrow_ipc::Field> = fb.fields().map(|v| v.iter().collect()).unwrap_or_default();
    let names: Vec<&str> = fields.iter().map(|f| f.name().unwrap_or("")).collect();
    if fields.len() != want.fields().len() {
        return Err(schema_err(format!(
            "expected {} columns for {} mode ({}), got {} ({})",
            want.fields().len(),
            mode.name(),
            crate::schema::column_names(want).join(", "),
            names.len(),
            names.join(", ")
        )));
    }
    for (i, (w, g)) in want.fields().iter().zip(&fields).enumerate() {
        if names[i] != w.name() {
            return Err(schema_err(format!(
                "column {i} is named `{}`, expected `{}`",
                names[i],
                w.name()
            )));
        }
        let ok = g.dictionary().is_none()
            && g.children().is_none_or(|c| c.is_empty())
            && match w.data_type() {
                DataType::Timestamp(..) => g.type_as_timestamp().is_some_and(|t| {
                    t.unit() == arrow_ipc::TimeUnit::NANOSECOND && t.timezone() == Some(UTC)
                }),
                DataType::Utf8 => g.type_type() == arrow_ipc::Type::Utf8,
                DataType::Float64 => g
                    .type_as_floating_point()
                    .is_some_and(|p| p.precision() == arrow_ipc::Precision::DOUBLE),
                DataType::Int64 => g
                    .type_as_int()
                    .is_some_and(|t| t.is_signed() && t.bitWidth() == 64),
                DataType::Int32 => g
                    .type_as_int()
                    .is_some_and(|t| t.is_signed() && t.bitWidth() == 32),
                _ => false,
            };
        if !ok {
            let hint = match w.data_type() {
                DataType::Timestamp(..) => " (timestamps must be nanoseconds in UTC)",
                _ => "",
            };
            let dict = if g.dictionary().is_some() {
                " (dictionary-encoded)"
            } else {
                ""
            };
            return Err(schema_err(format!(
                "column `{}` has type {}{dict}, expected {}{hint}",
                w.name(),
                describe(g),
                w.data_type()
            )));
        }
    }
    Ok(())
}

/// The record batch header must describe exactly the store's columns, with
/// every buffer inside the message body and big enough for its rows.
fn check_batch(
    schema: &SchemaRef,
    fb: arrow_ipc::RecordBatch,
    body_len: usize,
) -> Result<(), String> {
    if fb.compression().is_some() {
        return Err("compressed record batches are not accepted".into());
    }
    if fb.variadicBufferCounts().is_some_and(|v| !v.is_empty()) {
        return Err("variadic buffers are not accepted".into());
    }
    let rows = usize::try_from(fb.length())
        .map_err(|_| format!("record batch length {} is negative", fb.length()))?;
    let nodes = fb.nodes().ok_or("record batch without field nodes")?;
    let buffers = fb.buffers().ok_or("record batch without buffers")?;
    if nodes.len() != schema.fields().len() {
        return Err(format!(
            "{} field nodes for {} columns",
            nodes.len(),
            schema.fields().len()
        ));
    }
    let want_buffers: usize = schema
        .fields()
        .iter()
        .map(|f| {
            if f.data_type() == &DataType::Utf8 {
                3
            } else {
                2
            }
        })
        .sum();
    if buffers.len() != want_buffers {
        return Err(format!(
            "{} buffers, expected {want_buffers}",
            buffers.len()
        ));
    }
    let mut next = 0;
    for (field, node) in schema.fields().iter().zip(nodes.iter()) {
        let name = field.name();
        if node.length() != fb.length() {
            return Err(format!(
                "column `{name}` has {} rows, the batch {rows}",
                node.length()
            ));
        }
        if !(0..=fb.length()).contains(&node.null_count()) {
            return Err(format!(
                "column `{name}` null count {} is not within 0..={rows}",
                node.null_count()
            ));
        }
        let n = if field.data_type() == &DataType::Utf8 {
            3
        } else {
            2
        };
        let mut lens = Vec::with_capacity(n);
        for k in 0..n {
            let b = buffers.get(next + k);
            let (off, len) = (b.offset(), b.length());
            let fits = usize::try_from(off)
                .ok()
                .zip(usize::try_from(len).ok())
                .and_then(|(o, l)| o.checked_add(l))
                .is_some_and(|end| end <= body_len);
            if !fits {
                return Err(format!(
                    "column `{name}` buffer {k} (offset {off}, length {len}) is outside the {body_len}-byte body"
                ));
            }
            lens.push(len as usize);
        }
        next += n;
        // Bytes the rows need: validity bits if there are nulls, then the
        // values (8 or 4 bytes a row), or the offsets (4 bytes a row, plus
        // one) of a string column.
        let need_validity = if node.null_count() > 0 {
            rows.div_ceil(8)
        } else {
            0
        };
        let need_values = match field.data_type() {
            DataType::Utf8 if rows > 0 => rows.checked_add(1).and_then(|r| r.checked_mul(4)),
            DataType::Utf8 => Some(0),
            DataType::Int32 => rows.checked_mul(4),
            _ => rows.checked_mul(8),
        };
        if lens[0] < need_validity || need_values.is_none_or(|need| lens[1] < need) {
            return Err(format!(
                "column `{name}` buffers are too short for {rows} rows"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_names_are_the_schema_names() {
        for mode in [Mode::Simple, Mode::Trading] {
            assert_eq!(
                column_names(mode),
                crate::schema::column_names(&mode.schema()).as_slice()
            );
        }
    }
}
