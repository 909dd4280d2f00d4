//! `conode`: the command-line front of the conode library. It parses arguments, sets up logging and
//! hands everything else to `conode-core`; each subcommand lives in its own module.

mod bench;
mod bench_skipchain;
mod check;
mod logging;
mod run_nodes;
mod server;
mod setup;

use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser)]
#[command(name = "conode", version, about = "A collective-authority node (cothority server)")]
struct Cli {
    /// Debug level 0..5 (0: warnings, 1: info, 2: debug, 3-5: trace).
    #[arg(short = 'd', long = "debug", default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=5))]
    debug: u8,
    /// Path to private.toml (default: the OS config dir).
    #[arg(short = 'c', long = "config")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create the keys and config of a new conode (interactive unless --non-interactive).
    Setup(setup::SetupArgs),
    /// Run the conode described by private.toml until SIGINT/SIGTERM.
    Server(server::ServerArgs),
    /// Check that every member of a roster answers over TLS and over its client port.
    Check(check::CheckArgs),
    /// Set up and run N local conodes (like the Go run_nodes.sh), restarting crashed ones.
    RunNodes(run_nodes::RunNodesArgs),
    /// Benchmarks printing machine-readable (JSON) results.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
}

fn main() {
    let cli = Cli::parse();
    logging::init(cli.debug);
    let result = match cli.command {
        Command::Setup(a) => setup::run(a),
        Command::Server(a) => server::run(cli.config, a),
        Command::Check(a) => check::run(a),
        Command::RunNodes(a) => run_nodes::run(a),
        Command::Bench(b) => bench::run(b),
    };
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
