//! Maps the `-d 0..5` debug level to tracing filters (RUST_LOG still wins when set); log lines go
//! to stderr, coloured only on a terminal.

use tracing_subscriber::EnvFilter;

pub fn filter_for(level: u8) -> &'static str {
    match level {
        0 => "warn",
        1 => "info",
        2 => "info,conode_core=debug,conode=debug",
        3 => "debug",
        4 => "debug,conode_core=trace",
        _ => "trace",
    }
}

pub fn init(level: u8) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(filter_for(level)));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(crate::output::log_colour())
        .try_init();
}
