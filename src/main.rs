fn main() {
    std::process::exit(pmr::cli::main());
}
