//! One followed file: its identity, its open handle, what has been read from it, and which of
//! the batches made from it are still in flight.
//!
//! Identity is the content's: a checksum of the first line (up to `IDENTITY_BYTES`), as Vector
//! does, so a renamed file is recognised at its new name and after a restart. A file whose first
//! line is not complete yet is known by device and inode until it is.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use flate2::read::GzDecoder;

use super::container::{CriStream, push_record};
use crate::framing::LineFramer;
use crate::multiline::{Joined, LineAggregator, MultilineConfig};
use crate::pipeline::DeliveryStatus;

/// Bytes of the first line that make up a file's identity.
pub const IDENTITY_BYTES: usize = 1024;
/// Bytes asked for per read, at most: a file with more waiting is read in chunks this big.
const READ_CHUNK: usize = 256 * 1024;
/// Bytes asked for per read, at least (one page).
const MIN_READ: usize = 4096;
/// At the end of a file, a buffer with more room than this beyond what it holds (a partial
/// last line) is cut down to its content: thousands of idle followed files must not keep a read
/// chunk each (517 KiB per file before: 10,000 small files took 4.3 GB).
const IDLE_SPARE_BYTES: usize = 512;

/// The identity of a file's content, and the key of its checkpoint.
pub fn identity_of(file: &File, dev_ino: (u64, u64)) -> std::io::Result<String> {
    let mut head = vec![0u8; IDENTITY_BYTES];
    let mut filled = 0;
    while filled < head.len() {
        match file.read_at(&mut head[filled..], filled as u64)? {
            0 => break,
            read => filled += read,
        }
    }
    head.truncate(filled);
    let line = match memchr::memchr(b'\n', &head) {
        Some(end) => &head[..end],
        None if head.len() == IDENTITY_BYTES => &head[..],
        None => return Ok(format!("ino:{}:{}", dev_ino.0, dev_ino.1)),
    };
    Ok(format!("fnv:{:016x}:{}", fnv1a(line), line.len()))
}

/// FNV-1a, 64 bits: stable across versions and platforms, which a checkpoint key must be.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

pub fn is_inode_key(key: &str) -> bool {
    key.starts_with("ino:")
}

/// A batch sent and not yet acknowledged by every sink.
#[derive(Debug)]
struct InFlight {
    seq: u64,
    end_offset: u64,
    status: Option<DeliveryStatus>,
}

/// Why a read stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadEnd {
    /// The quota was used: there may be more.
    More,
    /// At the end of the file.
    Eof,
    /// The file's first line changed while we read: it was truncated and rewritten, and the
    /// last chunk may be new content; it was not used.
    Rewritten,
}

/// Lines read in one go, ready to become entries.
pub struct ReadLines {
    pub joined: Vec<Joined>,
    pub bytes: usize,
    pub truncated_lines: u64,
}

pub struct TailedFile {
    pub key: String,
    pub dev_ino: (u64, u64),
    pub path: PathBuf,
    /// The path as metadata text, shared by every entry from this file.
    pub path_text: Bytes,
    file: File,
    /// Bytes read from the file so far.
    read_offset: u64,
    buffer: BytesMut,
    framer: LineFramer,
    aggregator: LineAggregator,
    /// Container logs (CRI, Docker json-file): stdout and stderr are assembled apart (partial
    /// records joined, then stack traces), so the two streams never mix.
    cri: Option<Box<[CriStream; 2]>>,
    /// Docker json-file records rather than CRI.
    docker: bool,
    last_data_at: Instant,
    /// New data may be waiting (an event named this file, or the last read was not at EOF).
    pub active: bool,
    /// Its path now names another file or nothing: read to the end, then close.
    pub rotated_away: bool,
    in_flight: VecDeque<InFlight>,
    next_seq: u64,
    /// Bytes every sink has acknowledged: what a restart may skip.
    pub delivered_offset: u64,
    pub checkpoint_dirty: bool,
    /// A batch failed: the checkpoint stays before it so a restart replays it.
    pub stalled: bool,
    /// Its content is gone (truncated with no copy): nothing more is read; it waits for its
    /// in-flight batches and is closed.
    retired: bool,
    /// A gzip file (included explicitly): read once through a decoder; offsets count
    /// decompressed bytes.
    decoder: Option<GzDecoder<File>>,
}

/// Checkpoint offset of a compressed file read to its end: it is not opened again.
pub const COMPRESSED_DONE: u64 = i64::MAX as u64;

/// Whether a path is a gzip file, read through a decoder rather than tailed.
pub fn is_gzip(path: &Path) -> bool {
    path.extension().is_some_and(|ext| ext == "gz")
}

impl TailedFile {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        key: String,
        dev_ino: (u64, u64),
        path: PathBuf,
        file: File,
        offset: u64,
        max_line_bytes: usize,
        multiline: MultilineConfig,
        cri: bool,
        docker: bool,
        now: Instant,
    ) -> std::io::Result<Self> {
        let mut file = file;
        let decoder = if is_gzip(&path) {
            let mut decoder = GzDecoder::new(file.try_clone()?);
            // No seeking in a compressed stream: skip what was delivered before.
            std::io::copy(&mut (&mut decoder).take(offset), &mut std::io::sink())?;
            Some(decoder)
        } else {
            if offset > 0 {
                file.seek(SeekFrom::Start(offset))?;
            }
            None
        };
        Ok(TailedFile {
            key,
            dev_ino,
            path_text: Bytes::from(path.to_string_lossy().into_owned()),
            path,
            file,
            read_offset: offset,
            buffer: BytesMut::new(),
            framer: LineFramer::new(max_line_bytes),
            cri: (cri || docker)
                .then(|| Box::new([CriStream::new(&multiline), CriStream::new(&multiline)])),
            docker,
            aggregator: LineAggregator::new(multiline),
            last_data_at: now,
            active: true,
            rotated_away: false,
            in_flight: VecDeque::new(),
            next_seq: 0,
            delivered_offset: offset,
            checkpoint_dirty: false,
            stalled: false,
            retired: false,
            decoder,
        })
    }

    pub fn is_compressed(&self) -> bool {
        self.decoder.is_some()
    }

    pub fn set_path(&mut self, path: &Path) {
        self.path = path.to_path_buf();
        self.path_text = Bytes::from(path.to_string_lossy().into_owned());
    }

    pub fn read_offset(&self) -> u64 {
        self.read_offset
    }

    /// Bytes consumed by the framer: the end of the last complete line seen.
    fn consumed_offset(&self) -> u64 {
        self.read_offset - self.buffer.len() as u64
    }

    /// Reads up to `quota` bytes and frames them into joined entries.
    pub fn read(&mut self, quota: usize, now: Instant) -> std::io::Result<(ReadLines, ReadEnd)> {
        let mut out = ReadLines {
            joined: Vec::new(),
            bytes: 0,
            truncated_lines: 0,
        };
        let mut end = ReadEnd::More;
        while out.bytes < quota {
            // Sized to what the file holds beyond the offset (a compressed file: unknown), so
            // a small or idle file is not given a whole chunk.
            let chunk = match self.decoder {
                Some(_) => READ_CHUNK,
                None => match self.file.metadata() {
                    // Not a regular file (a FIFO): its length says nothing.
                    Ok(metadata) if !metadata.is_file() => READ_CHUNK,
                    Ok(metadata) if metadata.len() <= self.read_offset => {
                        end = ReadEnd::Eof;
                        break;
                    }
                    Ok(metadata) => {
                        let waiting = metadata.len() - self.read_offset;
                        usize::try_from(waiting)
                            .map_or(READ_CHUNK, |w| w.clamp(MIN_READ, READ_CHUNK))
                    }
                    Err(_) => READ_CHUNK,
                },
            };
            let start = self.buffer.len();
            if self.buffer.capacity() - start < chunk {
                self.buffer.reserve(chunk);
            }
            self.buffer.resize(start + chunk, 0);
            let target = &mut self.buffer[start..];
            let result = match self.decoder.as_mut() {
                Some(decoder) => decoder.read(target),
                None => self.file.read(target),
            };
            let read = match result {
                Ok(read) => read,
                Err(error) if error.kind() == std::io::ErrorKind::Interrupted => 0,
                Err(error) => {
                    self.buffer.truncate(start);
                    return Err(error);
                }
            };
            self.buffer.truncate(start + read);
            if read == 0 {
                end = ReadEnd::Eof;
                break;
            }
            // copytruncate can truncate and refill the file between two reads; a chunk read
            // across that moment is not trusted (the copy has the old bytes).
            if self.identity_changed() {
                self.buffer.truncate(start);
                end = ReadEnd::Rewritten;
                break;
            }
            self.read_offset += read as u64;
            out.bytes += read;
            self.last_data_at = now;
            while let Some(frame) = self.framer.decode(&mut self.buffer) {
                let end_offset = self.consumed_offset();
                let line = match frame {
                    crate::framing::Frame::Line(line) => line,
                    crate::framing::Frame::Truncated(head) => {
                        out.truncated_lines += 1;
                        head
                    }
                };
                if let Some(streams) = self.cri.as_mut() {
                    push_record(streams, self.docker, line, end_offset, now, &mut out.joined);
                    continue;
                }
                // Blank lines go in too: inside a trace they are part of it.
                self.aggregator.push(line, end_offset, now, &mut out.joined);
            }
        }
        if end == ReadEnd::Eof && self.buffer.capacity() > self.buffer.len() + IDLE_SPARE_BYTES {
            // Lines already framed keep the allocation alive for as long as they travel; this
            // file lets go of it.
            self.buffer = BytesMut::from(&self.buffer[..]);
        }
        Ok((out, end))
    }

    /// At EOF: the pending multiline entry after its timeout, and a last line without a newline
    /// once the file has been idle for `partial_after`.
    pub fn flush_idle(&mut self, now: Instant, partial_after: std::time::Duration) -> Vec<Joined> {
        let mut out = Vec::new();
        let idle = now.saturating_duration_since(self.last_data_at) >= partial_after;
        if idle
            && !self.buffer.is_empty()
            && let Some(crate::framing::Frame::Line(line) | crate::framing::Frame::Truncated(line)) =
                self.framer.decode_eof(&mut self.buffer)
        {
            let end_offset = self.consumed_offset();
            match self.cri.as_mut() {
                Some(streams) => push_record(streams, self.docker, line, end_offset, now, &mut out),
                None => self.aggregator.push(line, end_offset, now, &mut out),
            }
        }
        self.aggregator.flush_idle(now, &mut out);
        for stream in self.cri.iter_mut().flat_map(|streams| streams.iter_mut()) {
            stream.flush_idle(now, &mut out);
        }
        out
    }

    /// The entry held by multiline aggregation (complete lines only; a partial last line stays
    /// unread so that a restart reads it whole).
    pub fn flush_pending(&mut self) -> Vec<Joined> {
        let mut out = Vec::new();
        self.aggregator.flush(&mut out);
        for stream in self.cri.iter_mut().flat_map(|streams| streams.iter_mut()) {
            stream.flush(&mut out);
        }
        out
    }

    pub fn retire(&mut self) {
        self.retired = true;
        self.active = false;
    }

    pub fn is_retired(&self) -> bool {
        self.retired
    }

    pub fn last_data_at(&self) -> Instant {
        self.last_data_at
    }

    /// Everything held back, before the file is closed.
    pub fn flush_all(&mut self) -> Vec<Joined> {
        let mut out = Vec::new();
        if let Some(crate::framing::Frame::Line(line) | crate::framing::Frame::Truncated(line)) =
            self.framer.decode_eof(&mut self.buffer)
        {
            let end_offset = self.consumed_offset();
            self.aggregator
                .push(line, end_offset, Instant::now(), &mut out);
        }
        self.aggregator.flush(&mut out);
        for stream in self.cri.iter_mut().flat_map(|streams| streams.iter_mut()) {
            stream.flush(&mut out);
        }
        out
    }

    /// When this file next needs attention without new data (a multiline timeout).
    pub fn deadline(&self) -> Option<Instant> {
        let streams = self.cri.iter().flat_map(|streams| streams.iter());
        streams
            .filter_map(|stream| stream.aggregator.deadline())
            .chain(self.aggregator.deadline())
            .min()
    }

    fn holds_lines(&self) -> bool {
        self.aggregator.has_pending()
            || self
                .cri
                .iter()
                .flat_map(|streams| streams.iter())
                .any(|stream| stream.aggregator.has_pending() || !stream.partial.is_empty())
    }

    /// Registers a batch about to be sent; returns its sequence number.
    pub fn begin_batch(&mut self, end_offset: u64) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.in_flight.push_back(InFlight {
            seq,
            end_offset,
            status: None,
        });
        seq
    }

    /// Records an acknowledgement and advances `delivered_offset` over every finished batch
    /// at the front of the queue.
    pub fn acknowledge(&mut self, seq: u64, status: DeliveryStatus) {
        if let Some(batch) = self.in_flight.iter_mut().find(|batch| batch.seq == seq) {
            batch.status = Some(status);
        }
        while let Some(front) = self.in_flight.front() {
            match front.status {
                Some(DeliveryStatus::Delivered) if !self.stalled => {
                    self.delivered_offset = front.end_offset;
                    self.checkpoint_dirty = true;
                    self.in_flight.pop_front();
                }
                Some(DeliveryStatus::Failed) => {
                    if !self.stalled {
                        tracing::warn!(file = %self.path.display(), "a batch was not delivered; its checkpoint stays before it");
                    }
                    self.stalled = true;
                    self.in_flight.pop_front();
                }
                Some(DeliveryStatus::Delivered) => {
                    self.in_flight.pop_front();
                }
                None => break,
            }
        }
        self.settle_skipped_bytes();
    }

    /// Bytes consumed without producing an entry (blank lines, the skipped tail of an over-long
    /// line) are delivered as soon as nothing before them is in flight.
    pub fn settle_skipped_bytes(&mut self) {
        let consumed = self.consumed_offset();
        if self.in_flight.is_empty()
            && !self.stalled
            && !self.holds_lines()
            && consumed > self.delivered_offset
        {
            self.delivered_offset = consumed;
            self.checkpoint_dirty = true;
        }
    }

    pub fn has_in_flight(&self) -> bool {
        !self.in_flight.is_empty()
    }

    /// Nothing buffered, pending or in flight: the file can be closed without loss.
    pub fn is_drained(&self) -> bool {
        self.buffer.is_empty() && !self.holds_lines() && self.in_flight.is_empty()
    }

    /// Current size and link count of the open handle.
    pub fn stat(&self) -> std::io::Result<(u64, u64)> {
        let metadata = self.file.metadata()?;
        Ok((metadata.len(), metadata.nlink()))
    }

    /// Whether the first line still has this file's identity (a file truncated and rewritten
    /// beyond our offset before we looked has a different one).
    pub fn identity_changed(&self) -> bool {
        if is_inode_key(&self.key) || self.is_compressed() {
            return false;
        }
        match identity_of(&self.file, self.dev_ino) {
            Ok(current) => current != self.key && !is_inode_key(&current),
            Err(_) => false,
        }
    }

    /// Replaces the handle, continuing this content stream from another file (the copy made
    /// by copytruncate) at the same offset.
    pub fn continue_in(
        &mut self,
        mut file: File,
        dev_ino: (u64, u64),
        path: &Path,
    ) -> std::io::Result<()> {
        file.seek(SeekFrom::Start(self.read_offset))?;
        self.file = file;
        self.dev_ino = dev_ino;
        self.set_path(path);
        self.active = true;
        self.rotated_away = false;
        Ok(())
    }

    pub fn file(&self) -> &File {
        &self.file
    }
}
