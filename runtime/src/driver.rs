//! Which kernel interface a runtime's reactor uses: epoll (readiness) or io_uring
//! (completion), chosen when the runtime is built.

use std::fmt;

/// The reactor's kernel interface, chosen per runtime with [`Builder::driver`] or, for any
/// mini program without recompiling, the environment variable `MINI_DRIVER=epoll|uring|auto`.
///
/// - **`Epoll`** (the default): readiness. The kernel says a socket is ready; the task then
///   makes the `recv`/`send` syscall itself.
/// - **`IoUring`**: completion. Tasks queue requests, the loop hands them all to the kernel in
///   one `io_uring_enter` per turn, and the kernel does the I/O and posts the results. TCP
///   streams receive through a multishot `recv` into a ring of buffers mini lends the kernel;
///   other fds are watched by multishot poll requests. Needs Linux 6.1 and the cargo feature
///   `uring` (on by default).
/// - **`Auto`**: io_uring where the kernel offers everything the driver needs, else epoll.
///
/// `IoUring` and `Auto` fall back to epoll when the kernel refuses io_uring (ENOSYS, EPERM
/// from `kernel.io_uring_disabled` or a seccomp filter such as Docker's default, a missing
/// feature), printing one line on stderr that says why. [`Runtime::driver`] tells which one
/// a runtime got.
///
/// [`Builder::driver`]: crate::Builder::driver
/// [`Runtime::driver`]: crate::Runtime::driver
///
/// # Examples
///
/// ```
/// use mini::{Builder, Driver};
///
/// let rt = Builder::new().driver(Driver::Auto).build()?;
/// println!("this runtime runs on {:?}", rt.driver()); // IoUring, or Epoll where refused
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Driver {
    /// io_uring where available, else epoll.
    Auto,
    /// io_uring (falls back to epoll, saying why, where the kernel refuses it).
    IoUring,
    /// epoll.
    Epoll,
}

/// The environment variable that picks the driver of runtimes whose builder did not.
pub(crate) const ENV: &str = "MINI_DRIVER";

impl Driver {
    /// The driver `MINI_DRIVER` asks for; `Epoll` when unset. A value that is not one of
    /// the three is reported on stderr (once per runtime built) and ignored.
    pub(crate) fn from_env() -> Driver {
        match std::env::var(ENV) {
            Err(_) => Driver::Epoll,
            Ok(v) => Driver::parse(&v).unwrap_or_else(|| {
                eprintln!("mini: {ENV}={v} is not one of uring, epoll, auto; using epoll");
                Driver::Epoll
            }),
        }
    }

    fn parse(v: &str) -> Option<Driver> {
        match v.trim() {
            "uring" | "io_uring" | "iouring" => Some(Driver::IoUring),
            "epoll" => Some(Driver::Epoll),
            "auto" => Some(Driver::Auto),
            _ => None,
        }
    }
}

impl fmt::Display for Driver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Driver::Auto => "auto",
            Driver::IoUring => "io_uring",
            Driver::Epoll => "epoll",
        })
    }
}

/// The fallback's one line on stderr.
pub(crate) fn report_fallback(reason: &str) {
    eprintln!("mini: io_uring unavailable ({reason}); using epoll");
}

#[cfg(test)]
mod tests {
    use super::Driver;

    #[test]
    fn the_three_names_parse_and_nothing_else() {
        assert_eq!(Driver::parse("uring"), Some(Driver::IoUring));
        assert_eq!(Driver::parse("epoll"), Some(Driver::Epoll));
        assert_eq!(Driver::parse(" auto\n"), Some(Driver::Auto));
        assert_eq!(Driver::parse("kqueue"), None);
        assert_eq!(Driver::parse(""), None);
    }
}
