//! The pieces of the cross-thread wake protocol, swappable for [loom]'s models.
//!
//! A wake from another thread touches three shared things: the task's state word, with its
//! `SCHEDULED` bit and reference count (`task/state.rs`), the runtime's queue of remote wakes
//! and its `notified` flag, and the eventfd that interrupts `epoll_wait` (`executor.rs`,
//! `Remote`). The models drive the real state word and `TaskRef`. Built normally, this module just
//! re-exports std's atomics, crossbeam's queue and the real eventfd. Built with `--cfg loom`
//! (as `.ci/run` does), they become loom's atomics, a loom mutex around a `VecDeque`, and an
//! eventfd that also records its rings in a loom atomic, and the models at the end of this
//! file check every interleaving of the protocol that loom can reach:
//!
//! ```sh
//! RUSTFLAGS="--cfg loom" cargo test -p mini-runtime --lib --release loom
//! ```
//!
//! [loom]: https://docs.rs/loom

#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

#[cfg(not(loom))]
pub(crate) use crossbeam_queue::SegQueue;

#[cfg(not(loom))]
pub(crate) use crate::sys::EventFd as Doorbell;

#[cfg(loom)]
pub(crate) use ::loom::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

#[cfg(loom)]
pub(crate) use model::{Doorbell, SegQueue};

#[cfg(loom)]
mod model {
    use std::collections::VecDeque;
    use std::io;
    use std::os::fd::BorrowedFd;

    use ::loom::sync::atomic::{AtomicBool, Ordering};
    use ::loom::sync::Mutex;

    use crate::sys::EventFd;

    /// The remote-wake queue as loom sees it: a mutex around a deque (crossbeam's lock-free
    /// queue is not loom-aware; what the protocol relies on is that a push is seen by a
    /// later pop, which both give).
    #[derive(Debug)]
    pub(crate) struct SegQueue<T>(Mutex<VecDeque<T>>);

    impl<T> SegQueue<T> {
        pub(crate) fn new() -> SegQueue<T> {
            SegQueue(Mutex::new(VecDeque::new()))
        }

        pub(crate) fn push(&self, value: T) {
            self.0.lock().unwrap().push_back(value);
        }

        pub(crate) fn pop(&self) -> Option<T> {
            self.0.lock().unwrap().pop_front()
        }

        pub(crate) fn is_empty(&self) -> bool {
            self.0.lock().unwrap().is_empty()
        }

        pub(crate) fn len(&self) -> usize {
            self.0.lock().unwrap().len()
        }
    }

    /// The eventfd, with its pending edge recorded where loom can see it: `notify` sets
    /// `rung`, and the model's "epoll_wait" takes it. (The kernel's eventfd write and epoll
    /// read are full barriers, hence `SeqCst`.)
    #[derive(Debug)]
    pub(crate) struct Doorbell {
        fd: EventFd,
        rung: AtomicBool,
    }

    impl Doorbell {
        pub(crate) fn new() -> io::Result<Doorbell> {
            Ok(Doorbell { fd: EventFd::new()?, rung: AtomicBool::new(false) })
        }

        pub(crate) fn as_fd(&self) -> BorrowedFd<'_> {
            self.fd.as_fd()
        }

        pub(crate) fn notify(&self) {
            // A read-modify-write, like the eventfd write it models (the kernel adds to a
            // counter). A plain store would also run into loom's known false alarm for a
            // store racing a swap (tokio-rs/loom#254).
            self.rung.swap(true, Ordering::SeqCst);
        }

        /// What `epoll_wait` reports: whether the doorbell rang since it last looked.
        #[cfg(test)]
        pub(crate) fn take_ring(&self) -> bool {
            self.rung.swap(false, Ordering::SeqCst)
        }
    }
}

#[cfg(all(test, loom))]
pub(crate) mod tests {
    use std::panic::Location;
    use std::sync::Arc;

    use super::{AtomicBool, Ordering};
    use crate::executor::Remote;
    use crate::task::{new_task, JoinHandle, TaskInfo, TaskRef};

    /// One turn of the runtime's loop, as far as remote wakes go: if `epoll_wait` reported
    /// the eventfd, move the queued tasks to the run queue (`ran`).
    pub(crate) fn turn(remote: &Remote, ran: &mut Vec<TaskRef>) {
        if remote.doorbell().take_ring() {
            remote.drain(|task| ran.push(task));
        }
    }

    pub(crate) fn new_remote() -> Arc<Remote> {
        Arc::new(Remote::new(super::Doorbell::new().unwrap()))
    }

    /// A task around `future`, as `spawn` makes one: the executor's reference, the run
    /// queue's, and the handle.
    pub(crate) fn task<F>(remote: &Arc<Remote>, future: F) -> (TaskRef, TaskRef, JoinHandle<F::Output>)
    where
        F: std::future::Future + 'static,
        F::Output: 'static,
    {
        let info = TaskInfo::new(1, Location::caller(), None);
        new_task(future, remote.clone(), info, 0)
    }

    /// The race of issue 10, defect 2. The executor has popped a task and polls it: it clears
    /// `SCHEDULED`, then the future looks for a message. Meanwhile another thread sends the
    /// message and wakes the task. Every outcome must leave the message seen by this poll,
    /// or the task queued for another one (and the eventfd rung to say so). With
    /// `unschedule` as a plain release store, loom finds the interleaving where neither holds.
    #[test]
    fn loom_a_wake_racing_a_poll_is_seen_or_queues_another_poll() {
        ::loom::model(|| {
            let remote = new_remote();
            let message = Arc::new(AtomicBool::new(false));
            let (listed, queued, handle) = task(&remote, std::future::pending::<()>());
            let sender = {
                let (message, waker) = (message.clone(), queued.waker());
                ::loom::thread::spawn(move || {
                    message.store(true, Ordering::Release);
                    waker.wake();
                })
            };
            queued.start_poll();
            let seen = message.load(Ordering::Acquire);
            sender.join().unwrap();
            let mut ran = Vec::new();
            turn(&remote, &mut ran);
            assert!(
                seen || ran.len() == 1,
                "lost wake: the poll missed the message and nothing queued another"
            );
            drop((listed, queued, handle, ran));
        });
    }

    /// Two threads wake two tasks while the loop takes a turn. Whatever the interleaving,
    /// once the wakes are done, the next turn (a sleep that only the eventfd can end) must
    /// find every task: one left in the queue with no ring pending would never run.
    #[test]
    fn loom_every_remote_wake_is_drained_by_a_turn_the_eventfd_ends() {
        ::loom::model(|| {
            let remote = new_remote();
            let tasks: Vec<_> = (0..2).map(|_| task(&remote, std::future::pending::<()>())).collect();
            let threads: Vec<_> = tasks
                .iter()
                .map(|(_, queued, _)| {
                    queued.start_poll(); // the task is parked, waiting for this wake
                    let waker = queued.waker();
                    ::loom::thread::spawn(move || waker.wake())
                })
                .collect();
            let mut ran = Vec::new();
            turn(&remote, &mut ran);
            threads.into_iter().for_each(|t| t.join().unwrap());
            turn(&remote, &mut ran);
            assert_eq!(ran.len(), 2, "a remote wake was queued with no eventfd ring left to announce it");
            drop((tasks, ran));
        });
    }

    /// A wake from another thread racing the runtime's shutdown. A queue entry holds the
    /// task, and the task holds the `Remote`: an entry left behind after the shutdown
    /// emptied the queue would keep both alive for good. Whatever the order, the wake's entry
    /// is dropped, by the shutdown's `close_queue` or by the wake itself when it finds the
    /// queue closed, and the task is freed. Without the wake's check of `closed`, loom finds
    /// the order that leaks.
    #[test]
    fn loom_a_wake_racing_shutdown_leaves_no_entry_behind() {
        ::loom::model(|| {
            let remote = new_remote();
            let (listed, queued, handle) = task(&remote, std::future::pending::<()>());
            queued.start_poll(); // the task is parked
            let waker = queued.waker();
            let other = ::loom::thread::spawn(move || waker.wake());
            // The runtime shuts down: cancels the task, drops its references, closes the queue.
            listed.shutdown();
            drop((listed, queued, handle));
            remote.close_queue();
            other.join().unwrap();
            assert_eq!(Arc::strong_count(&remote), 1, "a queue entry outlived the shutdown");
        });
    }

    /// The reference count: the task completes on the runtime thread and its references go,
    /// while another thread wakes and drops its waker. Whatever the order, the allocation
    /// is freed exactly once, by whichever reference is last: then the task's clone of the
    /// `Remote` is gone too. (Freed twice, the count would be garbage or the test crash;
    /// never, the count would stay 2.)
    #[test]
    fn loom_the_last_reference_frees_the_task_once_on_either_thread() {
        ::loom::model(|| {
            let remote = new_remote();
            let (listed, queued, handle) = task(&remote, async { 7 });
            let waker = queued.waker();
            let other = ::loom::thread::spawn(move || waker.wake());
            assert_eq!(queued.run(), Some(true), "the future is ready at once");
            drop((listed, queued, handle));
            other.join().unwrap();
            let mut ran = Vec::new();
            turn(&remote, &mut ran); // a wake that queued before completion leaves an entry
            drop(ran);
            remote.close_queue();
            assert_eq!(Arc::strong_count(&remote), 1, "the task was not freed exactly once");
        });
    }
}
