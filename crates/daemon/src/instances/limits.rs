//! Whether instances were given a memory limit: what wakes the memory guard
//! (`memory_guard.rs`), which stays idle while no instance has one.

use std::sync::atomic::{AtomicU64, Ordering};

/// Bumped whenever an instance is given a spec with a memory limit.
#[derive(Default)]
pub struct Limits {
    given: AtomicU64,
}

impl Limits {
    /// Called wherever an instance gets its spec (a new instance, an update of its options),
    /// once a look would find it there: the count a look reads first must not be ahead of
    /// what it finds.
    pub fn note_spec(&self, spec: &pmr_core::spec::AppSpec) {
        if spec.max_memory_restart.is_some_and(|l| l > 0) {
            self.given.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// How many limits were given so far.
    pub fn given(&self) -> u64 {
        self.given.load(Ordering::SeqCst)
    }
}
