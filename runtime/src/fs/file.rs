//! [`File`] and [`OpenOptions`].
//!
//! A `File` keeps at most one operation of its `futures-io` traits in flight, with a buffer
//! it owns, as tokio's `File` does:
//!
//! ```text
//!            poll_read / poll_write / poll_seek / poll_flush
//!   Idle(buf) ───────────────────────────────────────────────► Busy(JoinHandle)
//!       ▲         start a read into buf, or copy the caller's        │
//!       │         bytes into buf and start writing them              │ the task or pool job
//!       └────────────────────────────────────────────────────────────┘ ends: (result, buf)
//! ```
//!
//! 1. `poll_read` hands out what the last read left in `buf` before it starts another.
//! 2. `poll_write` returns as soon as the bytes are copied into `buf` and the write started
//!    ("write-behind"); an error of that write comes out of the next write, flush, sync or
//!    read-then-write. `poll_flush` waits for it.
//! 3. The operation runs as a task (io_uring: its request chain, a short write continued
//!    until all is written) or a pool job (epoll), not inside the `File`: dropping the `File`
//!    does not cut a started write short, and a read's buffer is owned by the operation.
//! 4. The file position is the kernel's: reads and writes use it (io_uring: offset `-1`), a
//!    seek is an `lseek(2)` on the loop thread (it does no I/O, so it needs no pool trip), and
//!    read-ahead not yet handed out is given back by seeking back over it before a write or
//!    a relative seek.

use std::fs::File as StdFile;
use std::future::Future;
use std::io::{self, Read as _, Seek, SeekFrom, Write as _};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::{fmt, mem};

use futures_io::{AsyncRead, AsyncSeek, AsyncWrite};

#[cfg(feature = "uring")]
use super::uring;
#[cfg(feature = "uring")]
use super::uring_active;
use super::{asyncify, Metadata};
use crate::task::JoinHandle;

/// The most one `poll_read` reads ahead, or one `poll_write` takes, per operation: tokio's
/// size. Larger buffers mean fewer operations for big transfers, at 2 MiB per open file.
const MAX_BUF: usize = 2 * 1024 * 1024;

/// Options for opening a file: which access, whether to create or truncate it. The same
/// builder as [`std::fs::OpenOptions`] (and tokio's), finished with an async [`open`](Self::open).
///
/// # Examples
///
/// ```
/// use mini::fs::OpenOptions;
/// use mini::io::AsyncWriteExt;
///
/// # mini::block_on(async {
/// # let path = std::env::temp_dir().join(format!("mini-doc-oo-{}", std::process::id()));
/// let mut log = OpenOptions::new().append(true).create(true).open(&path).await?;
/// log.write_all(b"one line\n").await?;
/// log.flush().await?; // the write runs in the background until flushed
/// # drop(log);
/// # mini::fs::remove_file(&path).await?;
/// # Ok::<(), std::io::Error>(())
/// # }).unwrap();
/// ```
#[derive(Debug, Clone)]
pub struct OpenOptions {
    pub(super) read: bool,
    pub(super) write: bool,
    pub(super) append: bool,
    pub(super) truncate: bool,
    pub(super) create: bool,
    pub(super) create_new: bool,
    pub(super) mode: u32,
    pub(super) custom_flags: i32,
}

impl Default for OpenOptions {
    fn default() -> OpenOptions {
        OpenOptions::new()
    }
}

impl OpenOptions {
    /// Everything off; mode `0o666` (less the umask) for a created file.
    pub fn new() -> OpenOptions {
        OpenOptions {
            read: false,
            write: false,
            append: false,
            truncate: false,
            create: false,
            create_new: false,
            mode: 0o666,
            custom_flags: 0,
        }
    }

    /// Open for reading.
    pub fn read(&mut self, read: bool) -> &mut OpenOptions {
        self.read = read;
        self
    }

    /// Open for writing.
    pub fn write(&mut self, write: bool) -> &mut OpenOptions {
        self.write = write;
        self
    }

    /// Open for writing at the end (every write appends, whatever the position).
    pub fn append(&mut self, append: bool) -> &mut OpenOptions {
        self.append = append;
        self
    }

    /// Cut an existing file to length 0 (needs `write`).
    pub fn truncate(&mut self, truncate: bool) -> &mut OpenOptions {
        self.truncate = truncate;
        self
    }

    /// Create the file if it does not exist (needs `write` or `append`).
    pub fn create(&mut self, create: bool) -> &mut OpenOptions {
        self.create = create;
        self
    }

    /// Create the file, failing with `AlreadyExists` if it exists (atomic: `O_EXCL`).
    pub fn create_new(&mut self, create_new: bool) -> &mut OpenOptions {
        self.create_new = create_new;
        self
    }

    /// The permission bits of a created file (`0o666` by default; the umask applies).
    pub fn mode(&mut self, mode: u32) -> &mut OpenOptions {
        self.mode = mode;
        self
    }

    /// Extra `open(2)` flags, such as `O_NOFOLLOW` (the access mode bits are ignored).
    pub fn custom_flags(&mut self, flags: i32) -> &mut OpenOptions {
        // std masks out the access mode the same way.
        self.custom_flags = flags & !0o3;
        self
    }

    /// Opens `path` with these options.
    ///
    /// Errors: `NotFound`, `AlreadyExists` (`create_new`), `PermissionDenied`,
    /// `InvalidInput` for options that contradict each other (nothing to read or write,
    /// `truncate` without `write`, …), and any other error of `open(2)`.
    pub async fn open(&self, path: impl AsRef<Path>) -> io::Result<File> {
        let path = path.as_ref();
        #[cfg(feature = "uring")]
        if uring_active() {
            return uring::open(path, self).await.map(File::from_std);
        }
        let (std, path) = (self.to_std(), path.to_owned());
        asyncify(move || std.open(path)).await.map(File::from_std)
    }

    fn to_std(&self) -> std::fs::OpenOptions {
        let mut o = std::fs::OpenOptions::new();
        o.read(self.read)
            .write(self.write)
            .append(self.append)
            .truncate(self.truncate)
            .create(self.create)
            .create_new(self.create_new)
            .mode(self.mode)
            .custom_flags(self.custom_flags);
        o
    }
}

/// An open file.
///
/// Read and write it through the `futures-io` traits ([`AsyncReadExt`](crate::io::AsyncReadExt)'s
/// `read`, [`AsyncWriteExt`](crate::io::AsyncWriteExt)'s `write_all`, …), which use the file
/// position and keep one operation in flight (see the module docs: a write runs in the
/// background, so flush before you rely on it), or at an offset with owned buffers
/// ([`read_at`](File::read_at), [`write_at`](File::write_at)), which is the completion
/// model's own shape and may run many at once.
///
/// Dropping a `File` closes it (on io_uring with a close request) once its last operation
/// has ended; a write started by `poll_write` still completes. Like mini's sockets, a `File`
/// is not `Send`: its operations run on its runtime's thread.
///
/// # Examples
///
/// ```
/// use mini::fs::File;
/// use mini::io::{AsyncReadExt, AsyncWriteExt};
///
/// # mini::block_on(async {
/// # let path = std::env::temp_dir().join(format!("mini-doc-file-{}", std::process::id()));
/// let mut file = File::create(&path).await?;
/// file.write_all(b"hello").await?;
/// file.sync_all().await?;
///
/// let mut file = File::open(&path).await?;
/// let mut text = Vec::new();
/// file.read_to_end(&mut text).await?;
/// assert_eq!(text, b"hello");
/// # mini::fs::remove_file(&path).await?;
/// # Ok::<(), std::io::Error>(())
/// # }).unwrap();
/// ```
pub struct File {
    /// `None` only inside `drop`. An `Arc`: operations in flight hold it too, so the fd stays
    /// open (and its number unused by another file) until the last of them ends.
    std: Option<Arc<StdFile>>,
    state: State,
    /// An error of a write-behind, kept for the next call that can report it.
    last_write_err: Option<io::Error>,
}

enum State {
    Idle(Buf),
    Busy(JoinHandle<(Operation, Buf)>),
}

enum Operation {
    Read(io::Result<usize>),
    Write(io::Result<()>),
}

/// The `File`'s own buffer: read-ahead not yet handed out is `data[pos..]`.
#[derive(Default)]
struct Buf {
    data: Vec<u8>,
    pos: usize,
}

impl Buf {
    fn unread(&self) -> usize {
        self.data.len() - self.pos
    }

    fn copy_to(&mut self, dst: &mut [u8]) -> usize {
        let n = dst.len().min(self.unread());
        dst[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
        self.pos += n;
        n
    }

    /// `len` zeroed bytes to read into (zeroed: no `unsafe` length games, and memcheck sees
    /// defined bytes even where the kernel filled them without its knowing).
    fn prepare_read(&mut self, len: usize) {
        self.data.clear();
        self.data.resize(len, 0);
        self.pos = 0;
    }

    fn finish_read(&mut self, result: &io::Result<usize>) {
        self.data.truncate(*result.as_ref().unwrap_or(&0));
    }

    fn clear(&mut self) {
        self.data.clear();
        self.pos = 0;
    }
}

impl fmt::Debug for File {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("File")
            .field("std", &self.std)
            .field("busy", &matches!(self.state, State::Busy(_)))
            .finish()
    }
}

/// The result of a task or pool job that ended in a panic or was cancelled (the runtime
/// shutting down): an error, not a second panic.
fn lost(e: crate::JoinError) -> io::Error {
    io::Error::other(format!("file operation failed: {e}"))
}

impl File {
    /// Opens `path` for reading.
    ///
    /// Errors: `NotFound`, `PermissionDenied`, and any other error of `open(2)`.
    pub async fn open(path: impl AsRef<Path>) -> io::Result<File> {
        OpenOptions::new().read(true).open(path).await
    }

    /// Opens `path` for writing, creating it or truncating what it held.
    pub async fn create(path: impl AsRef<Path>) -> io::Result<File> {
        OpenOptions::new().write(true).create(true).truncate(true).open(path).await
    }

    /// Creates `path` for reading and writing; `AlreadyExists` if it exists.
    pub async fn create_new(path: impl AsRef<Path>) -> io::Result<File> {
        OpenOptions::new().read(true).write(true).create_new(true).open(path).await
    }

    /// A new [`OpenOptions`].
    pub fn options() -> OpenOptions {
        OpenOptions::new()
    }

    /// Wraps an open `std::fs::File`.
    pub fn from_std(std: StdFile) -> File {
        File { std: Some(Arc::new(std)), state: State::Idle(Buf::default()), last_write_err: None }
    }

    fn std(&self) -> &Arc<StdFile> {
        self.std.as_ref().expect("the file is open until dropped")
    }

    /// Reads into `buf[..]` at `offset`, without moving the file position; returns how many
    /// bytes it read (0 at the end of the file) and the buffer. The buffer moves into the
    /// operation and comes back with the result: the kernel owns it meanwhile (module docs).
    ///
    /// It does not wait for a write started through `AsyncWrite`: flush first. Several may
    /// run at once on one `File`.
    ///
    /// # Examples
    ///
    /// ```
    /// # mini::block_on(async {
    /// # let path = std::env::temp_dir().join(format!("mini-doc-read-at-{}", std::process::id()));
    /// mini::fs::write(&path, "0123456789").await?;
    /// let file = mini::fs::File::open(&path).await?;
    /// let (n, buf) = file.read_at(vec![0; 4], 6).await;
    /// assert_eq!(&buf[..n?], b"6789");
    /// # mini::fs::remove_file(&path).await?;
    /// # Ok::<(), std::io::Error>(())
    /// # }).unwrap();
    /// ```
    pub async fn read_at(&self, buf: Vec<u8>, offset: u64) -> (io::Result<usize>, Vec<u8>) {
        let std = self.std().clone();
        #[cfg(feature = "uring")]
        if uring_active() {
            return uring::read(std, buf, 0, Some(offset)).await;
        }
        let mut buf = buf;
        let job = crate::spawn_blocking(move || {
            let result = loop {
                match std.read_at(&mut buf, offset) {
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    result => break result,
                }
            };
            (result, buf)
        });
        job.await.unwrap_or_else(|e| (Err(lost(e)), Vec::new()))
    }

    /// Writes `buf[..]` at `offset`, without moving the file position (except in append
    /// mode, where Linux writes at the end); returns how many bytes it wrote, which may be
    /// fewer than `buf.len()`, and the buffer.
    ///
    /// It does not wait for a write started through `AsyncWrite`: flush first.
    pub async fn write_at(&self, buf: Vec<u8>, offset: u64) -> (io::Result<usize>, Vec<u8>) {
        let std = self.std().clone();
        #[cfg(feature = "uring")]
        if uring_active() {
            let (result, buf, _file) = uring::write(std, buf, 0, Some(offset)).await;
            return (result, buf);
        }
        let job = crate::spawn_blocking(move || {
            let result = loop {
                match std.write_at(&buf, offset) {
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    result => break result,
                }
            };
            (result, buf)
        });
        job.await.unwrap_or_else(|e| (Err(lost(e)), Vec::new()))
    }

    /// Writes all of `buf` at `offset` (a short write is continued); returns the buffer.
    ///
    /// # Examples
    ///
    /// ```
    /// # mini::block_on(async {
    /// # let path = std::env::temp_dir().join(format!("mini-doc-write-at-{}", std::process::id()));
    /// let file = mini::fs::File::create(&path).await?;
    /// let (result, _buf) = file.write_all_at(b"world".to_vec(), 6).await;
    /// result?;
    /// let (result, _buf) = file.write_all_at(b"hello ".to_vec(), 0).await;
    /// result?;
    /// assert_eq!(mini::fs::read(&path).await?, b"hello world");
    /// # mini::fs::remove_file(&path).await?;
    /// # Ok::<(), std::io::Error>(())
    /// # }).unwrap();
    /// ```
    pub async fn write_all_at(&self, buf: Vec<u8>, offset: u64) -> (io::Result<()>, Vec<u8>) {
        let std = self.std().clone();
        #[cfg(feature = "uring")]
        if uring_active() {
            return uring::write_all(std, buf, 0, Some(offset)).await;
        }
        let job = crate::spawn_blocking(move || (std.write_all_at(&buf, offset), buf));
        job.await.unwrap_or_else(|e| (Err(lost(e)), Vec::new()))
    }

    /// Waits for the operation in flight, if any; a write's error is kept for the caller.
    fn poll_idle(&mut self, cx: &mut Context<'_>) -> Poll<&mut Buf> {
        if let State::Busy(handle) = &mut self.state {
            let (op, buf) = match ready!(Pin::new(handle).poll(cx)) {
                Ok(done) => done,
                Err(e) => (Operation::Write(Err(lost(e))), Buf::default()),
            };
            self.state = State::Idle(buf);
            if let Operation::Write(Err(e)) = op {
                self.last_write_err = Some(e);
            }
        }
        match &mut self.state {
            State::Idle(buf) => Poll::Ready(buf),
            State::Busy(_) => unreachable!("made idle above"),
        }
    }

    /// Waits for the write in flight and reports a write-behind error, if any.
    async fn settle(&mut self) -> io::Result<()> {
        std::future::poll_fn(|cx| self.poll_idle(cx).map(drop)).await;
        match self.last_write_err.take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Flushes file contents and metadata to the storage device (`fsync(2)`), after waiting
    /// for a write in flight; its error, if it failed, comes out here.
    ///
    /// `&mut self` where std and tokio take `&self`: only the owner can have started the
    /// write it waits for, and with one owner the wait needs no lock.
    pub async fn sync_all(&mut self) -> io::Result<()> {
        self.sync(false).await
    }

    /// Like [`sync_all`](File::sync_all), but may skip metadata the data does not need
    /// (`fdatasync(2)`).
    pub async fn sync_data(&mut self) -> io::Result<()> {
        self.sync(true).await
    }

    async fn sync(&mut self, data_only: bool) -> io::Result<()> {
        self.settle().await?;
        let std = self.std().clone();
        #[cfg(feature = "uring")]
        if uring_active() {
            return uring::fsync(std, data_only).await;
        }
        asyncify(move || if data_only { std.sync_data() } else { std.sync_all() }).await
    }

    /// Truncates or extends the file to `size` bytes (`ftruncate(2)`), after a write in
    /// flight; the position does not move. Runs on the blocking pool on both drivers (module
    /// docs).
    ///
    /// # Examples
    ///
    /// ```
    /// # mini::block_on(async {
    /// # let path = std::env::temp_dir().join(format!("mini-doc-set-len-{}", std::process::id()));
    /// let mut file = mini::fs::File::create(&path).await?;
    /// file.set_len(10).await?;
    /// assert_eq!(file.metadata().await?.len(), 10);
    /// # mini::fs::remove_file(&path).await?;
    /// # Ok::<(), std::io::Error>(())
    /// # }).unwrap();
    /// ```
    pub async fn set_len(&mut self, size: u64) -> io::Result<()> {
        self.settle().await?;
        // Read-ahead past the new end would be stale: give it back (position unchanged).
        self.give_back_read_ahead()?;
        let std = self.std().clone();
        asyncify(move || std.set_len(size)).await
    }

    /// The file's metadata (`statx` on io_uring, `fstat` on the pool).
    pub async fn metadata(&self) -> io::Result<Metadata> {
        let std = self.std().clone();
        #[cfg(feature = "uring")]
        if uring_active() {
            return uring::statx_file(std).await;
        }
        asyncify(move || std.metadata().map(Metadata::from)).await
    }

    /// Moves the kernel's position back over read-ahead not handed out yet (when idle).
    fn give_back_read_ahead(&mut self) -> io::Result<()> {
        let State::Idle(buf) = &mut self.state else { return Ok(()) };
        let unread = buf.unread();
        buf.clear();
        if unread > 0 {
            (&**self.std.as_ref().expect("open")).seek(SeekFrom::Current(-(unread as i64)))?;
        }
        Ok(())
    }

    /// Starts a read of up to `len` bytes at the file position into `buf`.
    fn start_read(&mut self, mut buf: Buf, len: usize) -> JoinHandle<(Operation, Buf)> {
        buf.prepare_read(len);
        let std = self.std().clone();
        #[cfg(feature = "uring")]
        if uring_active() {
            return crate::spawn(async move {
                let (result, data) = uring::read(std, mem::take(&mut buf.data), 0, None).await;
                buf.data = data;
                buf.finish_read(&result);
                (Operation::Read(result), buf)
            });
        }
        crate::spawn_blocking(move || {
            let result = loop {
                match (&*std).read(&mut buf.data) {
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    result => break result,
                }
            };
            buf.finish_read(&result);
            (Operation::Read(result), buf)
        })
    }

    /// Starts writing all of `buf` at the file position.
    fn start_write(&mut self, mut buf: Buf) -> JoinHandle<(Operation, Buf)> {
        let std = self.std().clone();
        #[cfg(feature = "uring")]
        if uring_active() {
            return crate::spawn(async move {
                let (result, data) = uring::write_all(std, mem::take(&mut buf.data), 0, None).await;
                buf.data = data;
                buf.clear();
                (Operation::Write(result), buf)
            });
        }
        crate::spawn_blocking(move || {
            let result = (&*std).write_all(&buf.data);
            buf.clear();
            (Operation::Write(result), buf)
        })
    }
}

impl AsyncRead for File {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, dst: &mut [u8]) -> Poll<io::Result<usize>> {
        let me = self.get_mut();
        loop {
            match &mut me.state {
                State::Idle(buf) => {
                    if buf.unread() > 0 || dst.is_empty() {
                        return Poll::Ready(Ok(buf.copy_to(dst)));
                    }
                    let buf = mem::take(buf);
                    me.state = State::Busy(me.start_read(buf, dst.len().min(MAX_BUF)));
                }
                State::Busy(handle) => {
                    let (op, buf) = match ready!(Pin::new(handle).poll(cx)) {
                        Ok(done) => done,
                        Err(e) => (Operation::Read(Err(lost(e))), Buf::default()),
                    };
                    me.state = State::Idle(buf);
                    match op {
                        Operation::Read(Ok(0)) => return Poll::Ready(Ok(0)),
                        Operation::Read(Ok(_)) => {} // handed out on the next turn
                        Operation::Read(Err(e)) => return Poll::Ready(Err(e)),
                        Operation::Write(Ok(())) => {}
                        Operation::Write(Err(e)) => me.last_write_err = Some(e),
                    }
                }
            }
        }
    }
}

impl AsyncWrite for File {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, src: &[u8]) -> Poll<io::Result<usize>> {
        let me = self.get_mut();
        ready!(me.poll_idle(cx));
        if let Some(e) = me.last_write_err.take() {
            return Poll::Ready(Err(e));
        }
        if src.is_empty() {
            return Poll::Ready(Ok(0));
        }
        me.give_back_read_ahead()?;
        let State::Idle(buf) = &mut me.state else { unreachable!("idle above") };
        let n = src.len().min(MAX_BUF);
        buf.data.extend_from_slice(&src[..n]);
        let buf = mem::take(buf);
        me.state = State::Busy(me.start_write(buf));
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let me = self.get_mut();
        ready!(me.poll_idle(cx));
        Poll::Ready(match me.last_write_err.take() {
            Some(e) => Err(e),
            None => Ok(()),
        })
    }

    /// Flushes; the file itself closes when dropped.
    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_flush(cx)
    }
}

impl AsyncSeek for File {
    fn poll_seek(self: Pin<&mut Self>, cx: &mut Context<'_>, pos: SeekFrom) -> Poll<io::Result<u64>> {
        let me = self.get_mut();
        let buf = ready!(me.poll_idle(cx));
        // The kernel's position is past the read-ahead; the reader's is at `pos`.
        let pos = match pos {
            SeekFrom::Current(n) => SeekFrom::Current(n - buf.unread() as i64),
            other => other,
        };
        buf.clear();
        Poll::Ready((&**me.std()).seek(pos))
    }
}

impl Drop for File {
    fn drop(&mut self) {
        let Some(std) = self.std.take() else { return };
        #[cfg(feature = "uring")]
        uring::release(std);
        #[cfg(not(feature = "uring"))]
        drop(std);
    }
}

/// `fs::read` on io_uring: open, read until a read returns 0, close (not awaited).
///
/// No `statx` first: io_uring always hands a `statx` to one of its worker threads (a thread
/// hop per file, which cost more than the read itself: 5.8 us of CPU per 4 KiB file with it).
/// A small file is read into a first buffer of [`FIRST`] bytes and ends with a second read
/// that returns 0, both inline in the kernel. Only a file that fills the first buffer is
/// asked its size, to read the rest into one buffer of the right size rather than through
/// doublings. The price: a file over 8 KiB takes one more read and loop turn than with
/// `statx` first (about 1 us, 10% of a 20-64 KiB file's CPU).
///
/// Measured and dropped: the second read hard-linked after the first (`IOSQE_IO_HARDLINK`,
/// at the file position), to save its loop turn, cost more CPU (4.1-4.3 against 4.0 us per
/// file); a first buffer of 4 KiB + 32 gained 0-3% on 4 KiB files, within the noise, and
/// made 6000-byte files 10% dearer (a doubling).
#[cfg(feature = "uring")]
pub(super) async fn read_whole(path: &Path) -> io::Result<Vec<u8>> {
    let file = Arc::new(uring::open(path, OpenOptions::new().read(true)).await?);
    let result = read_to_end(&file).await;
    uring::release(file);
    result
}

/// The first buffer of [`read_whole`]: twice a page, so that a file of one page (the common
/// small file) fits with room for the read that finds its end.
#[cfg(feature = "uring")]
const FIRST: usize = 8 * 1024;

/// Reads `file` from its position to its end.
#[cfg(feature = "uring")]
async fn read_to_end(file: &Arc<StdFile>) -> io::Result<Vec<u8>> {
    /// Asked for beyond the size `statx` reports, so that a file of that size ends with one
    /// short read instead of a second read that returns 0.
    const PROBE: usize = 32;
    let mut buf = Vec::new();
    grow_zeroed(&mut buf, FIRST)?;
    let mut filled = 0;
    // The size `statx` reported, once asked (0 for procfs, whatever its contents).
    let mut size = None;
    loop {
        if filled == buf.len() {
            let len = match size {
                None => {
                    let len = uring::statx_file(file.clone()).await?.len();
                    let len = usize::try_from(len).unwrap_or(usize::MAX);
                    size = Some(len);
                    len
                }
                Some(len) => len,
            };
            // The stat'ed size if the file is that big, else (it grew, or stat said 0 or
            // 4096, as procfs and sysfs do) double.
            let len = if len > filled { len.saturating_add(PROBE) } else { buf.len().saturating_mul(2) };
            grow_zeroed(&mut buf, len)?;
        }
        let asked = buf.len() - filled;
        let (result, b) = uring::read(file.clone(), buf, filled, None).await;
        buf = b;
        match result {
            Ok(0) => break,
            Ok(n) => {
                filled += n;
                // A regular file's read returns less than asked only at its end. Not trusted
                // without a stat'ed size, nor below it: procfs and sysfs files return short
                // reads midway, and report a size of 0 or 4096.
                if size.is_some_and(|size| size > 0 && filled >= size) && n < asked {
                    break;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    if filled == 0 {
        return Ok(Vec::new()); // an empty file keeps no buffer
    }
    buf.truncate(filled);
    Ok(buf)
}

/// Zero-fills `buf` to `len` bytes; `OutOfMemory` rather than an abort when that cannot be
/// had (a sparse file may claim terabytes), as std's `read_to_end` does.
#[cfg(feature = "uring")]
fn grow_zeroed(buf: &mut Vec<u8>, len: usize) -> io::Result<()> {
    buf.try_reserve_exact(len - buf.len()).map_err(|_| io::Error::from(io::ErrorKind::OutOfMemory))?;
    buf.resize(len, 0);
    Ok(())
}

/// `fs::write` on io_uring: open (create, truncate), write it all, close.
#[cfg(feature = "uring")]
pub(super) async fn write_whole(path: &Path, contents: Vec<u8>) -> io::Result<()> {
    let file = Arc::new(uring::open(path, OpenOptions::new().write(true).create(true).truncate(true)).await?);
    let (result, _contents) = uring::write_all(file.clone(), contents, 0, None).await;
    uring::release(file);
    result
}
