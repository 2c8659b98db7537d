//! Once the daemon serves, the pages of code and read-only data that starting it used are
//! unmapped from it: its own and its libraries' (clap's parsing of `pmr daemon`, the dynamic
//! loader's relocation tables, restoring the table...). They stay in the page cache, shared
//! with every `pmr` run; what the daemon runs later comes back at its first use, by a minor
//! fault, as the kernel would bring it back after reclaiming it under memory pressure. So the
//! daemon's resident set is what it uses while serving, not what it once ran
//! (docs/decisions/daemon-memory.md).
//!
//! The same is done again whenever the daemon has been without requests for a moment
//! ([`drop_if_quiet`]): a `jlist`, a `start`, a `logs` run code that an idle daemon does not.
//!
//! Only read-only, file-backed segments: never a writable one, nor the relocated read-only
//! data (`PT_GNU_RELRO`), whose pages are private copies that the file does not hold.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// A request was answered at this many milliseconds of [`EPOCH`] (0: none since the last drop).
static ANSWERED_AT: AtomicU64 = AtomicU64::new(0);
static EPOCH: OnceLock<Instant> = OnceLock::new();
/// How long the daemon goes without a request before the code the requests ran is dropped
/// again: faulting it back costs the next request a few dozen minor faults (a fraction of a
/// millisecond), so even a short pause is worth it.
const QUIET: Duration = Duration::from_secs(1);

fn millis(now: Instant) -> u64 {
    // +1: 0 means "nothing answered since the last drop".
    now.duration_since(*EPOCH.get_or_init(Instant::now))
        .as_millis() as u64
        + 1
}

/// A request was answered: the code it ran is dropped once the daemon is quiet again.
pub fn note_request() {
    ANSWERED_AT.store(millis(Instant::now()), Ordering::Relaxed);
}

/// Called now and then (the reclaimer's tick, on the blocking pool): once no request was
/// answered for [`QUIET`], the pages of code they faulted in leave the resident set as the
/// start-up ones did. What the daemon runs while quiet (its timers) comes back at once and
/// stays; a request's pages are kept while requests keep coming. Whether it dropped them.
pub fn drop_if_quiet() -> bool {
    let at = ANSWERED_AT.load(Ordering::Relaxed);
    if !quiet_since(at, millis(Instant::now())) {
        return false;
    }
    // A request answered meanwhile keeps its mark: its pages go at a later tick.
    let quiet = ANSWERED_AT
        .compare_exchange(at, 0, Ordering::Relaxed, Ordering::Relaxed)
        .is_ok();
    if quiet {
        drop_start_up_pages();
    }
    quiet
}

/// Whether a request answered at `at` (0: none since the last drop) was [`QUIET`] ago at `now`.
fn quiet_since(at: u64, now: u64) -> bool {
    at != 0 && now >= at + QUIET.as_millis() as u64
}

/// Unmaps the start-up pages (see the module). Linux with glibc; nothing elsewhere.
pub fn drop_start_up_pages() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    for (start, len) in read_only_ranges() {
        // SAFETY: the range is whole pages of a read-only, file-backed segment of a loaded
        // object that no private copy backs (writable and RELRO pages are excluded): after
        // MADV_DONTNEED its next access reads the same bytes back from the file's page cache,
        // so no memory the program sees changes.
        unsafe {
            libc::madvise(start as *mut libc::c_void, len, libc::MADV_DONTNEED);
        }
    }
}

/// Whole pages of the loaded objects' read-only segments, without any page that a writable or
/// RELRO segment touches; `(start, len)`.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn read_only_ranges() -> Vec<(usize, usize)> {
    let page = nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
        .ok()
        .flatten()
        .unwrap_or(4096) as usize;
    let mut objects: Vec<Object> = Vec::new();
    // SAFETY: the callback only reads the `dl_phdr_info` it is given (valid during the call)
    // and pushes to the `Vec` passed as `data`, which outlives the call.
    unsafe {
        libc::dl_iterate_phdr(Some(collect), &mut objects as *mut Vec<Object> as *mut _);
    }
    objects
        .iter()
        .flat_map(|o| whole_pages(&o.read_only, &o.keep, page))
        .collect()
}

/// One object's segments, as absolute `(start, end)` addresses.
#[derive(Default)]
struct Object {
    read_only: Vec<(usize, usize)>,
    keep: Vec<(usize, usize)>,
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
unsafe extern "C" fn collect(
    info: *mut libc::dl_phdr_info,
    _size: libc::size_t,
    data: *mut libc::c_void,
) -> libc::c_int {
    // SAFETY: the loader passes a valid `info` for the duration of the call, and `data` is the
    // `Vec<Object>` of `read_only_ranges`.
    let (info, objects) = unsafe { (&*info, &mut *(data as *mut Vec<Object>)) };
    // The program itself (empty name) and libraries loaded from files; not the vDSO.
    let name = if info.dlpi_name.is_null() {
        &[][..]
    } else {
        // SAFETY: a loader-provided NUL-terminated string.
        unsafe { std::ffi::CStr::from_ptr(info.dlpi_name) }.to_bytes()
    };
    if !(name.is_empty() || name.starts_with(b"/")) || info.dlpi_phdr.is_null() {
        return 0;
    }
    // SAFETY: `dlpi_phdr` points at `dlpi_phnum` program headers of the loaded object.
    let headers = unsafe { std::slice::from_raw_parts(info.dlpi_phdr, info.dlpi_phnum as usize) };
    let base = info.dlpi_addr as usize;
    let mut o = Object::default();
    for h in headers {
        let range = (
            base + h.p_vaddr as usize,
            base + (h.p_vaddr + h.p_memsz) as usize,
        );
        match h.p_type {
            libc::PT_LOAD if h.p_flags & libc::PF_W == 0 => o.read_only.push(range),
            libc::PT_LOAD | libc::PT_GNU_RELRO => o.keep.push(range),
            _ => {}
        }
    }
    objects.push(o);
    0
}

/// The whole pages of `ranges` that no range of `keep` touches.
fn whole_pages(
    ranges: &[(usize, usize)],
    keep: &[(usize, usize)],
    page: usize,
) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    for &(start, end) in ranges {
        let mut pieces = vec![(start.div_ceil(page) * page, end / page * page)];
        for &(ks, ke) in keep {
            let (ks, ke) = (ks / page * page, ke.div_ceil(page) * page);
            pieces = pieces
                .into_iter()
                .flat_map(|(s, e)| [(s, e.min(ks)), (s.max(ke), e)])
                .collect();
        }
        // A segment shorter than a page rounds to an empty (or reversed) range: nothing.
        out.extend(
            pieces
                .into_iter()
                .filter(|(s, e)| s < e)
                .map(|(s, e)| (s, e - s)),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_whole_pages_no_kept_page() {
        let p = 0x1000;
        // A text segment sharing its first page with nothing, its last with RELRO data.
        let got = whole_pages(&[(0x1800, 0x9400)], &[(0x9400, 0xa000)], p);
        assert_eq!(got, vec![(0x2000, 0x7000)]);
        // A kept range in the middle splits it.
        let got = whole_pages(&[(0x0, 0x10000)], &[(0x4100, 0x5000)], p);
        assert_eq!(got, vec![(0x0, 0x4000), (0x5000, 0xb000)]);
        // Nothing left.
        assert!(whole_pages(&[(0x1000, 0x1800)], &[], p).is_empty());
        assert!(whole_pages(&[(0x1800, 0x1900)], &[], p).is_empty());
    }

    #[test]
    fn dropped_once_quiet_after_a_request() {
        let q = QUIET.as_millis() as u64;
        assert!(
            !quiet_since(0, 10 * q),
            "nothing answered since the last drop"
        );
        assert!(!quiet_since(5, 5 + q - 1));
        assert!(quiet_since(5, 5 + q));
    }

    #[test]
    fn the_program_has_read_only_ranges() {
        assert!(!read_only_ranges().is_empty());
    }
}
