//! Exactly-once for retries: the window of recently stored client event ids.
//!
//! Ids are kept as 128-bit digests (SHA-256 truncated) so a window of a
//! million ids costs tens of megabytes whatever the ids look like; a
//! collision needs about 2^64 ids. The window is rebuilt from the ledger's
//! newest entries on start, so it survives restarts.

use crate::ledger::hash::sha256;
use crate::ledger::log::{LedgerError, LedgerPaths, list_segments};
use crate::ledger::segment::FrameReader;
use std::collections::{HashMap, VecDeque};

pub type IdKey = u128;

pub fn id_key(id: &str) -> IdKey {
    let h = sha256(id.as_bytes());
    let mut b = [0u8; 16];
    b.copy_from_slice(&h[..16]);
    u128::from_be_bytes(b)
}

/// Recently stored ids and the global index each was stored at.
pub struct DedupeWindow {
    capacity: usize,
    index: HashMap<IdKey, u64>,
    order: VecDeque<IdKey>,
}

impl DedupeWindow {
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        DedupeWindow {
            capacity,
            // Sized up front: growing a million-entry map rehashes it all at
            // once, a pause of tens of milliseconds on the acknowledgement path.
            index: HashMap::with_capacity(capacity + 1),
            order: VecDeque::with_capacity(capacity + 1),
        }
    }

    pub fn len(&self) -> usize {
        self.order.len()
    }

    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// Where an id was stored, if it is in the window.
    pub fn get(&self, key: IdKey) -> Option<u64> {
        self.index.get(&key).copied()
    }

    /// Remembers an id, evicting the oldest when full.
    pub fn insert(&mut self, key: IdKey, at: u64) {
        if self.index.insert(key, at).is_none() {
            self.order.push_back(key);
            if self.order.len() > self.capacity
                && let Some(old) = self.order.pop_front()
            {
                self.index.remove(&old);
            }
        }
    }

    /// Refills the window from the newest entries of the ledger in `data_dir`
    /// (sealed and open segments), newest `capacity` ids at most.
    pub fn rebuild(data_dir: &std::path::Path, capacity: usize) -> Result<Self, LedgerError> {
        let paths = LedgerPaths::new(data_dir);
        let (sealed, open) = list_segments(&paths.segments)?;
        let mut files: Vec<_> = sealed.iter().map(|n| paths.segment(*n, true)).collect();
        files.extend(open.iter().map(|n| paths.segment(*n, false)));
        // Newest segments first until the window is full, then replayed oldest first.
        let mut chunks: Vec<Vec<(IdKey, u64)>> = Vec::new();
        let mut found = 0usize;
        for path in files.iter().rev() {
            if found >= capacity {
                break;
            }
            let mut reader = FrameReader::open(path)?;
            let first = reader.header.first_index;
            let mut ids = Vec::new();
            let mut i = 0u64;
            let mut payload = Vec::new();
            while reader.next_frame_into(&mut payload)?.is_some() {
                if let Some(id) = crate::event::entry_event_id(&payload) {
                    ids.push((id_key(&id), first + i));
                }
                i += 1;
            }
            found += ids.len();
            chunks.push(ids);
        }
        let mut window = DedupeWindow::new(capacity);
        for chunk in chunks.iter().rev() {
            for (key, at) in chunk {
                window.insert(*key, *at);
            }
        }
        Ok(window)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_newest_ids_up_to_capacity() {
        let mut w = DedupeWindow::new(3);
        for (i, id) in ["a", "b", "c", "d"].iter().enumerate() {
            w.insert(id_key(id), i as u64);
        }
        assert_eq!(w.len(), 3);
        assert_eq!(w.get(id_key("a")), None);
        assert_eq!(w.get(id_key("d")), Some(3));
        // Re-inserting a known id keeps its first index semantics to the caller.
        w.insert(id_key("d"), 9);
        assert_eq!(w.len(), 3);
    }
}
