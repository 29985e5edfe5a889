//! CPU affinity: which CPUs a thread may run on (`sched_getaffinity` / `sched_setaffinity`).
//! Used by [`Builder::pin_to_cores`](crate::Builder::pin_to_cores).

use std::io;
use std::mem;

/// The CPUs the calling thread may run on, in ascending order (its affinity mask, which a
/// container or `taskset` may have narrowed to fewer than the machine has).
pub(crate) fn allowed_cpus() -> io::Result<Vec<usize>> {
    // SAFETY: all-zero is a valid (empty) `cpu_set_t`, a plain bit array.
    let mut set: libc::cpu_set_t = unsafe { mem::zeroed() };
    // pid 0 means the calling thread. The pointer is a live local of the size passed.
    syscall!(sched_getaffinity(0, mem::size_of::<libc::cpu_set_t>(), &mut set))?;
    // SAFETY: `CPU_ISSET` only reads the bit array; `cpu` stays below `CPU_SETSIZE`.
    Ok((0..libc::CPU_SETSIZE as usize).filter(|&cpu| unsafe { libc::CPU_ISSET(cpu, &set) }).collect())
}

/// Restricts the calling thread to the one CPU `cpu`.
pub(crate) fn pin_current_thread(cpu: usize) -> io::Result<()> {
    if cpu >= libc::CPU_SETSIZE as usize {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("no CPU {cpu}")));
    }
    // SAFETY: all-zero is a valid (empty) `cpu_set_t`; `CPU_SET` writes one bit of it, and
    // `cpu` was checked against `CPU_SETSIZE` above.
    let mut set: libc::cpu_set_t = unsafe { mem::zeroed() };
    // SAFETY: as above: `cpu < CPU_SETSIZE`, `set` is a live local.
    unsafe { libc::CPU_SET(cpu, &mut set) };
    syscall!(sched_setaffinity(0, mem::size_of::<libc::cpu_set_t>(), &set))?;
    Ok(())
}
