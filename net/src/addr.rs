//! Turning `impl ToSocketAddrs` into addresses.

use std::io;
use std::net::{SocketAddr, ToSocketAddrs};

/// Resolves `addr`. An IP address with a port resolves without any lookup; a host name is
/// looked up with the system resolver, which blocks the thread for the lookup.
// TODO(issue 3): run host-name lookups on the blocking pool so the loop never waits on DNS.
pub(crate) fn resolve(addr: impl ToSocketAddrs) -> io::Result<Vec<SocketAddr>> {
    let addrs: Vec<SocketAddr> = addr.to_socket_addrs()?.collect();
    if addrs.is_empty() {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "could not resolve to any address"));
    }
    Ok(addrs)
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
