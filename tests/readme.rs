//! The README documents every app option: its table is generated from the option table in
//! `crates/config/src/options.rs`, and this test keeps the two in sync.

#[test]
fn readme_has_the_current_options_table() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let table = pmr_config::options::option_table_markdown();
    if !readme.contains(table.trim()) {
        let path = std::env::temp_dir().join("pmr-options-table.md");
        std::fs::write(&path, &table).unwrap();
        panic!(
            "README.md's options table is out of date: paste {} into it",
            path.display()
        );
    }
}
