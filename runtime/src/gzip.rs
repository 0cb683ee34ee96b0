//! Deterministic parallel gzip, for packing slugs on every core.
//!
//! The input is cut into fixed 1 MiB chunks; each is deflated on its own, primed with the last
//! 32 KiB of the chunk before it (as pigz does, so matches across the seam are not lost), and all
//! but the last end with a sync flush so the pieces concatenate into one valid deflate stream. The
//! cut points depend only on the input, never on the number of threads or on timing: the output is
//! the same bytes on any machine. A single-chunk input is the same stream plain zlib writes.

use std::io::{self, Write};

use flate2::{Compress, Compression, Crc, FlushCompress, Status};

/// Uncompressed bytes per chunk.
const CHUNK: usize = 1 << 20;
/// Deflate's window: how much of the previous chunk primes the next.
const WINDOW: usize = 32 << 10;

/// A `Write` that gzips what it is given into `inner`, compressing chunks in parallel.
pub(crate) struct ParallelGz<W: Write> {
    inner: W,
    level: u32,
    threads: usize,
    /// Whole chunks waiting to be compressed, and the partial one being filled (last).
    pending: Vec<Vec<u8>>,
    /// The tail of the last chunk compressed: the next chunk's dictionary.
    window: Vec<u8>,
    crc: Crc,
    header_written: bool,
}

impl<W: Write> ParallelGz<W> {
    /// A writer at deflate `level` using up to `threads` threads.
    pub(crate) fn new(inner: W, level: u32, threads: usize) -> Self {
        ParallelGz {
            inner,
            level,
            threads: threads.max(1),
            pending: vec![Vec::with_capacity(CHUNK)],
            window: Vec::new(),
            crc: Crc::new(),
            header_written: false,
        }
    }

    /// Compresses the rest, writes the trailer, and returns the inner writer.
    pub(crate) fn finish(mut self) -> io::Result<W> {
        self.compress_pending(true)?;
        let mut trailer = [0u8; 8];
        trailer[..4].copy_from_slice(&self.crc.sum().to_le_bytes());
        trailer[4..].copy_from_slice(&self.crc.amount().to_le_bytes());
        self.inner.write_all(&trailer)?;
        Ok(self.inner)
    }

    fn write_header(&mut self) -> io::Result<()> {
        if !self.header_written {
            // No name, no mtime; XFL as gzip(1) sets it for the level; OS = Unix.
            let xfl = match self.level {
                9.. => 2,
                0 | 1 => 4,
                _ => 0,
            };
            self.inner
                .write_all(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, xfl, 3])?;
            self.header_written = true;
        }
        Ok(())
    }

    /// Compresses the whole chunks waiting (and, when `last`, the partial one too) and writes
    /// them in order.
    fn compress_pending(&mut self, last: bool) -> io::Result<()> {
        self.write_header()?;
        let mut chunks = std::mem::take(&mut self.pending);
        let tail = if last { None } else { chunks.pop() };
        let count = chunks.len();
        let jobs: Vec<(&[u8], &[u8], bool)> = chunks
            .iter()
            .enumerate()
            .map(|(i, chunk)| {
                let dict: &[u8] = match i {
                    0 => &self.window,
                    _ => window_of(&chunks[i - 1]),
                };
                (chunk.as_slice(), dict, last && i + 1 == count)
            })
            .collect();
        let level = self.level;
        let outputs: Vec<io::Result<Vec<u8>>> = if jobs.len() <= 1 || self.threads == 1 {
            jobs.iter()
                .map(|&(data, dict, fin)| deflate(data, dict, fin, level))
                .collect()
        } else {
            let per_thread = jobs.len().div_ceil(self.threads);
            std::thread::scope(|scope| {
                let handles: Vec<_> = jobs
                    .chunks(per_thread)
                    .map(|group| {
                        scope.spawn(move || {
                            group
                                .iter()
                                .map(|&(data, dict, fin)| deflate(data, dict, fin, level))
                                .collect::<Vec<_>>()
                        })
                    })
                    .collect();
                handles
                    .into_iter()
                    .flat_map(|h| h.join().expect("a deflate thread panicked"))
                    .collect()
            })
        };
        // The state moves on before the writes, so a failed write (the slug limit, a full disk)
        // leaves a writer that can still be written to, as tar's drop does, without panicking.
        if let Some(chunk) = chunks.last() {
            self.window = window_of(chunk).to_vec();
        }
        self.pending = vec![tail.unwrap_or_else(|| Vec::with_capacity(CHUNK))];
        for output in outputs {
            self.inner.write_all(&output?)?;
        }
        Ok(())
    }
}

impl<W: Write> Write for ParallelGz<W> {
    fn write(&mut self, mut buf: &[u8]) -> io::Result<usize> {
        let written = buf.len();
        self.crc.update(buf);
        while !buf.is_empty() {
            if self.pending.is_empty() {
                self.pending.push(Vec::with_capacity(CHUNK));
            }
            let current = self.pending.last_mut().expect("pushed above");
            let take = (CHUNK - current.len()).min(buf.len());
            current.extend_from_slice(&buf[..take]);
            buf = &buf[take..];
            if current.len() == CHUNK {
                self.pending.push(Vec::with_capacity(CHUNK));
                // A batch of two chunks per thread keeps every thread busy between barriers.
                if self.pending.len() > 2 * self.threads {
                    self.compress_pending(false)?;
                }
            }
        }
        Ok(written)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

fn window_of(chunk: &[u8]) -> &[u8] {
    &chunk[chunk.len().saturating_sub(WINDOW)..]
}

/// One chunk as raw deflate: primed with `dict`, ending in a sync flush, or the final block.
fn deflate(data: &[u8], dict: &[u8], last: bool, level: u32) -> io::Result<Vec<u8>> {
    let mut z = Compress::new(Compression::new(level), false);
    if !dict.is_empty() {
        z.set_dictionary(dict).map_err(io::Error::other)?;
    }
    let flush = if last {
        FlushCompress::Finish
    } else {
        FlushCompress::Sync
    };
    let mut out = Vec::with_capacity(data.len() / 2 + 1024);
    loop {
        let consumed = z.total_in() as usize;
        if out.capacity() - out.len() < 64 << 10 {
            out.reserve(out.capacity().max(64 << 10));
        }
        let status = z
            .compress_vec(&data[consumed..], &mut out, flush)
            .map_err(io::Error::other)?;
        let done_input = z.total_in() as usize == data.len();
        match status {
            Status::StreamEnd => break,
            // A sync flush is complete once all input is in and output space was left over.
            _ if !last && done_input && out.capacity() > out.len() => break,
            _ => {}
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn sample(len: usize) -> Vec<u8> {
        // Compressible but not trivial: repeated words with a counter.
        let mut out = Vec::with_capacity(len);
        let mut i = 0u64;
        while out.len() < len {
            out.extend_from_slice(format!("line {i} of the sample, {}\n", i % 97).as_bytes());
            i += 1;
        }
        out.truncate(len);
        out
    }

    fn gz(data: &[u8], threads: usize, piece: usize) -> Vec<u8> {
        let mut w = ParallelGz::new(Vec::new(), 6, threads);
        for part in data.chunks(piece.max(1)) {
            w.write_all(part).unwrap();
        }
        w.finish().unwrap()
    }

    #[test]
    fn round_trips_and_is_the_same_for_any_thread_count_and_write_size() {
        for len in [0, 1, 1000, CHUNK - 1, CHUNK, CHUNK + 1, 5 * CHUNK + 12_345] {
            let data = sample(len);
            let one = gz(&data, 1, 4096);
            for (threads, piece) in [(2, 1 << 16), (4, 777), (3, len + 1)] {
                assert_eq!(
                    gz(&data, threads, piece),
                    one,
                    "len {len}, {threads} threads"
                );
            }
            let mut back = Vec::new();
            flate2::read::GzDecoder::new(&one[..])
                .read_to_end(&mut back)
                .unwrap();
            assert_eq!(back, data, "len {len}");
        }
    }

    /// Fails every write past `room` bytes, as the slug limit does.
    struct Cramped {
        room: usize,
        written: usize,
    }

    impl Write for Cramped {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if self.written + buf.len() > self.room {
                return Err(io::Error::other("no room"));
            }
            self.written += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn writes_after_a_failed_write_return_errors_not_panics() {
        let data: Vec<u8> = (0..12 * CHUNK).map(|i| (i * 7919 % 251) as u8).collect();
        let mut w = ParallelGz::new(
            Cramped {
                room: 100,
                written: 0,
            },
            6,
            2,
        );
        assert!(w.write_all(&data).is_err(), "the limit is reported");
        // tar's Builder writes its trailer on drop, after the error: that must not panic.
        let _ = w.write_all(&[0u8; 1024]);
        let _ = w.write_all(&data[..3 * CHUNK]);
        assert!(w.finish().is_err());
    }

    #[test]
    fn a_small_input_is_what_plain_gzip_writes_and_big_ones_lose_little() {
        let data = sample(100_000);
        let mut plain = flate2::GzBuilder::new()
            .operating_system(3)
            .write(Vec::new(), Compression::new(6));
        plain.write_all(&data).unwrap();
        assert_eq!(gz(&data, 2, 8192), plain.finish().unwrap());

        let data = sample(8 * CHUNK);
        let mut plain = flate2::GzBuilder::new()
            .operating_system(3)
            .write(Vec::new(), Compression::new(6));
        plain.write_all(&data).unwrap();
        let plain = plain.finish().unwrap().len() as f64;
        let parallel = gz(&data, 2, 1 << 16).len() as f64;
        assert!(parallel / plain < 1.01, "{parallel} vs {plain}");
    }
}
