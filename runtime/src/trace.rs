//! `MINI_TRACE`: a live trace of the message loop, for people learning how it works.
//!
//! Read once, when a runtime starts:
//!
//! - `MINI_TRACE=1` prints one compact line per step to stderr;
//! - `MINI_TRACE=chrome:PATH` writes the same steps as Chrome trace-event JSON to PATH, which
//!   Perfetto (<https://ui.perfetto.dev>) or `chrome://tracing` draw as one track for the loop
//!   and one per task.
//!
//! A step is: `epoll_wait` entered (with its timeout) and returned (with N events, or
//! "interrupted by a signal" when a signal handler cut it short); each event
//! (token → fd → readiness); each wake (which task, and whether it came from the reactor, a
//! timer or another thread); each task poll (id, name, Ready/Pending, duration); each spawn
//! and completion. Following one byte from the kernel to the task that reads it looks like:
//!
//! ```text
//! mini +   2.114ms epoll_wait timeout=none
//! mini +  15.902ms epoll_wait -> 1 event after 13.788ms
//! mini +  15.904ms   event token=0x55d4c1a3e040 fd=7 IN
//! mini +  15.905ms     wake task 2 "conn-127.0.0.1:50112" (reactor)
//! mini +  15.911ms poll task 2 "conn-127.0.0.1:50112" -> Pending in 6.2µs
//! ```
//!
//! When the variable is unset, the runtime holds no tracer, and every step costs one
//! well-predicted branch on an `Option`. Built without the `trace` cargo feature (on by
//! default), [`Trace::get`] is a constant `None` and the compiler removes the branches: that
//! build is the baseline that shows the branches cost nothing measurable
//! (`docs/PERFORMANCE.md`, written with the benchmarks in `bench/`).

use std::cell::{Cell, RefCell};
use std::fmt::{self, Write as _};
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::os::fd::RawFd;
use std::rc::Rc;
use std::time::{Duration, Instant};

use crate::executor::REMOTE_SPIN;
use crate::sys::{ev, Waited};
use crate::task::TaskInfo;

/// The environment variable that turns tracing on.
pub(crate) const TRACE_ENV: &str = "MINI_TRACE";

enum Sink {
    Text(io::Stderr),
    Chrome { out: BufWriter<File>, events: usize },
}

/// The runtime's handle on its tracer, if tracing is on.
#[derive(Debug, Clone, Default)]
pub(crate) struct Trace(Option<Rc<Tracer>>);

impl Trace {
    /// Reads `MINI_TRACE` (once, when a runtime starts).
    pub(crate) fn from_env() -> Trace {
        if cfg!(feature = "trace") {
            Trace(Tracer::from_env())
        } else {
            Trace(None)
        }
    }

    /// The tracer, if tracing is on: every trace point is `if let Some(t) = trace.get()`.
    #[inline(always)]
    pub(crate) fn get(&self) -> Option<&Tracer> {
        if cfg!(feature = "trace") {
            self.0.as_deref()
        } else {
            None
        }
    }
}

/// The tracer of one runtime: where the steps go, and the clock they are stamped with.
pub(crate) struct Tracer {
    start: Instant,
    sink: RefCell<Sink>,
    /// Set when the loop enters `epoll_wait`, for the Chrome "complete" event's duration.
    wait_began: Cell<Option<Instant>>,
    wake_source: Cell<&'static str>,
    finished: Cell<bool>,
}

impl fmt::Debug for Tracer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match &*self.sink.borrow() {
            Sink::Text(_) => "text",
            Sink::Chrome { .. } => "chrome",
        };
        f.debug_struct("Tracer").field("sink", &kind).finish()
    }
}

/// Chrome "thread" ids: the loop is track 0, the `block_on` future track 1, task N track N+1.
const LOOP_TRACK: u64 = 0;

fn track(task: Option<&TaskInfo>) -> u64 {
    task.map_or(1, |t| t.id + 1)
}

/// `task 7 "name"`, or `the block_on future`.
struct Who<'a>(Option<&'a TaskInfo>);

impl fmt::Display for Who<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(t) => match t.name.as_deref() {
                Some(name) => write!(f, "task {} {name:?}", t.id),
                None => write!(f, "task {}", t.id),
            },
            None => f.write_str("the block_on future"),
        }
    }
}

/// `IN|OUT|RDHUP`, from the kernel's flags.
struct Flags(u32);

impl fmt::Display for Flags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names =
            [(ev::IN, "IN"), (ev::OUT, "OUT"), (ev::RDHUP, "RDHUP"), (ev::HUP, "HUP"), (ev::ERR, "ERR")];
        let mut first = true;
        for (bit, name) in names {
            if self.0 & bit != 0 {
                if !first {
                    f.write_char('|')?;
                }
                f.write_str(name)?;
                first = false;
            }
        }
        Ok(())
    }
}

/// A JSON string literal (the names we write are plain, but a task name is user input).
fn json_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

impl Tracer {
    /// A tracer as `MINI_TRACE` asks for, or `None` (tracing off). An unusable value is
    /// reported once on stderr and leaves tracing off: a diagnostic must not stop a program.
    fn from_env() -> Option<Rc<Tracer>> {
        let value = std::env::var_os(TRACE_ENV)?;
        let value = value.to_string_lossy();
        let sink = match value.as_ref() {
            "" | "0" => return None,
            "1" => Sink::Text(io::stderr()),
            v => match v.strip_prefix("chrome:") {
                Some(path) => match File::create(path) {
                    Ok(file) => {
                        let mut out = BufWriter::new(file);
                        let _ = out.write_all(b"[\n");
                        Sink::Chrome { out, events: 0 }
                    }
                    Err(e) => {
                        eprintln!("mini: MINI_TRACE: cannot create {path:?}: {e}; tracing is off");
                        return None;
                    }
                },
                None => {
                    eprintln!("mini: MINI_TRACE={v:?} is not 1 or chrome:PATH; tracing is off");
                    return None;
                }
            },
        };
        let tracer = Tracer {
            start: Instant::now(),
            sink: RefCell::new(sink),
            wait_began: Cell::new(None),
            wake_source: Cell::new("task"),
            finished: Cell::new(false),
        };
        tracer.chrome_meta(LOOP_TRACK, "event loop (epoll_wait, wakes)");
        tracer.chrome_meta(1, "block_on future");
        Some(Rc::new(tracer))
    }

    fn micros(&self, t: Instant) -> f64 {
        t.saturating_duration_since(self.start).as_secs_f64() * 1e6
    }

    /// One text line, stamped with the time since the runtime started.
    fn line(&self, args: fmt::Arguments<'_>) {
        if let Sink::Text(err) = &mut *self.sink.borrow_mut() {
            let ms = self.start.elapsed().as_secs_f64() * 1e3;
            let _ = writeln!(err.lock(), "mini +{ms:>9.3}ms {args}");
        }
    }

    /// One Chrome event object (without the surrounding separators).
    fn chrome(&self, event: fmt::Arguments<'_>) {
        if let Sink::Chrome { out, events } = &mut *self.sink.borrow_mut() {
            let sep = if *events == 0 { "" } else { ",\n" };
            *events += 1;
            let _ = write!(out, "{sep}{{\"pid\":1,{event}}}");
        }
    }

    fn is_chrome(&self) -> bool {
        matches!(&*self.sink.borrow(), Sink::Chrome { .. })
    }

    fn chrome_meta(&self, tid: u64, name: &str) {
        self.chrome(format_args!(
            "\"ph\":\"M\",\"name\":\"thread_name\",\"tid\":{tid},\"args\":{{\"name\":{}}}",
            json_str(name)
        ));
    }

    fn chrome_instant(&self, tid: u64, name: &str, args: &str) {
        let ts = self.micros(Instant::now());
        self.chrome(format_args!(
            "\"ph\":\"i\",\"s\":\"t\",\"name\":{},\"tid\":{tid},\"ts\":{ts:.3},\"args\":{{{args}}}",
            json_str(name)
        ));
    }

    pub(crate) fn epoll_enter(&self, timeout: Option<Duration>) {
        self.wait_began.set(Some(Instant::now()));
        match timeout {
            None => self.line(format_args!("epoll_wait timeout=none")),
            Some(t) => self.line(format_args!("epoll_wait timeout={t:?}")),
        }
    }

    /// The wait's outcome. An interruption is told apart from "0 events": both return
    /// early with nothing to do, but only the timeout means a timer is due.
    pub(crate) fn epoll_return(&self, outcome: Waited) {
        let began = self.wait_began.take().unwrap_or_else(Instant::now);
        let waited = began.elapsed();
        let events = outcome.events();
        let interrupted = outcome == Waited::Interrupted;
        if interrupted {
            self.line(format_args!("epoll_wait -> interrupted by a signal after {waited:?}"));
        } else {
            let s = if events == 1 { "" } else { "s" };
            self.line(format_args!("epoll_wait -> {events} event{s} after {waited:?}"));
        }
        if self.is_chrome() {
            let (ts, dur) = (self.micros(began), waited.as_secs_f64() * 1e6);
            self.chrome(format_args!(
                "\"ph\":\"X\",\"name\":\"epoll_wait\",\"tid\":{LOOP_TRACK},\"ts\":{ts:.3},\"dur\":{dur:.3},\"args\":{{\"events\":{events},\"interrupted\":{interrupted}}}"
            ));
        }
    }

    pub(crate) fn event(&self, token: u64, fd: RawFd, flags: u32, waiters: usize) {
        // The token is the address of the fd's source (see reactor.rs).
        let s = if waiters == 1 { "" } else { "s" };
        self.line(format_args!(
            "  event token={token:#x} fd={fd} {} -> {waiters} waiting task{s}",
            Flags(flags)
        ));
        if self.is_chrome() {
            let args = format!("\"fd\":{fd},\"readiness\":\"{}\",\"token\":\"{token:#x}\"", Flags(flags));
            self.chrome_instant(LOOP_TRACK, &format!("fd {fd} {}", Flags(flags)), &args);
        }
    }

    /// A request queued for the kernel (io_uring driver).
    #[cfg(feature = "uring")]
    pub(crate) fn submission(&self, op: &str, fd: RawFd, user_data: u64) {
        self.line(format_args!("  submit {op} fd={fd} user_data={user_data:#x}"));
        if self.is_chrome() {
            let args = format!("\"fd\":{fd},\"user_data\":\"{user_data:#x}\"");
            self.chrome_instant(LOOP_TRACK, &format!("submit {op}"), &args);
        }
    }

    /// The loop enters the kernel (io_uring driver): submits `queued` requests and waits.
    #[cfg(feature = "uring")]
    pub(crate) fn uring_enter(&self, queued: usize, timeout: Option<Duration>) {
        self.wait_began.set(Some(Instant::now()));
        match timeout {
            None => self.line(format_args!("io_uring_enter submit={queued} timeout=none")),
            Some(t) => self.line(format_args!("io_uring_enter submit={queued} timeout={t:?}")),
        }
    }

    /// What the enter returned: how many completions are ready.
    #[cfg(feature = "uring")]
    pub(crate) fn uring_return(&self, completions: usize) {
        let began = self.wait_began.take().unwrap_or_else(Instant::now);
        let waited = began.elapsed();
        let s = if completions == 1 { "" } else { "s" };
        self.line(format_args!("io_uring_enter -> {completions} completion{s} after {waited:?}"));
        if self.is_chrome() {
            let (ts, dur) = (self.micros(began), waited.as_secs_f64() * 1e6);
            self.chrome(format_args!(
                "\"ph\":\"X\",\"name\":\"io_uring_enter\",\"tid\":{LOOP_TRACK},\"ts\":{ts:.3},\"dur\":{dur:.3},\"args\":{{\"completions\":{completions}}}"
            ));
        }
    }

    /// One completion (io_uring driver): which request, its result, and whether more follow.
    #[cfg(feature = "uring")]
    pub(crate) fn completion(&self, op: &str, user_data: u64, result: i32, more: bool) {
        let more = if more { " (more follow)" } else { "" };
        self.line(format_args!("  completion {op} user_data={user_data:#x} result={result}{more}"));
        if self.is_chrome() {
            let args = format!("\"user_data\":\"{user_data:#x}\",\"result\":{result}");
            self.chrome_instant(LOOP_TRACK, &format!("cqe {op}"), &args);
        }
    }

    pub(crate) fn wakeup_eventfd(&self) {
        self.line(format_args!("  event: eventfd (a wake from another thread)"));
        if self.is_chrome() {
            self.chrome_instant(LOOP_TRACK, "eventfd", "");
        }
    }

    pub(crate) fn remote_spin(&self, caught: bool) {
        if caught {
            self.line(format_args!("spin: a wake from another thread came, no sleep"));
        } else {
            self.line(format_args!("spin: no wake from another thread within {REMOTE_SPIN:?}"));
        }
        if self.is_chrome() {
            self.chrome_instant(LOOP_TRACK, "spin", &format!("\"caught\":{caught}"));
        }
    }

    pub(crate) fn timer_fired(&self, deadline: Instant) {
        let late = deadline.elapsed();
        self.line(format_args!("  timer expired ({late:?} after its deadline)"));
        if self.is_chrome() {
            self.chrome_instant(LOOP_TRACK, "timer", &format!("\"late_us\":{:.1}", late.as_secs_f64() * 1e6));
        }
    }

    /// Names what the next local wakes come from ("reactor", "timer"), until `wake_source`
    /// is called again; "task" (a task waking another, or itself) otherwise.
    pub(crate) fn set_wake_source(&self, source: &'static str) {
        self.wake_source.set(source);
    }

    /// A task was queued to run. `source` overrides the current wake source ("remote").
    pub(crate) fn wake(&self, task: Option<&TaskInfo>, source: Option<&str>) {
        let source = source.unwrap_or(self.wake_source.get());
        self.line(format_args!("    wake {} ({source})", Who(task)));
        if self.is_chrome() {
            let name = format!("wake {}", Who(task));
            self.chrome_instant(LOOP_TRACK, &name, &format!("\"from\":{}", json_str(source)));
        }
    }

    pub(crate) fn poll(&self, task: Option<&TaskInfo>, began: Instant, ended: Instant, ready: bool) {
        let took = ended.saturating_duration_since(began);
        let outcome = if ready { "Ready" } else { "Pending" };
        self.line(format_args!("poll {} -> {outcome} in {took:?}", Who(task)));
        if self.is_chrome() {
            let (ts, dur) = (self.micros(began), took.as_secs_f64() * 1e6);
            self.chrome(format_args!(
                "\"ph\":\"X\",\"name\":\"poll -> {outcome}\",\"tid\":{},\"ts\":{ts:.3},\"dur\":{dur:.3}",
                track(task)
            ));
        }
    }

    pub(crate) fn spawn(&self, task: &TaskInfo) {
        self.line(format_args!("spawn {} at {}", Who(Some(task)), task.spawned_at));
        if self.is_chrome() {
            self.chrome_meta(track(Some(task)), &Who(Some(task)).to_string());
            self.chrome_instant(
                track(Some(task)),
                "spawn",
                &format!("\"at\":{}", json_str(&task.spawned_at.to_string())),
            );
        }
    }

    pub(crate) fn finished(&self, task: &TaskInfo) {
        self.line(format_args!("done {}", Who(Some(task))));
        if self.is_chrome() {
            self.chrome_instant(track(Some(task)), "done", "");
        }
    }

    /// Closes the Chrome JSON array and flushes. Called when the runtime is dropped.
    pub(crate) fn finish(&self) {
        if self.finished.replace(true) {
            return;
        }
        if let Sink::Chrome { out, .. } = &mut *self.sink.borrow_mut() {
            let _ = out.write_all(b"\n]\n");
            let _ = out.flush();
        }
    }
}
