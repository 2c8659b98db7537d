//! Link arguments of the `pmr` binary: the code the daemon runs laid out together.
//!
//! The daemon is the long-lived `pmr` process; the kernel maps a binary's pages 64 KiB around
//! each page it runs (fault-around), and the daemon's code was spread over the whole text among
//! the CLI's, so it kept most of the binary resident (docs/decisions/daemon-memory.md).
//! `link/daemon-text-order.txt` lists the functions the daemon was seen running
//! (`bench/text-order` makes it); lld places them first, in that order. A name the code no
//! longer has is skipped: a stale list costs memory, never correctness.
//!
//! Only for optimised builds linked by Rust's own lld (the default for x86_64 Linux): a
//! configured linker (cargo-zigbuild's, a cross compiler's) may not know the option.
//! `PMR_LINK_MAP=<file>` also writes the linker's map, which `bench/text-order` reads.

use std::env;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=link/daemon-text-order.txt");
    println!("cargo:rerun-if-env-changed=PMR_LINK_MAP");
    let target = env::var("TARGET").unwrap_or_default();
    let linker_var = format!(
        "CARGO_TARGET_{}_LINKER",
        target.to_uppercase().replace(['-', '.'], "_")
    );
    println!("cargo:rerun-if-env-changed={linker_var}");
    println!("cargo:rerun-if-env-changed=RUSTC_LINKER");
    let own_linker = env::var_os(&linker_var).is_none()
        && env::var_os("RUSTC_LINKER").is_none()
        && !env::var("CARGO_ENCODED_RUSTFLAGS")
            .unwrap_or_default()
            .contains("link");
    if target != "x86_64-unknown-linux-gnu"
        || !own_linker
        || env::var("PROFILE").as_deref() != Ok("release")
        || !links_with_lld()
    {
        return;
    }
    let dir = env::var("CARGO_MANIFEST_DIR").unwrap();
    println!(
        "cargo:rustc-link-arg-bin=pmr=-Wl,--symbol-ordering-file={dir}/link/daemon-text-order.txt"
    );
    println!("cargo:rustc-link-arg-bin=pmr=-Wl,--no-warn-symbol-ordering");
    if let Some(map) = env::var_os("PMR_LINK_MAP") {
        println!(
            "cargo:rustc-link-arg-bin=pmr=-Wl,-Map={}",
            map.to_string_lossy()
        );
    }
}

/// Rust links x86_64 Linux programs with its own lld from 1.90 on; an older compiler uses the
/// system's linker (GNU ld), which does not know `--symbol-ordering-file` and would fail the
/// link of a `cargo install` there.
fn links_with_lld() -> bool {
    let rustc = env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let Ok(out) = std::process::Command::new(rustc).arg("-vV").output() else {
        return false;
    };
    let text = String::from_utf8_lossy(&out.stdout);
    let Some(release) = text.lines().find_map(|l| l.strip_prefix("release: ")) else {
        return false;
    };
    let mut parts = release
        .split(['.', '-'])
        .map(|p| p.parse::<u32>().unwrap_or(0));
    let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    (major, minor) >= (1, 90)
}
