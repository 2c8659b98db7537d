//! glibc malloc settings of the daemon, and the return of free memory after bursts.
//!
//! Measured (100 `sleep` apps, 1,000 `restart` calls 50 at a time, each call ending with a
//! `list` of every app, ~6 KB per app; RSS 2 s after the burst): 18 MB before, 110-130 MB
//! after, and it stayed there. Most of it was free, not live: `malloc_trim(0)` from a debugger
//! gave it back, and heaptrack showed a live peak of 68 MB made of fifty `list` replies at
//! once. The causes and what removes each:
//! - fifty replies built at once: `server.rs` builds whole-table replies two at a time;
//! - glibc's dynamic mmap threshold: the first big reply buffer freed raises the threshold to
//!   its size, after which every reply buffer is carved out of an arena instead of getting its
//!   own mapping that is unmapped on free; a fixed threshold (setting it turns the adjustment
//!   off) keeps them out (with the above: 130 → 34 MB);
//! - what remains free is fragmentation: free chunks in the middle of an arena, pinned by small
//!   allocations that live on, which glibc only returns on `malloc_trim`. [`reclaimer`] calls
//!   it when the daemon's anonymous resident memory is more than [`RECLAIM_OVER`] above the
//!   lowest seen. (Live bytes from `mallinfo2` are no guide: they count reserved, never-touched
//!   buffer space, such as the 64 KiB log read buffers, that is not resident.)
//!
//! The reclaimer's tick also drops the output buffers of long renders once unused for a while
//! (`render::bufs`): kept between calls, they spare a `jlist` of 1,000 apps its page faults;
//! and, once requests stop for a moment, the pages of code they ran (`text.rs`).
//!
//! mimalloc was tried instead: it keeps a heap per thread and started at 93 MB with the 211
//! threads the daemon has today (log writers), against 17 MB.

/// Allocations of at least this size get their own mapping (glibc's default starting value,
/// fixed). Log read buffers (64 KiB) stay below it: they are reused, mapping each would cost.
const MMAP_THRESHOLD: i32 = 128 * 1024;
/// Free memory at the top of an arena beyond this is returned to the system.
const TRIM_THRESHOLD: i32 = 128 * 1024;
/// The tokio workers, the blocking pool and the log writer threads share these; glibc's
/// default (8 per core) gives each busy thread an arena holding its own free memory.
const ARENA_MAX: i32 = 2;
/// Resident memory may grow by this much over the lowest seen before free memory is handed
/// back.
const RECLAIM_OVER: u64 = 2 << 20;
/// How often the allocator's statistics are looked at (a read of `/proc/self/statm`: some microseconds).
const RECLAIM_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// Before any thread starts.
pub fn tune() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; called before other threads exist.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
        libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD);
        libc::mallopt(libc::M_ARENA_MAX, ARENA_MAX);
    }
}

/// Hands free memory held by the allocator back to the system after a burst (restarts, big
/// replies, crash loops), whatever caused it. Runs on the blocking pool: `malloc_trim` walks
/// the arenas (about a millisecond at these sizes).
pub async fn reclaimer() {
    let mut tick = tokio::time::interval(RECLAIM_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut floor = None;
    loop {
        tick.tick().await;
        match tokio::task::spawn_blocking(move || {
            pmr_render::bufs::expire();
            if crate::text::drop_if_quiet() {
                quiet_trim()
            } else {
                reclaim(floor)
            }
        })
        .await
        {
            Ok(f) => floor = f,
            Err(_) => return,
        }
    }
}

/// Hand the allocator's free memory back to the system (glibc; nothing elsewhere).
pub fn trim() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free memory of the allocator's arenas.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Anonymous resident bytes of the daemon (heap, arenas, stacks): what the allocator's free
/// memory shows up in. `None` where it cannot be known.
pub fn anon_resident() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let mut f = statm
        .split_whitespace()
        .skip(1)
        .map(|x| x.parse::<u64>().ok());
    let (resident, shared) = (f.next()??, f.next()??);
    let page = nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
        .ok()
        .flatten()? as u64;
    Some(resident.saturating_sub(shared) * page)
}

/// Once requests have stopped (`text::drop_if_quiet`): whatever the floor, free memory goes
/// back, and what is left is the new floor. A floor raised by many apps (a trim at 1,000 apps
/// returns nothing: it is live) would otherwise keep the memory they freed on `delete`: free
/// memory below the old level is never above it by [`RECLAIM_OVER`].
fn quiet_trim() -> Option<u64> {
    trim();
    anon_resident()
}

/// Trims when the anonymous resident memory is more than [`RECLAIM_OVER`] above `floor`, the
/// lowest seen (live data, stacks: what a trim cannot return); returns the new floor. A trim that
/// returns little (more threads, more apps: a new steady state) raises the floor to what is
/// left, so a steady state is not trimmed again every tick.
fn reclaim(floor: Option<u64>) -> Option<u64> {
    let unused = anon_resident()?;
    let Some(floor) = floor.filter(|&f| unused > f + RECLAIM_OVER) else {
        return Some(floor.map_or(unused, |f| f.min(unused)));
    };
    trim();
    let left = anon_resident().unwrap_or(unused);
    Some(if unused - left.min(unused) < RECLAIM_OVER / 2 {
        left
    } else {
        floor
    })
}
