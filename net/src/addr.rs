//! Turning addresses and host names into `SocketAddr`s without blocking the loop.
//!
//! `std::net::ToSocketAddrs` resolves a host name with `getaddrinfo`, which blocks the calling
//! thread for as long as DNS takes: on mini's one thread that stalls every task. So mini has
//! its own [`ToSocketAddrs`], sealed and implemented for the same std types (as tokio does).
//! Each impl sorts its input into one of two cases:
//!
//! ```text
//!  SocketAddr, (IpAddr, u16), &[SocketAddr],      ──► Addrs::Ready(addrs)      no lookup
//!  "127.0.0.1:80", ("::1", 80)                                                  at all
//!  "localhost:80", ("example.com", 443)           ──► Addrs::Lookup(host, port)
//!                                                      └─► spawn_blocking: getaddrinfo on a
//!                                                          pool thread; the task awaits it
//! ```
//!
//! Only host names go to the pool: a literal address parses in nanoseconds, and a thread hop
//! would cost microseconds per `connect`.
//!
//! [`lookup_host`] and `resolve_async` work this way, and every socket type's `bind`,
//! `connect` and `send_to` goes through `resolve_async`.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

use mini_runtime::spawn_blocking;

use self::sealed::{Addrs, Internal, ToSocketAddrsPriv};

/// Something that names one or more socket addresses: an address, an IP and a port, or a
/// host name and a port to look up.
///
/// mini's counterpart of [`std::net::ToSocketAddrs`], implemented for the same types. The
/// difference is that a host name is looked up on the blocking pool (see
/// [`spawn_blocking`](mini_runtime::spawn_blocking)), never on the thread that runs the
/// tasks. The trait is sealed: its method is internal, and only this crate implements it.
///
/// | type                                          | lookup?                               |
/// |-----------------------------------------------|---------------------------------------|
/// | `SocketAddr`, `SocketAddrV4`, `SocketAddrV6`  | never                                 |
/// | `(IpAddr, u16)`, `(Ipv4Addr, u16)`, `(Ipv6Addr, u16)` | never                         |
/// | `&[SocketAddr]`                               | never                                 |
/// | `&str`, `String`: `"host:port"`               | only if it is not an `ip:port` string |
/// | `(&str, u16)`, `(String, u16)`                | only if the host is not an IP address |
/// | `&T` for any of the above                     | as `T`                                |
///
/// # Examples
///
/// ```
/// # mini::block_on(async {
/// let addrs: Vec<_> = mini::net::lookup_host(("127.0.0.1", 8080)).await?.collect();
/// assert_eq!(addrs, ["127.0.0.1:8080".parse().unwrap()]);
/// # Ok::<(), std::io::Error>(())
/// # })?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub trait ToSocketAddrs: ToSocketAddrsPriv {}

pub(crate) mod sealed {
    use std::io;
    use std::net::SocketAddr;

    /// What an address turns into before any lookup.
    #[derive(Debug)]
    pub enum Addrs {
        /// Already addresses: nothing to look up.
        Ready(Vec<SocketAddr>),
        /// A host name, to look up on the blocking pool.
        Lookup(String, u16),
    }

    /// The real trait behind [`ToSocketAddrs`](super::ToSocketAddrs). Users can name
    /// neither it nor [`Internal`], so they can neither implement nor call it.
    pub trait ToSocketAddrsPriv {
        /// Sorts `self` into ready addresses or a host to look up. Never blocks.
        fn to_addrs(&self, internal: Internal) -> io::Result<Addrs>;
    }

    /// A token only this crate can make: it keeps `to_addrs` uncallable from outside, even
    /// through a `T: ToSocketAddrs` bound.
    #[derive(Debug, Clone, Copy)]
    pub struct Internal(pub(super) ());
}

/// Resolves `addr`, looking host names up on the blocking pool: the loop never waits on DNS.
/// Fails if the name resolves to no address at all.
pub(crate) async fn resolve_async(addr: impl ToSocketAddrs) -> io::Result<Vec<SocketAddr>> {
    let addrs = match addr.to_addrs(Internal(()))? {
        Addrs::Ready(addrs) => addrs,
        Addrs::Lookup(host, port) => lookup(host, port).await?,
    };
    if addrs.is_empty() {
        return Err(no_addresses());
    }
    Ok(addrs)
}

fn no_addresses() -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, "could not resolve to any address")
}

/// Runs std's resolver for `host:port` on a pool thread.
async fn lookup(host: String, port: u16) -> io::Result<Vec<SocketAddr>> {
    spawn_blocking(move || {
        std::net::ToSocketAddrs::to_socket_addrs(&(host.as_str(), port)).map(Iterator::collect)
    })
    .await?
}

/// Looks up the addresses of `host` without blocking the runtime: a host name is resolved
/// by the system resolver (`getaddrinfo`, as [`std::net::ToSocketAddrs`] does) on the
/// blocking pool, while other tasks keep running. An address given literally
/// (`"127.0.0.1:80"`, a [`SocketAddr`]) is returned as is, without a lookup.
///
/// The iterator may be empty if the name exists but has no address.
///
/// # Errors
///
/// If `host` is not of the form `"host:port"`, or the lookup fails (an unknown name, no
/// resolver reachable).
///
/// # Panics
///
/// Outside a mini runtime, when `host` needs a lookup.
///
/// # Examples
///
/// ```
/// # mini::block_on(async {
/// for addr in mini::net::lookup_host("localhost:80").await? {
///     assert!(addr.ip().is_loopback());
/// }
/// # Ok::<(), std::io::Error>(())
/// # })?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub async fn lookup_host(host: impl ToSocketAddrs) -> io::Result<impl Iterator<Item = SocketAddr>> {
    let addrs = match host.to_addrs(Internal(()))? {
        Addrs::Ready(addrs) => addrs,
        Addrs::Lookup(host, port) => lookup(host, port).await?,
    };
    Ok(addrs.into_iter())
}

/// Tries `f` on each address in turn; returns the first success or the last error.
pub(crate) async fn try_each<T, F, Fut>(addrs: Vec<SocketAddr>, mut f: F) -> io::Result<T>
where
    F: FnMut(SocketAddr) -> Fut,
    Fut: std::future::Future<Output = io::Result<T>>,
{
    let mut last_err = None;
    for addr in addrs {
        match f(addr).await {
            Ok(v) => return Ok(v),
            Err(e) => last_err = Some(e),
        }
    }
    Err(last_err.expect("resolve returns at least one address"))
}

// --- The impls: literal addresses are `Ready`, host names become a `Lookup`. ---

/// `"host:port"`: an `ip:port` string is parsed here; anything else is split as std splits it
/// (at the last `:`), and the host goes on to `host_port`.
fn parse_str(s: &str) -> io::Result<Addrs> {
    if let Ok(addr) = s.parse::<SocketAddr>() {
        return Ok(Addrs::Ready(vec![addr]));
    }
    let invalid = |msg| io::Error::new(io::ErrorKind::InvalidInput, msg);
    let (host, port) = s.rsplit_once(':').ok_or_else(|| invalid("invalid socket address"))?;
    let port = port.parse().map_err(|_| invalid("invalid port value"))?;
    Ok(host_port(host, port))
}

/// `(host, port)`: an IP address needs no lookup (`"::1"` included, which `parse_str`
/// reaches for `"::1:80"`, as std does).
fn host_port(host: &str, port: u16) -> Addrs {
    match host.parse::<IpAddr>() {
        Ok(ip) => Addrs::Ready(vec![SocketAddr::new(ip, port)]),
        Err(_) => Addrs::Lookup(host.to_owned(), port),
    }
}

macro_rules! ready_impl {
    ($($ty:ty => |$s:ident| $addrs:expr;)*) => {$(
        impl ToSocketAddrs for $ty {}
        impl ToSocketAddrsPriv for $ty {
            fn to_addrs(&self, _: Internal) -> io::Result<Addrs> {
                let $s = self;
                Ok(Addrs::Ready($addrs))
            }
        }
    )*};
}

ready_impl! {
    SocketAddr => |a| vec![*a];
    SocketAddrV4 => |a| vec![SocketAddr::V4(*a)];
    SocketAddrV6 => |a| vec![SocketAddr::V6(*a)];
    (IpAddr, u16) => |a| vec![SocketAddr::new(a.0, a.1)];
    (Ipv4Addr, u16) => |a| vec![SocketAddr::new(IpAddr::V4(a.0), a.1)];
    (Ipv6Addr, u16) => |a| vec![SocketAddr::new(IpAddr::V6(a.0), a.1)];
    [SocketAddr] => |a| a.to_vec();
}

impl ToSocketAddrs for str {}
impl ToSocketAddrsPriv for str {
    fn to_addrs(&self, _: Internal) -> io::Result<Addrs> {
        parse_str(self)
    }
}

impl ToSocketAddrs for String {}
impl ToSocketAddrsPriv for String {
    fn to_addrs(&self, _: Internal) -> io::Result<Addrs> {
        parse_str(self)
    }
}

impl ToSocketAddrs for (&str, u16) {}
impl ToSocketAddrsPriv for (&str, u16) {
    fn to_addrs(&self, _: Internal) -> io::Result<Addrs> {
        Ok(host_port(self.0, self.1))
    }
}

impl ToSocketAddrs for (String, u16) {}
impl ToSocketAddrsPriv for (String, u16) {
    fn to_addrs(&self, _: Internal) -> io::Result<Addrs> {
        Ok(host_port(&self.0, self.1))
    }
}

impl<T: ToSocketAddrs + ?Sized> ToSocketAddrs for &T {}
impl<T: ToSocketAddrsPriv + ?Sized> ToSocketAddrsPriv for &T {
    fn to_addrs(&self, internal: Internal) -> io::Result<Addrs> {
        (**self).to_addrs(internal)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sort(addr: impl ToSocketAddrs) -> Addrs {
        addr.to_addrs(Internal(())).unwrap()
    }

    fn ready(addr: impl ToSocketAddrs) -> Vec<SocketAddr> {
        match sort(addr) {
            Addrs::Ready(addrs) => addrs,
            other => panic!("expected no lookup, got {other:?}"),
        }
    }

    fn lookup(addr: impl ToSocketAddrs) -> (String, u16) {
        match sort(addr) {
            Addrs::Lookup(host, port) => (host, port),
            other => panic!("expected a lookup, got {other:?}"),
        }
    }

    #[test]
    fn literal_addresses_need_no_lookup() {
        let v4: SocketAddr = "127.0.0.1:80".parse().unwrap();
        let v6: SocketAddr = "[::1]:80".parse().unwrap();
        assert_eq!(ready("127.0.0.1:80"), [v4]);
        let owned = String::from("[::1]:80");
        assert_eq!(ready(&owned), [v6]);
        assert_eq!(ready(owned), [v6]);
        assert_eq!(ready("::1:80"), [v6]); // split at the last ':', as std does
        assert_eq!(ready(("127.0.0.1", 80)), [v4]);
        assert_eq!(ready((String::from("::1"), 80)), [v6]);
        assert_eq!(ready(v4), [v4]);
        assert_eq!(ready((v4.ip(), 80)), [v4]);
        assert_eq!(ready((Ipv4Addr::LOCALHOST, 80)), [v4]);
        assert_eq!(ready((Ipv6Addr::LOCALHOST, 80)), [v6]);
        assert_eq!(ready(&[v4, v6][..]), [v4, v6]);
    }

    #[test]
    fn host_names_are_looked_up() {
        assert_eq!(lookup("localhost:80"), ("localhost".to_owned(), 80));
        assert_eq!(lookup(("example.invalid", 443)), ("example.invalid".to_owned(), 443));
        let owned = String::from("a.b:1");
        assert_eq!(lookup(&owned), ("a.b".to_owned(), 1));
        assert_eq!(lookup(owned), ("a.b".to_owned(), 1));
    }

    #[test]
    fn malformed_strings_fail_without_a_lookup() {
        for bad in ["localhost", "localhost:http", "localhost:70000", ""] {
            let err = bad.to_addrs(Internal(())).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{bad}");
        }
    }
}
