//! The `epoll_wait` fallback for kernels (or sandboxes) without `epoll_pwait2`.
//!
//! Three ways in, each tested here:
//!
//! - `MINI_EPOLL_WAIT=1` forces it. The switch is process-wide, so that test runs this binary
//!   again as a child with the variable set, and reads the child's `MINI_TRACE` output to
//!   count the waits.
//! - A kernel without the syscall answers ENOSYS. So does valgrind, which runs this file in
//!   CI (`.ci/valgrind`) and does not know syscall 441.
//! - A seccomp profile refuses it, with EPERM (what container runtimes answer for a syscall
//!   missing from their list) or EINVAL. The tests install a real seccomp filter on a
//!   thread of their own; filters are per thread, so the rest of the process is unaffected.

mod util;

use std::io;
use std::process::Command;
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The longest any test here waits for a thread or a child before failing.
const HANG_GUARD: Duration = Duration::from_secs(30);

/// Set in the child process of `forced_fallback_rounds_timeouts_up_instead_of_spinning`.
const CHILD_ENV: &str = "MINI_TIME_FALLBACK_CHILD";

/// Starts each step of the child's work in its stderr, between the trace lines.
const STEP: &str = "STEP ";

/// The child: timers due in less than a millisecond, on the millisecond fallback, with a
/// marker before each so that the parent can count the waits each one took.
fn child_sleeps() {
    let rt = mini::Builder::new().driver(mini::Driver::Epoll).build().unwrap(); // the epoll driver's fallback
    println!("{rt:?}");
    rt.block_on(async {
        for micros in [1, 300, 999, 1000, 1500] {
            eprintln!("{STEP}sleep {micros}µs");
            let deadline = Instant::now() + Duration::from_micros(micros);
            mini::time::sleep_until(deadline).await;
            assert!(Instant::now() >= deadline, "woke before the deadline");
        }
        eprintln!("{STEP}timeout 500µs");
        let err = mini::time::timeout(Duration::from_micros(500), std::future::pending::<()>()).await;
        assert!(err.is_err());
        eprintln!("{STEP}end");
    });
}

/// Sub-millisecond timeouts must be rounded *up* to epoll_wait's milliseconds. Rounded down
/// to 0, each sleep would still end on time, but by spinning: one zero-timeout epoll_wait
/// after another until the deadline passes. The trace shows every wait, so the test counts
/// them: a timer takes one wait (a few at most), where a spin takes dozens or thousands.
#[test]
fn forced_fallback_rounds_timeouts_up_instead_of_spinning() {
    if std::env::var_os(CHILD_ENV).is_some() {
        return child_sleeps();
    }
    let mut child = Command::new(std::env::current_exe().unwrap());
    child
        .args(["--exact", "forced_fallback_rounds_timeouts_up_instead_of_spinning", "--nocapture"])
        .args(["--test-threads=1"])
        .env(CHILD_ENV, "1")
        .env("MINI_EPOLL_WAIT", "1")
        .env("MINI_TRACE", "1");
    let out = util::output_within(&mut child, HANG_GUARD);
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "child failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("epoll_pwait2: false"), "the switch was ignored: {stdout}");

    // Group the trace lines by step, and count the waits in each.
    let mut steps: Vec<(&str, Vec<&str>)> = Vec::new();
    for line in stderr.lines() {
        if let Some(step) = line.strip_prefix(STEP) {
            steps.push((step, Vec::new()));
        } else if let Some((_, lines)) = steps.last_mut() {
            lines.push(line);
        }
    }
    let names: Vec<&str> = steps.iter().map(|(name, _)| *name).collect();
    assert_eq!(
        names,
        ["sleep 1µs", "sleep 300µs", "sleep 999µs", "sleep 1000µs", "sleep 1500µs", "timeout 500µs", "end"]
    );
    for (step, lines) in &steps[..steps.len() - 1] {
        let waits = lines.iter().filter(|l| l.contains("epoll_wait timeout=")).count();
        assert!(waits <= 3, "{step} took {waits} epoll_waits (a spin?):\n{}", lines.join("\n"));
    }
    // The count means something only if the trace was on: at least one step had to wait.
    assert!(stderr.contains("epoll_wait timeout="), "no trace in the child's stderr:\n{stderr}");
}

/// The runtime waits with `epoll_pwait2` exactly when this process may: its Debug output,
/// after a timed wait has tried the syscall, agrees with a direct probe of the kernel. On
/// Linux 5.11+ that is `true`; under valgrind, an older kernel or a seccomp profile that
/// refuses the syscall, `false`.
#[test]
fn the_runtime_uses_epoll_pwait2_exactly_when_the_kernel_allows_it() {
    let allowed = probe_epoll_pwait2() == libc::EBADF;
    let rt = mini::Builder::new().driver(mini::Driver::Epoll).build().unwrap(); // the epoll driver's fallback
    rt.block_on(timed_waits());
    let debug = format!("{rt:?}");
    assert!(debug.contains(&format!("epoll_pwait2: {allowed}")), "kernel allows it: {allowed}; {debug}");
}

/// A few sleeps, so that the runtime waits on epoll with a positive timeout: the only wait
/// that tries `epoll_pwait2`. 20 ms each because under valgrind a short sleep can be over
/// before the loop gets to wait for it (it then waits with timeout 0, which never tries).
async fn timed_waits() {
    for _ in 0..3 {
        mini::time::sleep(Duration::from_millis(20)).await;
    }
}

/// What `epoll_pwait2` answers for fd -1, as this thread sees it: EBADF when the kernel has
/// it, ENOSYS when it does not (or under valgrind), or whatever a seccomp filter says.
fn probe_epoll_pwait2() -> i32 {
    let mut event = libc::epoll_event { events: 0, u64: 0 };
    let zero = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `event` and `zero` live across the call; a null sigmask is allowed, and fd -1
    // makes the call fail before it waits or writes anything.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_epoll_pwait2,
            -1,
            &mut event as *mut libc::epoll_event,
            1,
            &zero as *const libc::timespec,
            std::ptr::null::<libc::sigset_t>(),
            0usize,
        )
    };
    assert_eq!(rc, -1, "epoll_pwait2 on fd -1 succeeded");
    io::Error::last_os_error().raw_os_error().unwrap()
}

#[test]
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
fn timers_work_when_seccomp_refuses_epoll_pwait2_with_eperm() {
    timers_work_when_seccomp_refuses_epoll_pwait2(libc::EPERM);
}

#[test]
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
fn timers_work_when_seccomp_refuses_epoll_pwait2_with_einval() {
    timers_work_when_seccomp_refuses_epoll_pwait2(libc::EINVAL);
}

#[test]
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
fn timers_work_when_seccomp_refuses_epoll_pwait2_with_enosys() {
    timers_work_when_seccomp_refuses_epoll_pwait2(libc::ENOSYS);
}

/// On a fresh thread: refuse `epoll_pwait2` with `errno`, then run timers on a new runtime.
/// Before the fallback covered EPERM, the first timed wait panicked the runtime
/// ("mini: epoll_wait failed: Operation not permitted").
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
fn timers_work_when_seccomp_refuses_epoll_pwait2(errno: i32) {
    let (done, finished) = mpsc::channel();
    let thread = std::thread::spawn(move || {
        let before = probe_epoll_pwait2();
        refuse_epoll_pwait2_on_this_thread(errno);
        let rt = mini::Builder::new().driver(mini::Driver::Epoll).build().unwrap(); // the epoll driver's fallback
        rt.block_on(timed_waits());
        done.send((before, probe_epoll_pwait2(), format!("{rt:?}"))).unwrap();
    });
    let (before, after, debug) = match finished.recv_timeout(HANG_GUARD) {
        Ok(result) => result,
        // The thread panicked (and dropped the sender): show its panic.
        Err(mpsc::RecvTimeoutError::Disconnected) => std::panic::resume_unwind(thread.join().unwrap_err()),
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("the timers did not finish within {HANG_GUARD:?}"),
    };
    if before == libc::EBADF {
        assert_eq!(after, errno, "the seccomp filter is not in place");
    } else {
        // Valgrind answers ENOSYS for syscall 441 without asking the kernel (so the filter
        // never sees it), and an old kernel lacks it: the ENOSYS fallback is what ran.
        eprintln!(
            "note: epoll_pwait2 was unavailable before the filter (errno {before}: valgrind, or a \
             kernel before 5.11); this run tested the fallback, but not the refusal by errno {errno}"
        );
    }
    assert!(debug.contains("epoll_pwait2: false"), "{debug}");
}

/// `AUDIT_ARCH_*` (linux/audit.h): the architecture a seccomp filter sees in
/// `seccomp_data.arch`. A filter must check it, since syscall numbers differ by architecture.
#[cfg(target_arch = "x86_64")]
const AUDIT_ARCH: u32 = 0xc000_003e; // EM_X86_64 | __AUDIT_ARCH_64BIT | __AUDIT_ARCH_LE
#[cfg(target_arch = "aarch64")]
const AUDIT_ARCH: u32 = 0xc000_00b7; // EM_AARCH64 | __AUDIT_ARCH_64BIT | __AUDIT_ARCH_LE

/// Installs a seccomp filter on the calling thread (only: no `SECCOMP_FILTER_FLAG_TSYNC`)
/// that answers `epoll_pwait2` with `errno` and allows every other syscall, as a container's
/// profile does for a syscall it does not list.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
fn refuse_epoll_pwait2_on_this_thread(errno: i32) {
    use libc::{BPF_ABS, BPF_JEQ, BPF_JMP, BPF_K, BPF_LD, BPF_RET, BPF_W};
    let load = |offset: usize| libc::sock_filter {
        code: (BPF_LD | BPF_W | BPF_ABS) as u16,
        jt: 0,
        jf: 0,
        k: offset as u32,
    };
    let jump_if =
        |k: u32, jt: u8, jf: u8| libc::sock_filter { code: (BPF_JMP | BPF_JEQ | BPF_K) as u16, jt, jf, k };
    let ret = |k: u32| libc::sock_filter { code: (BPF_RET | BPF_K) as u16, jt: 0, jf: 0, k };
    // Jump offsets count the instructions skipped.
    let mut filter = [
        /* 0 */ load(std::mem::offset_of!(libc::seccomp_data, arch)),
        /* 1 */ jump_if(AUDIT_ARCH, 0, 3), // another architecture: allow (5)
        /* 2 */ load(std::mem::offset_of!(libc::seccomp_data, nr)),
        /* 3 */ jump_if(libc::SYS_epoll_pwait2 as u32, 0, 1), // not epoll_pwait2: allow (5)
        /* 4 */ ret(libc::SECCOMP_RET_ERRNO | errno as u32),
        /* 5 */ ret(libc::SECCOMP_RET_ALLOW),
    ];
    let prog = libc::sock_fprog { len: filter.len() as u16, filter: filter.as_mut_ptr() };
    // SAFETY: prctl with integer arguments only; no_new_privs is required before an
    // unprivileged process may install a filter.
    let rc = unsafe {
        libc::prctl(
            libc::PR_SET_NO_NEW_PRIVS,
            1 as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
        )
    };
    assert_eq!(rc, 0, "PR_SET_NO_NEW_PRIVS: {}", io::Error::last_os_error());
    // SAFETY: `prog` points at `filter`, both alive across the call (the kernel copies the
    // program). prctl's form of seccomp(SECCOMP_SET_MODE_FILTER) takes no flags, so no TSYNC:
    // the filter applies to this thread alone. (valgrind knows this form, not seccomp(2).)
    let rc = unsafe {
        libc::prctl(
            libc::PR_SET_SECCOMP,
            libc::SECCOMP_MODE_FILTER as libc::c_ulong,
            &prog as *const libc::sock_fprog,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
        )
    };
    assert_eq!(rc, 0, "PR_SET_SECCOMP: {}", io::Error::last_os_error());
}
