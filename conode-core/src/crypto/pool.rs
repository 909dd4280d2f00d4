//! A small first-in, first-out pool of threads for the CPU-heavy cryptography that async code
//! needs (pairings, hashing to the curve, multi-scalar multiplications). Run on the runtime's
//! worker threads, a millisecond of pairing per task kept every other task of the node waiting
//! behind it: with many members in one process (or a busy node) an HTTP answer or a network
//! frame waited for every queued verification. Run here, the workers stay free for I/O and the
//! cryptography runs in arrival order on about as many threads as there are cores (the runtime's
//! blocking pool would start a thread per job: all jobs would share the cores and finish
//! together, late).
//!
//! Within a priority, jobs are taken in turns by whom they are for ([`Submitter`]: e.g. the
//! peer whose announcement a partial signature answers), first in, first out for each: a peer
//! that floods a node with requests gets its turn like the others instead of the whole queue,
//! and the others' jobs wait for at most one of its jobs per thread, not for its backlog.
//!
//! One pool per process ([`CryptoPool::global`]), shared by every node of it. A job that panics
//! is reported as [`PoolError::Lost`] and leaves its thread running. The caller that stops
//! waiting (its task cancelled) does not stop the job, so jobs must be short and must not touch
//! storage.

use std::collections::{HashMap, VecDeque};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};

type Job = Box<dyn FnOnce() + Send + 'static>;

/// Which queue a job waits in: a thread takes the oldest job of the most urgent non-empty one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Priority {
    /// Work that completes something waited for now (recovering a round, verifying a beacon
    /// before it is stored and served).
    Urgent = 0,
    /// Work that feeds it (signing a partial, catching up).
    Normal = 1,
    /// Work nobody waits for (audits of partials after their round).
    Background = 2,
}

/// Why a job gave no result.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PoolError {
    /// The job panicked.
    #[error("cryptography job lost (it panicked)")]
    Lost,
}

/// Whom a job is for: the jobs of one priority are taken in turns between submitters (see the
/// module's documentation). [`Submitter::ANYONE`] is one submitter like the others.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Submitter([u8; 32]);

impl Submitter {
    /// Jobs for no one in particular (the node's own work).
    pub const ANYONE: Submitter = Submitter([0; 32]);

    /// The submitter named by a peer's identity key (or any 32 bytes).
    pub fn new(key: [u8; 32]) -> Self {
        Submitter(key)
    }
}

/// The jobs of one priority: each submitter's in order, the submitters in turns.
#[derive(Default)]
struct Lane {
    /// Submitters with jobs waiting, the next one to be served first.
    turns: VecDeque<Submitter>,
    jobs: HashMap<Submitter, VecDeque<Job>>,
}

impl Lane {
    fn push(&mut self, submitter: Submitter, job: Job) {
        let queue = self.jobs.entry(submitter).or_default();
        if queue.is_empty() {
            self.turns.push_back(submitter);
        }
        queue.push_back(job);
    }

    fn pop(&mut self) -> Option<Job> {
        let submitter = self.turns.pop_front()?;
        let queue = self.jobs.get_mut(&submitter)?;
        let job = queue.pop_front();
        if queue.is_empty() {
            self.jobs.remove(&submitter);
        } else {
            self.turns.push_back(submitter);
        }
        job
    }
}

#[derive(Default)]
struct Queues {
    lanes: [Lane; 3],
}

impl Queues {
    fn pop(&mut self) -> Option<Job> {
        self.lanes.iter_mut().find_map(Lane::pop)
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lanes.iter().flat_map(|l| l.jobs.values()).map(VecDeque::len).sum()
    }
}

struct Shared {
    queues: Mutex<Queues>,
    ready: Condvar,
}

impl Shared {
    fn queues(&self) -> MutexGuard<'_, Queues> {
        self.queues.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Threads that run jobs by priority, and in the order they were submitted within one.
pub struct CryptoPool {
    shared: Arc<Shared>,
    threads: usize,
}

impl CryptoPool {
    /// A pool of `threads` threads (at least one), named `conode-crypto-<i>`. They live as long
    /// as the process (the pool is meant to be created once).
    pub fn new(threads: usize) -> Self {
        let shared = Arc::new(Shared { queues: Mutex::new(Queues::default()), ready: Condvar::new() });
        let mut started = 0;
        for i in 0..threads.max(1) {
            let shared = shared.clone();
            let spawned = std::thread::Builder::new().name(format!("conode-crypto-{i}")).spawn(move || loop {
                let job = {
                    let mut q = shared.queues();
                    loop {
                        if let Some(job) = q.pop() {
                            break job;
                        }
                        q = shared.ready.wait(q).unwrap_or_else(|p| p.into_inner());
                    }
                };
                let _ = catch_unwind(AssertUnwindSafe(job));
            });
            match spawned {
                Ok(_) => started += 1,
                Err(e) => tracing::warn!(error = %e, "crypto pool: cannot start a thread"),
            }
        }
        CryptoPool { shared, threads: started }
    }

    /// The process's pool, one thread per core (started on first use).
    pub fn global() -> &'static CryptoPool {
        static POOL: OnceLock<CryptoPool> = OnceLock::new();
        POOL.get_or_init(|| CryptoPool::new(std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2)))
    }

    /// Threads of the pool.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Runs `f` on the pool for no one in particular ([`Submitter::ANYONE`]; see
    /// [`Self::run_for`]).
    pub async fn run<T, F>(&self, priority: Priority, f: F) -> Result<T, PoolError>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        self.run_for(priority, Submitter::ANYONE, f).await
    }

    /// Runs `f` on the pool, after the jobs of its priority submitted before it for
    /// `submitter` (in turns with the other submitters' jobs of that priority) and before any
    /// job of a lower priority still waiting; resolves with its result. Without a thread (none
    /// could be started) it runs on the caller's.
    pub async fn run_for<T, F>(&self, priority: Priority, submitter: Submitter, f: F) -> Result<T, PoolError>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        if self.threads == 0 {
            return catch_unwind(AssertUnwindSafe(f)).map_err(|_| PoolError::Lost);
        }
        let (done, result) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = done.send(f());
        });
        self.shared.queues().lanes[priority as usize].push(submitter, job);
        self.shared.ready.notify_one();
        result.await.map_err(|_| PoolError::Lost)
    }
}

/// Runs `f` on the process's pool (see [`CryptoPool::global`], [`CryptoPool::run`]).
pub async fn run<T, F>(priority: Priority, f: F) -> Result<T, PoolError>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    CryptoPool::global().run(priority, f).await
}

/// Runs `f` on the process's pool for `submitter` (see [`CryptoPool::run_for`]).
pub async fn run_for<T, F>(priority: Priority, submitter: Submitter, f: F) -> Result<T, PoolError>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    CryptoPool::global().run_for(priority, submitter, f).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Submits jobs while the pool's only thread is held, then releases it; returns the order
    /// in which the jobs (given as (priority, label)) ran.
    async fn run_order(jobs: &[(Priority, u32)]) -> Vec<u32> {
        let jobs: Vec<(Priority, Submitter, u32)> = jobs.iter().map(|&(p, l)| (p, Submitter::ANYONE, l)).collect();
        run_order_for(&jobs).await
    }

    /// [`run_order`] with the submitter of each job.
    async fn run_order_for(jobs: &[(Priority, Submitter, u32)]) -> Vec<u32> {
        let pool = Arc::new(CryptoPool::new(1));
        let order = Arc::new(Mutex::new(Vec::new()));
        let (release, gate) = std::sync::mpsc::channel::<()>();
        let (started_tx, started) = std::sync::mpsc::channel::<()>();
        let p = pool.clone();
        let blocker = tokio::spawn(async move {
            p.run(Priority::Background, move || {
                let _ = started_tx.send(());
                gate.recv_timeout(Duration::from_secs(10)).is_ok()
            })
            .await
        });
        // The thread is busy with the blocker before anything else is queued.
        tokio::task::spawn_blocking(move || started.recv_timeout(Duration::from_secs(10))).await.unwrap().unwrap();
        let mut handles = Vec::new();
        for &(priority, submitter, label) in jobs {
            let (p, order) = (pool.clone(), order.clone());
            handles.push(tokio::spawn(async move {
                p.run_for(priority, submitter, move || order.lock().unwrap().push(label)).await
            }));
            // Each job is queued before the next one is submitted.
            while pool.shared.queues().len() < handles.len() {
                tokio::task::yield_now().await;
            }
        }
        release.send(()).unwrap();
        assert_eq!(blocker.await.unwrap(), Ok(true));
        for h in handles {
            h.await.unwrap().unwrap();
        }
        let v = order.lock().unwrap().clone();
        v
    }

    #[tokio::test]
    async fn jobs_of_one_priority_run_in_the_order_they_were_submitted() {
        let jobs: Vec<(Priority, u32)> = (0..20).map(|i| (Priority::Normal, i)).collect();
        assert_eq!(run_order(&jobs).await, (0..20).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn urgent_jobs_run_before_waiting_normal_and_background_ones() {
        use Priority::*;
        let jobs = [(Background, 1), (Normal, 2), (Normal, 3), (Urgent, 4), (Background, 5), (Urgent, 6), (Normal, 7)];
        assert_eq!(run_order(&jobs).await, vec![4, 6, 2, 3, 7, 1, 5]);
    }

    #[tokio::test]
    async fn submitters_take_turns_within_a_priority_each_in_order() {
        use Priority::*;
        let (flooder, a, b) = (Submitter::new([1; 32]), Submitter::new([2; 32]), Submitter::ANYONE);
        // A backlog of one submitter, then the others' jobs: each waits for one of the backlog.
        let mut jobs: Vec<(Priority, Submitter, u32)> = (0..6).map(|i| (Normal, flooder, i)).collect();
        jobs.extend([(Normal, a, 10), (Normal, b, 20), (Normal, a, 11), (Urgent, flooder, 30), (Background, a, 40)]);
        assert_eq!(run_order_for(&jobs).await, vec![30, 0, 10, 20, 1, 11, 2, 3, 4, 5, 40]);
    }

    #[tokio::test]
    async fn a_panicking_job_is_lost_and_the_pool_keeps_working() {
        let pool = CryptoPool::new(1);
        let lost = pool.run(Priority::Normal, || -> u32 { panic!("boom") }).await;
        assert_eq!(lost, Err(PoolError::Lost));
        assert_eq!(pool.run(Priority::Normal, || 7).await, Ok(7));
    }

    #[tokio::test]
    async fn without_a_thread_jobs_run_on_the_callers_and_a_panic_is_still_caught() {
        // What `new` leaves when no thread could be started (the process is out of threads).
        let pool = CryptoPool {
            shared: Arc::new(Shared { queues: Mutex::new(Queues::default()), ready: Condvar::new() }),
            threads: 0,
        };
        let caller = std::thread::current().id();
        assert_eq!(pool.run(Priority::Normal, move || std::thread::current().id() == caller).await, Ok(true));
        assert_eq!(pool.run(Priority::Urgent, || -> u32 { panic!("boom") }).await, Err(PoolError::Lost));
        assert_eq!(pool.run(Priority::Background, || 7).await, Ok(7));
        assert_eq!(pool.shared.queues().len(), 0, "nothing waits for a thread");
    }

    #[tokio::test]
    async fn jobs_run_on_the_pools_threads_not_the_callers() {
        let pool = CryptoPool::new(2);
        assert_eq!(pool.threads(), 2);
        let name = pool.run(Priority::Urgent, || std::thread::current().name().map(str::to_owned)).await.unwrap();
        assert!(name.is_some_and(|n| n.starts_with("conode-crypto-")));
        assert!(CryptoPool::global().threads() >= 1);
    }
}
