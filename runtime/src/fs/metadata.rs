//! [`Metadata`] and [`FileType`]: what `statx` says about a file, on either path.
//!
//! Why mini has its own types where tokio returns `std::fs::Metadata`: std's type can only be
//! made by std's own `stat` call. On io_uring the `statx` is a completion request whose answer
//! is a raw `struct statx`, which std offers no way to wrap. monoio does the same for the
//! same reason. The methods are std's names and meanings, so code written against std's
//! types reads the same.

use std::fmt;
use std::fs::Permissions;
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::time::{Duration, SystemTime};

// The `S_IFMT` file-type bits of `st_mode`. Their values are fixed by POSIX's history and the
// same on every Linux architecture, so they are spelled out here rather than taken from libc.
const S_IFMT: u32 = 0o170000;
const S_IFSOCK: u32 = 0o140000;
const S_IFLNK: u32 = 0o120000;
const S_IFREG: u32 = 0o100000;
const S_IFBLK: u32 = 0o060000;
const S_IFDIR: u32 = 0o040000;
const S_IFCHR: u32 = 0o020000;
const S_IFIFO: u32 = 0o010000;

/// What kind of file an entry is: a regular file, a directory, a symbolic link, …
///
/// The same methods as [`std::fs::FileType`] and its Unix extension.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileType(u32);

impl FileType {
    /// From the `st_mode` (or `stx_mode`) of a stat call: only its type bits count.
    pub(crate) fn from_mode(mode: u32) -> FileType {
        FileType(mode & S_IFMT)
    }

    /// Whether this is a directory.
    pub fn is_dir(&self) -> bool {
        self.0 == S_IFDIR
    }

    /// Whether this is a regular file.
    pub fn is_file(&self) -> bool {
        self.0 == S_IFREG
    }

    /// Whether this is a symbolic link (only ever true for metadata that does not follow links).
    pub fn is_symlink(&self) -> bool {
        self.0 == S_IFLNK
    }

    /// Whether this is a named pipe (FIFO).
    pub fn is_fifo(&self) -> bool {
        self.0 == S_IFIFO
    }

    /// Whether this is a Unix socket.
    pub fn is_socket(&self) -> bool {
        self.0 == S_IFSOCK
    }

    /// Whether this is a block device.
    pub fn is_block_device(&self) -> bool {
        self.0 == S_IFBLK
    }

    /// Whether this is a character device.
    pub fn is_char_device(&self) -> bool {
        self.0 == S_IFCHR
    }
}

impl From<std::fs::FileType> for FileType {
    fn from(t: std::fs::FileType) -> FileType {
        let bits = if t.is_dir() {
            S_IFDIR
        } else if t.is_file() {
            S_IFREG
        } else if t.is_symlink() {
            S_IFLNK
        } else if t.is_fifo() {
            S_IFIFO
        } else if t.is_socket() {
            S_IFSOCK
        } else if t.is_block_device() {
            S_IFBLK
        } else if t.is_char_device() {
            S_IFCHR
        } else {
            0
        };
        FileType(bits)
    }
}

impl fmt::Debug for FileType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self.0 {
            S_IFDIR => "dir",
            S_IFREG => "file",
            S_IFLNK => "symlink",
            S_IFIFO => "fifo",
            S_IFSOCK => "socket",
            S_IFBLK => "block device",
            S_IFCHR => "char device",
            _ => "unknown",
        };
        f.write_str(name)
    }
}

/// A point in time as the kernel reports it: seconds and nanoseconds since the Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Timestamp {
    pub(crate) sec: i64,
    pub(crate) nsec: u32,
}

impl Timestamp {
    fn to_system_time(self) -> SystemTime {
        let nanos = Duration::new(self.sec.unsigned_abs(), self.nsec);
        if self.sec >= 0 {
            SystemTime::UNIX_EPOCH + nanos
        } else {
            // A time before 1970: sec is negative and nsec counts forward from it.
            SystemTime::UNIX_EPOCH - Duration::from_secs(self.sec.unsigned_abs())
                + Duration::from_nanos(self.nsec.into())
        }
    }
}

/// Metadata about a file: its type, size, permissions and times.
///
/// Returned by [`metadata`](super::metadata), [`File::metadata`](super::File::metadata) and
/// [`DirEntry::metadata`](super::DirEntry::metadata). The methods are those of
/// [`std::fs::Metadata`] and its Unix extension (`mode`, `ino`, `uid`, …).
///
/// # Examples
///
/// ```
/// # mini::block_on(async {
/// let dir = std::env::temp_dir().join(format!("mini-doc-metadata-{}", std::process::id()));
/// mini::fs::write(&dir, b"12345").await?;
/// let meta = mini::fs::metadata(&dir).await?;
/// assert!(meta.is_file());
/// assert_eq!(meta.len(), 5);
/// # mini::fs::remove_file(&dir).await?;
/// # Ok::<(), std::io::Error>(())
/// # }).unwrap();
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Metadata {
    pub(crate) mode: u32,
    pub(crate) len: u64,
    pub(crate) ino: u64,
    pub(crate) dev: u64,
    pub(crate) rdev: u64,
    pub(crate) nlink: u64,
    pub(crate) uid: u32,
    pub(crate) gid: u32,
    pub(crate) blksize: u64,
    pub(crate) blocks: u64,
    pub(crate) accessed: Timestamp,
    pub(crate) modified: Timestamp,
    pub(crate) changed: Timestamp,
    /// The birth time, where the file system records it and the kernel reports it.
    pub(crate) created: Option<Timestamp>,
}

impl Metadata {
    /// The file's type.
    pub fn file_type(&self) -> FileType {
        FileType::from_mode(self.mode)
    }

    /// Whether this is a directory.
    pub fn is_dir(&self) -> bool {
        self.file_type().is_dir()
    }

    /// Whether this is a regular file.
    pub fn is_file(&self) -> bool {
        self.file_type().is_file()
    }

    /// Whether this is a symbolic link (only from metadata that does not follow links).
    pub fn is_symlink(&self) -> bool {
        self.file_type().is_symlink()
    }

    /// The size in bytes.
    #[allow(clippy::len_without_is_empty)] // std's name; "empty" means nothing for a directory
    pub fn len(&self) -> u64 {
        self.len
    }

    /// The permission bits, as std's type.
    pub fn permissions(&self) -> Permissions {
        Permissions::from_mode(self.mode)
    }

    /// The last modification time.
    pub fn modified(&self) -> io::Result<SystemTime> {
        Ok(self.modified.to_system_time())
    }

    /// The last access time.
    pub fn accessed(&self) -> io::Result<SystemTime> {
        Ok(self.accessed.to_system_time())
    }

    /// The creation (birth) time; an `Unsupported` error where the file system does not
    /// record it.
    pub fn created(&self) -> io::Result<SystemTime> {
        match self.created {
            Some(t) => Ok(t.to_system_time()),
            None => Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "creation time is not available on this file system",
            )),
        }
    }

    /// The whole `st_mode`: type and permission bits.
    pub fn mode(&self) -> u32 {
        self.mode
    }

    /// The inode number.
    pub fn ino(&self) -> u64 {
        self.ino
    }

    /// The device the file lives on.
    pub fn dev(&self) -> u64 {
        self.dev
    }

    /// The device this file is, for a device file.
    pub fn rdev(&self) -> u64 {
        self.rdev
    }

    /// How many hard links name the file.
    pub fn nlink(&self) -> u64 {
        self.nlink
    }

    /// The owner's user id.
    pub fn uid(&self) -> u32 {
        self.uid
    }

    /// The owner's group id.
    pub fn gid(&self) -> u32 {
        self.gid
    }

    /// The preferred block size for I/O on this file.
    pub fn blksize(&self) -> u64 {
        self.blksize
    }

    /// How many 512-byte blocks the file occupies.
    pub fn blocks(&self) -> u64 {
        self.blocks
    }

    /// The last status change time, in seconds since the Unix epoch (std's `ctime`).
    pub fn ctime(&self) -> i64 {
        self.changed.sec
    }
}

impl From<std::fs::Metadata> for Metadata {
    fn from(m: std::fs::Metadata) -> Metadata {
        let ts = |sec: i64, nsec: i64| Timestamp { sec, nsec: nsec as u32 };
        let created = m.created().ok().map(|t| match t.duration_since(SystemTime::UNIX_EPOCH) {
            Ok(d) => Timestamp { sec: d.as_secs() as i64, nsec: d.subsec_nanos() },
            Err(e) => {
                // Before 1970: express it as a negative second plus forward nanoseconds.
                let back = e.duration();
                let (sec, nsec) = match back.subsec_nanos() {
                    0 => (-(back.as_secs() as i64), 0),
                    n => (-(back.as_secs() as i64) - 1, 1_000_000_000 - n),
                };
                Timestamp { sec, nsec }
            }
        });
        Metadata {
            mode: m.mode(),
            len: m.len(),
            ino: m.ino(),
            dev: m.dev(),
            rdev: m.rdev(),
            nlink: m.nlink(),
            uid: m.uid(),
            gid: m.gid(),
            blksize: m.blksize(),
            blocks: m.blocks(),
            accessed: ts(m.atime(), m.atime_nsec()),
            modified: ts(m.mtime(), m.mtime_nsec()),
            changed: ts(m.ctime(), m.ctime_nsec()),
            created,
        }
    }
}

impl fmt::Debug for Metadata {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metadata")
            .field("file_type", &self.file_type())
            .field("len", &self.len)
            .field("mode", &format_args!("{:o}", self.mode))
            .field("ino", &self.ino)
            .finish_non_exhaustive()
    }
}
