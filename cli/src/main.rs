//! `conode`: the command-line front of the conode library. It parses arguments, sets up logging and
//! hands everything else to `conode-core`; each subcommand lives in its own module.

/// `println!` for a command's result, without its panic when stdout's reader has gone (see
/// `output::line`).
macro_rules! outln {
    () => {{
        $crate::output::line(format_args!(""));
    }};
    ($($arg:tt)*) => {{
        $crate::output::line(format_args!($($arg)*));
    }};
}

mod backup;
mod beacon;
mod bench;
mod bench_backup;
mod bench_hosts;
mod bench_processes;
mod bench_skipchain;
mod bench_verify;
mod check;
mod cosign;
mod input;
mod logging;
mod membership;
mod output;
mod owner_key;
mod reshare;
mod run_nodes;
mod server;
mod setup;
mod skipchain;
mod target;
mod watch;

use clap::{Parser, Subcommand};
use std::path::PathBuf;

/// The allocator of the `conode` process: jemalloc. A node allocates and frees buffers per
/// message and per block on every runtime and crypto thread, and glibc's malloc and free were
/// about a tenth of an append's CPU with many chains. With jemalloc an append took 0.83x the CPU
/// (`conode bench skipchain`, 7 members, 64 chains, runs alternated with the glibc build) for
/// 1.2x the memory per node of a one-process cluster; mimalloc saved as much CPU but took
/// 1.6 to 8 times the memory. Only the binary chooses: the library and its Python, C and uniffi
/// bindings leave the allocator to their host.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Parser)]
#[command(name = "conode", version, about = "A collective-authority node (cothority server)")]
struct Cli {
    /// Debug level 0..5 (0: warnings, 1: info, 2: debug, 3-5: trace).
    #[arg(short = 'd', long = "debug", default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=5))]
    debug: u8,
    /// Path to private.toml (default: the OS config dir).
    #[arg(short = 'c', long = "config")]
    config: Option<PathBuf>,
    /// Print each command's result as one JSON document on stdout (progress and errors go to stderr).
    #[arg(long, global = true)]
    json: bool,
    /// PEM file of CA certificates (or a self-signed server certificate) trusted for wss:// and
    /// https:// client URLs, besides the platform's store (which honours SSL_CERT_FILE).
    #[arg(long, global = true, value_name = "FILE")]
    cacert: Option<PathBuf>,
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
    /// Ask a cothority for a collective signature (JSON on stdout, and in --out).
    Sign(cosign::SignArgs),
    /// Verify a collective signature file offline against a roster.
    Verify(cosign::VerifyArgs),
    /// Skipchains: create, append, get, update (proofs), verify.
    #[command(subcommand)]
    Skipchain(skipchain::SkipchainCommand),
    /// drand-compatible randomness beacon: run the DKG, fetch and verify beacons.
    #[command(subcommand)]
    Beacon(beacon::BeaconCommand),
    /// Drop this node's beacon chain, group and share (the node must be stopped); keeps the keys.
    Reset(beacon::ResetArgs),
    /// Hot, consistent backup of the running node's database (through its local admin socket).
    Backup(backup::BackupArgs),
    /// Restore a backup into a data dir (the node then catches up from its peers before signing).
    Restore(backup::RestoreArgs),
    /// The network chain of this cothority (membership by vote).
    #[command(subcommand)]
    Network(membership::NetworkCommand),
    /// Run this node and ask to join a network (it is Pending until the members vote).
    Join(membership::JoinArgs),
    /// Propose a membership change (signed with the node's identity key or --member-key).
    #[command(subcommand)]
    Propose(membership::ProposeCommand),
    /// Vote yes or no on a proposal.
    Vote(membership::VoteArgs),
    /// List the proposals a node knows, with their tallies (JSON lines).
    Proposals(membership::ProposalsArgs),
    /// Governance member keys (separate from the nodes' keys, as CCF's consortium).
    #[command(subcommand)]
    Member(membership::MemberCommand),
    /// Benchmarks printing machine-readable (JSON) results.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
}

fn main() {
    let cli = Cli::parse();
    logging::init(cli.debug);
    output::set_json(cli.json);
    if let Err(e) = target::set_trust(cli.cacert.as_deref()) {
        eprintln!("error: --cacert: {e:#}");
        std::process::exit(1);
    }
    let result = match cli.command {
        Command::Setup(a) => setup::run(a),
        Command::Server(a) => server::run(cli.config, a),
        Command::Check(a) => check::run(a),
        Command::RunNodes(a) => run_nodes::run(a),
        Command::Sign(a) => cosign::sign(a),
        Command::Verify(a) => cosign::verify(a),
        Command::Skipchain(c) => skipchain::run(c),
        Command::Beacon(c) => beacon::run(cli.config, c),
        Command::Reset(a) => beacon::reset(cli.config, a),
        Command::Network(c) => membership::network(cli.config, c),
        Command::Join(a) => membership::join(cli.config, a),
        Command::Propose(c) => membership::propose(cli.config, c),
        Command::Vote(a) => membership::vote(cli.config, a),
        Command::Proposals(a) => membership::proposals(cli.config, a),
        Command::Member(c) => membership::member(c),
        Command::Bench(b) => bench::run(b),
        Command::Backup(a) => backup::backup(cli.config, a),
        Command::Restore(a) => backup::restore(cli.config, a),
    };
    let result = result.and_then(|()| output::stdout_failure().map_or(Ok(()), Err));
    if let Err(e) = result {
        eprintln!("error: {}", output::error_text(&e));
        std::process::exit(1);
    }
}
