//! The write-ahead log: round trip, torn tails at every byte, bit flips.

use std::path::Path;
use std::sync::Arc;

use arrow_array::{Float64Array, RecordBatch, StringArray, TimestampNanosecondArray};
use tiered::error::Error;
use tiered::gen::Generator;
use tiered::schema::{Mode, UTC};
use tiered::store::wal::{self, Recovery, Wal};

fn write_log(dir: &Path, batches: &[RecordBatch]) -> Vec<u64> {
    let schema = Mode::Simple.schema();
    let rec = wal::replay(dir, &schema, 0, |_, _| Ok(())).unwrap();
    let log = Wal::open(dir, schema, &rec, 1 << 30, true).unwrap();
    batches.iter().map(|b| log.append(b).unwrap()).collect()
}

fn replay_all(dir: &Path) -> Result<(Recovery, Vec<(u64, RecordBatch)>), Error> {
    let mut out = Vec::new();
    let rec = wal::replay(dir, &Mode::Simple.schema(), 0, |lsn, b| {
        out.push((lsn, b));
        Ok(())
    })?;
    Ok((rec, out))
}

fn small_batches(n: usize, rows: usize) -> Vec<RecordBatch> {
    let mut g = Generator::new(Mode::Simple, 9, 3);
    (0..n).map(|_| g.batch(rows).unwrap()).collect()
}

fn the_segment(dir: &Path) -> std::path::PathBuf {
    let segs = wal::list_segments(dir).unwrap();
    assert_eq!(segs.len(), 1);
    segs[0].path.clone()
}

#[test]
fn replays_exactly_what_was_written_bit_for_bit() {
    let dir = tempfile::tempdir().unwrap();
    let odd = RecordBatch::try_new(
        Mode::Simple.schema(),
        vec![
            Arc::new(TimestampNanosecondArray::from(vec![0, 1, 2, 3]).with_timezone(UTC)),
            Arc::new(StringArray::from(vec!["a", "", "ü", "d"])),
            Arc::new(Float64Array::from(vec![
                f64::NAN,
                -0.0,
                f64::INFINITY,
                f64::NEG_INFINITY,
            ])),
            Arc::new(Float64Array::from(vec![
                f64::MIN_POSITIVE,
                0.0,
                -1.5,
                1e300,
            ])),
        ],
    )
    .unwrap();
    let mut batches = small_batches(3, 100);
    batches.push(odd);
    let lsns = write_log(dir.path(), &batches);
    assert_eq!(lsns, vec![1, 2, 3, 4]);
    let (rec, got) = replay_all(dir.path()).unwrap();
    assert!(rec.torn_tail.is_none());
    assert_eq!(rec.next_lsn, 5);
    assert_eq!(got.len(), 4);
    for ((lsn, b), (want_lsn, want)) in got.iter().zip(lsns.iter().zip(&batches)) {
        assert_eq!(lsn, want_lsn);
        assert_eq!(b, want);
    }
    let price = got[3]
        .1
        .column(2)
        .as_any()
        .downcast_ref::<Float64Array>()
        .unwrap();
    let want: Vec<u64> = [f64::NAN, -0.0, f64::INFINITY, f64::NEG_INFINITY]
        .iter()
        .map(|v| v.to_bits())
        .collect();
    let bits: Vec<u64> = price.values().iter().map(|v| v.to_bits()).collect();
    assert_eq!(bits, want);
}

#[test]
fn truncation_at_every_byte_of_the_last_record_keeps_the_ones_before() {
    let dir = tempfile::tempdir().unwrap();
    let batches = small_batches(3, 4);
    write_log(dir.path(), &batches[..2]);
    let seg = the_segment(dir.path());
    let two = std::fs::metadata(&seg).unwrap().len();
    write_log(dir.path(), &batches[2..]);
    let full = std::fs::read(&seg).unwrap();
    assert!(full.len() as u64 > two);
    for cut in two..full.len() as u64 {
        let case = tempfile::tempdir().unwrap();
        let path = case.path().join(seg.file_name().unwrap());
        std::fs::write(&path, &full[..cut as usize]).unwrap();
        let (rec, got) = replay_all(case.path()).unwrap();
        assert_eq!(got.len(), 2, "cut at {cut}");
        assert_eq!(got[1].1, batches[1]);
        if cut > two {
            let (bytes, _) = rec.torn_tail.clone().expect("a torn tail is reported");
            assert_eq!(bytes, cut - two, "cut at {cut}");
        }
        // The tail is cut off, and appending continues after record 2.
        assert_eq!(std::fs::metadata(&path).unwrap().len(), two);
        assert_eq!(rec.next_lsn, 3);
        let log = Wal::open(case.path(), Mode::Simple.schema(), &rec, 1 << 30, true).unwrap();
        assert_eq!(log.append(&batches[2]).unwrap(), 3);
        let (_, again) = replay_all(case.path()).unwrap();
        assert_eq!(again.len(), 3);
        assert_eq!(again[2].1, batches[2]);
    }
}

#[test]
fn a_flipped_bit_in_a_record_is_an_error_naming_the_segment() {
    let dir = tempfile::tempdir().unwrap();
    let batches = small_batches(3, 2);
    write_log(dir.path(), &batches[..1]);
    let seg = the_segment(dir.path());
    let one = std::fs::metadata(&seg).unwrap().len() as usize;
    write_log(dir.path(), &batches[1..2]);
    let two = std::fs::metadata(&seg).unwrap().len() as usize;
    write_log(dir.path(), &batches[2..]);
    let full = std::fs::read(&seg).unwrap();
    let name = seg.file_name().unwrap().to_str().unwrap().to_string();
    let mut checksum_errors = 0;
    // Every bit of the middle record.
    for byte in one..two {
        for bit in 0..8 {
            let case = tempfile::tempdir().unwrap();
            let mut bytes = full.clone();
            bytes[byte] ^= 1 << bit;
            std::fs::write(case.path().join(&name), &bytes).unwrap();
            match replay_all(case.path()) {
                Err(Error::Corrupt {
                    what,
                    offset,
                    reason,
                }) => {
                    assert!(what.contains(&name), "{what}");
                    assert_eq!(offset as usize, one, "flip at {byte}.{bit}: {reason}");
                    if reason.contains("checksum mismatch") {
                        checksum_errors += 1;
                    }
                }
                other => panic!("flip at byte {byte} bit {bit}: expected Corrupt, got {other:?}"),
            }
        }
    }
    // Most of a record is covered only by its checksum.
    assert!(checksum_errors > (two - one) * 4, "{checksum_errors}");
}

#[test]
fn a_flipped_bit_in_the_last_record_is_damage_not_a_torn_tail() {
    let dir = tempfile::tempdir().unwrap();
    let batches = small_batches(2, 2);
    write_log(dir.path(), &batches[..1]);
    let seg = the_segment(dir.path());
    let one = std::fs::metadata(&seg).unwrap().len() as usize;
    write_log(dir.path(), &batches[1..]);
    let full = std::fs::read(&seg).unwrap();
    let name = seg.file_name().unwrap().to_str().unwrap().to_string();
    // One flip in the body: the record is whole on disk, so it is damage.
    let mut bytes = full.clone();
    let at = bytes.len() - 3;
    bytes[at] ^= 0x10;
    std::fs::write(&seg, &bytes).unwrap();
    let e = replay_all(dir.path()).unwrap_err().to_string();
    assert!(
        e.contains("checksum mismatch")
            && e.contains("damage")
            && e.contains("repair --accept-loss"),
        "{e}"
    );
    assert_eq!(std::fs::read(&seg).unwrap(), bytes, "nothing was cut");
    // What repair --accept-loss does: cut it, the bytes kept.
    let options = wal::ScanOptions {
        owner: wal::Owner::none(),
        watermark: Some(0),
        cut_damaged_tail: true,
    };
    let mut rec =
        wal::scan_with(dir.path(), &Mode::Simple.schema(), &options, |_, _| Ok(())).unwrap();
    assert_eq!(rec.damaged_tail, Some(2));
    let keep = dir.path().join("kept");
    rec.apply_cut(&keep).unwrap();
    assert_eq!(std::fs::read(&seg).unwrap(), &bytes[..one]);
    let kept = rec.cut_kept.clone().unwrap();
    assert_eq!(
        std::fs::read(&kept).unwrap(),
        &bytes[one..],
        "the cut bytes are kept"
    );
    assert!(std::fs::read_to_string(format!("{}.why", kept.display()))
        .unwrap()
        .contains("damaged"));

    // Every bit of the last record: refused as damage, or (a flip that
    // makes a length reach past the end) cut as torn with its bytes kept;
    // never a changed record.
    let (mut refused, mut torn) = (0, 0);
    for byte in one..full.len() {
        for bit in 0..8 {
            let case = tempfile::tempdir().unwrap();
            let mut bytes = full.clone();
            bytes[byte] ^= 1 << bit;
            std::fs::write(case.path().join(&name), &bytes).unwrap();
            match replay_all(case.path()) {
                Err(Error::Corrupt { offset, reason, .. }) => {
                    assert_eq!(offset as usize, one, "{reason}");
                    assert!(reason.contains("repair --accept-loss"), "{reason}");
                    refused += 1;
                }
                Ok((rec, got)) => {
                    assert_eq!(got.len(), 1, "flip at {byte}.{bit}");
                    let kept = std::fs::read(rec.cut_kept.unwrap()).unwrap();
                    assert_eq!(kept, &bytes[one..], "flip at {byte}.{bit}: bytes kept");
                    torn += 1;
                }
                Err(e) => panic!("flip at {byte}.{bit}: {e}"),
            }
        }
    }
    eprintln!("last-record flips: {refused} refused as damage, {torn} cut as torn (bytes kept)");
    assert!(refused > torn * 10, "{refused} {torn}");
}

#[test]
fn zeros_after_the_last_record_are_a_torn_tail_and_are_kept() {
    let dir = tempfile::tempdir().unwrap();
    write_log(dir.path(), &small_batches(2, 3));
    let seg = the_segment(dir.path());
    let two = std::fs::read(&seg).unwrap();
    let mut bytes = two.clone();
    bytes.extend_from_slice(&[0u8; 4096]);
    std::fs::write(&seg, &bytes).unwrap();
    let (rec, got) = replay_all(dir.path()).unwrap();
    assert_eq!(got.len(), 2);
    assert!(rec.torn_tail.unwrap().1.contains("all zero"));
    assert_eq!(std::fs::read(&seg).unwrap(), two);
    assert_eq!(
        std::fs::read(rec.cut_kept.unwrap()).unwrap(),
        vec![0u8; 4096]
    );
}

#[test]
fn group_commit_shares_fsyncs_between_threads() {
    let dir = tempfile::tempdir().unwrap();
    let schema = Mode::Simple.schema();
    let rec = wal::replay(dir.path(), &schema, 0, |_, _| Ok(())).unwrap();
    let log = Wal::open(dir.path(), schema, &rec, 1 << 30, true).unwrap();
    let batches = small_batches(8, 50);
    let before = log.stats().fsyncs;
    std::thread::scope(|s| {
        for t in 0..8 {
            let log = &log;
            let batches = &batches;
            s.spawn(move || {
                for _ in 0..50 {
                    log.append(&batches[t]).unwrap();
                }
            });
        }
    });
    let stats = log.stats();
    assert_eq!(stats.records, 400);
    let fsyncs = stats.fsyncs - before;
    assert!(fsyncs <= 400, "{fsyncs}");
    let (_, got) = replay_all(dir.path()).unwrap();
    let lsns: Vec<u64> = got.iter().map(|g| g.0).collect();
    assert_eq!(lsns, (1..=400).collect::<Vec<_>>());
}

#[test]
fn segments_roll_over_and_replay_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let schema = Mode::Simple.schema();
    let rec = wal::replay(dir.path(), &schema, 0, |_, _| Ok(())).unwrap();
    let log = Wal::open(dir.path(), schema.clone(), &rec, 20_000, true).unwrap();
    let batches = small_batches(20, 200);
    for b in &batches {
        log.append(b).unwrap();
    }
    let segs = wal::list_segments(dir.path()).unwrap();
    assert!(segs.len() > 3, "{}", segs.len());
    let (_, got) = replay_all(dir.path()).unwrap();
    assert_eq!(got.len(), 20);
    assert!(got.iter().zip(&batches).all(|(g, b)| &g.1 == b));
    // Deleting through LSN 10 removes only segments wholly below it.
    drop(log);
    let log = Wal::open(
        dir.path(),
        schema,
        &replay_all(dir.path()).unwrap().0,
        20_000,
        true,
    )
    .unwrap();
    log.delete_through(10).unwrap();
    let mut lsns = Vec::new();
    wal::replay(dir.path(), &Mode::Simple.schema(), 10, |lsn, _| {
        lsns.push(lsn);
        Ok(())
    })
    .unwrap();
    assert_eq!(lsns, (11..=20).collect::<Vec<_>>());
}

#[test]
fn a_missing_segment_is_an_error_the_first_one_included() {
    let dir = tempfile::tempdir().unwrap();
    let schema = Mode::Simple.schema();
    let rec = wal::replay(dir.path(), &schema, 0, |_, _| Ok(())).unwrap();
    let log = Wal::open(dir.path(), schema.clone(), &rec, 20_000, true).unwrap();
    for b in &small_batches(20, 200) {
        log.append(b).unwrap();
    }
    drop(log);
    let segs = wal::list_segments(dir.path()).unwrap();
    assert!(segs.len() > 3, "{}", segs.len());
    let first = std::fs::read(&segs[0].path).unwrap();
    let before = std::fs::read(&segs[2].path).unwrap();
    // The first segment gone: the watermark (0) says LSN 1 must be there.
    std::fs::remove_file(&segs[0].path).unwrap();
    let e = replay_all(dir.path()).unwrap_err().to_string();
    let missing = format!("records 1..={} are missing", segs[1].first_lsn - 1);
    assert!(e.contains(&missing), "{e}");
    // A watermark past the missing records: nothing is lost, it replays.
    let mut lsns = Vec::new();
    wal::scan(dir.path(), &schema, segs[1].first_lsn - 1, |lsn, _| {
        lsns.push(lsn);
        Ok(())
    })
    .unwrap();
    assert_eq!(lsns.first(), Some(&segs[1].first_lsn));
    std::fs::write(&segs[0].path, &first).unwrap();
    // A middle segment gone.
    std::fs::remove_file(&segs[1].path).unwrap();
    let e = replay_all(dir.path()).unwrap_err().to_string();
    assert!(e.contains("are missing"), "{e}");
    // Every segment gone while the watermark says records were logged.
    for s in &segs {
        let _ = std::fs::remove_file(&s.path);
    }
    let e = wal::scan(dir.path(), &schema, 5, |_, _| Ok(()))
        .unwrap_err()
        .to_string();
    assert!(e.contains("no segment"), "{e}");
    // Scanning changes nothing: a torn tail is left for the caller to cut.
    std::fs::write(&segs[2].path, &before[..before.len() - 3]).unwrap();
    let rec = wal::scan_all(dir.path(), &schema).unwrap();
    assert!(rec.torn_tail.is_some() && rec.cut.is_some());
    assert_eq!(
        std::fs::read(&segs[2].path).unwrap().len(),
        before.len() - 3
    );
}

#[test]
fn a_keyed_record_carries_its_key_through_cuts_and_flips() {
    let dir = tempfile::tempdir().unwrap();
    let batches = small_batches(2, 5);
    write_log(dir.path(), &batches[..1]);
    let seg = the_segment(dir.path());
    let one = std::fs::metadata(&seg).unwrap().len();
    let schema = Mode::Simple.schema();
    let rec = wal::replay(dir.path(), &schema, 0, |_, _| Ok(())).unwrap();
    let log = Wal::open(dir.path(), schema, &rec, 1 << 30, true).unwrap();
    let encoded = Wal::encode(&batches[1]).unwrap();
    let fingerprint = encoded.fingerprint();
    assert_eq!(
        Wal::encode(&batches[1]).unwrap().fingerprint(),
        fingerprint,
        "the same batch has the same fingerprint"
    );
    assert_ne!(Wal::encode(&batches[0]).unwrap().fingerprint(), fingerprint);
    let stamp = wal::KeyStamp {
        key: "client-7/batch-0042".into(),
        fingerprint,
        created_s: 1_700_000_000,
    };
    assert_eq!(log.append_encoded(encoded, Some(&stamp)).unwrap(), 2);
    drop(log);
    let (rec, got) = replay_all(dir.path()).unwrap();
    assert_eq!(got.len(), 2);
    assert_eq!(got[1].1, batches[1]);
    assert_eq!(rec.keys, vec![(2, 5, stamp.clone())]);

    // Cuts inside the keyed record (every byte up to the body, then every
    // 16th): a torn tail, key and batch both gone.
    let full = std::fs::read(&seg).unwrap();
    let at = full
        .windows(stamp.key.len())
        .position(|w| w == stamp.key.as_bytes())
        .unwrap();
    let body = (at + 24 + 24 + 16) as u64;
    let cuts = (one..body).chain((body..full.len() as u64).step_by(16));
    for cut in cuts {
        let case = tempfile::tempdir().unwrap();
        std::fs::write(
            case.path().join(seg.file_name().unwrap()),
            &full[..cut as usize],
        )
        .unwrap();
        let (rec, got) = replay_all(case.path()).unwrap();
        assert_eq!(got.len(), 1, "cut at {cut}");
        assert!(rec.keys.is_empty(), "cut at {cut}: {:?}", rec.keys);
    }
    // A bit of every byte of the key block flipped: never a changed key.
    // The record is whole on disk: each flip is damage, refused.
    for byte in at..at + 24 + 24 {
        {
            let bit = byte % 8;
            let case = tempfile::tempdir().unwrap();
            let mut bad = full.clone();
            bad[byte] ^= 1 << bit;
            std::fs::write(case.path().join(seg.file_name().unwrap()), &bad).unwrap();
            match replay_all(case.path()) {
                Err(Error::Corrupt { offset, .. }) => assert_eq!(offset, one, "byte {byte}"),
                Ok((rec, _)) => panic!("byte {byte} bit {bit}: read as {:?}", rec.keys),
                Err(e) => panic!("byte {byte} bit {bit}: {e}"),
            }
        }
    }
}
