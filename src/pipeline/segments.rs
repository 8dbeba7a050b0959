//! The on-disk part of a disk buffer: records appended to numbered segment files in one
//! directory (`data_dir/buffers/<sink>/00000000000000000001.seg`, …), read back in order, and
//! deleted a segment at a time once every record in it is acknowledged.
//!
//! A record is its length (u32, little-endian), the CRC-32 of its bytes, then the bytes. A
//! crash can leave the last record of the last segment torn, and a disk can flip bits: opening a
//! buffer never fails on either. Reading skips a record whose checksum does not match (its
//! length says where the next one starts) and the rest of a segment whose length field cannot
//! be right (past the end of the file, or larger than any record written), counting each and
//! saying where (segment and offset). What was written before stays readable: a damaged buffer
//! loses what is damaged, not the buffer.
//!
//! The size bound counts whole segment files: appending past `max_bytes` is refused
//! ([`AppendError::Full`]), so the caller can block or drop as its `when_full` says.

use std::fs::{File, OpenOptions};
use std::io::{BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// Bytes of a record's header: length and checksum.
const HEADER: usize = 8;
/// The largest record: a batch of entries, never near this.
pub const MAX_RECORD: usize = 64 << 20;

/// Where a record is: its segment's number and its offset in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Position {
    pub segment: u64,
    pub offset: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    #[error("the buffer holds {held} bytes of its {max} bytes")]
    Full { held: u64, max: u64 },
    #[error("a record of {0} bytes is larger than a record may be")]
    TooLarge(usize),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Damage found while reading: where, and what was skipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Damage {
    pub segment: PathBuf,
    pub offset: u64,
    pub what: String,
}

/// What reading a buffer gives: its records with their positions, in order, and the damage met.
#[derive(Debug, Default)]
pub struct Replay {
    pub records: Vec<(Position, Vec<u8>)>,
    pub damage: Vec<Damage>,
}

/// The segment files of one buffer.
pub struct Segments {
    dir: PathBuf,
    segment_bytes: u64,
    max_bytes: u64,
    /// Numbers of the segments on disk, oldest first; the last is written to.
    numbers: Vec<u64>,
    writer: Option<(u64, File, u64)>,
    /// Bytes of all segment files.
    held: u64,
}

fn segment_path(dir: &Path, number: u64) -> PathBuf {
    dir.join(format!("{number:020}.seg"))
}

fn io_error(path: &Path, source: std::io::Error) -> AppendError {
    AppendError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl Segments {
    /// Opens (creating) the buffer in `dir`. Files that are not segments are left alone.
    pub fn open(dir: &Path, segment_bytes: u64, max_bytes: u64) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let mut numbers = Vec::new();
        let mut held = 0;
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(number) = name
                .strip_suffix(".seg")
                .and_then(|stem| stem.parse::<u64>().ok())
            {
                numbers.push(number);
                held += entry.metadata()?.len();
            }
        }
        numbers.sort_unstable();
        Ok(Segments {
            dir: dir.to_path_buf(),
            segment_bytes: segment_bytes.max(HEADER as u64 + 1),
            max_bytes,
            numbers,
            writer: None,
            held,
        })
    }

    /// Bytes the segment files hold.
    pub fn held(&self) -> u64 {
        self.held
    }

    /// Appends one record; a new segment is started when the current one is full (and always
    /// after opening: a torn tail is never written after).
    pub fn append(&mut self, record: &[u8]) -> Result<Position, AppendError> {
        if record.len() > MAX_RECORD {
            return Err(AppendError::TooLarge(record.len()));
        }
        let size = (HEADER + record.len()) as u64;
        if self.held + size > self.max_bytes {
            return Err(AppendError::Full {
                held: self.held,
                max: self.max_bytes,
            });
        }
        let roll = match &self.writer {
            Some((_, _, written)) => *written > 0 && written + size > self.segment_bytes,
            None => true,
        };
        if roll {
            let number = self.numbers.last().map_or(1, |last| last + 1);
            let path = segment_path(&self.dir, number);
            let file = OpenOptions::new()
                .create_new(true)
                .append(true)
                .open(&path)
                .map_err(|e| io_error(&path, e))?;
            self.numbers.push(number);
            self.writer = Some((number, file, 0));
        }
        let Some((number, file, written)) = self.writer.as_mut() else {
            unreachable!("a segment was opened above");
        };
        let mut framed = Vec::with_capacity(HEADER + record.len());
        framed.extend_from_slice(&(record.len() as u32).to_le_bytes());
        framed.extend_from_slice(&crc32fast::hash(record).to_le_bytes());
        framed.extend_from_slice(record);
        let path = segment_path(&self.dir, *number);
        file.write_all(&framed).map_err(|e| io_error(&path, e))?;
        let position = Position {
            segment: *number,
            offset: *written,
        };
        *written += size;
        self.held += size;
        Ok(position)
    }

    /// Makes what was appended durable (`fsync`).
    pub fn sync(&mut self) -> std::io::Result<()> {
        match &self.writer {
            Some((_, file, _)) => file.sync_data(),
            None => Ok(()),
        }
    }

    /// Every record from `from` on, in order, with the damage met on the way.
    pub fn read_from(&self, from: Position) -> std::io::Result<Replay> {
        let mut read = Replay::default();
        let (records, damage) = (&mut read.records, &mut read.damage);
        for &number in self.numbers.iter().filter(|n| **n >= from.segment) {
            let path = segment_path(&self.dir, number);
            let file = match File::open(&path) {
                Ok(file) => file,
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => continue,
                Err(error) => return Err(error),
            };
            let length = file.metadata()?.len();
            let mut reader = BufReader::new(file);
            let mut offset = if number == from.segment {
                from.offset
            } else {
                0
            };
            reader.seek(SeekFrom::Start(offset))?;
            while offset < length {
                let mut header = [0u8; HEADER];
                let available = length - offset;
                if available < HEADER as u64 {
                    damage.push(Damage {
                        segment: path.clone(),
                        offset,
                        what: format!("a torn record header ({available} bytes) ends the segment"),
                    });
                    break;
                }
                reader.read_exact(&mut header)?;
                let size = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as u64;
                let checksum = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
                if size > MAX_RECORD as u64 || size > available - HEADER as u64 {
                    damage.push(Damage {
                        segment: path.clone(),
                        offset,
                        what: format!(
                            "a record of {size} bytes where {} remain: the rest of the segment ({} bytes) is skipped",
                            available - HEADER as u64,
                            available
                        ),
                    });
                    break;
                }
                let mut payload = vec![0u8; size as usize];
                reader.read_exact(&mut payload)?;
                let position = Position {
                    segment: number,
                    offset,
                };
                offset += HEADER as u64 + size;
                if crc32fast::hash(&payload) != checksum {
                    damage.push(Damage {
                        segment: path.clone(),
                        offset: position.offset,
                        what: format!(
                            "a record of {size} bytes whose checksum does not match is skipped"
                        ),
                    });
                    continue;
                }
                records.push((position, payload));
            }
        }
        Ok(read)
    }

    /// Deletes the segments every record of which is before `acknowledged` (the position after
    /// the last acknowledged record). The segment being written is kept.
    pub fn release(&mut self, acknowledged: Position) -> std::io::Result<()> {
        let writing = self.writer.as_ref().map(|(number, _, _)| *number);
        let mut kept = Vec::new();
        for &number in &self.numbers {
            if number < acknowledged.segment && Some(number) != writing {
                let path = segment_path(&self.dir, number);
                let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
                match std::fs::remove_file(&path) {
                    Ok(()) => self.held = self.held.saturating_sub(size),
                    Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
                    Err(error) => return Err(error),
                }
            } else {
                kept.push(number);
            }
        }
        self.numbers = kept;
        Ok(())
    }

    /// Where reading starts: the oldest segment's beginning.
    pub fn start(&self) -> Position {
        Position {
            segment: self.numbers.first().copied().unwrap_or(1),
            offset: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payloads(records: &[(Position, Vec<u8>)]) -> Vec<String> {
        records
            .iter()
            .map(|(_, bytes)| String::from_utf8_lossy(bytes).into_owned())
            .collect()
    }

    /// `record 0` … `record {count - 1}` written to a new buffer in `dir`, synced and closed.
    fn written(dir: &Path, segment_bytes: u64, count: usize) {
        let mut buffer = Segments::open(dir, segment_bytes, 1 << 20).unwrap();
        for i in 0..count {
            buffer.append(format!("record {i}").as_bytes()).unwrap();
        }
        buffer.sync().unwrap();
    }

    #[test]
    fn records_come_back_in_order_across_segments_and_restarts() {
        let dir = tempfile::tempdir().unwrap();
        written(dir.path(), 64, 20);
        let buffer = Segments::open(dir.path(), 64, 1 << 20).unwrap();
        let Replay { records, damage } = buffer.read_from(buffer.start()).unwrap();
        assert!(damage.is_empty(), "{damage:?}");
        let expected: Vec<String> = (0..20).map(|i| format!("record {i}")).collect();
        assert_eq!(payloads(&records), expected);
        assert!(buffer.numbers.len() > 3, "several segments");
    }

    #[test]
    fn a_torn_tail_and_a_flipped_bit_are_skipped_counted_and_the_rest_is_read() {
        let dir = tempfile::tempdir().unwrap();
        written(dir.path(), 1 << 20, 5);
        let segment = segment_path(dir.path(), 1);
        let mut bytes = std::fs::read(&segment).unwrap();
        // A bit flipped in record 1's payload; a crash mid-write of one more record.
        let record = HEADER + "record 0".len();
        bytes[record + HEADER + 2] ^= 0x20;
        bytes.extend_from_slice(&[200, 0, 0, 0, 1, 2]);
        std::fs::write(&segment, &bytes).unwrap();
        let mut buffer = Segments::open(dir.path(), 1 << 20, 1 << 20).unwrap();
        let Replay { records, damage } = buffer.read_from(buffer.start()).unwrap();
        assert_eq!(
            payloads(&records),
            ["record 0", "record 2", "record 3", "record 4"]
        );
        assert_eq!(damage.len(), 2, "{damage:?}");
        assert_eq!(damage[0].offset, record as u64);
        assert!(damage[0].what.contains("checksum"));
        assert!(damage[1].what.contains("torn"), "{damage:?}");
        // Writing goes on in a new segment, after the damage.
        buffer.append(b"after").unwrap();
        let records = buffer.read_from(buffer.start()).unwrap().records;
        assert_eq!(payloads(&records).last().map(String::as_str), Some("after"));
    }

    #[test]
    fn a_garbage_length_skips_the_rest_of_its_segment_only() {
        let dir = tempfile::tempdir().unwrap();
        written(dir.path(), 40, 6);
        let first = segment_path(dir.path(), 1);
        let mut bytes = std::fs::read(&first).unwrap();
        bytes[0..4].copy_from_slice(&u32::MAX.to_le_bytes());
        std::fs::write(&first, &bytes).unwrap();
        let buffer = Segments::open(dir.path(), 40, 1 << 20).unwrap();
        let Replay { records, damage } = buffer.read_from(buffer.start()).unwrap();
        assert_eq!(damage.len(), 1);
        assert!(!records.is_empty());
        assert!(payloads(&records).contains(&"record 5".to_string()));
        assert!(!payloads(&records).contains(&"record 0".to_string()));
    }

    #[test]
    fn the_size_bound_holds_and_acknowledged_segments_are_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let record = [7u8; 92]; // 100 bytes framed
        let mut buffer = Segments::open(dir.path(), 300, 1000).unwrap();
        let mut positions = Vec::new();
        for _ in 0..10 {
            positions.push(buffer.append(&record).unwrap());
        }
        assert_eq!(buffer.held(), 1000);
        assert!(matches!(
            buffer.append(&record),
            Err(AppendError::Full { .. })
        ));
        // Everything before the 7th record is acknowledged: the segments wholly before it go.
        buffer.release(positions[6]).unwrap();
        assert!(buffer.held() < 1000);
        let files = std::fs::read_dir(dir.path()).unwrap().count();
        assert_eq!(files as u64, buffer.numbers.len() as u64);
        buffer.append(&record).unwrap();
        let Replay { records, damage } = buffer.read_from(buffer.start()).unwrap();
        assert!(damage.is_empty());
        assert!(records.iter().all(|(position, _)| *position
            >= Position {
                segment: positions[6].segment,
                offset: 0
            }));
    }
}
