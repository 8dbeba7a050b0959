//! The on-disk part of a disk buffer: records appended to numbered segment files in one
//! directory (`data_dir/buffers/<sink>/00000000000000000001.seg`, …), read back in order by a
//! cursor of their own, and deleted a segment at a time once every record in it is acknowledged
//! (the disk buffer decides when; see `disk_buffer`).
//!
//! A record is framed as its length (u32), the CRC-32 of its sequence number and bytes (u32),
//! its sequence number (u64, one more than the record before it), then its bytes; all
//! little-endian. A crash can leave the last record of a segment torn and a disk can flip bits:
//! reading never fails on either. A record whose checksum does not match, or whose length
//! cannot be right, is damage: the reader looks for the next place in the segment where a whole
//! record with a matching checksum (and a plausible sequence number) starts, resumes there, and
//! reports where the damage was. The sequence numbers say how many records the damage took.

use std::fs::{File, OpenOptions};
use std::io::{BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// Bytes of a record's frame before its payload: length, checksum, sequence number.
pub const HEADER: usize = 16;
/// The largest record: a batch of entries, never near this.
pub const MAX_RECORD: usize = 64 << 20;

/// Where a record is: its segment's number and its offset in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Position {
    pub segment: u64,
    pub offset: u64,
}

/// Damage met while reading: where, and what was skipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Damage {
    pub segment: PathBuf,
    pub offset: u64,
    pub what: String,
}

/// One step of reading a segment.
#[derive(Debug)]
pub enum Step {
    Record {
        offset: u64,
        seq: u64,
        payload: Vec<u8>,
    },
    Damaged(Damage),
    /// Nothing more before the limit (yet, for the segment being written).
    End,
}

pub fn segment_path(dir: &Path, number: u64) -> PathBuf {
    dir.join(format!("{number:020}.seg"))
}

/// The segments in `dir`, oldest first, with their sizes. Other files are left alone.
pub fn list(dir: &Path) -> std::io::Result<Vec<(u64, u64)>> {
    let mut segments = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(number) = name
            .to_str()
            .and_then(|name| name.strip_suffix(".seg"))
            .and_then(|stem| stem.parse::<u64>().ok())
        else {
            continue;
        };
        segments.push((number, entry.metadata()?.len()));
    }
    segments.sort_unstable();
    Ok(segments)
}

fn checksum(seq: u64, payload: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&seq.to_le_bytes());
    hasher.update(payload);
    hasher.finalize()
}

/// Appends records to one new segment file.
pub struct SegmentWriter {
    number: u64,
    path: PathBuf,
    file: File,
    written: u64,
    frame: Vec<u8>,
}

impl SegmentWriter {
    /// Creates segment `number`; it must not exist (a segment is never written after a restart:
    /// a torn tail stays the last thing in its file).
    pub fn create(dir: &Path, number: u64) -> std::io::Result<Self> {
        let path = segment_path(dir, number);
        let file = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(&path)?;
        Ok(SegmentWriter {
            number,
            path,
            file,
            written: 0,
            frame: Vec::new(),
        })
    }

    pub fn number(&self) -> u64 {
        self.number
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Bytes written to the segment so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Appends one record; returns its offset. On an error nothing counts as written: a part
    /// that reached the file is cut off again (or, if that fails too, left as a torn record,
    /// skipped when read).
    pub fn append(&mut self, seq: u64, payload: &[u8]) -> std::io::Result<u64> {
        if payload.is_empty() || payload.len() > MAX_RECORD {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("a record of {} bytes cannot be framed", payload.len()),
            ));
        }
        self.frame.clear();
        self.frame
            .extend_from_slice(&(payload.len() as u32).to_le_bytes());
        self.frame
            .extend_from_slice(&checksum(seq, payload).to_le_bytes());
        self.frame.extend_from_slice(&seq.to_le_bytes());
        self.frame.extend_from_slice(payload);
        let offset = self.written;
        if let Err(error) = self.file.write_all(&self.frame) {
            // Cut off whatever part was written (a full disk), so the segment can be written on
            // when there is room again; if even that fails, the torn record stays and the next
            // record goes to a new segment.
            if self.file.set_len(self.written).is_err() {
                self.written = u64::MAX / 2;
            }
            return Err(error);
        }
        self.written += self.frame.len() as u64;
        Ok(offset)
    }

    /// Makes what was appended durable.
    pub fn sync(&self) -> std::io::Result<()> {
        self.file.sync_data()
    }
}

/// Reads the records of one segment in order, from an offset.
pub struct SegmentReader {
    path: PathBuf,
    file: BufReader<File>,
    offset: u64,
}

impl SegmentReader {
    pub fn open(dir: &Path, number: u64, offset: u64) -> std::io::Result<Self> {
        let path = segment_path(dir, number);
        let mut file = File::open(&path)?;
        file.seek(SeekFrom::Start(offset))?;
        Ok(SegmentReader {
            path,
            file: BufReader::with_capacity(256 << 10, file),
            offset,
        })
    }

    /// Where the next record starts.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The next record that ends at or before `limit` bytes into the segment (the writer's end
    /// for the segment being written; `None` for a finished segment: its file's end).
    /// `expected` is the sequence number the next record should have, when known: it makes the
    /// search for a resumption point after damage reject stray matches.
    pub fn next(&mut self, limit: Option<u64>, expected: Option<u64>) -> std::io::Result<Step> {
        self.next_unless(limit, expected, |_| false)
    }

    /// As `next`, but a record for whose sequence number `known` says true is passed over
    /// without reading or checking its bytes (the caller has them): its payload comes back
    /// empty.
    pub fn next_unless(
        &mut self,
        limit: Option<u64>,
        expected: Option<u64>,
        known: impl Fn(u64) -> bool,
    ) -> std::io::Result<Step> {
        let finished = limit.is_none();
        let end = match limit {
            Some(limit) => limit,
            None => self.file.get_ref().metadata()?.len(),
        };
        if self.offset >= end {
            return Ok(Step::End);
        }
        let available = end - self.offset;
        if available < HEADER as u64 {
            return self.torn(end, finished, available);
        }
        let mut header = [0u8; HEADER];
        self.file.read_exact(&mut header)?;
        let (size, crc, seq) = parse_header(&header);
        if size == 0 || size > MAX_RECORD as u64 || size > available - HEADER as u64 {
            let what = if size <= MAX_RECORD as u64 && size > available - HEADER as u64 {
                format!("a record of {size} bytes cut short at {available} bytes")
            } else {
                format!("a record length of {size} bytes")
            };
            return self.damaged(end, expected, what);
        }
        if known(seq) {
            self.file.seek_relative(size as i64)?;
            let offset = self.offset;
            self.offset += HEADER as u64 + size;
            return Ok(Step::Record {
                offset,
                seq,
                payload: Vec::new(),
            });
        }
        let mut payload = vec![0u8; size as usize];
        self.file.read_exact(&mut payload)?;
        if checksum(seq, &payload) != crc {
            return self.damaged(
                end,
                expected,
                format!("a record of {size} bytes whose checksum does not match"),
            );
        }
        let offset = self.offset;
        self.offset += HEADER as u64 + size;
        Ok(Step::Record {
            offset,
            seq,
            payload,
        })
    }

    fn torn(&mut self, end: u64, finished: bool, available: u64) -> std::io::Result<Step> {
        if !finished {
            return Ok(Step::End);
        }
        let damage = Damage {
            segment: self.path.clone(),
            offset: self.offset,
            what: format!("a torn record ({available} bytes) ends the segment"),
        };
        self.seek_to(end)?;
        Ok(Step::Damaged(damage))
    }

    /// Reports damage at the current offset and resumes at the next whole record, or at `end`.
    fn damaged(&mut self, end: u64, expected: Option<u64>, what: String) -> std::io::Result<Step> {
        match self.resync(end, expected, &what)? {
            Some(step) => Ok(step),
            None => {
                let damage = Damage {
                    segment: self.path.clone(),
                    offset: self.offset,
                    what: format!(
                        "{what}: no whole record follows; the rest of the segment ({} bytes) is skipped",
                        end - self.offset
                    ),
                };
                self.seek_to(end)?;
                Ok(Step::Damaged(damage))
            }
        }
    }

    /// Finds the first offset after the current one where a whole record starts; seeks there
    /// and returns the damage report, or `None` if there is none before `end`.
    fn resync(
        &mut self,
        end: u64,
        expected: Option<u64>,
        what: &str,
    ) -> std::io::Result<Option<Step>> {
        let start = self.offset;
        let mut file = self.file.get_ref().try_clone()?;
        file.seek(SeekFrom::Start(start))?;
        let mut rest = Vec::new();
        file.take(end - start).read_to_end(&mut rest)?;
        let plausible = |seq: u64| match expected {
            Some(expected) => seq >= expected && seq - expected <= rest.len() as u64,
            None => true,
        };
        for at in 1..rest.len().saturating_sub(HEADER) {
            let Some(header) = rest[at..].first_chunk::<HEADER>() else {
                break;
            };
            let (size, crc, seq) = parse_header(header);
            let remaining = (rest.len() - at - HEADER) as u64;
            if size == 0 || size > remaining || !plausible(seq) {
                continue;
            }
            let payload = &rest[at + HEADER..at + HEADER + size as usize];
            if checksum(seq, payload) == crc {
                let damage = Damage {
                    segment: self.path.clone(),
                    offset: start,
                    what: format!("{what}: {at} bytes skipped to the next whole record"),
                };
                self.seek_to(start + at as u64)?;
                return Ok(Some(Step::Damaged(damage)));
            }
        }
        Ok(None)
    }

    fn seek_to(&mut self, offset: u64) -> std::io::Result<()> {
        self.file.seek(SeekFrom::Start(offset))?;
        self.offset = offset;
        Ok(())
    }
}

fn parse_header(header: &[u8; HEADER]) -> (u64, u32, u64) {
    let size = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
    let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    let mut seq = [0u8; 8];
    seq.copy_from_slice(&header[8..16]);
    (u64::from(size), crc, u64::from_le_bytes(seq))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `record 0` … `record {count - 1}` (sequence numbers 0…) in segment 1 of `dir`.
    fn written(dir: &Path, count: u64) -> Vec<u64> {
        let mut writer = SegmentWriter::create(dir, 1).unwrap();
        let offsets = (0..count)
            .map(|i| writer.append(i, format!("record {i}").as_bytes()).unwrap())
            .collect();
        writer.sync().unwrap();
        offsets
    }

    /// Everything a reader of segment 1 sees: records as text, damage as `!offset`.
    fn read_all(dir: &Path) -> Vec<String> {
        let mut reader = SegmentReader::open(dir, 1, 0).unwrap();
        let mut seen = Vec::new();
        let mut expected = Some(0);
        loop {
            match reader.next(None, expected).unwrap() {
                Step::Record { seq, payload, .. } => {
                    expected = Some(seq + 1);
                    seen.push(String::from_utf8(payload).unwrap());
                }
                Step::Damaged(damage) => seen.push(format!("!{}", damage.offset)),
                Step::End => return seen,
            }
        }
    }

    #[test]
    fn records_come_back_in_order_up_to_the_writers_end() {
        let dir = tempfile::tempdir().unwrap();
        let mut writer = SegmentWriter::create(dir.path(), 1).unwrap();
        writer.append(0, b"first").unwrap();
        let limit = writer.written();
        writer.append(1, b"second").unwrap();
        let mut reader = SegmentReader::open(dir.path(), 1, 0).unwrap();
        assert!(matches!(
            reader.next(Some(limit), None).unwrap(),
            Step::Record { seq: 0, .. }
        ));
        assert!(matches!(reader.next(Some(limit), None).unwrap(), Step::End));
        let step = reader.next(Some(writer.written()), Some(1)).unwrap();
        assert!(matches!(step, Step::Record { seq: 1, ref payload, .. } if payload == b"second"));
        assert_eq!(list(dir.path()).unwrap(), vec![(1, writer.written())]);
        assert!(
            SegmentWriter::create(dir.path(), 1).is_err(),
            "never reopened"
        );
    }

    #[test]
    fn a_flipped_bit_skips_one_record_and_a_torn_tail_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let offsets = written(dir.path(), 5);
        let path = segment_path(dir.path(), 1);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[offsets[1] as usize + HEADER + 2] ^= 0x20;
        bytes.extend_from_slice(&[200, 0, 0, 0, 1, 2]);
        std::fs::write(&path, &bytes).unwrap();
        let end = bytes.len() - 6;
        assert_eq!(
            read_all(dir.path()),
            [
                "record 0".to_string(),
                format!("!{}", offsets[1]),
                "record 2".to_string(),
                "record 3".to_string(),
                "record 4".to_string(),
                format!("!{end}"),
            ]
        );
    }

    #[test]
    fn bytes_overwritten_across_headers_lose_only_the_records_they_touch() {
        let dir = tempfile::tempdir().unwrap();
        let offsets = written(dir.path(), 50);
        let path = segment_path(dir.path(), 1);
        let mut bytes = std::fs::read(&path).unwrap();
        // From inside record 10 to inside record 13: 10..=13 are damaged, 14… are whole.
        let from = offsets[10] as usize + 5;
        let to = offsets[13] as usize + 3;
        bytes[from..to].fill(0xAB);
        std::fs::write(&path, &bytes).unwrap();
        let seen = read_all(dir.path());
        let records: Vec<&String> = seen.iter().filter(|s| !s.starts_with('!')).collect();
        assert_eq!(records.len(), 46, "{seen:?}");
        assert!(seen.contains(&"record 14".to_string()));
        assert!(!seen.contains(&"record 13".to_string()));
        assert_eq!(
            seen.iter().filter(|s| s.starts_with('!')).count(),
            1,
            "{seen:?}"
        );
    }

    #[test]
    fn a_truncated_segment_reports_its_torn_record() {
        let dir = tempfile::tempdir().unwrap();
        let offsets = written(dir.path(), 10);
        let path = segment_path(dir.path(), 1);
        let cut = offsets[7] + 11;
        OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(cut)
            .unwrap();
        let seen = read_all(dir.path());
        assert_eq!(seen.len(), 8);
        assert_eq!(seen[7], format!("!{}", offsets[7]));
        let cut = offsets[5] + 20;
        OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(cut)
            .unwrap();
        let seen = read_all(dir.path());
        assert_eq!(seen.last(), Some(&format!("!{}", offsets[5])));
        assert_eq!(seen.len(), 6);
    }

    #[test]
    fn garbage_never_panics_and_ends() {
        let dir = tempfile::tempdir().unwrap();
        let garbage: Vec<u8> = (0..20_000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        std::fs::write(segment_path(dir.path(), 1), &garbage).unwrap();
        let seen = read_all(dir.path());
        assert!(seen.iter().all(|s| s.starts_with('!')));
        assert!(!seen.is_empty());
    }
}
