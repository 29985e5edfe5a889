//! [`read_dir`]: a directory's entries, read on the blocking pool on both drivers (io_uring
//! has no `getdents` request), in batches of 32 per pool trip as tokio does.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::fmt;
use std::future::Future;
use std::io;
use std::os::unix::fs::DirEntryExt;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use futures_core::Stream;

use super::{asyncify, FileType, Metadata};
use crate::task::JoinHandle;

/// Entries read per pool trip: one trip per entry would cost a thread hand-off each; all at
/// once would hold a huge directory in memory. tokio's number.
const CHUNK: usize = 32;

/// The entries of the directory at `path` (without `.` and `..`), in the order the file
/// system gives them.
///
/// The answer is a [`ReadDir`]: call [`next_entry`](ReadDir::next_entry) in a loop, as with
/// tokio's, or use it as a `futures-core` [`Stream`] of `io::Result<DirEntry>`, which is
/// what code written for the `futures` combinators expects. A stream rather than a `Vec`:
/// a directory can hold millions of entries, and a caller that stops early reads no more.
///
/// Errors: `NotFound`, `PermissionDenied`, and the OS error (`ENOTDIR`) for a file.
///
/// # Examples
///
/// ```
/// # mini::block_on(async {
/// let dir = std::env::temp_dir().join(format!("mini-doc-read-dir-{}", std::process::id()));
/// mini::fs::create_dir_all(&dir).await?;
/// mini::fs::write(dir.join("a.txt"), "a").await?;
///
/// let mut entries = mini::fs::read_dir(&dir).await?;
/// let mut names = Vec::new();
/// while let Some(entry) = entries.next_entry().await? {
///     names.push(entry.file_name());
/// }
/// assert_eq!(names, ["a.txt"]);
/// # mini::fs::remove_file(dir.join("a.txt")).await?;
/// # mini::fs::remove_dir(&dir).await?;
/// # Ok::<(), std::io::Error>(())
/// # }).unwrap();
/// ```
pub async fn read_dir(path: impl AsRef<Path>) -> io::Result<ReadDir> {
    let path = path.as_ref().to_owned();
    let std = asyncify(move || std::fs::read_dir(path)).await?;
    Ok(ReadDir(State::Idle(Some(Batch { entries: VecDeque::new(), std, more: true }))))
}

/// The entries of a directory, from [`read_dir`].
pub struct ReadDir(State);

enum State {
    /// `None` only while a poll moves the batch into a pool job.
    Idle(Option<Batch>),
    Busy(JoinHandle<Batch>),
    /// The pool job was lost (the runtime shutting down); its error was reported.
    Lost,
}

struct Batch {
    entries: VecDeque<io::Result<DirEntry>>,
    std: std::fs::ReadDir,
    /// Whether the directory may hold more entries than those read.
    more: bool,
}

impl Batch {
    /// On a pool thread: read up to `CHUNK` entries, with their types (`d_type`, free).
    fn fill(mut self) -> Batch {
        for _ in 0..CHUNK {
            match self.std.next() {
                Some(entry) => self.entries.push_back(entry.map(DirEntry::new)),
                None => {
                    self.more = false;
                    break;
                }
            }
        }
        self
    }
}

impl fmt::Debug for ReadDir {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReadDir").field("busy", &matches!(self.0, State::Busy(_))).finish()
    }
}

impl ReadDir {
    /// The next entry, or `None` when all were read.
    pub async fn next_entry(&mut self) -> io::Result<Option<DirEntry>> {
        std::future::poll_fn(|cx| self.poll_next_entry(cx)).await
    }

    /// Polls for the next entry: `Ready(Ok(None))` when all were read.
    pub fn poll_next_entry(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<Option<DirEntry>>> {
        loop {
            match &mut self.0 {
                State::Idle(batch) => {
                    let mut b = batch.take().expect("a batch between polls");
                    if let Some(entry) = b.entries.pop_front() {
                        self.0 = State::Idle(Some(b));
                        return Poll::Ready(entry.map(Some));
                    }
                    if !b.more {
                        self.0 = State::Idle(Some(b));
                        return Poll::Ready(Ok(None));
                    }
                    self.0 = State::Busy(crate::spawn_blocking(move || b.fill()));
                }
                State::Busy(handle) => match ready!(Pin::new(handle).poll(cx)) {
                    Ok(batch) => self.0 = State::Idle(Some(batch)),
                    Err(e) => {
                        // The job is gone, and the directory handle with it.
                        self.0 = State::Lost;
                        return Poll::Ready(Err(io::Error::other(format!(
                            "reading the directory failed: {e}"
                        ))));
                    }
                },
                State::Lost => return Poll::Ready(Ok(None)),
            }
        }
    }
}

impl Stream for ReadDir {
    type Item = io::Result<DirEntry>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<io::Result<DirEntry>>> {
        self.get_mut().poll_next_entry(cx).map(Result::transpose)
    }
}

/// One entry of a directory.
pub struct DirEntry {
    std: Arc<std::fs::DirEntry>,
    /// Read on the pool thread with the entry: the directory listing carries it (`d_type`)
    /// on most file systems, so it usually costs nothing.
    file_type: Option<FileType>,
}

impl DirEntry {
    fn new(std: std::fs::DirEntry) -> DirEntry {
        let file_type = std.file_type().ok().map(FileType::from);
        DirEntry { std: Arc::new(std), file_type }
    }

    /// The entry's full path: the directory's path joined with [`file_name`](Self::file_name).
    pub fn path(&self) -> PathBuf {
        self.std.path()
    }

    /// The entry's name within its directory.
    pub fn file_name(&self) -> OsString {
        self.std.file_name()
    }

    /// The entry's inode number, from the directory listing.
    pub fn ino(&self) -> u64 {
        self.std.ino()
    }

    /// The entry's type; a symbolic link is reported as one, not followed.
    pub async fn file_type(&self) -> io::Result<FileType> {
        if let Some(t) = self.file_type {
            return Ok(t);
        }
        let std = self.std.clone();
        asyncify(move || std.file_type().map(FileType::from)).await
    }

    /// The entry's metadata; a symbolic link is described, not followed (as std's).
    pub async fn metadata(&self) -> io::Result<Metadata> {
        #[cfg(feature = "uring")]
        if super::uring_active() {
            return super::uring::statx_path(&self.std.path(), false).await;
        }
        let std = self.std.clone();
        asyncify(move || std.metadata().map(Metadata::from)).await
    }
}

impl fmt::Debug for DirEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("DirEntry").field(&self.path()).finish()
    }
}
