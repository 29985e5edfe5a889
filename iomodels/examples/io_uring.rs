//! Asynchronous (completion-based) I/O on `io_uring(7)`: the kernel does both phases.
//!
//! ```text
//! cargo run --release -p mini-iomodels --example io_uring -- [ADDR] [--buffers N]  # default 127.0.0.1:8080; port 0 is fine
//! cargo run --release --example echo_client -- 127.0.0.1:8080 1000
//! ```
//!
//! Every input operation has two phases: (1) *waiting* until data has arrived in the kernel's
//! socket buffer, and (2) *copying* it from the kernel into the process's buffer. In every
//! sibling example the kernel says "fd 7 is readable" and the program then calls `read`. Here
//! the program says "receive on fd 7, into one of these buffers, and tell me when it is done",
//! and the kernel waits *and* copies, then posts a completion: nothing in this thread blocks
//! for either phase, except the one wait for "any completion at all".
//!
//! The requests and their results travel through two rings shared with the kernel: the
//! program writes submission entries (SQEs: opcode, fd, buffer, 64 bits of user data) into
//! the submission queue, and one `io_uring_enter` hands over all of them; the kernel writes
//! completion entries (CQEs: the user data, a result, flags) into the completion queue, which
//! the program reads without a system call. The loop below is the whole model:
//!
//! ```text
//! loop:
//!     submit_and_wait(1)           // ONE io_uring_enter: submit everything queued, wait for ≥ 1 CQE
//!     for each completion:         // read from shared memory, no system call
//!         accept → arm a multishot recv on the new connection
//!         recv   → copy the bytes into the connection's send buffer, give the ring buffer back,
//!                  queue a send (the SQE waits in the ring until the next submit_and_wait)
//!         send   → short? queue the rest; done? queue what arrived meanwhile
//! ```
//!
//! Three io_uring features make it cheap (with them it costs no more CPU per round trip than
//! epoll on this machine, and a little less under load: see docs/io-models.md): *multishot*
//! accept and recv (one request keeps producing completions, so no request per message), a
//! *provided-buffer ring* (the kernel picks a free buffer when data arrives, instead of every
//! idle connection pinning a buffer of its own), and the setup flags `SINGLE_ISSUER |
//! DEFER_TASKRUN | COOP_TASKRUN` (the kernel runs completion work only when this thread enters
//! it to wait, instead of interrupting it).
//!
//! **Why this example needs `unsafe` when its siblings do not.** A `read` borrows its buffer
//! for the length of one system call, which a `&mut [u8]` expresses. An io_uring request holds
//! its buffer from submission until its completion, across any number of loop turns, and the
//! kernel writes into it (or reads from it) in the meantime. The compiler cannot see that
//! borrow, so every push of an SQE that names memory is `unsafe`, with the promise that the
//! memory outlives the request. Here that promise is kept by construction: the buffer ring
//! is never freed, and a connection (with its send buffer) is dropped only when no request of
//! its is in flight. A runtime turns the same promise into types: owned buffers that the
//! driver keeps until the completion arrives, even after the future that asked was dropped.

use std::collections::HashMap;
use std::io;
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicU16, Ordering};

use io_uring::cqueue::{self, CompletionQueue};
use io_uring::squeue::{self, SubmissionQueue};
use io_uring::types::{BufRingEntry, Fd, Timespec};
use io_uring::{opcode, IoUring, Submitter};
use nix::errno::Errno;
use nix::libc;

/// The buffer group id of the one provided-buffer ring.
const BGID: u16 = 0;
/// Size of each ring buffer: one completion carries at most this many bytes.
const BUF_SIZE: usize = 4096;
/// Buffers in the ring, shared by all connections (`--buffers N` changes it).
const DEFAULT_BUFFERS: u16 = 256;
/// Bytes received but not yet sent back above which a connection stops receiving (its
/// multishot recv is cancelled) until its client reads: a client that sends and never reads
/// must not make the server buffer without limit.
const MAX_BACKLOG: usize = 256 * 1024;
/// How long to wait before accepting again after `accept` failed (say, out of fds). A timeout
/// request: the other connections are served meanwhile (io_epoll has to sleep instead).
static BACKOFF: Timespec = Timespec::new().nsec(100_000_000);
/// The listener's token; connections get 1, 2, 3, ..., never reused.
const LISTENER: u64 = 0;

/// What a completion is for: kept in the low 3 bits of the user data, the token above them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Accept,
    Recv,
    Send,
    /// The cancellation of a connection's recv (the recv's own completion comes separately).
    Cancel,
    /// The pause after a failed accept.
    Backoff,
}

impl Op {
    fn user_data(self, token: u64) -> u64 {
        token << 3 | self as u64
    }

    fn decode(user_data: u64) -> (Op, u64) {
        let op = match user_data & 7 {
            0 => Op::Accept,
            1 => Op::Recv,
            2 => Op::Send,
            3 => Op::Cancel,
            _ => Op::Backoff,
        };
        (op, user_data >> 3)
    }
}

/// The submission side: the queue, and the submitter to flush it when it is full.
struct Ring<'r> {
    submitter: Submitter<'r>,
    sq: SubmissionQueue<'r>,
}

impl Ring<'_> {
    /// Queues `entry`; it reaches the kernel with the next `submit_and_wait` (or now, if the
    /// queue is full).
    ///
    /// # Safety
    ///
    /// Any memory `entry` points to must stay valid, and unmoved, until its completion.
    unsafe fn push(&mut self, entry: &squeue::Entry) -> io::Result<()> {
        loop {
            // SAFETY: the caller's promise.
            if unsafe { self.sq.push(entry) }.is_ok() {
                return Ok(());
            }
            // Full: hand what is queued to the kernel now, then there is room.
            self.sq.sync();
            match self.submitter.submit() {
                Ok(_) => {}
                // EBUSY: the completion queue has overflowed; the entries stay queued and go
                // with the next submit_and_wait, after the loop has drained completions.
                Err(e) if matches!(e.raw_os_error(), Some(libc::EINTR | libc::EBUSY)) => {}
                Err(e) => return Err(e),
            }
            self.sq.sync();
            if self.sq.is_full() {
                return Err(io::Error::other("submission queue stays full"));
            }
        }
    }
}

/// The provided-buffer ring: `count` buffers of `BUF_SIZE` bytes, and the ring of entries
/// (address, length, buffer id) through which the program hands them to the kernel. The
/// kernel takes a buffer from the head when data arrives and reports its id in the CQE; the
/// program gives it back by writing an entry at the tail.
///
/// Both allocations are leaked on purpose: the kernel may use them until the ring is torn
/// down, and the ring lives until the process exits.
struct BufRing {
    /// `count` entries, page-aligned, shared with the kernel; entry 0's reserved field is the tail.
    entries: *mut BufRingEntry,
    /// `count * BUF_SIZE` bytes that the kernel writes into.
    data: *mut u8,
    count: u16,
    tail: u16,
}

impl BufRing {
    /// Allocates the ring, registers it as buffer group `BGID`, and provides every buffer.
    fn register(submitter: &Submitter<'_>, count: u16) -> io::Result<BufRing> {
        let layout = std::alloc::Layout::from_size_align(
            usize::from(count) * std::mem::size_of::<BufRingEntry>(),
            4096,
        )
        .map_err(io::Error::other)?;
        // SAFETY: the layout has a non-zero size (count ≥ 1).
        let entries = unsafe { std::alloc::alloc_zeroed(layout) }.cast::<BufRingEntry>();
        if entries.is_null() {
            std::alloc::handle_alloc_error(layout);
        }
        let data = Box::leak(vec![0u8; usize::from(count) * BUF_SIZE].into_boxed_slice()).as_mut_ptr();
        // SAFETY: `entries` holds `count` zeroed entries, page-aligned, and is never freed.
        unsafe { submitter.register_buf_ring_with_flags(entries as u64, count, BGID, 0) }?;
        let mut ring = BufRing { entries, data, count, tail: 0 };
        for bid in 0..count {
            ring.provide(bid);
        }
        Ok(ring)
    }

    /// Gives buffer `bid` (back) to the kernel.
    fn provide(&mut self, bid: u16) {
        let slot = usize::from(self.tail & (self.count - 1));
        // SAFETY: `slot < count`. The entry at the tail is not in the kernel's hands: it reads
        // entries only between its head and the tail published below. (Entry 0's reserved
        // field is the tail itself, which the setters do not touch.)
        let entry = unsafe { &mut *self.entries.add(slot) };
        // SAFETY: `bid < count`, so the buffer is inside `data`.
        entry.set_addr(unsafe { self.data.add(usize::from(bid) * BUF_SIZE) } as u64);
        entry.set_len(BUF_SIZE as u32);
        entry.set_bid(bid);
        self.tail = self.tail.wrapping_add(1);
        // SAFETY: `entries` is valid, and the tail is a u16 the kernel only reads. Release:
        // the entry written above is visible to the kernel before the new tail is.
        let tail = unsafe { AtomicU16::from_ptr(BufRingEntry::tail(self.entries).cast_mut()) };
        tail.store(self.tail, Ordering::Release);
    }

    /// The first `len` bytes of buffer `bid`, which a completion just handed to the program.
    fn get(&self, bid: u16, len: usize) -> &[u8] {
        assert!(bid < self.count && len <= BUF_SIZE, "the kernel reported buffer {bid} of {len} bytes");
        // SAFETY: in bounds (checked). The kernel wrote these bytes before posting the CQE and
        // will not touch the buffer again until `provide(bid)`, which needs `&mut self`.
        unsafe { std::slice::from_raw_parts(self.data.add(usize::from(bid) * BUF_SIZE), len) }
    }
}

/// One client.
struct Conn {
    stream: TcpStream,
    /// A multishot recv is in flight.
    receiving: bool,
    /// An `AsyncCancel` of that recv is in flight (re-arming waits for it, so it cannot hit
    /// the new recv, which has the same user data).
    cancelling: bool,
    /// The client sent FIN, or the connection failed: no more data will come.
    eof: bool,
    /// A send failed: what is left is dropped.
    failed: bool,
    /// The bytes of the send in flight, `out[sent..]`. Owned by the connection, untouched while
    /// `sending`: the kernel reads them until the send's completion.
    out: Vec<u8>,
    sent: usize,
    sending: bool,
    /// What arrived while a send was in flight; sent next.
    queued: Vec<u8>,
}

impl Conn {
    fn new(stream: TcpStream) -> Conn {
        Conn {
            stream,
            receiving: false,
            cancelling: false,
            eof: false,
            failed: false,
            out: Vec::new(),
            sent: 0,
            sending: false,
            queued: Vec::new(),
        }
    }

    fn backlog(&self) -> usize {
        self.out.len() - self.sent + self.queued.len()
    }

    fn arm_recv(&mut self, ring: &mut Ring<'_>, token: u64) -> io::Result<()> {
        let fd = Fd(self.stream.as_raw_fd());
        let recv = opcode::RecvMulti::new(fd, BGID).build().user_data(Op::Recv.user_data(token));
        // SAFETY: the recv names no memory of ours but the buffer ring, which is never freed.
        unsafe { ring.push(&recv) }?;
        self.receiving = true;
        Ok(())
    }

    /// Sends `out[sent..]`, or whatever was queued if `out` is all sent.
    fn send_next(&mut self, ring: &mut Ring<'_>, token: u64) -> io::Result<()> {
        if self.sending || self.failed {
            return Ok(());
        }
        if self.sent == self.out.len() {
            self.out.clear();
            self.sent = 0;
            std::mem::swap(&mut self.out, &mut self.queued);
        }
        let rest = &self.out[self.sent..];
        if rest.is_empty() {
            return Ok(());
        }
        let len = u32::try_from(rest.len()).unwrap_or(u32::MAX);
        let send = opcode::Send::new(Fd(self.stream.as_raw_fd()), rest.as_ptr(), len)
            .flags(libc::MSG_NOSIGNAL)
            .build()
            .user_data(Op::Send.user_data(token));
        // SAFETY: `out` is neither changed nor dropped while `sending` (see `queue` and
        // `Server::finish`), so its heap buffer stays put until the send completes.
        unsafe { ring.push(&send) }?;
        self.sending = true;
        Ok(())
    }

    /// Takes bytes received from the client, to be echoed.
    fn queue(&mut self, bytes: &[u8]) {
        // While a send is in flight, `out` belongs to the kernel: append to `queued` instead.
        if self.sending {
            self.queued.extend_from_slice(bytes)
        } else {
            self.out.extend_from_slice(bytes)
        }
    }
}

struct Server {
    listener: TcpListener,
    conns: HashMap<u64, Conn>,
    next_token: u64,
    bufs: BufRing,
}

impl Server {
    fn arm_accept(&self, ring: &mut Ring<'_>) -> io::Result<()> {
        let accept = opcode::AcceptMulti::new(Fd(self.listener.as_raw_fd()))
            .flags(libc::SOCK_CLOEXEC)
            .build()
            .user_data(Op::Accept.user_data(LISTENER));
        // SAFETY: a multishot accept names no memory (no peer address is asked for).
        unsafe { ring.push(&accept) }
    }

    fn on_completion(&mut self, ring: &mut Ring<'_>, cqe: &cqueue::Entry) -> io::Result<()> {
        let (op, token) = Op::decode(cqe.user_data());
        let (res, more) = (cqe.result(), cqueue::more(cqe.flags()));
        match op {
            Op::Accept => {
                if res >= 0 {
                    // SAFETY: the kernel just installed this fd for us; nothing else owns it.
                    let stream = TcpStream::from(unsafe { OwnedFd::from_raw_fd(res) });
                    let token = self.next_token;
                    self.next_token += 1;
                    let mut conn = Conn::new(stream);
                    conn.arm_recv(ring, token)?;
                    self.conns.insert(token, conn);
                } else {
                    eprintln!("io_uring: accept failed: {}", io::Error::from_raw_os_error(-res));
                }
                if !more {
                    // The multishot accept ended: after an error (out of fds: EMFILE), wait
                    // before accepting again, or the pending connection fails it at once,
                    // forever; else (the kernel ended it, say on CQ overflow) re-arm now.
                    if res < 0 {
                        let pause = opcode::Timeout::new(&BACKOFF).build();
                        // SAFETY: the timespec is a static.
                        unsafe { ring.push(&pause.user_data(Op::Backoff.user_data(LISTENER))) }?;
                    } else {
                        self.arm_accept(ring)?;
                    }
                }
            }
            Op::Backoff => self.arm_accept(ring)?, // the timeout expired (-ETIME)
            Op::Cancel => {
                if let Some(conn) = self.conns.get_mut(&token) {
                    conn.cancelling = false;
                }
            }
            Op::Recv => {
                let Some(conn) = self.conns.get_mut(&token) else { return Ok(()) };
                if res > 0 {
                    let bid = cqueue::buffer_select(cqe.flags())
                        .ok_or_else(|| io::Error::other("recv without a buffer"))?;
                    // Copy out, and give the buffer back at once: the ring is shared by all
                    // connections, so a buffer held by one is a buffer the others lack.
                    conn.queue(self.bufs.get(bid, res as usize));
                    self.bufs.provide(bid);
                    conn.send_next(ring, token)?;
                } else if res == 0 {
                    conn.eof = true; // FIN: echo what is left, then close
                } else {
                    match Errno::from_raw(-res) {
                        // Out of buffers: the multishot ended. Every buffer handed to us
                        // before this CQE has been given back already; re-arm below.
                        Errno::ENOBUFS => {}
                        Errno::ECANCELED => {} // the backpressure cancellation below
                        e => {
                            eprintln!("io_uring: recv failed: {e}; closing");
                            conn.eof = true;
                            conn.failed = true;
                        }
                    }
                }
                if !more {
                    conn.receiving = false;
                }
                if conn.receiving && !conn.cancelling && conn.backlog() > MAX_BACKLOG {
                    // The client is not reading its echo: stop receiving until it does.
                    let cancel = opcode::AsyncCancel::new(Op::Recv.user_data(token)).build();
                    // SAFETY: a cancellation names no memory.
                    unsafe { ring.push(&cancel.user_data(Op::Cancel.user_data(token))) }?;
                    conn.cancelling = true;
                }
            }
            Op::Send => {
                let Some(conn) = self.conns.get_mut(&token) else { return Ok(()) };
                conn.sending = false;
                if res > 0 {
                    // A short send (the socket's send buffer had less room) leaves the rest in
                    // `out[sent..]`; send_next sends it, then what was queued.
                    conn.sent += res as usize;
                    conn.send_next(ring, token)?;
                } else {
                    let e = if res == 0 {
                        io::ErrorKind::WriteZero.into()
                    } else {
                        io::Error::from_raw_os_error(-res)
                    };
                    eprintln!("io_uring: send failed: {e}; closing");
                    conn.failed = true;
                    conn.eof = true;
                    if conn.receiving && !conn.cancelling {
                        let cancel = opcode::AsyncCancel::new(Op::Recv.user_data(token)).build();
                        // SAFETY: a cancellation names no memory.
                        unsafe { ring.push(&cancel.user_data(Op::Cancel.user_data(token))) }?;
                        conn.cancelling = true;
                    }
                }
            }
        }
        if token != LISTENER {
            self.finish(ring, token)?;
        }
        Ok(())
    }

    /// Re-arms a connection's recv when it stopped for no good reason, or closes it when it is
    /// done: no more input, nothing left to send, and no request in flight that names its fd
    /// or its buffer.
    fn finish(&mut self, ring: &mut Ring<'_>, token: u64) -> io::Result<()> {
        let Some(conn) = self.conns.get_mut(&token) else { return Ok(()) };
        if !conn.receiving && !conn.cancelling && !conn.eof && conn.backlog() <= MAX_BACKLOG {
            // Ended by ENOBUFS, a cancellation for backpressure that has now drained, or the
            // kernel (a multishot request may end at any time: no IORING_CQE_F_MORE).
            conn.arm_recv(ring, token)?;
        }
        // While bytes are left to send (and no send failed), a send is in flight: send_next
        // always starts one. So "not sending" means "all echoed, or given up".
        if conn.eof && !conn.receiving && !conn.sending {
            // Nothing of ours is in the kernel's hands any more: closing the fd and freeing
            // `out` is safe. (A pending cancellation names only the user data.)
            self.conns.remove(&token);
        }
        Ok(())
    }
}

/// Sets up the ring with the flags that make completions cheap, without them where the kernel
/// is older (EINVAL), and says which.
fn setup() -> io::Result<IoUring> {
    const FLAGS: &str = "SINGLE_ISSUER | DEFER_TASKRUN | COOP_TASKRUN";
    let tuned = IoUring::builder()
        .setup_single_issuer()
        .setup_defer_taskrun()
        .setup_coop_taskrun()
        .setup_cqsize(4096)
        .build(256);
    match tuned {
        Ok(ring) => {
            eprintln!("io_uring: {FLAGS}");
            Ok(ring)
        }
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
            eprintln!("io_uring: the kernel refused {FLAGS} ({e}); plain setup");
            IoUring::builder().setup_cqsize(4096).build(256)
        }
        Err(e) => Err(e),
    }
}

fn main() -> io::Result<()> {
    let mut addr = "127.0.0.1:8080".to_string();
    let mut buffers = DEFAULT_BUFFERS;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--buffers" => match args.next().and_then(|n| n.parse::<u16>().ok()) {
                Some(n) if n.is_power_of_two() && n <= 32768 => buffers = n,
                _ => {
                    eprintln!("io_uring: --buffers takes a power of two from 1 to 32768");
                    std::process::exit(2);
                }
            },
            flag if flag.starts_with('-') => {
                eprintln!("io_uring: unknown option {flag}\nusage: io_uring [ADDR] [--buffers N]");
                std::process::exit(2);
            }
            _ => addr = arg,
        }
    }

    let mut uring = match setup() {
        Ok(ring) => ring,
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOSYS | libc::EPERM)) => {
            // Not built into the kernel (ENOSYS), or switched off: sysctl kernel.io_uring_disabled,
            // or a seccomp filter (Docker's default profile refuses io_uring).
            eprintln!("io_uring: the kernel refuses io_uring here: {e}");
            std::process::exit(1);
        }
        Err(e) => return Err(e),
    };
    let (mut submitter, sq, mut cq) = uring.split();
    // One fd lookup less per io_uring_enter. Optional: older kernels lack it.
    if let Err(e) = submitter.register_ring_fd() {
        eprintln!("io_uring: cannot register the ring fd ({e}); going on without");
    }
    let bufs = match BufRing::register(&submitter, buffers) {
        Ok(bufs) => bufs,
        Err(e) => {
            eprintln!("io_uring: cannot register a buffer ring (Linux 5.19 or later is needed): {e}");
            std::process::exit(1);
        }
    };
    eprintln!("io_uring: {buffers} buffers of {BUF_SIZE} bytes");
    let listener = TcpListener::bind(&addr)?;
    println!("echo server listening on {}", listener.local_addr()?);

    let mut ring = Ring { submitter, sq };
    let mut server = Server { listener, conns: HashMap::new(), next_token: LISTENER + 1, bufs };
    let e = serve(&mut server, &mut ring, &mut cq);
    // Exit without dropping `server`: requests may still be in flight, and the kernel may still
    // read the send buffers they name (`exit` runs no destructors).
    eprintln!("io_uring: {e}");
    std::process::exit(1);
}

/// The event loop; returns only on an error the server cannot go on after.
fn serve(server: &mut Server, ring: &mut Ring<'_>, cq: &mut CompletionQueue<'_>) -> io::Error {
    if let Err(e) = server.arm_accept(ring) {
        return e;
    }
    loop {
        // The one system call per turn: it submits every SQE queued since the last turn (the
        // sends and re-arms the completions below asked for), runs the completion work the
        // kernel deferred for us, and waits until at least one completion is there.
        ring.sq.sync();
        match ring.submitter.submit_and_wait(1) {
            Ok(_) => {}
            // EINTR: a signal; EBUSY: completions overflowed, drain them first.
            Err(e) if matches!(e.raw_os_error(), Some(libc::EINTR | libc::EBUSY)) => {}
            Err(e) => return e,
        }
        cq.sync();
        for cqe in &mut *cq {
            if let Err(e) = server.on_completion(ring, &cqe) {
                return e;
            }
        }
        // Hand the consumed entries back to the kernel before it next posts.
        cq.sync();
    }
}
