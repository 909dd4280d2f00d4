//! Every task a running node starts goes through [`Tasks`]: one cancellation token and one tracker
//! owned by the node, with a child per service. Stopping a service cancels and awaits its own
//! tasks; stopping the node cancels and awaits all of them, so after `Node::stop` nothing of the
//! node runs any more and its database can be reopened at once.

use std::future::Future;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Spawner and stop signal of a node, or of one of its services (cheap to clone).
#[derive(Clone, Debug)]
pub struct Tasks {
    token: CancellationToken,
    /// Tracks the tasks spawned through this handle (and its children's).
    own: TaskTracker,
    /// The trackers of the parents: the node's tracker sees every task of every service.
    parents: Vec<TaskTracker>,
}

impl Default for Tasks {
    fn default() -> Self {
        Self::new()
    }
}

impl Tasks {
    /// A root: the node's own set.
    pub fn new() -> Self {
        Self { token: CancellationToken::new(), own: TaskTracker::new(), parents: Vec::new() }
    }

    /// A child set (for one service): cancelled with its parent or on its own, and counted by the
    /// parent too.
    pub fn child(&self) -> Self {
        let mut parents = self.parents.clone();
        parents.push(self.own.clone());
        Self { token: self.token.child_token(), own: TaskTracker::new(), parents }
    }

    /// Runs `fut` until it ends or this set is cancelled (then it is dropped at its next await
    /// and the handle gives `None`).
    pub fn spawn<F>(&self, fut: F) -> tokio::task::JoinHandle<Option<F::Output>>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let token = self.token.clone();
        let cancellable = async move {
            // The work is polled first: a task that finishes without waiting (most request
            // handlers' first steps) never registers with the token.
            tokio::select! {
                biased;
                out = fut => Some(out),
                _ = token.cancelled() => None,
            }
        };
        let tracked = self.track(cancellable);
        tokio::spawn(tracked)
    }

    /// Runs blocking work (pairings, disk) on the blocking pool, counted with the other tasks.
    pub fn spawn_blocking<T, F>(&self, f: F) -> tokio::task::JoinHandle<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let mut guards: Vec<_> = self.parents.iter().map(TaskTracker::token).collect();
        guards.push(self.own.token());
        tokio::task::spawn_blocking(move || {
            let _counted = guards;
            f()
        })
    }

    fn track<F: Future + Send + 'static>(&self, fut: F) -> impl Future<Output = F::Output> + Send + 'static
    where
        F::Output: Send,
    {
        let mut guards: Vec<_> = self.parents.iter().map(TaskTracker::token).collect();
        guards.push(self.own.token());
        async move {
            let _counted = guards;
            fut.await
        }
    }

    /// Whether this set was told to stop.
    pub fn is_cancelled(&self) -> bool {
        self.token.is_cancelled()
    }

    /// Resolves when this set is told to stop.
    pub async fn cancelled(&self) {
        self.token.cancelled().await
    }

    /// The stop signal, for code that selects on it.
    pub fn token(&self) -> &CancellationToken {
        &self.token
    }

    /// Tasks of this set (and its children) still running.
    pub fn running(&self) -> usize {
        self.own.len()
    }

    /// Cancels this set and waits up to `grace` for its tasks to end; returns how many are still
    /// running after that (0 when all ended).
    pub async fn stop(&self, grace: Duration) -> usize {
        self.token.cancel();
        self.own.close();
        let _ = tokio::time::timeout(grace, self.own.wait()).await;
        self.own.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn stopping_a_child_leaves_the_parent_running_and_the_parent_counts_both() {
        let node = Tasks::new();
        let service = node.child();
        node.spawn(std::future::pending::<()>());
        service.spawn(std::future::pending::<()>());
        assert_eq!(node.running(), 2);
        assert_eq!(service.running(), 1);
        assert_eq!(service.stop(Duration::from_secs(1)).await, 0);
        assert_eq!(node.running(), 1);
        assert!(!node.is_cancelled());
        assert_eq!(node.stop(Duration::from_secs(1)).await, 0);
    }

    #[tokio::test]
    async fn blocking_work_is_counted_until_it_ends() {
        let node = Tasks::new();
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let h = node.spawn_blocking(move || rx.recv().is_ok());
        assert_eq!(node.running(), 1);
        tx.send(()).unwrap();
        assert!(h.await.unwrap());
        assert_eq!(node.stop(Duration::from_secs(1)).await, 0);
    }
}
