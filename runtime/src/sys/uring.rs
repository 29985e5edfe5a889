//! io_uring: the completion driver's only contact with the kernel's rings (through the
//! `io-uring` crate, whose pushing and registering functions are `unsafe`).
//!
//! Two shared memory areas connect mini and the kernel:
//!
//! ```text
//!   submission queue (SQ)  mini writes requests ("recv into a buffer of group 0 on fd 7,
//!                          user_data = X"), one io_uring_enter hands them all to the kernel
//!   completion queue (CQ)  the kernel writes results ("user_data X: 512 bytes in buffer 3"),
//!                          mini reads them after io_uring_enter returns
//! ```
//!
//! and, for multishot receives, a [`BufRing`]: buffers mini lends the kernel, which picks one
//! for each chunk of data it receives, so no buffer is tied up by a connection that waits.
//!
//! What this module promises its callers: a request's pointers stay valid until its
//! completion is read (the callers own that invariant, see `Ring::push`), the buffer ring's
//! memory outlives its registration, and a buffer is handed to the kernel again only when
//! mini is done reading it.

use std::alloc::{self, Layout};
use std::io;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Duration;

use io_uring::{opcode, squeue, types, IoUring};

pub(crate) use io_uring::squeue::Entry;

/// Completion flags the driver reads.
pub(crate) mod cqe {
    /// More completions will follow for this (multishot) request.
    pub(crate) fn more(flags: u32) -> bool {
        io_uring::cqueue::more(flags)
    }

    /// The provided buffer the kernel filled, if any.
    pub(crate) fn buffer(flags: u32) -> Option<u16> {
        io_uring::cqueue::buffer_select(flags)
    }
}

/// `IORING_ENTER_GETEVENTS`: wait for completions (and, with DEFER_TASKRUN, post them).
const GETEVENTS: u32 = 1;

/// A duration as the kernel's `__kernel_timespec`.
fn timespec(d: Duration) -> types::Timespec {
    types::Timespec::new().sec(d.as_secs()).nsec(d.subsec_nanos())
}

/// One completion, copied out of the shared ring.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Completion {
    pub(crate) user_data: u64,
    pub(crate) result: i32,
    pub(crate) flags: u32,
}

/// An io_uring instance set up for one thread.
pub(crate) struct Ring {
    ring: IoUring,
}

impl std::fmt::Debug for Ring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ring").field("sq_entries", &self.ring.params().sq_entries()).finish()
    }
}

/// The opcodes the driver cannot work without (for the message when one is missing). The
/// multishot forms of receive (6.0) and accept (5.19) are flags, which a probe cannot see;
/// the kernel has them whenever it accepts `DEFER_TASKRUN` (6.1), which `Ring::new` asks for.
const REQUIRED: [(u8, &str); 5] = [
    (opcode::PollAdd::CODE, "IORING_OP_POLL_ADD"),
    (opcode::AsyncCancel::CODE, "IORING_OP_ASYNC_CANCEL"),
    (opcode::Accept::CODE, "IORING_OP_ACCEPT"),
    (opcode::Recv::CODE, "IORING_OP_RECV"),
    (opcode::Send::CODE, "IORING_OP_SEND"),
];

impl Ring {
    /// Sets up a ring of `entries` submission slots for use by this thread alone.
    ///
    /// `SINGLE_ISSUER | DEFER_TASKRUN` (6.1) lets the kernel skip the locking and the
    /// inter-processor interrupts a ring shared between threads needs: completions are posted
    /// only when this thread enters the kernel to wait, which it does once per loop turn.
    /// `COOP_TASKRUN` likewise. Returns the reason as text when the kernel refuses: io_uring
    /// missing (ENOSYS), forbidden (EPERM: `io_uring_disabled`, a seccomp filter), or too old
    /// for a flag, a feature or an opcode the driver needs.
    pub(crate) fn new(entries: u32) -> Result<Ring, String> {
        let ring = IoUring::builder()
            .setup_single_issuer()
            .setup_defer_taskrun()
            .setup_coop_taskrun()
            .setup_cqsize(entries * 4)
            .setup_clamp()
            .build(entries)
            .map_err(|e| match e.raw_os_error() {
                Some(libc::ENOSYS) => format!("io_uring_setup: {e}; the kernel has no io_uring"),
                Some(libc::EPERM) => {
                    format!("io_uring_setup: {e}; io_uring is disabled (kernel.io_uring_disabled) or filtered (seccomp)")
                }
                Some(libc::EINVAL) => format!("io_uring_setup: {e}; the kernel lacks SINGLE_ISSUER/DEFER_TASKRUN (6.1)"),
                _ => format!("io_uring_setup: {e}"),
            })?;
        let params = ring.params();
        if !params.is_feature_ext_arg() || !params.is_feature_nodrop() {
            return Err("the kernel lacks IORING_FEAT_EXT_ARG or IORING_FEAT_NODROP (5.11)".into());
        }
        let mut probe = io_uring::Probe::new();
        ring.submitter().register_probe(&mut probe).map_err(|e| format!("IORING_REGISTER_PROBE: {e}"))?;
        if let Some((_, name)) = REQUIRED.iter().find(|(code, _)| !probe.is_supported(*code)) {
            return Err(format!("the kernel lacks {name}"));
        }
        let ring = Ring { ring };
        // Saves a file-table lookup per io_uring_enter (5.18); optional.
        let _ = ring.ring.submitter().register_ring_fd();
        Ok(ring)
    }

    /// Queues `entry` for the next `enter`. A full submission queue is submitted first.
    ///
    /// # Safety
    ///
    /// Every pointer in `entry` must stay valid until its completion has been read (the
    /// caller keeps the memory it points to alive for that long), and its `user_data` must be
    /// one the caller can interpret when the completion comes back.
    pub(crate) unsafe fn push(&mut self, entry: &squeue::Entry) {
        loop {
            // SAFETY: the caller guarantees the entry's pointers (see above).
            if unsafe { self.ring.submission().push(entry) }.is_ok() {
                return;
            }
            // Full: hand the queued requests to the kernel now and try again. Only ENOMEM-like
            // failures can keep it full; then wait for completions to make room.
            if self.ring.submit().is_err() {
                let _ = self.ring.submit_and_wait(1);
            }
        }
    }

    /// Requests queued and not yet handed to the kernel.
    pub(crate) fn queued(&mut self) -> usize {
        self.ring.submission().len()
    }

    /// Submits what is queued and waits until at least one completion is ready or `timeout`
    /// passes (`None`: no limit; zero: do not wait, but still collect what is ready, which
    /// with `DEFER_TASKRUN` also takes one enter). One `io_uring_enter` in every case.
    /// Returns how many requests were submitted.
    pub(crate) fn enter(&mut self, timeout: Option<Duration>) -> io::Result<usize> {
        let res = match timeout {
            None => {
                // Straight to the syscall: with DEFER_TASKRUN every enter carries GETEVENTS,
                // so the crate's checks of the ring's flags are not needed.
                let queued = self.ring.submission().len() as u32;
                // SAFETY: no argument pointer is passed; the counts and flags are plain values.
                unsafe { self.ring.submitter().enter::<libc::sigset_t>(queued, 1, GETEVENTS, None) }
            }
            Some(t) if t.is_zero() => self.flush(),
            Some(t) => {
                let ts = timespec(t);
                let args = types::SubmitArgs::new().timespec(&ts);
                self.ring.submitter().submit_with_args(1, &args)
            }
        };
        match res {
            Ok(n) => Ok(n),
            // The timeout passed (ETIME), a signal arrived (EINTR), or the completion queue
            // is full and the kernel wants it read first (EBUSY): none is a failure.
            Err(e) if matches!(e.raw_os_error(), Some(libc::ETIME | libc::EINTR | libc::EBUSY)) => Ok(0),
            Err(e) => Err(e),
        }
    }

    /// Submits what is queued and runs the kernel's deferred work, without waiting: the
    /// completions it produces are then ready to be read. For requests whose effect must not
    /// wait for the next turn (a cancel that releases a socket being closed).
    pub(crate) fn flush(&mut self) -> io::Result<usize> {
        let queued = self.ring.submission().len() as u32;
        // SAFETY: no argument pointer is passed (`None`); the flags and counts are plain values.
        unsafe { self.ring.submitter().enter::<libc::sigset_t>(queued, 0, GETEVENTS, None) }
    }

    /// Cancels the submitted request whose `user_data` is `target` and waits until it has
    /// ended (`IORING_REGISTER_SYNC_CANCEL`, 6.0), or `timeout` passes. Unlike an async cancel,
    /// it retries a request that was being completed when asked (`EALREADY`), so when it
    /// returns the request holds nothing any more (a file being closed, in particular).
    pub(crate) fn cancel_sync(&self, target: u64, timeout: Duration) -> io::Result<()> {
        self.ring
            .submitter()
            .register_sync_cancel(Some(timespec(timeout)), types::CancelBuilder::user_data(target))
    }

    /// Appends up to `max` ready completions to `out`, and frees their slots in the ring.
    pub(crate) fn completions(&mut self, out: &mut Vec<Completion>, max: usize) {
        let mut cq = self.ring.completion();
        for entry in cq.by_ref().take(max) {
            out.push(Completion {
                user_data: entry.user_data(),
                result: entry.result(),
                flags: entry.flags(),
            });
        }
        cq.sync();
    }

    /// Registers `ring` as provided-buffer group `group`.
    pub(crate) fn register_buf_ring(&self, ring: &BufRing, group: u16) -> io::Result<()> {
        // SAFETY: `BufRing` owns the ring's memory (page aligned, `entries` slots) and is dropped
        // only after the ring is unregistered or destroyed (the driver drops the `Ring` first).
        unsafe {
            self.ring.submitter().register_buf_ring_with_flags(
                ring.ring.as_ptr() as u64,
                ring.entries,
                group,
                0,
            )
        }
    }
}

/// A cancel of the request whose `user_data` is `target` (any kind, polls included).
pub(crate) fn cancel(target: u64, user_data: u64) -> squeue::Entry {
    opcode::AsyncCancel::new(target).build().user_data(user_data)
}

/// A cancel of every request in flight (5.19), for the driver's shutdown.
pub(crate) fn cancel_all(user_data: u64) -> squeue::Entry {
    opcode::AsyncCancel2::new(types::CancelBuilder::any()).build().user_data(user_data)
}

/// `IORING_OP_POLL_ADD`, multishot, for `mask` (epoll flags) on `fd`.
pub(crate) fn poll_multishot(fd: i32, mask: u32, user_data: u64) -> squeue::Entry {
    opcode::PollAdd::new(types::Fd(fd), mask).multi(true).build().user_data(user_data)
}

/// A multishot receive into buffers of group `group` (`IORING_OP_RECV` with
/// `IORING_RECV_MULTISHOT`, 6.0).
pub(crate) fn recv_multishot(fd: i32, group: u16, user_data: u64) -> squeue::Entry {
    opcode::RecvMulti::new(types::Fd(fd), group).build().user_data(user_data)
}

/// A send of `len` bytes at `ptr`, without `SIGPIPE` (a peer that reset the connection gives
/// `EPIPE`, not a signal that kills the process).
pub(crate) fn send(fd: i32, ptr: *const u8, len: u32, user_data: u64) -> squeue::Entry {
    opcode::Send::new(types::Fd(fd), ptr, len).flags(libc::MSG_NOSIGNAL).build().user_data(user_data)
}

/// A one-shot receive of up to `len` bytes into `ptr`.
pub(crate) fn recv(fd: i32, ptr: *mut u8, len: u32, user_data: u64) -> squeue::Entry {
    opcode::Recv::new(types::Fd(fd), ptr, len).build().user_data(user_data)
}

/// A multishot accept (5.19): one completion per connection, the new fds non-blocking.
pub(crate) fn accept_multishot(fd: i32, user_data: u64) -> squeue::Entry {
    opcode::AcceptMulti::new(types::Fd(fd))
        .flags(libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC)
        .build()
        .user_data(user_data)
}

/// Takes ownership of an fd the kernel created for this process (an accept's result).
pub(crate) fn owned_fd(fd: i32) -> std::os::fd::OwnedFd {
    debug_assert!(fd >= 0);
    // SAFETY: a completed accept's result is a new fd that nothing else in the process owns.
    unsafe { std::os::fd::FromRawFd::from_raw_fd(fd) }
}

// ---------------------------------------------------------------------------------------------
// The provided-buffer ring
// ---------------------------------------------------------------------------------------------

/// A ring of `entries` buffers of `size` bytes lent to the kernel (`IORING_REGISTER_PBUF_RING`).
///
/// The kernel takes buffers from the head; mini gives them back at the tail once it has read
/// them. Buffer `bid` is always the same memory, `buffers[bid * size..][..size]`.
pub(crate) struct BufRing {
    /// `entries` `io_uring_buf` slots, page aligned; the tail lives in the first slot's last
    /// two bytes (`resv`), as the kernel's layout defines.
    ring: NonNull<u8>,
    entries: u16,
    /// The next tail to publish (wrapping).
    tail: u16,
    buffers: Box<[u8]>,
    size: usize,
}

impl std::fmt::Debug for BufRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BufRing").field("entries", &self.entries).field("size", &self.size).finish()
    }
}

/// `struct io_uring_buf`: addr, len, bid, resv.
const SLOT: usize = 16;

impl BufRing {
    /// Allocates `entries` (a power of two, at most 32768) buffers of `size` bytes, all
    /// handed to the kernel.
    pub(crate) fn new(entries: u16, size: usize) -> BufRing {
        assert!(entries.is_power_of_two() && entries <= 1 << 15, "a power of two up to 32768");
        let layout = Self::layout(entries);
        // SAFETY: the layout has a non-zero size (at least one 16-byte slot).
        let ring = unsafe { alloc::alloc_zeroed(layout) };
        let ring = NonNull::new(ring).unwrap_or_else(|| alloc::handle_alloc_error(layout));
        let buffers = vec![0u8; entries as usize * size].into_boxed_slice();
        let mut this = BufRing { ring, entries, tail: 0, buffers, size };
        for bid in 0..entries {
            this.put(bid);
        }
        this.publish();
        this
    }

    fn layout(entries: u16) -> Layout {
        Layout::from_size_align(entries as usize * SLOT, 4096).expect("a valid layout")
    }

    /// The bytes the kernel wrote into buffer `bid`.
    pub(crate) fn get(&self, bid: u16, len: usize) -> &[u8] {
        &self.buffers[bid as usize * self.size..][..len]
    }

    /// Gives buffer `bid` back to the kernel. Visible to it at the next [`publish`].
    ///
    /// [`publish`]: BufRing::publish
    pub(crate) fn put(&mut self, bid: u16) {
        let index = (self.tail & (self.entries - 1)) as usize;
        let addr = self.buffers[bid as usize * self.size..].as_ptr() as u64;
        // SAFETY: `index < entries`, so the slot lies inside the ring's allocation; the kernel
        // reads slots only between its head and the published tail, and this one is past the
        // tail until `publish`. The fields are written one by one so the tail (in slot 0's
        // `resv`) is never overwritten.
        unsafe {
            let slot = self.ring.as_ptr().add(index * SLOT);
            (slot as *mut u64).write(addr);
            (slot.add(8) as *mut u32).write(self.size as u32);
            (slot.add(12) as *mut u16).write(bid);
        }
        self.tail = self.tail.wrapping_add(1);
    }

    /// Publishes the buffers given back since the last call (one release store).
    pub(crate) fn publish(&self) {
        // SAFETY: offset 14 is slot 0's `resv`, the ring's tail, two-byte aligned (the ring is
        // page aligned); the kernel reads it with an acquire load, so the slots written
        // before this release store are seen complete.
        let tail = unsafe { &*(self.ring.as_ptr().add(14) as *const AtomicU16) };
        tail.store(self.tail, Ordering::Release);
    }
}

impl Drop for BufRing {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout; the driver drops the ring (which
        // unregisters the group) before this.
        unsafe { alloc::dealloc(self.ring.as_ptr(), Self::layout(self.entries)) }
    }
}
