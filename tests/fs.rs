//! `mini::fs`, black-box, on both drivers: every function, the `futures-io` traits of `File`,
//! the errors (missing file, `create_new` on an existing one, a directory read as a file),
//! and a read dropped while the kernel still works on it.
//!
//! Each test body runs twice, on a runtime built with `Driver::Epoll` (the blocking-pool
//! path) and one built with `Driver::IoUring` (completion requests). Where the kernel
//! refuses io_uring the runtime falls back to epoll; the io_uring half then prints why it is
//! skipped. Every body runs under a timeout that turns a hang into a failure. Files live in
//! a directory of their own per test and driver, removed afterwards.

use std::ffi::CString;
use std::future::{poll_fn, Future};
use std::io::{self, ErrorKind, SeekFrom};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::Poll;
use std::time::{Duration, Instant};

use mini::fs::{self, File, OpenOptions};
use mini::io::{AsyncReadExt, AsyncWriteExt};
use mini::{Builder, Driver};

/// How long a body may run before it counts as hung.
const HANG: Duration = Duration::from_secs(20);

/// A directory for one test on one driver, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(test: &str, driver: Driver) -> TempDir {
        let path = std::env::temp_dir().join(format!("mini-fs-{}-{test}-{driver:?}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs `body` on each driver in `drivers` with a fresh directory; a runtime that fell back
/// from io_uring skips its half, saying so.
fn on<F, Fut>(test: &str, drivers: &[Driver], body: F)
where
    F: Fn(PathBuf) -> Fut,
    Fut: Future<Output = io::Result<()>>,
{
    for &driver in drivers {
        // Setting files up with std inside the body takes a while in a debug build: no
        // slow-poll warnings for that.
        let rt = Builder::new().driver(driver).slow_poll_threshold(None).build().unwrap();
        if rt.driver() != driver {
            println!("skipped: {test} on {driver:?}: the runtime runs {:?} (io_uring refused)", rt.driver());
            continue;
        }
        let dir = TempDir::new(test, driver);
        let result = rt.block_on(mini::time::timeout(HANG, body(dir.0.clone())));
        match result {
            Ok(Ok(())) => {}
            Ok(Err(e)) => panic!("{test} on {driver:?}: {e}"),
            Err(_) => panic!("{test} on {driver:?}: hung for {HANG:?}"),
        }
    }
}

/// Both drivers.
fn on_both<F, Fut>(test: &str, body: F)
where
    F: Fn(PathBuf) -> Fut,
    Fut: Future<Output = io::Result<()>>,
{
    on(test, &[Driver::Epoll, Driver::IoUring], body)
}

/// `n` bytes of a pattern that shows a misplaced or repeated chunk.
fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i % 251) as u8).collect()
}

#[test]
fn write_then_read_round_trips_and_write_replaces() {
    on_both("round_trip", |dir| async move {
        let path = dir.join("f");
        fs::write(&path, "hello, world").await?;
        assert_eq!(fs::read(&path).await?, b"hello, world");
        assert_eq!(fs::read_to_string(&path).await?, "hello, world");
        fs::write(&path, "short").await?;
        assert_eq!(fs::read_to_string(&path).await?, "short", "write truncates what was there");
        fs::write(&path, "").await?;
        assert_eq!(fs::read(&path).await?, b"");
        Ok(())
    });
}

/// Around the io_uring path's first buffer (8 KiB, and 32 bytes past it, read once the size
/// is known): the file that fills it exactly, one byte more, and an empty one.
#[test]
fn read_returns_whole_files_of_any_size() {
    on_both("sizes", |dir| async move {
        let edges = [8191, 8192, 8193, 8223, 8224, 8225, 16384, 16385];
        for n in [0, 1, 31, 32, 33, 4095, 4096, 4097].into_iter().chain(edges).chain([1 << 20, (3 << 20) + 7])
        {
            let path = dir.join(format!("f{n}"));
            std::fs::write(&path, pattern(n))?;
            let got = fs::read(&path).await?;
            assert_eq!(got.len(), n);
            assert!(got == pattern(n), "contents of a {n}-byte file");
        }
        Ok(())
    });
}

/// procfs files say their size is 0 and return short reads midway (`/proc/kallsyms` about a
/// page per read): `read` must read on to the end, not trust either.
#[test]
fn read_reads_procfs_files_to_their_end() {
    on_both("procfs", |_dir| async move {
        let status = fs::read_to_string("/proc/self/status").await?;
        assert!(status.starts_with("Name:"), "{status}");
        assert!(status.contains("VmRSS") && status.ends_with('\n'), "read to the end: {status}");
        // Megabytes that do not change, read a page at a time.
        match std::fs::read("/proc/kallsyms") {
            Ok(want) => assert!(fs::read("/proc/kallsyms").await? == want, "/proc/kallsyms read whole"),
            Err(e) => println!("skipped: /proc/kallsyms: {e}"),
        }
        Ok(())
    });
}

#[test]
fn read_to_string_rejects_invalid_utf8() {
    on_both("utf8", |dir| async move {
        let path = dir.join("f");
        fs::write(&path, [0xff, 0xfe]).await?;
        assert_eq!(fs::read_to_string(&path).await.unwrap_err().kind(), ErrorKind::InvalidData);
        Ok(())
    });
}

#[test]
fn missing_files_are_not_found() {
    on_both("missing", |dir| async move {
        let path = dir.join("nope");
        assert_eq!(fs::read(&path).await.unwrap_err().kind(), ErrorKind::NotFound);
        assert_eq!(fs::read_to_string(&path).await.unwrap_err().kind(), ErrorKind::NotFound);
        assert_eq!(fs::metadata(&path).await.unwrap_err().kind(), ErrorKind::NotFound);
        assert_eq!(fs::remove_file(&path).await.unwrap_err().kind(), ErrorKind::NotFound);
        assert_eq!(fs::rename(&path, dir.join("x")).await.unwrap_err().kind(), ErrorKind::NotFound);
        assert_eq!(File::open(&path).await.unwrap_err().kind(), ErrorKind::NotFound);
        assert_eq!(fs::read_dir(&path).await.unwrap_err().kind(), ErrorKind::NotFound);
        assert_eq!(fs::write(dir.join("no/such/dir"), "x").await.unwrap_err().kind(), ErrorKind::NotFound);
        Ok(())
    });
}

#[test]
fn create_new_on_an_existing_file_is_already_exists() {
    on_both("create_new", |dir| async move {
        let path = dir.join("f");
        drop(File::create_new(&path).await?);
        assert_eq!(File::create_new(&path).await.unwrap_err().kind(), ErrorKind::AlreadyExists);
        let again = OpenOptions::new().write(true).create_new(true).open(&path).await;
        assert_eq!(again.unwrap_err().kind(), ErrorKind::AlreadyExists);
        Ok(())
    });
}

/// A directory where a file is expected gives the kernel's error, the same on both paths.
#[test]
fn a_directory_read_as_a_file_gives_the_os_error() {
    on_both("dir_as_file", |dir| async move {
        const EISDIR: i32 = 21;
        const ENOTDIR: i32 = 20;
        assert_eq!(fs::read(&dir).await.unwrap_err().raw_os_error(), Some(EISDIR));
        let mut file = File::open(&dir).await?; // open(2) of a directory for reading works
        let mut buf = [0; 16];
        assert_eq!(file.read(&mut buf).await.unwrap_err().raw_os_error(), Some(EISDIR));
        let (result, _) = file.read_at(vec![0; 16], 0).await;
        assert_eq!(result.unwrap_err().raw_os_error(), Some(EISDIR));
        assert_eq!(fs::remove_file(&dir).await.unwrap_err().raw_os_error(), Some(EISDIR));
        fs::write(dir.join("f"), "x").await?;
        assert_eq!(fs::read_dir(dir.join("f")).await.unwrap_err().raw_os_error(), Some(ENOTDIR));
        Ok(())
    });
}

#[test]
fn contradictory_options_and_nul_bytes_are_invalid_input() {
    on_both("invalid", |dir| async move {
        let path = dir.join("f");
        let kind = |r: io::Result<File>| r.unwrap_err().kind();
        assert_eq!(kind(OpenOptions::new().open(&path).await), ErrorKind::InvalidInput);
        assert_eq!(
            kind(OpenOptions::new().read(true).create(true).open(&path).await),
            ErrorKind::InvalidInput
        );
        assert_eq!(
            kind(OpenOptions::new().read(true).truncate(true).open(&path).await),
            ErrorKind::InvalidInput
        );
        assert_eq!(
            kind(OpenOptions::new().append(true).truncate(true).open(&path).await),
            ErrorKind::InvalidInput
        );
        assert_eq!(fs::read("a\0b").await.unwrap_err().kind(), ErrorKind::InvalidInput);
        Ok(())
    });
}

/// Every field of `Metadata` matches what std's `stat` says, on both paths.
#[test]
fn metadata_matches_std() {
    on_both("metadata", |dir| async move {
        let path = dir.join("f");
        fs::write(&path, pattern(5000)).await?;
        let std_meta = fs::Metadata::from(std::fs::metadata(&path)?);
        let meta = fs::metadata(&path).await?;
        assert_eq!(meta, std_meta);
        assert!(meta.is_file() && !meta.is_dir() && !meta.is_symlink());
        assert_eq!(meta.len(), 5000);
        assert_eq!(meta.modified()?, std::fs::metadata(&path)?.modified()?);
        let file = File::open(&path).await?;
        assert_eq!(file.metadata().await?, std_meta);

        let dir_meta = fs::metadata(&dir).await?;
        assert!(dir_meta.is_dir() && dir_meta.file_type().is_dir());
        assert_eq!(dir_meta, fs::Metadata::from(std::fs::metadata(&dir)?));

        let link = dir.join("link");
        std::os::unix::fs::symlink(&path, &link)?;
        assert!(fs::metadata(&link).await?.is_file(), "metadata follows the link");
        assert!(fs::symlink_metadata(&link).await?.is_symlink(), "symlink_metadata does not");
        Ok(())
    });
}

#[test]
fn create_dir_all_makes_every_parent_and_accepts_an_existing_tree() {
    on_both("create_dir_all", |dir| async move {
        let deep = dir.join("a/b/c/d");
        fs::create_dir_all(&deep).await?;
        assert!(fs::metadata(&deep).await?.is_dir());
        fs::create_dir_all(&deep).await?;
        fs::create_dir_all(dir.join("a/b/x")).await?;
        assert!(std::fs::metadata(dir.join("a/b/x"))?.is_dir());
        fs::create_dir_all(dir.join("a/./b/../b/y/")).await?;
        assert!(std::fs::metadata(dir.join("a/b/y"))?.is_dir());

        fs::write(dir.join("file"), "x").await?;
        assert_eq!(fs::create_dir_all(dir.join("file")).await.unwrap_err().kind(), ErrorKind::AlreadyExists);
        let under_file = fs::create_dir_all(dir.join("file/sub")).await.unwrap_err();
        assert_eq!(under_file.raw_os_error(), Some(20), "ENOTDIR: {under_file}");
        assert_eq!(fs::create_dir(dir.join("a")).await.unwrap_err().kind(), ErrorKind::AlreadyExists);
        fs::remove_dir(dir.join("a/b/c/d")).await?;
        assert!(!dir.join("a/b/c/d").exists());
        Ok(())
    });
}

#[test]
fn rename_moves_and_replaces_and_remove_file_removes() {
    on_both("rename", |dir| async move {
        let (a, b) = (dir.join("a"), dir.join("b"));
        fs::write(&a, "A").await?;
        fs::write(&b, "B").await?;
        fs::rename(&a, &b).await?;
        assert_eq!(fs::read_to_string(&b).await?, "A");
        assert!(!a.exists());
        fs::remove_file(&b).await?;
        assert!(!b.exists());
        Ok(())
    });
}

/// 100 entries: more than one pool batch (32), read with `next_entry` and as a `Stream`.
#[test]
fn read_dir_lists_every_entry_with_its_type() {
    on_both("read_dir", |dir| async move {
        for i in 0..100 {
            fs::write(dir.join(format!("f{i:03}")), vec![0; i]).await?;
        }
        fs::create_dir(dir.join("sub")).await?;

        let mut names = Vec::new();
        let mut entries = fs::read_dir(&dir).await?;
        while let Some(entry) = entries.next_entry().await? {
            let name = entry.file_name().into_string().unwrap();
            let is_dir = entry.file_type().await?.is_dir();
            assert_eq!(is_dir, name == "sub");
            assert_eq!(entry.path(), dir.join(&name));
            if !is_dir {
                let len: usize = name[1..].parse().unwrap();
                assert_eq!(entry.metadata().await?.len(), len as u64);
            }
            names.push(name);
        }
        assert!(entries.next_entry().await?.is_none(), "stays at the end");
        names.sort();
        let mut want: Vec<String> = (0..100).map(|i| format!("f{i:03}")).collect();
        want.push("sub".into());
        assert_eq!(names, want);

        // The same through `futures-core`'s `Stream`.
        let mut stream = fs::read_dir(&dir).await?;
        let mut count = 0;
        while let Some(entry) = poll_fn(|cx| futures_core::Stream::poll_next(Pin::new(&mut stream), cx)).await
        {
            entry?;
            count += 1;
        }
        assert_eq!(count, 101);
        Ok(())
    });
}

/// `AsyncWrite` then `AsyncRead` and `AsyncSeek`, with writes larger than one operation's
/// buffer (2 MiB), and a read and a write sharing the kernel's position.
#[test]
fn file_reads_writes_and_seeks_through_the_futures_io_traits() {
    on_both("traits", |dir| async move {
        let path = dir.join("f");
        let data = pattern((5 << 20) + 3);
        let mut file = File::create(&path).await?;
        file.write_all(&data[..100]).await?;
        file.write_all(&data[100..]).await?;
        file.flush().await?;
        drop(file);
        assert!(std::fs::read(&path)? == data);

        let mut file = File::open(&path).await?;
        let mut back = Vec::new();
        file.read_to_end(&mut back).await?;
        assert!(back == data);
        assert_eq!(file.read(&mut [0; 8]).await?, 0, "EOF again");

        let pos = futures_seek(&mut file, SeekFrom::Start(1000)).await?;
        assert_eq!(pos, 1000);
        let mut buf = [0; 10];
        file.read_exact(&mut buf).await?;
        assert_eq!(buf, data[1000..1010]);
        assert_eq!(futures_seek(&mut file, SeekFrom::Current(-5)).await?, 1005);
        assert_eq!(futures_seek(&mut file, SeekFrom::End(-3)).await?, data.len() as u64 - 3);
        let mut tail = Vec::new();
        file.read_to_end(&mut tail).await?;
        assert_eq!(tail, data[data.len() - 3..]);

        // A write after a read lands where the reader stopped.
        let mut file = OpenOptions::new().read(true).write(true).open(&path).await?;
        let mut head = [0; 5];
        file.read_exact(&mut head).await?;
        file.write_all(b"XY").await?;
        file.flush().await?;
        assert_eq!(&std::fs::read(&path)?[..8], [&data[..5], b"XY", &data[7..8]].concat());
        Ok(())
    });
}

async fn futures_seek(file: &mut File, pos: SeekFrom) -> io::Result<u64> {
    poll_fn(|cx| futures_io::AsyncSeek::poll_seek(Pin::new(&mut *file), cx, pos)).await
}

#[test]
fn append_writes_at_the_end() {
    on_both("append", |dir| async move {
        let path = dir.join("log");
        fs::write(&path, "one\n").await?;
        let mut log = OpenOptions::new().append(true).open(&path).await?;
        log.write_all(b"two\n").await?;
        log.flush().await?;
        let (result, _) = log.write_all_at(b"three\n".to_vec(), 0).await;
        result?;
        assert_eq!(fs::read_to_string(&path).await?, "one\ntwo\nthree\n");
        Ok(())
    });
}

/// `write` returns before the bytes are written (write-behind); the error of that write
/// comes out of the next flush or sync, and is reported once.
#[test]
fn a_failed_write_behind_is_reported_by_flush_and_sync() {
    on_both("write_behind", |dir| async move {
        const EBADF: i32 = 9;
        let path = dir.join("f");
        fs::write(&path, "x").await?;
        let mut read_only = File::open(&path).await?;
        assert_eq!(read_only.write(b"data").await?, 4, "accepted, written in the background");
        assert_eq!(read_only.flush().await.unwrap_err().raw_os_error(), Some(EBADF));
        read_only.flush().await?; // reported once
        read_only.write(b"data").await?;
        assert_eq!(read_only.sync_all().await.unwrap_err().raw_os_error(), Some(EBADF));
        read_only.write(b"data").await?;
        assert_eq!(read_only.write(b"more").await.unwrap_err().raw_os_error(), Some(EBADF));
        Ok(())
    });
}

#[test]
fn positional_reads_and_writes_leave_the_position_alone() {
    on_both("positional", |dir| async move {
        let path = dir.join("f");
        let file = File::create_new(&path).await?;
        let (result, buf) = file.write_all_at(b"world".to_vec(), 6).await;
        result?;
        assert_eq!(buf, b"world", "the buffer comes back");
        let (n, _) = file.write_at(b"hello ".to_vec(), 0).await;
        assert_eq!(n?, 6);
        let (n, buf) = file.read_at(vec![0; 32], 0).await;
        assert_eq!(&buf[..n?], b"hello world");
        let (n, buf) = file.read_at(vec![7; 4], 3).await;
        assert_eq!((n?, &buf[..]), (4, &b"lo w"[..]));
        let (n, _) = file.read_at(vec![0; 4], 100).await;
        assert_eq!(n?, 0, "past the end");

        // Many at once on one file.
        let reads = (0..11u64).map(|i| file.read_at(vec![0; 1], i));
        let mut got = Vec::new();
        for read in reads.collect::<Vec<_>>() {
            let (n, b) = read.await;
            got.extend_from_slice(&b[..n?]);
        }
        assert_eq!(got, b"hello world");

        let mut file = file;
        let mut all = Vec::new();
        file.read_to_end(&mut all).await?;
        assert_eq!(all, b"hello world", "the position was still 0");
        Ok(())
    });
}

#[test]
fn set_len_sync_and_metadata_of_an_open_file() {
    on_both("set_len", |dir| async move {
        let path = dir.join("f");
        let mut file = OpenOptions::new().read(true).write(true).create(true).open(&path).await?;
        file.write_all(&pattern(10_000)).await?;
        file.sync_all().await?; // waits for the write-behind first
        assert_eq!(file.metadata().await?.len(), 10_000);
        file.set_len(100).await?;
        assert_eq!(file.metadata().await?.len(), 100);
        file.set_len(200).await?;
        file.sync_data().await?;
        let got = fs::read(&path).await?;
        assert_eq!(got.len(), 200);
        assert!(got[..100] == pattern(100)[..] && got[100..].iter().all(|&b| b == 0));
        Ok(())
    });
}

/// 64 tasks read 64 files at once: on io_uring their requests share the loop's batches.
#[test]
fn many_tasks_read_at_once() {
    on_both("concurrent", |dir| async move {
        for i in 0..64 {
            std::fs::write(dir.join(format!("f{i}")), pattern(4096 + i))?;
        }
        let tasks: Vec<_> = (0..64).map(|i| mini::spawn(fs::read(dir.join(format!("f{i}"))))).collect();
        for (i, task) in tasks.into_iter().enumerate() {
            assert!(task.await.unwrap()? == pattern(4096 + i));
        }
        Ok(())
    });
}

/// Polls `fut` once and drops it; returns whether it was still waiting then (on the pool
/// path a fast job may already have finished).
async fn poll_once_then_drop<F: Future>(fut: F) -> bool {
    let mut fut = Box::pin(fut);
    poll_fn(|cx| Poll::Ready(fut.as_mut().poll(cx).is_pending())).await
}

fn mkfifo(path: &Path) -> io::Result<()> {
    let c = CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: a valid C string; mkfifo only reads it.
    if unsafe { libc::mkfifo(c.as_ptr(), 0o600) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Bytes waiting in the pipe behind `file`.
fn pipe_backlog(file: &std::fs::File) -> usize {
    use std::os::fd::AsRawFd;
    let mut n: libc::c_int = 0;
    // SAFETY: FIONREAD writes one int into `n`.
    assert_eq!(unsafe { libc::ioctl(file.as_raw_fd(), libc::FIONREAD, &mut n) }, 0);
    n as usize
}

/// A read whose future is dropped while the kernel still waits for data: the kernel must
/// write into the buffer the request owns, not into memory freed with the future. On a FIFO
/// the read waits as long as the test likes, so the data comes only after the drop, while the
/// runtime goes on; fresh buffers of the same size, allocated right after the drop (where a
/// freed buffer would be reused), must stay untouched. `.ci/valgrind` runs this too.
///
/// io_uring only: the pool path's `pread` refuses a pipe (`ESPIPE`), and its buffer is the
/// pool job's, not the kernel's.
#[test]
fn a_dropped_read_leaves_its_buffer_to_the_kernel() {
    on("dropped_read_fifo", &[Driver::IoUring], |dir| async move {
        let fifo = dir.join("fifo");
        mkfifo(&fifo)?;
        // Read and write: opening a FIFO so never waits for a peer.
        let file = OpenOptions::new().read(true).write(true).open(&fifo).await?;
        let mut writer = std::fs::OpenOptions::new().write(true).open(&fifo)?;

        // Made first, so that the allocations right after the drop are the buffers themselves.
        let mut fresh: Vec<Vec<u8>> = Vec::with_capacity(8);
        assert!(poll_once_then_drop(file.read_at(vec![0; 4096], 0)).await, "nothing to read yet");
        fresh.extend((0..8).map(|_| vec![0u8; 4096]));
        for _ in 0..100 {
            mini::yield_now().await; // the loop turns; the request waits on
        }

        std::io::Write::write_all(&mut writer, b"first")?;
        let start = Instant::now();
        while pipe_backlog(&writer) > 0 {
            assert!(start.elapsed() < HANG, "the dropped read never took its data");
            mini::yield_now().await;
        }
        std::io::Write::write_all(&mut writer, b"second")?;
        let (n, buf) = file.read_at(vec![0; 4096], 0).await;
        assert_eq!(&buf[..n?], b"second", "the dropped read took the first write");
        assert!(fresh.iter().all(|b| b.iter().all(|&x| x == 0)), "the kernel wrote into freed memory");
        Ok(())
    });
}

/// The same with a regular file, on both paths: many large reads dropped at once, then the
/// runtime goes on with other work on the same file.
#[test]
fn dropped_file_reads_leave_the_runtime_working() {
    on_both("dropped_read_file", |dir| async move {
        let path = dir.join("f");
        let data = pattern(4 << 20);
        std::fs::write(&path, &data)?;
        let file = File::open(&path).await?;
        let mut fresh: Vec<Vec<u8>> = Vec::with_capacity(16);
        for i in 0..16u64 {
            poll_once_then_drop(file.read_at(vec![0; 1 << 20], i * 4096)).await;
            fresh.push(vec![0u8; 1 << 20]);
        }
        let mut reader = File::open(&path).await?;
        let mut buf = vec![0; 100];
        poll_once_then_drop(reader.read_exact(&mut buf)).await; // the File keeps its read
        drop(file);
        for _ in 0..100 {
            mini::yield_now().await;
        }
        assert!(fs::read(&path).await? == data);
        let mut rest = Vec::new();
        reader.read_to_end(&mut rest).await?;
        assert!(rest == data, "the File's dropped read is handed to the next one");
        assert!(fresh.iter().all(|b| b.iter().all(|&x| x == 0)), "the kernel wrote into freed memory");
        Ok(())
    });
}

/// A `File` dropped right after a write: the write still completes (it runs as its own task
/// or pool job), and its descriptor is closed afterwards.
#[test]
fn a_write_finishes_after_its_file_is_dropped() {
    on_both("write_after_drop", |dir| async move {
        let path = dir.join("f");
        let mut file = File::create(&path).await?;
        file.write_all(&pattern(100_000)).await?;
        drop(file);
        let start = Instant::now();
        while std::fs::metadata(&path)?.len() < 100_000 {
            assert!(start.elapsed() < HANG, "the write never finished");
            mini::yield_now().await;
        }
        assert!(fs::read(&path).await? == pattern(100_000));
        Ok(())
    });
}

/// Read-ahead the caller has not taken yet is given back: a read started for 100 bytes and
/// then polled with a 3-byte buffer hands out 3, and the next write, or a relative seek,
/// counts from there, not from where the kernel's position went.
#[test]
fn read_ahead_not_handed_out_is_given_back() {
    on_both("read_ahead", |dir| async move {
        let path = dir.join("f");
        let data = pattern(1000);
        for then_seek in [false, true] {
            std::fs::write(&path, &data)?;
            let mut file = OpenOptions::new().read(true).write(true).open(&path).await?;
            let mut big = [0; 100];
            let first = poll_fn(|cx| {
                Poll::Ready(futures_io::AsyncRead::poll_read(Pin::new(&mut file), cx, &mut big))
            })
            .await;
            let handed = match first {
                Poll::Ready(n) => n?, // the pool was quick: 100 handed out, nothing ahead
                Poll::Pending => file.read(&mut [0; 3]).await?,
            };
            if then_seek {
                let pos = futures_seek(&mut file, SeekFrom::Current(0)).await?;
                assert_eq!(pos, handed as u64, "the position the reader sees");
            } else {
                file.write_all(b"XY").await?;
                file.flush().await?;
                let now = std::fs::read(&path)?;
                assert_eq!(&now[handed..handed + 2], b"XY", "handed out {handed}");
                assert_eq!(now[..handed], data[..handed]);
            }
        }
        Ok(())
    });
}

/// The descriptors of this process open on `path` (other tests' files have other paths).
fn fds_on(path: &Path) -> usize {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter(|target| target == path)
        .count()
}

/// Waits, bounded, for the loop to have closed every descriptor on `path`.
async fn until_closed(path: &Path) {
    let start = Instant::now();
    while fds_on(path) > 0 {
        assert!(start.elapsed() < HANG, "{} is still open", path.display());
        mini::yield_now().await;
    }
}

/// A `File` is closed when dropped (on io_uring by a close request in the next batch).
#[test]
fn a_dropped_file_closes_its_descriptor() {
    on_both("close", |dir| async move {
        let path = dir.join("f");
        fs::write(&path, "x").await?;
        let file = File::open(&path).await?;
        assert_eq!(fds_on(&path), 1);
        drop(file);
        until_closed(&path).await;
        Ok(())
    });
}

/// An open whose future is dropped before the kernel answers: the descriptor the kernel then
/// hands out belongs to nobody, and must still be closed.
#[test]
fn a_dropped_open_leaks_no_descriptor() {
    on_both("dropped_open", |dir| async move {
        let path = dir.join("f");
        fs::write(&path, "x").await?;
        for _ in 0..8 {
            poll_once_then_drop(File::open(&path)).await;
        }
        // A later open of the same file, awaited: the earlier ones have been answered by then.
        let file = File::open(&path).await?;
        for _ in 0..10 {
            mini::yield_now().await;
        }
        drop(file);
        until_closed(&path).await;
        Ok(())
    });
}
