//! `saectl`: command-line client of the SAE management API. The work is in the library
//! (`sae_ctl`); this only parses the command line, runs it and turns the outcome into an exit
//! status.

#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::Parser;
use sae_ctl::cli::Cli;
use sae_ctl::error::EXIT_FAILURE;

fn main() -> ExitCode {
    // clap prints usage errors and exits with 2 itself.
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("saectl: cannot start the runtime: {e}");
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    let stdout = std::io::stdout();
    let stderr = std::io::stderr();
    let result = runtime.block_on(sae_ctl::run::run(
        &cli,
        &mut stdout.lock(),
        &mut stderr.lock(),
    ));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.is_broken_pipe() => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("saectl: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}
