//! Lanes: independent jobs run side by side on the CPU, one per thread, each lane on its own
//! one-thread rayon pool, so that every op inside a job runs on that one thread and the lanes
//! never wait for each other.
//!
//! Why: splitting every GEMM and every loop of one network pass across the threads makes the
//! cores wait for each other at every layer's joins; on this project's 2-core machine two
//! threads ran a ranking only 1.3–1.5× faster than one, and lanes 1.9× (`docs/PERFORMANCE.md`,
//! attempt 14). Results do not depend on it: the batch-size and thread-count invariants hold
//! for every job.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use candle_core::Device;
use rayon::{ThreadPool, ThreadPoolBuilder};

use crate::error::{Error, Result};

/// A set of one-thread pools; empty where jobs run on the caller's thread instead.
pub(crate) struct Lanes {
    pools: Vec<ThreadPool>,
}

impl Lanes {
    /// One lane per thread of the current rayon pool, at most `jobs`, on the CPU. None on
    /// other devices (a GPU takes a whole batch at once), with one thread, or for one job.
    pub fn new(device: &Device, jobs: usize) -> Result<Self> {
        let lanes = rayon::current_num_threads().min(jobs);
        if !device.is_cpu() || lanes < 2 {
            return Ok(Lanes { pools: Vec::new() });
        }
        let pools = (0..lanes)
            .map(|i| {
                ThreadPoolBuilder::new()
                    .num_threads(1)
                    .thread_name(move |_| format!("fmv-lane-{i}"))
                    .build()
                    .map_err(|e| Error::Threads(e.to_string()))
            })
            .collect::<Result<_>>()?;
        Ok(Lanes { pools })
    }

    /// How many lanes there are (0: jobs run on the caller's thread).
    pub fn count(&self) -> usize {
        self.pools.len()
    }

    /// Runs `job(i)` for every `i < jobs` and returns the results in order. Each lane takes
    /// the next `i` when it is free; once `halt` is set, no further job starts (its slot stays
    /// `None`). Without lanes the jobs run in order on the calling thread. A job's panic is
    /// resumed on the calling thread.
    pub fn run<R: Send>(
        &self,
        jobs: usize,
        halt: &AtomicBool,
        job: &(dyn Fn(usize) -> R + Sync),
    ) -> Vec<Option<R>> {
        if self.pools.is_empty() {
            return (0..jobs)
                .map(|i| (!halt.load(Ordering::SeqCst)).then(|| job(i)))
                .collect();
        }
        let next = AtomicUsize::new(0);
        let slots: Vec<Mutex<Option<R>>> = (0..jobs).map(|_| Mutex::new(None)).collect();
        std::thread::scope(|scope| {
            let running: Vec<_> = self
                .pools
                .iter()
                .map(|pool| {
                    let (next, slots) = (&next, &slots);
                    scope.spawn(move || {
                        pool.install(|| {
                            while !halt.load(Ordering::SeqCst) {
                                let i = next.fetch_add(1, Ordering::SeqCst);
                                let Some(slot) = slots.get(i) else { break };
                                let r = job(i);
                                *slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(r);
                            }
                        })
                    })
                })
                .collect();
            for lane in running {
                if let Err(panic) = lane.join() {
                    std::panic::resume_unwind(panic);
                }
            }
        });
        slots
            .into_iter()
            .map(|s| s.into_inner().unwrap_or_else(|e| e.into_inner()))
            .collect()
    }
}
