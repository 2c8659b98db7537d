//! Full scans of /proc (every process's parent and group), shared by concurrent callers.
//!
//! Stopping an app with `treekill` needs its descendants, which takes a scan of the whole
//! machine; `delete all` of 1,000 apps asked for 1,000 scans of 1,000+ processes (1 M stat
//! reads, 17 s). A caller here waits for the next scan that *starts after its call* and shares
//! its result with every other caller waiting for it, so its view is as fresh as a scan of its
//! own, and a burst costs two scans instead of one per app. Blocking: call from
//! `spawn_blocking`.

use pmr_core::procfs::{read_stat, Stat};
use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex};

pub type Stats = Arc<HashMap<u32, Stat>>;

#[derive(Default)]
struct State {
    /// Scans completed so far.
    done: u64,
    running: bool,
    last: Stats,
}

/// Process-wide: a cache of the machine's process table, shared by every thread that asks.
static STATE: Mutex<Option<State>> = Mutex::new(None);
static DONE: Condvar = Condvar::new();

/// The stat of every process, from a scan that began after this call.
pub fn scan() -> Stats {
    let mut g = STATE.lock().unwrap_or_else(|e| e.into_inner());
    let st = g.get_or_insert_with(State::default);
    // A scan already running may have passed processes that matter to us: the one after it.
    let want = st.done + if st.running { 2 } else { 1 };
    loop {
        let st = g.get_or_insert_with(State::default);
        if st.done >= want {
            return st.last.clone();
        }
        if !st.running {
            st.running = true;
            drop(g);
            let fresh = Arc::new(read_all());
            g = STATE.lock().unwrap_or_else(|e| e.into_inner());
            let st = g.get_or_insert_with(State::default);
            st.running = false;
            st.done += 1;
            st.last = fresh;
            DONE.notify_all();
            continue;
        }
        g = DONE.wait(g).unwrap_or_else(|e| e.into_inner());
    }
}

fn read_all() -> HashMap<u32, Stat> {
    all_pids()
        .into_iter()
        .filter_map(|pid| read_stat(pid).map(|s| (pid, s)))
        .collect()
}

/// Every process on the machine.
pub fn all_pids() -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()))
        .collect()
}
