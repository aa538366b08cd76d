//! `warmer`: parse the command line, run it, map errors to exit codes.

use clap::Parser;
use session_warmer::logging::LogFormat;
use std::process::ExitCode;

fn main() -> ExitCode {
    // Everything the store or exports write is private to the user.
    // SAFETY: umask(2) has no memory-safety preconditions.
    unsafe { libc::umask(0o077) };
    let cli = session_warmer::cli::Cli::parse();
    let filter = cli
        .log
        .clone()
        .or_else(|| std::env::var("RUST_LOG").ok())
        .unwrap_or_else(|| match cli.command {
            session_warmer::cli::Command::Demo { .. } | session_warmer::cli::Command::Serve => {
                "info".into()
            }
            _ => "warn".into(),
        });
    let format = cli.log_format;
    {
        use std::io::IsTerminal as _;
        use tracing_subscriber::util::SubscriberInitExt as _;
        // Colours only for a person at a terminal: a log file or a pipe gets plain text.
        let ansi = std::io::stderr().is_terminal()
            && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
        session_warmer::logging::subscriber(&filter, format, ansi, std::io::stderr).init();
    }
    for d in session_warmer::logging::invalid_directives(&filter) {
        tracing::warn!("log filter: ignoring invalid directive {d:?}");
    }
    let rt = match session_warmer::daemon::runtime() {
        Ok(rt) => rt,
        Err(e) => {
            fatal(format, &format!("starting the runtime: {e}"));
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(session_warmer::cli::run(cli)) {
        Ok(code) => code,
        Err(e) => {
            fatal(format, &format!("{e:#}"));
            ExitCode::from(2)
        }
    }
}

/// The error that ends the run: `error: ...` on stderr for a person, or one more JSON line
/// (an `ERROR` event) when the log is JSON, so a shipper reading stderr gets only JSON.
fn fatal(format: LogFormat, message: &str) {
    match format {
        LogFormat::Json if tracing::enabled!(tracing::Level::ERROR) => {
            tracing::error!("{message}")
        }
        // Text, or a JSON log filtered to nothing: the error is still said.
        _ => eprintln!("error: {message}"),
    }
}
