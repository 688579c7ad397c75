//! A job on another thread whose messages reach the caller's callbacks on the caller's own
//! thread, one at a time, as if the job had called them directly.
//!
//! Why: a CPU computation started from a thread outside rayon's pool pays, for every parallel
//! op, a cross-thread hand-off: the caller queues the op, wakes a worker and sleeps until the
//! op is done. A patterns step is some hundred such ops; run on a pool thread instead, their
//! splits are taken by work-stealing (`docs/PERFORMANCE.md`). But [`Visualizer`]'s
//! callbacks (a progress bar, a Ctrl-C flag) need not be `Send`, so they stay on the caller's
//! thread and the job reaches them through here. Compat patterns of several filters use it
//! too: their lanes run on lanes' own threads, and their events pass through here the same way.
//!
//! [`Visualizer`]: crate::Visualizer

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::Duration;

/// How often the caller's thread asks `should_stop` while no message arrives.
const POLL: Duration = Duration::from_millis(50);

/// Runs `job` on a new thread and returns what it returns (a panic in it is resumed here).
///
/// The job gets `call`, which hands a message to `on_message` on this thread and returns once
/// it has been handled, and `halt`, which is set once `should_stop` says so. `should_stop` is
/// asked before the job starts, after every message (before `call` returns, so the job sees
/// the answer at once, as it would calling `should_stop` itself) and every [`POLL`] meanwhile.
pub(crate) fn relay<M: Send, R: Send>(
    job: impl FnOnce(&(dyn Fn(M) + Sync), &AtomicBool) -> R + Send,
    mut on_message: impl FnMut(M),
    should_stop: &dyn Fn() -> bool,
) -> R {
    let halt = AtomicBool::new(should_stop());
    let (tx, rx) = mpsc::channel::<(M, mpsc::SyncSender<()>)>();
    std::thread::scope(|scope| {
        let halt = &halt;
        let worker = scope.spawn(move || {
            let call = move |m: M| {
                let (handled, wait) = mpsc::sync_channel(1);
                // The receiver lives until this job has ended; nothing to do if it has gone.
                if tx.send((m, handled)).is_ok() {
                    let _ = wait.recv();
                }
            };
            job(&call, halt)
        });
        loop {
            match rx.recv_timeout(POLL) {
                Ok((m, handled)) => {
                    on_message(m);
                    if should_stop() {
                        halt.store(true, Ordering::SeqCst);
                    }
                    let _ = handled.send(());
                }
                Err(RecvTimeoutError::Timeout) => {
                    if should_stop() {
                        halt.store(true, Ordering::SeqCst);
                    }
                }
                Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        worker
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

#[cfg(test)]
mod tests {
    use std::cell::{Cell, RefCell};
    use std::sync::atomic::Ordering;

    use super::relay;

    #[test]
    fn messages_arrive_in_order_on_the_callers_thread_and_the_result_comes_back() {
        let here = std::thread::current().id();
        let seen = RefCell::new(Vec::new());
        let out = relay(
            |call, _| {
                let there = std::thread::current().id();
                for i in 0..5 {
                    call(i);
                }
                there
            },
            |m: i32| {
                assert_eq!(std::thread::current().id(), here);
                seen.borrow_mut().push(m);
            },
            &|| false,
        );
        assert_ne!(out, here, "the job ran on another thread");
        assert_eq!(*seen.borrow(), [0, 1, 2, 3, 4]);
    }

    #[test]
    fn a_stop_is_seen_by_the_job_as_soon_as_the_message_that_caused_it_returns() {
        let handled = Cell::new(0);
        let sent = relay(
            |call, halt| {
                let mut sent = 0;
                while !halt.load(Ordering::SeqCst) {
                    call(());
                    sent += 1;
                }
                sent
            },
            |()| handled.set(handled.get() + 1),
            &|| handled.get() >= 3,
        );
        assert_eq!(sent, 3);
    }

    #[test]
    fn a_stop_before_the_start_is_seen_at_once() {
        let ran = relay(|_, halt| !halt.load(Ordering::SeqCst), |()| {}, &|| true);
        assert!(!ran);
    }

    #[test]
    fn a_panic_in_the_job_is_resumed_on_the_callers_thread() {
        let caught = std::panic::catch_unwind(|| {
            relay(|_, _| panic!("the job's own panic"), |()| {}, &|| false)
        });
        let payload = caught.expect_err("the panic reached the caller");
        assert_eq!(payload.downcast_ref::<&str>(), Some(&"the job's own panic"));
    }
}
