//! Lanes: independent jobs run side by side on the CPU, one per thread, each lane on its own
//! one-thread rayon pool, so that every op inside a job runs on that one thread and the lanes
//! never wait for each other.
//!
//! Why: splitting every GEMM and every loop of one network pass across the threads makes the
//! cores wait for each other at every layer's joins, where lanes never do (measured in
//! `docs/PERFORMANCE.md`). Results do not depend on it: the batch-size and thread-count invariants hold
//! for every job.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use candle_core::Device;
use rayon::{ThreadPool, ThreadPoolBuilder};

use crate::error::{Error, Result};

/// At least two one-thread pools.
pub(crate) struct Lanes {
    pools: Vec<ThreadPool>,
}

impl Lanes {
    /// One lane per thread of the current rayon pool, at most `jobs`, on the CPU. `None` on
    /// other devices (a GPU takes a whole batch at once), with one thread, or for one job:
    /// the caller then runs its work on its own thread, as before lanes.
    pub fn new(device: &Device, jobs: usize) -> Result<Option<Self>> {
        let lanes = rayon::current_num_threads().min(jobs);
        if !device.is_cpu() || lanes < 2 {
            return Ok(None);
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
        Ok(Some(Lanes { pools }))
    }

    /// How many lanes there are (two or more).
    pub fn count(&self) -> usize {
        self.pools.len()
    }

    /// Runs `job(i)` for every `i < jobs` and returns the results in order. Each lane takes
    /// the next `i` when it is free; once `halt` is set, no further job starts (its slot stays
    /// `None`). A job's panic is resumed on the calling thread.
    pub fn run<R: Send>(
        &self,
        jobs: usize,
        halt: &AtomicBool,
        job: &(dyn Fn(usize) -> R + Sync),
    ) -> Vec<Option<R>> {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn two_threads() -> rayon::ThreadPool {
        ThreadPoolBuilder::new().num_threads(2).build().unwrap()
    }

    /// The lanes made for `jobs` jobs from a two-thread pool (`None` where there are none).
    fn lanes_of_two_threads(jobs: usize) -> Option<Lanes> {
        two_threads()
            .install(|| Lanes::new(&Device::Cpu, jobs))
            .unwrap()
    }

    #[test]
    fn lanes_exist_only_for_several_jobs_on_several_cpu_threads() {
        let one = ThreadPoolBuilder::new().num_threads(1).build().unwrap();
        assert!(
            one.install(|| Lanes::new(&Device::Cpu, 8))
                .unwrap()
                .is_none()
        );
        assert!(lanes_of_two_threads(1).is_none());
        assert_eq!(lanes_of_two_threads(8).map(|l| l.count()), Some(2));
    }

    /// Jobs of very different lengths finish out of order; the results come back in order,
    /// each job run exactly once, on a lane's own thread.
    #[test]
    fn every_job_runs_once_and_results_keep_their_order() {
        let lanes = lanes_of_two_threads(7).unwrap();
        let never = AtomicBool::new(false);
        let runs = AtomicUsize::new(0);
        let got = lanes.run(7, &never, &|i| {
            runs.fetch_add(1, Ordering::SeqCst);
            std::thread::sleep(std::time::Duration::from_millis(if i == 0 {
                60
            } else {
                5
            }));
            (i * i, rayon::current_num_threads())
        });
        assert_eq!(runs.load(Ordering::SeqCst), 7);
        let want: Vec<_> = (0..7).map(|i| Some((i * i, 1))).collect();
        assert_eq!(got, want);
    }

    /// A job that sets `halt` stops the lanes from starting others: at most the job the other
    /// lane was already running ends besides it.
    #[test]
    fn halt_stops_further_jobs() {
        let lanes = lanes_of_two_threads(9).unwrap();
        let halt = AtomicBool::new(false);
        let got = lanes.run(9, &halt, &|i| {
            if i == 0 {
                halt.store(true, Ordering::SeqCst);
            }
            i
        });
        assert_eq!(got[0], Some(0));
        let ran = got.iter().filter(|r| r.is_some()).count();
        assert!(ran <= 2, "{got:?}");
        assert!(
            got[ran..].iter().all(Option::is_none),
            "started in order: {got:?}"
        );
    }
}
