//! Output buffers of long renders, kept between calls for a while.
//!
//! A `jlist` of 1,000 apps is 4 MB of text. A buffer that size is mapped fresh by the allocator
//! (the daemon's mmap threshold is fixed, `crates/daemon/src/alloc.rs`) and unmapped when freed, so every
//! call faulted its ~1,000 pages in again: about a tenth of the daemon's CPU for the call.
//! Buffers given back here are reused by the next render, and dropped once none has been taken
//! for [`KEEP_FOR`]: memory is held only while somebody polls, and at most [`MAX_KEPT`]
//! buffers of at most [`MAX_BYTES`] each.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Two: a long `jlist` is rendered in two halves.
const MAX_KEPT: usize = 2;
/// A buffer larger than this (an unusual list) is freed, not kept.
const MAX_BYTES: usize = 16 << 20;
/// Kept buffers are dropped after this long without a render.
const KEEP_FOR: Duration = Duration::from_secs(10);
/// Smaller buffers are not kept: their faults cost little (a tenth of a millisecond for 100
/// apps), and a kept one would count in the daemon's memory for as long.
const MIN_BYTES: usize = 1 << 20;

struct Pool {
    bufs: Vec<Vec<u8>>,
    used: Option<Instant>,
}

impl Pool {
    const fn new() -> Pool {
        Pool {
            bufs: Vec::new(),
            used: None,
        }
    }

    /// A kept buffer, or a new empty one.
    fn take(&mut self, now: Instant) -> Vec<u8> {
        self.used = Some(now);
        self.bufs.pop().unwrap_or_default()
    }

    /// The buffer if it is not kept (freed by the caller, outside the lock).
    fn give(&mut self, mut buf: Vec<u8>) -> Option<Vec<u8>> {
        if !(MIN_BYTES..=MAX_BYTES).contains(&buf.capacity()) || self.bufs.len() >= MAX_KEPT {
            return Some(buf);
        }
        buf.clear();
        self.bufs.push(buf);
        None
    }

    fn expire(&mut self, now: Instant) -> Vec<Vec<u8>> {
        if self.used.is_some_and(|t| now.duration_since(t) < KEEP_FOR) {
            return Vec::new();
        }
        std::mem::take(&mut self.bufs)
    }
}

static POOL: Mutex<Pool> = Mutex::new(Pool::new());

fn pool() -> std::sync::MutexGuard<'static, Pool> {
    POOL.lock().unwrap_or_else(|e| e.into_inner())
}

/// An empty buffer with room for at least `capacity` bytes: a kept one if there is one.
pub fn take(capacity: usize) -> Vec<u8> {
    let mut b = pool().take(Instant::now());
    // Grown outside the lock.
    b.reserve(capacity);
    b
}

/// Hands a buffer back for the next render (or frees it: small, too large, or enough kept).
pub fn give(buf: Vec<u8>) {
    let freed = pool().give(buf);
    drop(freed);
}

/// Frees the kept buffers if none was taken for [`KEEP_FOR`]; called now and then.
pub fn expire() {
    let freed = pool().expire(Instant::now());
    drop(freed);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_are_reused_bounded_and_expire() {
        let mut p = Pool::new();
        let t0 = Instant::now();
        let mut a = p.take(t0);
        a.extend_from_slice(&[1; 1 << 20]);
        let ptr = a.as_ptr();
        assert!(p.give(a).is_none());
        let b = p.take(t0);
        assert_eq!(b.as_ptr(), ptr, "the kept buffer is taken again");
        assert!(b.is_empty() && b.capacity() >= 1 << 20);
        assert!(p.give(b).is_none());
        assert!(p.give(Vec::with_capacity(1024)).is_some(), "small: freed");
        assert!(
            p.give(Vec::with_capacity(MAX_BYTES + 1)).is_some(),
            "huge: freed"
        );
        assert!(p.give(Vec::with_capacity(1 << 20)).is_none());
        assert!(p.give(Vec::with_capacity(1 << 20)).is_some(), "enough kept");
        assert_eq!(p.bufs.len(), MAX_KEPT);
        assert!(p.expire(t0 + KEEP_FOR / 2).is_empty(), "in use lately");
        assert_eq!(p.expire(t0 + KEEP_FOR).len(), MAX_KEPT, "idle: freed");
        assert!(p.bufs.is_empty());
    }
}
