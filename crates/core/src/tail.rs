//! The end of a text file, read without reading the whole file: `pmr logs`, and the daemon log
//! lines the CLI shows when the daemon fails to start.

use std::path::Path;

/// The last `n` lines of a file (for `logs`). Reads only the file's tail.
pub fn tail_lines(path: &Path, n: usize) -> std::io::Result<Vec<String>> {
    use std::io::{Read, Seek, SeekFrom};
    if n == 0 {
        return Ok(vec![]);
    }
    let mut f = std::fs::File::open(path)?;
    let len = f.metadata()?.len();
    let mut want = 64 * 1024u64;
    loop {
        let start = len.saturating_sub(want);
        f.seek(SeekFrom::Start(start))?;
        let mut data = Vec::new();
        f.read_to_end(&mut data)?;
        let text = String::from_utf8_lossy(&data);
        let mut lines: Vec<&str> = text.lines().collect();
        if start > 0 && !lines.is_empty() {
            lines.remove(0); // probably a partial line
        }
        if lines.len() >= n || start == 0 {
            let skip = lines.len().saturating_sub(n);
            return Ok(lines[skip..].iter().map(|s| s.to_string()).collect());
        }
        want *= 4;
    }
}
