//! Files and directories: [`File`], [`OpenOptions`], [`read_dir`] and the one-call helpers
//! ([`read`], [`write()`], [`metadata`], …), with tokio's names and meanings.
//!
//! # Two paths, chosen when each operation starts
//!
//! - **On the io_uring driver** ([`Driver::IoUring`](crate::Driver)), an operation is a
//!   *completion request*: the kernel opens, reads, writes, stats, syncs, renames, removes
//!   or closes, and posts the result; the task sleeps meanwhile and the loop runs others.
//!   `fs::read` of a small file is four requests (`openat`, `statx`, `read`, `close`), sent
//!   in the loop's batches together with everyone else's.
//! - **On the epoll driver**, a regular file is always "ready" to epoll (it cannot wait on
//!   one), so each operation runs on the runtime's blocking pool
//!   ([`spawn_blocking`](crate::spawn_blocking)), as `tokio::fs` does: one pool trip per call
//!   (`fs::read` is one `std::fs::read` on a pool thread).
//!
//! On both, [`read_dir`] and [`File::set_len`] use the pool: io_uring has no `getdents`
//! request, and its `ftruncate` request is new (Linux 6.9).
//!
//! # Who owns the buffer
//!
//! The kernel writes a read's bytes into the buffer *at some time before* it posts the
//! completion. A future can be dropped at any `.await` (a `select!` that took another
//! branch, a timeout). If the buffer were a borrowed `&mut [u8]`, dropping the future would
//! end the borrow and the caller could free or reuse that memory while the kernel still
//! writes into it. So the buffer is owned: a `Vec<u8>` moves into the request and comes back
//! with the result ([`File::read_at`] takes and returns one). When the future is dropped
//! first, the driver keeps the buffer (and the file, so its descriptor stays open) until the
//! kernel is done. The [`futures_io`] traits take borrowed slices, so [`File`]'s `AsyncRead`
//! and `AsyncWrite` copy through a buffer the `File` owns, with one operation in flight, as
//! tokio's `File` does on its pool.
//!
//! # Examples
//!
//! ```
//! # mini::block_on(async {
//! let dir = std::env::temp_dir().join(format!("mini-doc-fs-{}", std::process::id()));
//! mini::fs::create_dir_all(&dir).await?;
//! let path = dir.join("hello.txt");
//! mini::fs::write(&path, "hello, world").await?;
//! assert_eq!(mini::fs::read_to_string(&path).await?, "hello, world");
//! mini::fs::remove_file(&path).await?;
//! # mini::fs::remove_dir(&dir).await?;
//! # Ok::<(), std::io::Error>(())
//! # }).unwrap();
//! ```

mod file;
mod metadata;
mod read_dir;
#[cfg(feature = "uring")]
mod uring;

use std::io;
use std::path::{Path, PathBuf};

pub use file::{File, OpenOptions};
pub use metadata::{FileType, Metadata};
pub use read_dir::{read_dir, DirEntry, ReadDir};

/// Whether this thread's runtime runs the io_uring driver: the one check that picks a path.
/// (Without the `uring` feature there is no such path, and no call.)
#[cfg(feature = "uring")]
fn uring_active() -> bool {
    crate::uring::op::active()
}

/// Runs `f` on the blocking pool and awaits its result.
async fn asyncify<T, F>(f: F) -> io::Result<T>
where
    F: FnOnce() -> io::Result<T> + Send + 'static,
    T: Send + 'static,
{
    match crate::spawn_blocking(f).await {
        Ok(result) => result,
        // A panic in std::fs, or the runtime shutting down: say so rather than unwind here.
        Err(e) => Err(io::Error::other(format!("blocking file operation failed: {e}"))),
    }
}

/// Reads the whole file at `path`.
///
/// Errors: those of `open(2)` and `read(2)`: `NotFound`, `PermissionDenied`, and the OS
/// error for a directory (`EISDIR`).
///
/// # Examples
///
/// ```
/// # mini::block_on(async {
/// # let path = std::env::temp_dir().join(format!("mini-doc-read-{}", std::process::id()));
/// mini::fs::write(&path, [1, 2, 3]).await?;
/// assert_eq!(mini::fs::read(&path).await?, [1, 2, 3]);
/// # mini::fs::remove_file(&path).await?;
/// # Ok::<(), std::io::Error>(())
/// # }).unwrap();
/// ```
pub async fn read(path: impl AsRef<Path>) -> io::Result<Vec<u8>> {
    let path = path.as_ref();
    #[cfg(feature = "uring")]
    if uring_active() {
        return file::read_whole(path).await;
    }
    let path = path.to_owned();
    asyncify(move || std::fs::read(path)).await
}

/// Reads the whole file at `path` as UTF-8; `InvalidData` if it is not.
///
/// # Examples
///
/// ```
/// # mini::block_on(async {
/// # let path = std::env::temp_dir().join(format!("mini-doc-rts-{}", std::process::id()));
/// mini::fs::write(&path, "text").await?;
/// assert_eq!(mini::fs::read_to_string(&path).await?, "text");
/// # mini::fs::remove_file(&path).await?;
/// # Ok::<(), std::io::Error>(())
/// # }).unwrap();
/// ```
pub async fn read_to_string(path: impl AsRef<Path>) -> io::Result<String> {
    let bytes = read(path).await?;
    String::from_utf8(bytes)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "stream did not contain valid UTF-8"))
}

/// Writes `contents` to the file at `path`, creating it or replacing what it held.
///
/// The bytes are copied into an owned buffer first (the request must own what the kernel
/// reads, see the module docs).
///
/// # Examples
///
/// ```
/// # mini::block_on(async {
/// # let path = std::env::temp_dir().join(format!("mini-doc-write-{}", std::process::id()));
/// mini::fs::write(&path, "first").await?;
/// mini::fs::write(&path, "second").await?;
/// assert_eq!(mini::fs::read_to_string(&path).await?, "second");
/// # mini::fs::remove_file(&path).await?;
/// # Ok::<(), std::io::Error>(())
/// # }).unwrap();
/// ```
pub async fn write(path: impl AsRef<Path>, contents: impl AsRef<[u8]>) -> io::Result<()> {
    let (path, contents) = (path.as_ref(), contents.as_ref().to_vec());
    #[cfg(feature = "uring")]
    if uring_active() {
        return file::write_whole(path, contents).await;
    }
    let path = path.to_owned();
    asyncify(move || std::fs::write(path, contents)).await
}

/// Metadata of the file at `path`, following symbolic links.
///
/// # Examples
///
/// ```
/// # mini::block_on(async {
/// let meta = mini::fs::metadata(std::env::temp_dir()).await?;
/// assert!(meta.is_dir());
/// # Ok::<(), std::io::Error>(())
/// # }).unwrap();
/// ```
pub async fn metadata(path: impl AsRef<Path>) -> io::Result<Metadata> {
    let path = path.as_ref();
    #[cfg(feature = "uring")]
    if uring_active() {
        return uring::statx_path(path, true).await;
    }
    let path = path.to_owned();
    asyncify(move || std::fs::metadata(path).map(Metadata::from)).await
}

/// Metadata of `path` itself: a symbolic link is described, not followed.
pub async fn symlink_metadata(path: impl AsRef<Path>) -> io::Result<Metadata> {
    let path = path.as_ref();
    #[cfg(feature = "uring")]
    if uring_active() {
        return uring::statx_path(path, false).await;
    }
    let path = path.to_owned();
    asyncify(move || std::fs::symlink_metadata(path).map(Metadata::from)).await
}

/// Creates the directory `path`; `AlreadyExists` if something is there, `NotFound` if its
/// parent is missing ([`create_dir_all`] makes the parents too).
pub async fn create_dir(path: impl AsRef<Path>) -> io::Result<()> {
    let path = path.as_ref();
    #[cfg(feature = "uring")]
    if uring_active() {
        return uring::mkdir(path).await;
    }
    let path = path.to_owned();
    asyncify(move || std::fs::create_dir(path)).await
}

/// Creates the directory `path` and every missing parent. A directory already there is not
/// an error; a file in the way is (`AlreadyExists`, or `NotADirectory` for a parent).
///
/// # Examples
///
/// ```
/// # mini::block_on(async {
/// let base = std::env::temp_dir().join(format!("mini-doc-cda-{}", std::process::id()));
/// mini::fs::create_dir_all(base.join("a/b/c")).await?;
/// assert!(mini::fs::metadata(base.join("a/b/c")).await?.is_dir());
/// mini::fs::create_dir_all(base.join("a/b/c")).await?; // already there: fine
/// # for d in ["a/b/c", "a/b", "a", ""] { mini::fs::remove_dir(base.join(d)).await?; }
/// # Ok::<(), std::io::Error>(())
/// # }).unwrap();
/// ```
pub async fn create_dir_all(path: impl AsRef<Path>) -> io::Result<()> {
    let path = path.as_ref();
    #[cfg(feature = "uring")]
    if uring_active() {
        return create_dir_all_uring(path).await;
    }
    let path = path.to_owned();
    asyncify(move || std::fs::create_dir_all(path)).await
}

/// `create_dir_all` as std does it, with one request per step: walk up until a `mkdir`
/// succeeds or finds its parent, then create the missing ones on the way back down.
#[cfg(feature = "uring")]
async fn create_dir_all_uring(path: &Path) -> io::Result<()> {
    // `mkdir` of `dir`, where a directory already there (made by us or a racing process)
    // counts as success.
    async fn make(dir: &Path) -> io::Result<bool> {
        match uring::mkdir(dir).await {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => match uring::statx_path(dir, true).await {
                Ok(m) if m.is_dir() => Ok(true),
                _ => Err(e),
            },
        }
    }
    let mut missing: Vec<&Path> = Vec::new();
    let mut dir = path;
    loop {
        // "" is the working directory (the parent of a relative one-component path).
        if dir.as_os_str().is_empty() || make(dir).await? {
            break;
        }
        missing.push(dir);
        dir = match dir.parent() {
            Some(parent) => parent,
            None => return Err(io::Error::other("failed to create whole tree")),
        };
    }
    for dir in missing.into_iter().rev() {
        if !make(dir).await? {
            // Removed again by someone else between our two steps.
            return Err(io::Error::new(io::ErrorKind::NotFound, format!("{} vanished", dir.display())));
        }
    }
    Ok(())
}

/// Removes the file (or symbolic link) at `path`; `NotFound` if there is none, the OS error
/// (`EISDIR`) for a directory.
pub async fn remove_file(path: impl AsRef<Path>) -> io::Result<()> {
    let path = path.as_ref();
    #[cfg(feature = "uring")]
    if uring_active() {
        return uring::unlink(path, false).await;
    }
    let path = path.to_owned();
    asyncify(move || std::fs::remove_file(path)).await
}

/// Removes the empty directory at `path`.
pub async fn remove_dir(path: impl AsRef<Path>) -> io::Result<()> {
    let path = path.as_ref();
    #[cfg(feature = "uring")]
    if uring_active() {
        return uring::unlink(path, true).await;
    }
    let path = path.to_owned();
    asyncify(move || std::fs::remove_dir(path)).await
}

/// Renames `from` to `to`, replacing `to` if it exists (`rename(2)`: atomic within one file
/// system; `CrossesDevices` across two).
///
/// # Examples
///
/// ```
/// # mini::block_on(async {
/// # let from = std::env::temp_dir().join(format!("mini-doc-rename-a-{}", std::process::id()));
/// # let to = std::env::temp_dir().join(format!("mini-doc-rename-b-{}", std::process::id()));
/// mini::fs::write(&from, "x").await?;
/// mini::fs::rename(&from, &to).await?;
/// assert_eq!(mini::fs::read(&from).await.unwrap_err().kind(), std::io::ErrorKind::NotFound);
/// # mini::fs::remove_file(&to).await?;
/// # Ok::<(), std::io::Error>(())
/// # }).unwrap();
/// ```
pub async fn rename(from: impl AsRef<Path>, to: impl AsRef<Path>) -> io::Result<()> {
    let (from, to) = (from.as_ref(), to.as_ref());
    #[cfg(feature = "uring")]
    if uring_active() {
        return uring::rename(from, to).await;
    }
    let (from, to): (PathBuf, PathBuf) = (from.to_owned(), to.to_owned());
    asyncify(move || std::fs::rename(from, to)).await
}
