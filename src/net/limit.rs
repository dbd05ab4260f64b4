//! A table of open connections with a total cap and a per-address cap.
//!
//! Each admitted connection holds a [`Slot`] (released on drop) carrying
//! its last-activity time and a cancellation token. At the total cap the
//! table either refuses the newcomer (HTTP) or evicts the connection that
//! has been idle longest (syslog, so idle connections cannot lock out
//! senders that are talking).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio_util::sync::CancellationToken;

/// Why a connection was not admitted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    /// Every slot is taken (and nothing could be evicted).
    Total,
    /// The address holds its maximum already.
    PerIp,
}

impl Refused {
    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            Refused::Total => "total",
            Refused::PerIp => "per_ip",
        }
    }
}

struct Entry {
    ip: IpAddr,
    last: Arc<AtomicU64>,
    cancel: CancellationToken,
}

#[derive(Default)]
struct Inner {
    next_id: u64,
    conns: HashMap<u64, Entry>,
    per_ip: HashMap<IpAddr, usize>,
}

impl Inner {
    fn remove(&mut self, id: u64) -> Option<Entry> {
        let e = self.conns.remove(&id)?;
        if let Some(n) = self.per_ip.get_mut(&e.ip) {
            *n -= 1;
            if *n == 0 {
                self.per_ip.remove(&e.ip);
            }
        }
        Some(e)
    }
}

pub struct ConnTable {
    max_total: usize,
    max_per_ip: usize,
    base: Instant,
    inner: Mutex<Inner>,
}

/// An admitted connection's place in the table.
pub struct Slot {
    table: Arc<ConnTable>,
    id: u64,
    last: Arc<AtomicU64>,
    /// Cancelled when the connection is evicted.
    pub cancel: CancellationToken,
}

impl Slot {
    /// Records activity (data received) now.
    pub fn touch(&self) {
        self.last.store(self.table.now_ms(), Ordering::Relaxed);
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Ok(mut inner) = self.table.inner.lock() {
            inner.remove(self.id);
        }
    }
}

/// What [`ConnTable::admit`] did.
pub struct Admitted {
    pub slot: Slot,
    /// A connection idle longer than any other was evicted to make room.
    pub evicted: bool,
}

impl ConnTable {
    /// Both caps at least 1.
    pub fn new(max_total: usize, max_per_ip: usize) -> Arc<ConnTable> {
        Arc::new(ConnTable {
            max_total: max_total.max(1),
            max_per_ip: max_per_ip.max(1),
            base: Instant::now(),
            inner: Mutex::new(Inner::default()),
        })
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.base.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Connections in the table.
    pub fn len(&self) -> usize {
        self.inner.lock().map(|i| i.conns.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Admits a connection from `ip`, evicting the longest-idle one at the
    /// total cap when `evict_idle` is set. O(n) only when evicting.
    pub fn admit(self: &Arc<Self>, ip: IpAddr, evict_idle: bool) -> Result<Admitted, Refused> {
        let ip = ip.to_canonical();
        let now = self.now_ms();
        let mut inner = self.inner.lock().map_err(|_| Refused::Total)?;
        if inner.per_ip.get(&ip).copied().unwrap_or(0) >= self.max_per_ip {
            return Err(Refused::PerIp);
        }
        let mut evicted = false;
        if inner.conns.len() >= self.max_total {
            if !evict_idle {
                return Err(Refused::Total);
            }
            let oldest = inner
                .conns
                .iter()
                .min_by_key(|(_, e)| e.last.load(Ordering::Relaxed))
                .map(|(id, _)| *id);
            match oldest.and_then(|id| inner.remove(id)) {
                Some(e) => {
                    e.cancel.cancel();
                    evicted = true;
                }
                None => return Err(Refused::Total),
            }
        }
        let id = inner.next_id;
        inner.next_id += 1;
        let last = Arc::new(AtomicU64::new(now));
        let cancel = CancellationToken::new();
        inner.conns.insert(
            id,
            Entry {
                ip,
                last: last.clone(),
                cancel: cancel.clone(),
            },
        );
        *inner.per_ip.entry(ip).or_insert(0) += 1;
        drop(inner);
        Ok(Admitted {
            slot: Slot {
                table: self.clone(),
                id,
                last,
                cancel,
            },
            evicted,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(n: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, n])
    }

    #[test]
    fn caps_refuse_and_slots_free_on_drop() {
        let t = ConnTable::new(3, 2);
        let a = t.admit(ip(1), false).unwrap();
        let _b = t.admit(ip(1), false).unwrap();
        assert_eq!(t.admit(ip(1), false).err(), Some(Refused::PerIp));
        let _c = t.admit(ip(2), false).unwrap();
        assert_eq!(t.admit(ip(3), false).err(), Some(Refused::Total));
        drop(a);
        assert_eq!(t.len(), 2);
        assert!(t.admit(ip(1), false).is_ok());
    }

    #[test]
    fn at_the_cap_the_longest_idle_connection_is_evicted() {
        let t = ConnTable::new(2, 10);
        let idle = t.admit(ip(1), true).unwrap().slot;
        std::thread::sleep(std::time::Duration::from_millis(5));
        let busy = t.admit(ip(2), true).unwrap().slot;
        std::thread::sleep(std::time::Duration::from_millis(5));
        busy.touch();
        let new = t.admit(ip(3), true).unwrap();
        assert!(new.evicted);
        assert!(idle.cancel.is_cancelled());
        assert!(!busy.cancel.is_cancelled());
        assert_eq!(t.len(), 2);
        // The evicted slot's drop does not free someone else's place.
        drop(idle);
        assert_eq!(t.len(), 2);
    }
}
