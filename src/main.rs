//! The `orderpipe` binary: parse the command line and hand over to the library.

use clap::Parser;

fn main() -> std::process::ExitCode {
    orderpipe::cli::main(orderpipe::cli::Cli::parse())
}
