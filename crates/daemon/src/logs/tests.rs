//! The pipeline end to end: pumps, sinks, the writer pool, rotation, failing files.

use super::format::LineFormat;
use super::hub::Stream;
use super::*;
use pmr_core::tail::tail_lines;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::io::AsyncWriteExt;

/// A stream of `of` (for its owner number) writing to `sinks`.
fn source(of: &Sinks, sinks: Vec<Arc<Sink>>) -> Source {
    Source {
        owner: of.next_owner(),
        id: 0,
        name: "t".into(),
        stream: Stream::Out,
        format: LineFormat::default(),
        sinks,
        hub: None,
        pumps: Arc::default(),
    }
}

async fn wait_for(path: &Path, expected: &str) {
    // The writer pool drains its queue before the file is complete: poll for it.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let got = std::fs::read_to_string(path).unwrap_or_default();
        if got == expected {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "file incomplete");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn lines_are_kept_whole_and_the_last_partial_line_is_completed() {
    let dir = std::env::temp_dir().join(format!("pmr-logs-test-{}", std::process::id()));
    let path = dir.join("a.log");
    let sinks = Sinks::default();
    let sink = sinks.get(&path, None).unwrap();
    let (mut w, r) = tokio::io::duplex(1024);
    let task = tokio::spawn(pump(r, source(&sinks, vec![sink.clone()])));
    let mut expected = String::new();
    for i in 0..5000 {
        let line = format!("line {i} {}\n", "x".repeat(i % 97));
        expected.push_str(&line);
        w.write_all(line.as_bytes()).await.unwrap();
    }
    w.write_all(b"partial").await.unwrap();
    expected.push_str("partial\n");
    drop(w);
    task.await.unwrap();
    drop(sink);
    wait_for(&path, &expected).await;
    assert_eq!(
        tail_lines(&path, 2).unwrap(),
        [
            "line 4999 ".to_string() + &"x".repeat(4999 % 97),
            "partial".into()
        ]
    );
    std::fs::remove_dir_all(dir).unwrap();
}

fn test_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("pmr-logs-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[tokio::test]
async fn a_partial_line_is_written_out_when_the_pipe_goes_quiet() {
    let dir = test_dir("partial");
    let (raw, dated) = (dir.join("raw.log"), dir.join("dated.log"));
    let sinks = Sinks::default();
    let (mut w1, r1) = tokio::io::duplex(1024);
    let (mut w2, r2) = tokio::io::duplex(1024);
    let t1 = tokio::spawn(pump(
        r1,
        source(&sinks, vec![sinks.get(&raw, None).unwrap()]),
    ));
    let mut dated_src = source(&sinks, vec![sinks.get(&dated, None).unwrap()]);
    dated_src.format.date_format = Some("[T]".into());
    let t2 = tokio::spawn(pump(r2, dated_src));
    for w in [&mut w1, &mut w2] {
        w.write_all(b"a\nx").await.unwrap();
    }
    // No newline comes, the pipes stay open: the partial line shows up anyway.
    wait_for(&raw, "a\nx").await;
    wait_for(&dated, "T: a\nT: x\n").await;
    // Its rest continues the line in a raw file, is a line of its own with a prefix.
    for w in [&mut w1, &mut w2] {
        w.write_all(b"y\nz").await.unwrap();
    }
    wait_for(&raw, "a\nxy\nz").await;
    wait_for(&dated, "T: a\nT: x\nT: y\nT: z\n").await;
    // EOF completes the open line.
    drop((w1, w2));
    t1.await.unwrap();
    t2.await.unwrap();
    wait_for(&raw, "a\nxy\nz\n").await;
    wait_for(&dated, "T: a\nT: x\nT: y\nT: z\n").await;
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn in_a_shared_file_another_stream_never_continues_an_open_line() {
    let dir = test_dir("shared");
    let path = dir.join("merged.log");
    let sinks = Sinks::default();
    let sink = sinks.get(&path, None).unwrap();
    let (mut wa, ra) = tokio::io::duplex(1024);
    let (mut wb, rb) = tokio::io::duplex(1024);
    let ta = tokio::spawn(pump(ra, source(&sinks, vec![sink.clone()])));
    let tb = tokio::spawn(pump(rb, source(&sinks, vec![sink.clone()])));
    wa.write_all(b"a1").await.unwrap();
    wait_for(&path, "a1").await;
    wb.write_all(b"b1\n").await.unwrap();
    wait_for(&path, "a1\nb1\n").await;
    wa.write_all(b"a2\n").await.unwrap();
    wait_for(&path, "a1\nb1\na2\n").await;
    wb.write_all(b"b2").await.unwrap();
    wait_for(&path, "a1\nb1\na2\nb2").await;
    drop(wa);
    ta.await.unwrap();
    // A's end does not end B's line.
    wb.write_all(b"b3\n").await.unwrap();
    wait_for(&path, "a1\nb1\na2\nb2b3\n").await;
    drop(wb);
    tb.await.unwrap();
    drop(sink);
    wait_for(&path, "a1\nb1\na2\nb2b3\n").await;
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn a_large_write_cut_by_the_pipe_waits_for_its_rest() {
    let dir = test_dir("busy");
    let path = dir.join("d.log");
    let sinks = Sinks::default();
    let mut src = source(&sinks, vec![sinks.get(&path, None).unwrap()]);
    src.format.date_format = Some("[T]".into());
    let (mut w, r) = tokio::io::duplex(2 * CHUNK);
    let task = tokio::spawn(pump(r, src));
    // A line of 8 KiB arrives in two pieces, the second well after QUIET.
    let one = "y".repeat(8192);
    w.write_all(&one.as_bytes()[..6000]).await.unwrap();
    tokio::time::sleep(QUIET * 10).await;
    w.write_all(format!("{}\n", &one[6000..]).as_bytes())
        .await
        .unwrap();
    // Node's write into a nearly full pipe: a big piece, then 36 bytes (what fit), then,
    // the writer having slept well past QUIET, the rest. The small piece is no line end.
    let two = "z".repeat(8192);
    w.write_all(&two.as_bytes()[..6000]).await.unwrap();
    tokio::time::sleep(QUIET * 2).await;
    w.write_all(&two.as_bytes()[6000..6036]).await.unwrap();
    tokio::time::sleep(QUIET * 10).await;
    w.write_all(format!("{}\n", &two[6036..]).as_bytes())
        .await
        .unwrap();
    drop(w);
    task.await.unwrap();
    wait_for(&path, &format!("T: {one}\nT: {two}\n")).await;
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_files_share_the_writer_pool_and_keep_their_order() {
    let dir = test_dir("pool");
    let sinks = Sinks::default();
    const FILES: usize = 40;
    const LINES: usize = 2000;
    let mut tasks = Vec::new();
    for f in 0..FILES {
        let sink = sinks.get(&dir.join(format!("f{f}.log")), None).unwrap();
        let (mut w, r) = tokio::io::duplex(4096);
        let pumping = tokio::spawn(pump(r, source(&sinks, vec![sink])));
        tasks.push(tokio::spawn(async move {
            for i in 0..LINES {
                w.write_all(format!("{f} {i}\n").as_bytes()).await.unwrap();
            }
            drop(w);
            pumping.await.unwrap();
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    for f in 0..FILES {
        let expected: String = (0..LINES).map(|i| format!("{f} {i}\n")).collect();
        wait_for(&dir.join(format!("f{f}.log")), &expected).await;
    }
    let writers = std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .filter(|c| c.starts_with("pmr-log-"))
        .count();
    assert_eq!(writers, pool::THREADS, "{FILES} files, one pool");
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn size_rotation_splits_at_line_boundaries_and_loses_nothing() {
    let dir = std::env::temp_dir().join(format!("pmr-logs-rot-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let path = dir.join("b.log");
    let sinks = Sinks::default();
    let block = pmr_core::spec::LogRotate {
        max_size: Some(1000),
        retain: Some(1000),
        ..Default::default()
    };
    let sink = sinks.get(&path, Some(&block)).unwrap();
    let (mut w, r) = tokio::io::duplex(4096);
    let task = tokio::spawn(pump(r, source(&sinks, vec![sink.clone()])));
    let mut expected = String::new();
    for i in 0..2000 {
        let line = format!("{i:05} {}\n", "y".repeat(i % 50));
        expected.push_str(&line);
        w.write_all(line.as_bytes()).await.unwrap();
    }
    drop(w);
    task.await.unwrap();
    drop(sink);
    // Wait until the writer has closed the live file (all data written).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let mut all = String::new();
        for f in rotate::rotated_files(&path) {
            let s = std::fs::read_to_string(&f).unwrap();
            assert!(s.len() <= 1000 && s.ends_with('\n'), "{}", f.display());
            all.push_str(&s);
        }
        all.push_str(&std::fs::read_to_string(&path).unwrap_or_default());
        if all == expected {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "lines lost or reordered"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    std::fs::remove_dir_all(dir).unwrap();
}
