//! File handles kept in reserve for the ledger.
//!
//! Every connection costs a file handle, and so does every segment, index
//! file and checkpoint the ledger opens. Without a budget, 20,000 idle
//! connections leave the ledger unable to open its next segment. At start
//! the soft `RLIMIT_NOFILE` is raised to the hard limit; then listeners take
//! an `FdPermit` per connection from one `FdBudget` (the limit minus the
//! handles open at start minus a reserve) and refuse connections when none
//! is left, so the reserve stays with the ledger, the index and their
//! temporary files.
//!
//! Integration: the syslog TCP/TLS accept loop and the HTTP listener
//! (`net::http`'s accept loop) call
//! [`acquire`], which answers from the process's installed budget (every
//! connection is allowed before [`install`], as in unit tests).

use std::sync::{Arc, OnceLock};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Handles kept free for the ledger and the index by default.
pub const DEFAULT_RESERVE: u64 = 256;
/// Fewest connections a budget allows, however low the limit.
const MIN_CONNECTIONS: u64 = 8;

/// A number of file handles that connections may hold.
#[derive(Debug)]
pub struct FdBudget {
    permits: Arc<Semaphore>,
    total: u64,
}

/// One handle of the budget, returned when dropped (with the connection).
#[derive(Debug)]
pub struct FdPermit {
    _held: OwnedSemaphorePermit,
}

impl FdBudget {
    /// A budget of `limit - reserve` handles (at least a few).
    pub fn new(limit: u64, reserve: u64) -> Arc<Self> {
        let total = limit.saturating_sub(reserve).max(MIN_CONNECTIONS);
        // Semaphore permits are bounded by usize::MAX >> 3.
        let n = usize::try_from(total)
            .unwrap_or(Semaphore::MAX_PERMITS)
            .min(Semaphore::MAX_PERMITS);
        Arc::new(FdBudget {
            permits: Arc::new(Semaphore::new(n)),
            total,
        })
    }

    /// The budget of this process: the soft `RLIMIT_NOFILE` minus the
    /// handles open now (ledger, index, listeners) minus `reserve`, with
    /// the reserve at most a quarter of the limit so a low limit still
    /// leaves room for connections.
    pub fn for_process(reserve: u64) -> Arc<Self> {
        let limit = nofile_limit().unwrap_or(1024);
        let open = open_fds().unwrap_or(0);
        let reserve = reserve.min(limit / 4);
        Self::new(limit.saturating_sub(open), reserve)
    }

    /// A handle for one connection, or `None` when the budget is spent.
    pub fn try_acquire(&self) -> Option<FdPermit> {
        self.permits
            .clone()
            .try_acquire_owned()
            .ok()
            .map(|held| FdPermit { _held: held })
    }

    /// Connections the budget allows in all.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Connections that may still be accepted now.
    pub fn available(&self) -> usize {
        self.permits.available_permits()
    }
}

static BUDGET: OnceLock<Arc<FdBudget>> = OnceLock::new();

/// Makes `budget` the one `acquire` answers from (first call wins).
pub fn install(budget: Arc<FdBudget>) {
    let _ = BUDGET.set(budget);
}

/// Whether a new connection may be accepted: `Some(permit)` to hold for
/// its life, `None` to refuse it (the reserve would be used up). `Some`
/// without a permit when no budget is installed.
pub fn acquire() -> Option<Option<FdPermit>> {
    match BUDGET.get() {
        None => Some(None),
        Some(b) => b.try_acquire().map(Some),
    }
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit; returns the new soft
/// limit.
pub fn raise_nofile_limit() -> std::io::Result<u64> {
    rlimit::increase_nofile_limit(u64::MAX)
}

/// The soft `RLIMIT_NOFILE`.
pub fn nofile_limit() -> Option<u64> {
    rlimit::getrlimit(rlimit::Resource::NOFILE)
        .ok()
        .map(|(soft, _)| soft)
}

/// File handles open in this process (Linux: `/proc/self/fd`).
pub fn open_fds() -> Option<u64> {
    std::fs::read_dir("/proc/self/fd")
        .ok()
        .map(|d| d.count() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_budget_refuses_past_its_size_and_gets_handles_back() {
        let b = FdBudget::new(100, 90);
        assert_eq!(b.total(), 10);
        let held: Vec<_> = (0..10).map(|_| b.try_acquire().unwrap()).collect();
        assert!(b.try_acquire().is_none(), "the reserve is not handed out");
        drop(held);
        assert!(b.try_acquire().is_some());
        assert_eq!(FdBudget::new(10, 100).total(), MIN_CONNECTIONS);
    }

    #[test]
    fn the_process_limit_is_raised_and_read() {
        let raised = raise_nofile_limit().unwrap();
        assert_eq!(nofile_limit(), Some(raised));
        assert!(open_fds().unwrap() > 0);
        let b = FdBudget::for_process(DEFAULT_RESERVE);
        assert!(b.total() < raised);
    }
}
