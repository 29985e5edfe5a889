//! `Builder::run`: one runtime per thread, `Worker`, and the shared `Shutdown`.

mod util;

use std::collections::BTreeSet;
use std::io;
use std::rc::Rc;
use std::thread::{self, ThreadId};

use mini::{Builder, JoinError, Worker};
use util::within_hang_guard;

#[test]
fn each_worker_runs_on_its_own_thread_with_its_own_index() {
    let results = within_hang_guard(|| {
        Builder::new()
            .workers(3)
            .run(|worker: Worker| async move {
                // Not Send: the worker's future stays on its thread.
                let local = Rc::new(worker.index());
                let task = mini::spawn(async move { thread::current().id() });
                let task_thread = task.await.unwrap();
                (
                    *local,
                    worker.count(),
                    thread::current().id(),
                    task_thread,
                    thread::current().name().map(String::from),
                )
            })
            .unwrap()
    });
    let main = thread::current().id();
    let mut threads = BTreeSet::new();
    for (i, result) in results.into_iter().enumerate() {
        let (index, count, thread, task_thread, name) = result.unwrap();
        assert_eq!((index, count), (i, 3));
        assert_eq!(thread, task_thread, "a spawned task left its worker's thread");
        assert_ne!(thread, main);
        assert_eq!(name.as_deref(), Some(format!("mini-worker-{i}").as_str()));
        threads.insert(format!("{thread:?}"));
    }
    assert_eq!(threads.len(), 3, "two workers shared a thread");
}

#[test]
fn handle_i_spawns_on_worker_i() {
    let results = within_hang_guard(|| {
        Builder::new()
            .workers(2)
            .run(|worker: Worker| async move {
                let here = thread::current().id();
                if worker.index() == 0 {
                    let there = worker.handle(1).spawn(async { thread::current().id() }).await.unwrap();
                    let mine = worker.handle(0).spawn(async { thread::current().id() }).await.unwrap();
                    assert_eq!(mine, here);
                    // Worker 1 waits for this, so it is alive while we spawn on it.
                    worker.shutdown().trigger();
                    (here, Some(there))
                } else {
                    worker.shutdown().triggered().await;
                    (here, None)
                }
            })
            .unwrap()
    });
    let results: Vec<(ThreadId, Option<ThreadId>)> = results.into_iter().map(Result::unwrap).collect();
    assert_eq!(results[0].1, Some(results[1].0), "handle(1) ran the task off worker 1's thread");
}

#[test]
fn a_panicking_worker_is_reported_and_the_others_stop() {
    let results = within_hang_guard(|| {
        Builder::new()
            .workers(3)
            .run(|worker: Worker| async move {
                if worker.index() == 1 {
                    panic!("worker 1 fails");
                }
                // The others would run forever; the panic's trigger ends them.
                worker.shutdown().triggered().await;
                worker.index()
            })
            .unwrap()
    });
    assert_eq!(results.len(), 3);
    assert_eq!(results[0].as_ref().ok(), Some(&0));
    assert_eq!(results[2].as_ref().ok(), Some(&2));
    match &results[1] {
        Err(JoinError::Panic(payload)) => assert_eq!(payload.downcast_ref::<&str>(), Some(&"worker 1 fails")),
        other => panic!("expected worker 1's panic, got {:?}", other.as_ref().map(|_| ())),
    }
}

#[test]
fn zero_workers_is_an_error() {
    let err = Builder::new().workers(0).run(|_: Worker| async {}).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
}

#[test]
fn the_default_is_one_worker_per_available_cpu() {
    let expected = thread::available_parallelism().unwrap().get();
    let results =
        within_hang_guard(|| Builder::new().run(|worker: Worker| async move { worker.count() }).unwrap());
    assert_eq!(results.len(), expected);
    assert!(results.into_iter().all(|r| r.unwrap() == expected));
}

/// The CPUs the calling thread may run on, read straight from the kernel.
fn affinity() -> Vec<usize> {
    // SAFETY: all-zero is a valid empty cpu_set_t; the pointer and size describe a live local.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: as above; pid 0 is the calling thread.
    let rc = unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
    assert_eq!(rc, 0, "sched_getaffinity: {}", io::Error::last_os_error());
    // SAFETY: CPU_ISSET reads one bit below CPU_SETSIZE.
    (0..libc::CPU_SETSIZE as usize).filter(|&cpu| unsafe { libc::CPU_ISSET(cpu, &set) }).collect()
}

#[test]
fn pinning_puts_each_worker_on_the_cpu_it_chose() {
    let allowed = affinity();
    let n = allowed.len().max(2); // with one CPU, two workers share it (wrapping)
    let results = within_hang_guard(move || {
        Builder::new()
            .workers(n)
            .pin_to_cores(true)
            .run(|worker: Worker| async move { (worker.cpu(), affinity()) })
            .unwrap()
    });
    for (i, result) in results.into_iter().enumerate() {
        let (cpu, mask) = result.unwrap();
        let expected = allowed[i % allowed.len()];
        assert_eq!(cpu, Some(expected));
        assert_eq!(mask, [expected], "worker {i} runs on {mask:?}");
    }
    // Pinning is per worker thread: the caller's mask is untouched.
    assert_eq!(affinity(), allowed);
    // And without pinning, nothing is pinned.
    let unpinned =
        Builder::new().workers(1).run(|worker: Worker| async move { (worker.cpu(), affinity()) }).unwrap();
    let (cpu, mask) = unpinned.into_iter().next().unwrap().unwrap();
    assert_eq!((cpu, mask), (None, allowed));
}
