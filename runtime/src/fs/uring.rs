//! The io_uring path: each file operation is one completion request.
//!
//! Every function here builds one submission entry and hands it to the driver with
//! [`submit`], together with everything the entry points into (`keep`): the buffer, the path
//! as a `CString`, the `statx` output in a `Box`, and the file itself (an `Arc<std::fs::File>`,
//! so that its fd is not closed, and its number not reused, while the kernel still works on
//! it). The driver holds `keep` until the completion arrives, whether or not anyone still
//! awaits the [`Op`]: a dropped future never leaves the kernel writing into freed memory.
//!
//! This file is the `fs` module's seam to the kernel's ABI (open flags, `statx`, `AT_*`
//! constants), the way `sys/` is the rest of the runtime's; nothing else in `fs` names libc.

use std::ffi::CString;
use std::fs::File as StdFile;
use std::future::Future;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use io_uring::{opcode, types};

use super::metadata::{Metadata, Timestamp};
use super::OpenOptions;
use crate::uring::op::{submit, Op};

/// `offset` for a read or write at the file position (which it then advances), like `read(2)`.
const AT_POSITION: u64 = u64::MAX;

/// The path as the kernel takes it: a C string, owned, so it can travel in `keep`.
pub(super) fn c_path(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes()).map_err(|_| {
        io::Error::new(io::ErrorKind::InvalidInput, "file name contained an unexpected NUL byte")
    })
}

/// `open(2)` flags for `options`, checked the way std checks them (`EINVAL` for a
/// combination that makes no sense, such as `truncate` without `write`).
pub(super) fn open_flags(o: &OpenOptions) -> io::Result<i32> {
    let invalid = || Err(io::Error::from_raw_os_error(libc::EINVAL));
    let access = match (o.read, o.write, o.append) {
        (true, false, false) => libc::O_RDONLY,
        (false, true, false) => libc::O_WRONLY,
        (true, true, false) => libc::O_RDWR,
        (false, _, true) => libc::O_WRONLY | libc::O_APPEND,
        (true, _, true) => libc::O_RDWR | libc::O_APPEND,
        (false, false, false) => return invalid(),
    };
    match (o.write, o.append) {
        (true, false) => {}
        (false, false) if o.truncate || o.create || o.create_new => return invalid(),
        (_, true) if o.truncate && !o.create_new => return invalid(),
        _ => {}
    }
    let creation = match (o.create, o.truncate, o.create_new) {
        (_, _, true) => libc::O_CREAT | libc::O_EXCL,
        (false, false, false) => 0,
        (true, false, false) => libc::O_CREAT,
        (false, true, false) => libc::O_TRUNC,
        (true, true, false) => libc::O_CREAT | libc::O_TRUNC,
    };
    Ok(access | creation | libc::O_CLOEXEC | o.custom_flags)
}

/// An `openat` in flight. If it is dropped before the kernel answers, the descriptor the
/// kernel is about to hand out would belong to nobody: a task is left behind to close it.
struct Opening {
    op: Option<Op<CString>>,
}

impl Future for Opening {
    type Output = io::Result<OwnedFd>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<OwnedFd>> {
        let op = self.op.as_mut().expect("polled after completion");
        let (result, _path) = std::task::ready!(Pin::new(op).poll(cx));
        self.op = None;
        // SAFETY: a successful openat returns a new descriptor that nothing else owns.
        Poll::Ready(result.map(|fd| unsafe { OwnedFd::from_raw_fd(fd as i32) }))
    }
}

impl Drop for Opening {
    fn drop(&mut self) {
        let Some(op) = self.op.take() else { return };
        // Normally dropped inside the runtime that submitted it (`Op` is not `Send`). Outside
        // any io_uring runtime, or while one shuts down (the task is dropped with the rest),
        // nobody will read the answer: a descriptor it carries stays open, a leak nothing
        // can prevent without waiting in `drop`.
        if crate::uring::op::active() {
            drop(crate::spawn(async move {
                if let (Ok(fd), _) = op.await {
                    // SAFETY: as in `poll`: the kernel's new descriptor, owned by nobody else.
                    drop(unsafe { OwnedFd::from_raw_fd(fd as i32) });
                }
            }));
        }
    }
}

/// `openat(AT_FDCWD, path, flags, mode)`.
pub(super) async fn open(path: &Path, options: &OpenOptions) -> io::Result<StdFile> {
    let flags = open_flags(options)?;
    let path = c_path(path)?;
    let entry =
        opcode::OpenAt::new(types::Fd(libc::AT_FDCWD), path.as_ptr()).flags(flags).mode(options.mode).build();
    // SAFETY: the entry's one pointer is the path's bytes, owned by the CString in `keep`.
    let op = unsafe { submit(entry, path) };
    Ok(StdFile::from(Opening { op: Some(op) }.await?))
}

/// Closes `file` with a request the driver sends with its next batch, instead of a `close(2)`
/// of its own; nobody waits for the answer (std's `drop` ignores close errors too).
pub(super) fn close(file: StdFile) {
    let fd = file.into_raw_fd();
    let entry = opcode::Close::new(types::Fd(fd)).build();
    // SAFETY: the entry holds no pointer. The descriptor is ours (just taken out of `file`),
    // and after this request nobody names it again.
    let _not_awaited = unsafe { submit(entry, ()) };
}

/// `pread(2)` into `buf[from..]` at `offset`, or at the file position if `offset` is `None`.
/// Returns `buf` in every case.
pub(super) async fn read(
    file: Arc<StdFile>,
    mut buf: Vec<u8>,
    from: usize,
    offset: Option<u64>,
) -> (io::Result<usize>, Vec<u8>) {
    let rest = &mut buf[from..];
    let len = u32::try_from(rest.len()).unwrap_or(u32::MAX);
    let entry = opcode::Read::new(types::Fd(file.as_raw_fd()), rest.as_mut_ptr(), len)
        .offset(offset.unwrap_or(AT_POSITION))
        .build();
    // SAFETY: the entry points into `buf`'s heap memory (moving the Vec into `keep` does not
    // move it), and names `file`'s descriptor, which `keep` keeps open until the completion.
    let (result, (buf, _file)) = unsafe { submit(entry, (buf, file)) }.await;
    (result.map(|n| n as usize), buf)
}

/// `pwrite(2)` of `buf[from..]` at `offset` (or at the file position). One request: the
/// kernel may write fewer bytes than asked.
pub(super) async fn write(
    file: Arc<StdFile>,
    buf: Vec<u8>,
    from: usize,
    offset: Option<u64>,
) -> (io::Result<usize>, Vec<u8>, Arc<StdFile>) {
    let rest = &buf[from..];
    let len = u32::try_from(rest.len()).unwrap_or(u32::MAX);
    let entry = opcode::Write::new(types::Fd(file.as_raw_fd()), rest.as_ptr(), len)
        .offset(offset.unwrap_or(AT_POSITION))
        .build();
    // SAFETY: as in `read`: `buf`'s heap memory and `file`'s descriptor live in `keep`.
    let (result, (buf, file)) = unsafe { submit(entry, (buf, file)) }.await;
    (result.map(|n| n as usize), buf, file)
}

/// Writes all of `buf[from..]`, at `offset` and on (or at the file position), one request
/// per short write.
pub(super) async fn write_all(
    mut file: Arc<StdFile>,
    mut buf: Vec<u8>,
    mut from: usize,
    mut offset: Option<u64>,
) -> (io::Result<()>, Vec<u8>) {
    while from < buf.len() {
        let (result, b, f) = write(file, buf, from, offset).await;
        (buf, file) = (b, f);
        match result {
            Ok(0) => return (Err(io::ErrorKind::WriteZero.into()), buf),
            Ok(n) => {
                from += n;
                offset = offset.map(|o| o + n as u64);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return (Err(e), buf),
        }
    }
    (Ok(()), buf)
}

/// `fsync(2)`, or `fdatasync(2)` if `data_only`.
pub(super) async fn fsync(file: Arc<StdFile>, data_only: bool) -> io::Result<()> {
    let flags = if data_only { types::FsyncFlags::DATASYNC } else { types::FsyncFlags::empty() };
    let entry = opcode::Fsync::new(types::Fd(file.as_raw_fd())).flags(flags).build();
    // SAFETY: no pointers; `keep` keeps the descriptor open until the completion.
    unsafe { submit(entry, file) }.await.0.map(drop)
}

/// `statx` of `path` (following symbolic links if `follow`).
pub(super) async fn statx_path(path: &Path, follow: bool) -> io::Result<Metadata> {
    let path = c_path(path)?;
    let flags = if follow { 0 } else { libc::AT_SYMLINK_NOFOLLOW };
    statx(libc::AT_FDCWD, path, flags, ()).await
}

/// `statx` of an open file (`AT_EMPTY_PATH`).
pub(super) async fn statx_file(file: Arc<StdFile>) -> io::Result<Metadata> {
    let fd = file.as_raw_fd();
    statx(fd, CString::default(), libc::AT_EMPTY_PATH, file).await
}

async fn statx<F: 'static>(dirfd: i32, path: CString, flags: i32, file: F) -> io::Result<Metadata> {
    // SAFETY: `statx` is plain integers, for which all-zero bytes are a valid value (and
    // zeroed, memcheck sees the buffer as initialised, though the kernel fills it unseen).
    let mut out: Box<libc::statx> = Box::new(unsafe { std::mem::zeroed() });
    let entry = opcode::Statx::new(types::Fd(dirfd), path.as_ptr(), (&mut *out as *mut libc::statx).cast())
        .flags(flags | libc::AT_STATX_SYNC_AS_STAT)
        .mask(libc::STATX_BASIC_STATS | libc::STATX_BTIME)
        .build();
    // SAFETY: the entry points at the path's bytes (the CString) and the output (the Box's
    // heap memory), both in `keep`; `file`, if any, keeps the dirfd open.
    let (result, (_path, out, _file)) = unsafe { submit(entry, (path, out, file)) }.await;
    result?;
    Ok(metadata(&out))
}

fn metadata(s: &libc::statx) -> Metadata {
    let ts = |t: libc::statx_timestamp| Timestamp { sec: t.tv_sec, nsec: t.tv_nsec };
    Metadata {
        mode: s.stx_mode.into(),
        len: s.stx_size,
        ino: s.stx_ino,
        dev: libc::makedev(s.stx_dev_major, s.stx_dev_minor),
        rdev: libc::makedev(s.stx_rdev_major, s.stx_rdev_minor),
        nlink: s.stx_nlink.into(),
        uid: s.stx_uid,
        gid: s.stx_gid,
        blksize: s.stx_blksize.into(),
        blocks: s.stx_blocks,
        accessed: ts(s.stx_atime),
        modified: ts(s.stx_mtime),
        changed: ts(s.stx_ctime),
        created: (s.stx_mask & libc::STATX_BTIME != 0).then(|| ts(s.stx_btime)),
    }
}

/// Runs one request that answers only a status.
///
/// # Safety
///
/// As for [`submit`]: `entry` points only into `keep` (here: the paths' `CString`s).
async unsafe fn path_op<K: 'static>(entry: io_uring::squeue::Entry, keep: K) -> io::Result<()> {
    // SAFETY: the caller's promise.
    unsafe { submit(entry, keep) }.await.0.map(drop)
}

/// `unlinkat(AT_FDCWD, path, 0)`, or with `AT_REMOVEDIR` (`rmdir`) if `dir`.
pub(super) async fn unlink(path: &Path, dir: bool) -> io::Result<()> {
    let path = c_path(path)?;
    let flags = if dir { libc::AT_REMOVEDIR } else { 0 };
    let entry = opcode::UnlinkAt::new(types::Fd(libc::AT_FDCWD), path.as_ptr()).flags(flags).build();
    // SAFETY: the entry points at the path's bytes, owned by the CString in `keep`.
    unsafe { path_op(entry, path) }.await
}

/// `renameat(AT_FDCWD, from, AT_FDCWD, to)`.
pub(super) async fn rename(from: &Path, to: &Path) -> io::Result<()> {
    let (from, to) = (c_path(from)?, c_path(to)?);
    let cwd = types::Fd(libc::AT_FDCWD);
    let entry = opcode::RenameAt::new(cwd, from.as_ptr(), cwd, to.as_ptr()).build();
    // SAFETY: the entry points at the two paths' bytes, owned by the CStrings in `keep`.
    unsafe { path_op(entry, (from, to)) }.await
}

/// `mkdirat(AT_FDCWD, path, 0o777)` (less the umask, as always).
pub(super) async fn mkdir(path: &Path) -> io::Result<()> {
    let path = c_path(path)?;
    let entry = opcode::MkDirAt::new(types::Fd(libc::AT_FDCWD), path.as_ptr()).mode(0o777).build();
    // SAFETY: the entry points at the path's bytes, owned by the CString in `keep`.
    unsafe { path_op(entry, path) }.await
}

/// A `File`'s descriptor, closed with a request rather than `close(2)` when the last `Arc`
/// goes, if the io_uring driver is running then.
pub(super) fn release(file: Arc<StdFile>) {
    match Arc::try_unwrap(file) {
        Ok(file) if crate::uring::op::active() => close(file),
        Ok(file) => drop(file),
        Err(_) => {} // an operation in flight still holds it; its end closes it
    }
}
