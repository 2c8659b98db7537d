//! The log pipeline: child pipes → whole lines → log files (formatted, rotated) and live
//! subscribers.
//!
//! * [`pump`] reads a pipe (an async task) and cuts what it read at the last newline, so whole
//!   lines move on whole. A partial line (no newline yet) is held only while the pipe keeps
//!   talking: once it has been quiet for [`QUIET`] (or the partial line is [`HOLD_MAX`] old),
//!   it is written out as it is, so `process.stderr.write('x')` shows up at once, as with PM2.
//!   A partial line left by a large read is a write cut by the pipe: it waits for the rest up to
//!   [`BUSY_HOLD`] (and so does one left by a small read within `BUSY_HOLD` of a large one:
//!   the rest of the same write), so that bursts on a loaded machine keep their lines whole.
//!   At EOF, a line left open is completed with a newline.
//! * What the rest of such a line looks like when it comes, as PM2 writes it: in a raw file the
//!   bytes continue the same line (`x` then `y\n` reads `xy`); with a date prefix or JSON each
//!   piece is a line of its own (`<date>: x`, `<date>: y`), since a prefix or a JSON record
//!   cannot be left open; `pmr logs` shows each piece as a line. In a file written by several
//!   streams (`merge_logs`, the combined file), the writer ends an open line with a newline
//!   before another stream's lines, so lines of two streams never share a line.
//! * Each log file has one [`Sink`]: a bounded queue and a [`Writer`], run by the threads of
//!   the writer [`pool`] (a few for all files), one thread at a time per file. It is the only
//!   writer of its file, so lines of instances sharing a file (`merge_logs`) never interleave,
//!   and file I/O never runs on the async runtime. What is queued is written with one `writev`
//!   per batch. The writer also rotates (rename + reopen), reopens on `reloadLogs` and
//!   truncates on `flush`.
//! * A busy pipe is read in batches: the pump naps between reads, out of the epoll set, and the
//!   pipe is grown ([`pace`]).
//! * A full queue makes the pump wait, which fills the app's pipe and slows the app:
//!   backpressure, never loss while the file can be written. A failed write (disk full) drops
//!   the rest of its batch at once and counts the lines ([`Sinks::dropped`], shown by
//!   `describe`): waiting for space on a pool thread held up every other file. Each later batch
//!   is tried again, so writing resumes by itself; both changes are said once in `pmr.log`.
//! * Live subscribers ([`hub`]) are offered the same blocks without waiting.
//!
//! Memory bound per app stream: one read buffer of ≤ [`CHUNK`] bytes (2 × CHUNK while a
//! line longer than a pipe read is completed); per file: [`SINK_QUEUE`] blocks of ≤ CHUNK bytes
//! (+ the date prefix or JSON of each line when the app asks for it).

pub mod daemon_log;
pub mod format;
pub mod hub;
mod pace;
mod pool;
mod pump;
pub mod rotate;
mod sinks;
mod source;
mod spare;
mod writer;

pub use pump::{pump, pump_pipe};
pub use sinks::{Pumps, Sink, Sinks};
pub use source::Source;

use rotate::Housekeeper;
use std::time::Duration;

/// Largest piece read from a pipe at once; also the longest line kept whole.
pub const CHUNK: usize = 64 * 1024;
/// The read buffer of a stream that is not busy (most of them, most of the time), taken when
/// there is something to read.
pub const QUIET_BUF: usize = 1024;
/// Blocks queued per file before readers wait.
pub const SINK_QUEUE: usize = 16;
/// How long a pipe must stay quiet before a partial line (no newline yet) is written out.
/// Short enough to look immediate; long enough that a line written in several `write()`s
/// by the app (or cut by a pipe read) is almost always kept whole.
pub const QUIET: Duration = Duration::from_millis(5);
/// The longest a partial line is held while bytes keep trickling in without a newline
/// (a progress bar printing dots).
pub const HOLD_MAX: Duration = Duration::from_millis(100);
/// How long a partial line left by a large read is held. A `write()` larger than the pipe
/// reaches us in pieces cut anywhere, with the app asleep in `write()` until we read; on a busy
/// machine it may not run again for a while. Writes of at most `PIPE_BUF` bytes are atomic, so
/// a small read is the app's own choice of where to stop; a large one is not.
pub const BUSY_HOLD: Duration = Duration::from_secs(1);
/// Linux's `PIPE_BUF`.
const PIPE_BUF: usize = 4096;

/// Process-wide: one thread compresses and prunes the rotated files of every log.
pub(crate) static HOUSEKEEPER: Housekeeper = Housekeeper::new();

pub(crate) fn release_free_memory() {
    spare::clear();
    crate::alloc::trim();
}

#[cfg(test)]
mod tests;
