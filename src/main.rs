#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    sealtrail::cli::run()
}
