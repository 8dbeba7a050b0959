//! The `tailfix` command line: `run` the agent, `validate` a config.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tailfix::config::Config;

/// Entries are allocated by a source's thread and freed by a sink's: glibc's malloc serialises
/// those cross-thread frees on its arena lock (futex waits were a tenth of S1's profile);
/// mimalloc frees into per-thread pages without a lock.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "tailfix",
    version,
    about = "A log agent that turns recurring errors into proposed fixes"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the agent.
    Run {
        /// Pipeline config file.
        #[arg(short, long, default_value = "conf/tailfix.toml")]
        config: PathBuf,
        /// Reload when the config file, or a file it names (TLS certificates, programs),
        /// changes. SIGHUP and `POST /api/v1/reload` reload too.
        #[arg(long)]
        watch_config: bool,
    },
    /// Check a config file without running it; prints every problem and exits 1 if any.
    Validate {
        #[arg(short, long, default_value = "conf/tailfix.toml")]
        config: PathBuf,
    },
    /// Ask a running agent whether it is healthy (exit 0 if `GET /health` answers 200).
    Health {
        #[arg(short, long, default_value = "127.0.0.1:9598")]
        address: String,
    },
    /// List the incidents in the state store of the config's `data_dir`.
    Incidents {
        #[arg(short, long, default_value = "conf/tailfix.toml")]
        config: PathBuf,
        #[command(subcommand)]
        action: Option<IncidentsAction>,
    },
}

#[derive(Subcommand)]
enum IncidentsAction {
    /// One incident whole: its trace, the code sent, every attempt and its checks.
    Show {
        /// Its fingerprint, or the start of it (as the list shows).
        fingerprint: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tailfix::http::install_crypto_provider();
    match cli.command {
        Command::Validate { config } => validate(&config),
        Command::Health { address } => match tailfix::cli::health(&address) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("unhealthy: {error}");
                ExitCode::FAILURE
            }
        },
        Command::Incidents { config, action } => match Config::load(&config) {
            Ok(loaded) => match match action {
                None => tailfix::cli::print_incidents(&loaded.global.agent.data_dir),
                Some(IncidentsAction::Show { fingerprint }) => {
                    tailfix::cli::print_incident(&loaded.global.agent.data_dir, &fingerprint)
                }
            } {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => {
                    eprintln!("error: {error}");
                    ExitCode::FAILURE
                }
            },
            Err(errors) => {
                eprintln!("{errors}");
                ExitCode::FAILURE
            }
        },
        Command::Run {
            config,
            watch_config,
        } => {
            let loaded = match Config::load(&config) {
                Ok(loaded) => loaded,
                Err(errors) => {
                    eprintln!("{errors}");
                    return ExitCode::FAILURE;
                }
            };
            init_logging(&loaded.global.agent.log_level);
            let Some(runtime) = runtime(tokio::runtime::Builder::new_multi_thread()) else {
                return ExitCode::FAILURE;
            };
            let options = tailfix::app::RunOptions { watch_config };
            let result = runtime.block_on(tailfix::app::run_with(loaded, options));
            // Blocking threads (file readers, writers) have finished or been abandoned by the
            // shutdown deadline; do not wait on them again.
            runtime.shutdown_timeout(std::time::Duration::from_secs(1));
            match result {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => {
                    tracing::error!(%error, "tailfix stopped with an error");
                    eprintln!("error: {error}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

/// `tailfix validate`: the file's shape, then everything that can be checked without binding
/// or reading: every component built (certificates parse and match their keys, globs, model and
/// repository sections with their tokens), the API's token rules; then warnings of conditions
/// that may heal (a directory that does not exist yet, an output that cannot be written now).
fn validate(path: &std::path::Path) -> ExitCode {
    let loaded = match Config::load(path) {
        Ok(loaded) => loaded,
        Err(errors) => {
            eprintln!("{errors}");
            return ExitCode::FAILURE;
        }
    };
    // Some clients (octocrab's) start background tasks when they are built.
    let Some(runtime) = runtime(tokio::runtime::Builder::new_current_thread()) else {
        return ExitCode::FAILURE;
    };
    let _inside = runtime.enter();
    let mut errors: Vec<String> =
        tailfix::topology::check(&loaded, &tailfix::metrics::MetricsCollector::new())
            .iter()
            .map(ToString::to_string)
            .collect();
    if let Err(error) = tailfix::app::api_access(&loaded) {
        errors.push(format!("api: {error}"));
    }
    for error in &errors {
        eprintln!("{}: {error}", path.display());
    }
    if !errors.is_empty() {
        return ExitCode::FAILURE;
    }
    let warnings = tailfix::topology::warnings(&loaded);
    for warning in &warnings {
        eprintln!("{}: warning: {warning}", path.display());
    }
    println!(
        "{}: ok ({} sources, {} transforms, {} sinks{})",
        path.display(),
        loaded.sources.len(),
        loaded.transforms.len(),
        loaded.sinks.len(),
        match warnings.len() {
            0 => String::new(),
            1 => ", 1 warning".to_string(),
            n => format!(", {n} warnings"),
        }
    );
    ExitCode::SUCCESS
}

/// The async runtime, or `None` after saying why it could not start.
fn runtime(mut builder: tokio::runtime::Builder) -> Option<tokio::runtime::Runtime> {
    builder
        .enable_all()
        .build()
        .map_err(|error| eprintln!("cannot start the async runtime: {error}"))
        .ok()
}

/// Logs go to stderr (stdout belongs to the console sink). `RUST_LOG` overrides `log_level`.
fn init_logging(level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(level))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let format = tracing_subscriber::fmt::layer()
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    // What the log shows, the `internal_logs` source can ship.
    tracing_subscriber::registry()
        .with(filter)
        .with(format)
        .with(tailfix::internal_log::CaptureLayer)
        .init();
}
