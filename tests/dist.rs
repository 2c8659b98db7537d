//! The packages (issue 24): `dist/test` builds them with `dist/build --profile dist-test` (the
//! x64 and arm64 binaries against glibc 2.28, man pages, completions, the unit, the npm
//! tarballs, the .debs) and checks them as users get them: `npm i -g pmr` from a local
//! registry, the .deb extracted, the commands run from both, the glibc symbol versions, the
//! arm64 binary under qemu. Its header says what exactly.
//!
//! A test binary of its own: it takes minutes (two cargo builds, of another profile and target
//! directory than the suite's), and cargo runs test binaries one after another, so it does not
//! share the 2 cores with the integration tests.
//!
//! It needs tools that the rest of the suite does not (dist/README.md lists them). Where one is
//! missing the test is skipped, saying which, so a developer's `cargo test` still passes; under
//! CI (`CI` set, as CI runs `.ci/run`) a missing tool fails it instead: CI installs them all,
//! and a packaging check that silently stops running is worse than a red build.

use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const ARM64_SYSROOT: &str = "/usr/aarch64-linux-gnu/lib/ld-linux-aarch64.so.1";

fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
}

fn succeeds(cmd: &mut Command) -> bool {
    cmd.output().is_ok_and(|o| o.status.success())
}

/// What dist/build and dist/test need beyond the suite's own tools, with how to install each.
fn missing_tools() -> Vec<&'static str> {
    let mut missing = Vec::new();
    if !on_path("cargo-zigbuild") {
        missing.push("cargo-zigbuild (pip install cargo-zigbuild)");
    }
    // cargo-zigbuild runs `zig`, or `python3 -m ziglang` (the PyPI package).
    if !succeeds(Command::new("zig").arg("version"))
        && !succeeds(Command::new("python3").args(["-m", "ziglang", "version"]))
    {
        missing.push("zig (pip install ziglang)");
    }
    let arm64_std = Command::new("rustc")
        .args([
            "--print",
            "target-libdir",
            "--target",
            "aarch64-unknown-linux-gnu",
        ])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .is_some_and(|dir| {
            std::fs::read_dir(&dir).is_ok_and(|mut d| {
                d.any(|e| e.is_ok_and(|e| e.file_name().to_string_lossy().starts_with("libstd-")))
            })
        });
    if !arm64_std {
        missing.push("the aarch64 Rust target (rustup target add aarch64-unknown-linux-gnu)");
    }
    if !on_path("qemu-aarch64") {
        missing.push("qemu-aarch64 (apt-get install qemu-user)");
    }
    if !Path::new(ARM64_SYSROOT).exists() {
        missing.push("the arm64 glibc for qemu (apt-get install libc6-arm64-cross)");
    }
    for (tool, hint) in [
        ("dpkg-deb", "dpkg-deb (apt-get install dpkg)"),
        ("readelf", "readelf (apt-get install binutils)"),
    ] {
        if !on_path(tool) {
            missing.push(hint);
        }
    }
    missing
}

/// `CI=true` (and any other value but empty, `0` or `false`).
fn under_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !matches!(v.as_str(), "" | "0" | "false"))
}

fn tail(s: &str, lines: usize) -> String {
    let all: Vec<&str> = s.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[test]
fn packages_build_install_and_run() {
    let missing = missing_tools();
    if !missing.is_empty() {
        let list = missing.join("\n  ");
        assert!(
            !under_ci(),
            "CI must install what the packaging test needs (see dist/README.md); missing:\n  {list}"
        );
        // Past the harness's capture (which only takes `print!`s): a skip must be seen.
        let _ = writeln!(
            std::io::stderr(),
            "tests/dist.rs SKIPPED: the packages cannot be built or checked here; missing:\n  {list}"
        );
        return;
    }
    let started = Instant::now();
    let out = Command::new(Path::new(ROOT).join("dist/test"))
        .current_dir(ROOT)
        .output()
        .expect("cannot run dist/test");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "dist/test failed ({}):\n{stdout}\n--- the end of its stderr:\n{}",
        out.status,
        tail(&stderr, 80)
    );
    println!("{stdout}");
    println!("dist/test took {:.0?}", started.elapsed());
}
