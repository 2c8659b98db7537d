//! Built-in log rotation: rotated file names and the housekeeping (gzip, retention) done off
//! the log writer pool. The settings live in [`pmr_core::conf`].
//!
//! Rotation renames the live file to `<stem>__<YYYY-MM-DD_HH-mm-ss>[_N].<ext>` and reopens the
//! path; it never copies and truncates, so no line is lost or written twice.

use std::path::{Path, PathBuf};

/// pm2-logrotate's default `dateFormat`, used in rotated names.
pub const DATE_FORMAT: &str = "YYYY-MM-DD_HH-mm-ss";

/// `<dir>/<stem>__` and `.<ext>` (or empty) of a live file: rotated names are
/// `<stem>__<date>[_N]<ext>[.gz]`.
fn name_parts(live: &Path) -> (String, String) {
    let stem = live
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let ext = live
        .extension()
        .map(|e| format!(".{}", e.to_string_lossy()))
        .unwrap_or_default();
    (format!("{stem}__"), ext)
}

/// The date and sequence number of the last rotation of one file.
pub type Last = Option<(String, u64)>;

/// A free name for the file rotated at `ms`: the date to the second, then `_1`, `_2`, ... when
/// several rotations happen within one second. `last` (updated) makes the sequence go on even
/// when retention has already deleted the earlier files of this second.
pub fn rotated_name(live: &Path, ms: i64, last: &mut Last) -> PathBuf {
    let (prefix, ext) = name_parts(live);
    let date = pmr_core::dayjs::dayjs(DATE_FORMAT, ms);
    let dir = live.parent().unwrap_or(Path::new("."));
    let mut n = match last {
        Some((d, seq)) if *d == date => *seq + 1,
        _ => 0,
    };
    loop {
        let suffix = if n == 0 {
            String::new()
        } else {
            format!("_{n}")
        };
        let name = format!("{prefix}{date}{suffix}{ext}");
        let p = dir.join(&name);
        if !p.exists() && !dir.join(format!("{name}.gz")).exists() {
            *last = Some((date, n));
            return p;
        }
        n += 1;
    }
}

/// Whether `name` is a rotated file of `live` (compressed or not).
pub fn is_rotated(live: &Path, name: &str) -> bool {
    rotated_key(live, name).is_some()
}

/// Sort key of a rotated file of `live` (date, sequence), or `None` if `name` is not one.
fn rotated_key(live: &Path, name: &str) -> Option<(String, u64)> {
    let (prefix, ext) = name_parts(live);
    let rest = name.strip_prefix(&prefix)?;
    let rest = rest.strip_suffix(".gz").unwrap_or(rest);
    let rest = rest.strip_suffix(ext.as_str())?;
    // The date has a fixed length (YYYY-MM-DD_HH-mm-ss).
    if rest.len() < DATE_FORMAT.len() || !rest.is_char_boundary(DATE_FORMAT.len()) {
        return None;
    }
    let (date, seq) = rest.split_at(DATE_FORMAT.len());
    if !date
        .bytes()
        .all(|b| b.is_ascii_digit() || b == b'-' || b == b'_')
    {
        return None;
    }
    let seq = match seq {
        "" => 0,
        s => s.strip_prefix('_')?.parse().ok()?,
    };
    Some((date.to_string(), seq))
}

/// The rotated files of `live`, oldest first.
pub fn rotated_files(live: &Path) -> Vec<PathBuf> {
    let dir = live.parent().unwrap_or(Path::new("."));
    let Ok(entries) = std::fs::read_dir(dir) else {
        return vec![];
    };
    let mut found: Vec<((String, u64), PathBuf)> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            rotated_key(live, &name).map(|k| (k, e.path()))
        })
        .collect();
    found.sort();
    found.into_iter().map(|(_, p)| p).collect()
}

/// Work done after a rotation, on the housekeeping thread.
pub struct Job {
    pub live: PathBuf,
    pub rotated: PathBuf,
    pub compress: bool,
    pub retain: u32,
}

/// gzip the rotated file (to `.gz.tmp`, renamed when complete), then delete the oldest
/// rotated files beyond `retain`.
pub fn housekeep(job: &Job) {
    if job.compress {
        if let Err(e) = gzip(&job.rotated) {
            tracing::error!("cannot compress {}: {e}", job.rotated.display());
        }
    }
    let files = rotated_files(&job.live);
    let excess = files.len().saturating_sub(job.retain as usize);
    for old in &files[..excess] {
        if let Err(e) = std::fs::remove_file(old) {
            tracing::warn!("cannot remove old log {}: {e}", old.display());
        }
    }
}

fn gzip(path: &Path) -> std::io::Result<()> {
    use flate2::write::GzEncoder;
    let mut gz_name = path.as_os_str().to_owned();
    gz_name.push(".gz");
    let gz = PathBuf::from(gz_name);
    let mut tmp_name = gz.as_os_str().to_owned();
    tmp_name.push(".tmp");
    let tmp = PathBuf::from(tmp_name);
    let mut input = std::fs::File::open(path)?;
    let out = std::fs::File::create(&tmp)?;
    let mut enc = GzEncoder::new(std::io::BufWriter::new(out), flate2::Compression::default());
    let res = std::io::copy(&mut input, &mut enc)
        .and_then(|_| enc.finish())
        .and_then(|w| w.into_inner().map_err(|e| e.into_error()))
        .and_then(|f| f.sync_all());
    if let Err(e) = res {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    std::fs::rename(&tmp, &gz)?;
    std::fs::remove_file(path)
}

/// One thread per daemon does compression and retention, in rotation order, so a slow gzip
/// never holds up a log writer. Its queue is bounded ([`QUEUE`] jobs); when it is full the
/// writer does the job itself (slower, never lost).
#[derive(Default)]
pub struct Housekeeper {
    tx: std::sync::Mutex<Option<std::sync::mpsc::SyncSender<Job>>>,
}

const QUEUE: usize = 256;

impl Housekeeper {
    pub const fn new() -> Housekeeper {
        Housekeeper {
            tx: std::sync::Mutex::new(None),
        }
    }

    pub fn submit(&self, job: Job) {
        let mut tx = self.tx.lock().unwrap();
        if tx.is_none() {
            let (t, rx) = std::sync::mpsc::sync_channel::<Job>(QUEUE);
            let spawned = std::thread::Builder::new()
                .name("pmr-logrotate".into())
                // gzip needs a deep stack (zlib's state lives on it); 2 MiB of address space,
                // only what is touched becomes resident.
                .stack_size(2 << 20)
                .spawn(move || {
                    while let Ok(job) = rx.recv() {
                        housekeep(&job);
                    }
                });
            if spawned.is_ok() {
                *tx = Some(t);
            }
        }
        let job = match tx.as_ref() {
            Some(t) => match t.try_send(job) {
                Ok(()) => return,
                Err(std::sync::mpsc::TrySendError::Full(j))
                | Err(std::sync::mpsc::TrySendError::Disconnected(j)) => j,
            },
            None => job,
        };
        drop(tx);
        housekeep(&job);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotated_names_sort_and_match_only_their_file() {
        let dir = std::env::temp_dir().join(format!("pmr-rot-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let live = dir.join("web-out-1.log");
        let mut last = None;
        let a = rotated_name(&live, 0, &mut last);
        std::fs::write(&a, "a").unwrap();
        let b = rotated_name(&live, 0, &mut None);
        assert_ne!(a, b);
        assert!(b.to_string_lossy().ends_with("_1.log"), "{}", b.display());
        std::fs::write(&b, "b").unwrap();
        // Names of other files in the same directory are not taken for ours.
        std::fs::write(dir.join("web-out-10__2020-01-01_00-00-00.log"), "x").unwrap();
        std::fs::write(dir.join("web-out-1.log"), "live").unwrap();
        let c = rotated_name(&live, 1000, &mut last);
        // The sequence goes on within a second even when earlier names are free again.
        let mut l2 = Some((pmr_core::dayjs::dayjs(DATE_FORMAT, 0), 7));
        assert!(rotated_name(&live, 0, &mut l2)
            .to_string_lossy()
            .ends_with("_8.log"));
        std::fs::write(&c, "c").unwrap();
        assert_eq!(rotated_files(&live), vec![a.clone(), b.clone(), c.clone()]);
        housekeep(&Job {
            live: live.clone(),
            rotated: c.clone(),
            compress: true,
            retain: 2,
        });
        let left = rotated_files(&live);
        assert_eq!(left.len(), 2);
        assert_eq!(left[0], b);
        assert!(left[1].to_string_lossy().ends_with(".log.gz"));
        let mut d = flate2::read::GzDecoder::new(std::fs::File::open(&left[1]).unwrap());
        let mut s = String::new();
        std::io::Read::read_to_string(&mut d, &mut s).unwrap();
        assert_eq!(s, "c");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
