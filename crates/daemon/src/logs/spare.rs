//! A few read buffers kept for reuse. A pump hands each filled read buffer on as a block and
//! needs a new one; a fresh 64 KiB allocation costs 16 page faults when the pipe is read into
//! it (the allocator gives memory back between bursts), and under a steady stream those faults
//! were the largest part of the daemon's CPU. Writers give written blocks back here instead.
//! At most [`MAX`] buffers are kept (256 KiB), and they are released with the rest of the free
//! memory once a writer has drained a burst.

use crate::logs::CHUNK;
use std::sync::Mutex;

const MAX: usize = 4;

/// Process-wide: buffers of the process's allocator, released with its free memory.
static SPARE: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());

/// An empty buffer of at least [`CHUNK`] bytes' capacity.
pub fn take() -> Vec<u8> {
    let kept = SPARE.lock().unwrap_or_else(|e| e.into_inner()).pop();
    kept.unwrap_or_else(|| Vec::with_capacity(CHUNK))
}

/// Keep a block's buffer for [`take`], if it is a read buffer and there is room.
pub fn give_back(mut v: Vec<u8>) {
    if v.capacity() < CHUNK || v.capacity() > 2 * CHUNK {
        return;
    }
    let mut spare = SPARE.lock().unwrap_or_else(|e| e.into_inner());
    if spare.len() < MAX {
        v.clear();
        spare.push(v);
    }
}

/// Drop the kept buffers (before returning free memory to the system).
pub fn clear() {
    let kept = std::mem::take(&mut *SPARE.lock().unwrap_or_else(|e| e.into_inner()));
    drop(kept);
}
