//! `sightline-agent`: parse the command line, set up logging, dispatch.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use sightline_agent::catalog::Catalog;
use sightline_agent::config::RawConfig;
use sightline_agent::deliver::DeliverOptions;
use sightline_agent::detect::Limits;
use sightline_agent::enroll::{EnrollOptions, enroll};
use sightline_agent::keys::KeyChoice;
use sightline_agent::run::{RunOptions, run};
use sightline_agent::scan::{self, ScanOptions};
use sightline_agent::secret::Fingerprinter;
use sightline_agent::state::{self, StateDir};
use sightline_agent::{damage, report, shutdown};

#[derive(Parser)]
#[command(
    name = "sightline-agent",
    version,
    about = "Finds AI connectors on this device and reports them to the Sightline collector."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Scan once and print what was found. Reads only; writes nothing but its own state dir.
    Scan {
        /// Root of the filesystem to scan (a mounted image or a test tree).
        #[arg(long, default_value_os_t = scan::default_root())]
        root: PathBuf,
        /// Skip live process detection.
        #[arg(long)]
        no_processes: bool,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
        /// State dir whose (org) fingerprint key to use.
        #[arg(long)]
        state_dir: Option<PathBuf>,
        /// Configuration whose `activity` and `activity_paths` apply (default: the agent's
        /// own, with the MDM-managed values over it), so a scan reads no more than `run` would.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Enroll this device with a collector using a one-time token.
    Enroll {
        #[arg(long)]
        server: String,
        /// The one-time enrollment token.
        #[arg(long, required_unless_present = "token_file", conflicts_with = "token_file")]
        token: Option<String>,
        /// Read the token from a file (keeps it out of the process list; MDMs drop it there).
        #[arg(long)]
        token_file: Option<PathBuf>,
        /// CA certificate (PEM) the collector's certificate chains to.
        #[arg(long)]
        ca: Option<PathBuf>,
        #[arg(long)]
        state_dir: Option<PathBuf>,
        #[arg(long, value_enum, default_value_t = KeyChoice::Auto)]
        key_backend: KeyChoice,
    },
    /// Scan and stream findings to the collector, continuously or once.
    Run {
        #[arg(long)]
        config: Option<PathBuf>,
        #[arg(long)]
        state_dir: Option<PathBuf>,
        #[arg(long)]
        root: Option<PathBuf>,
        /// One full scan, deliver, wait for the acknowledgement, exit.
        #[arg(long)]
        once: bool,
        #[arg(long, value_enum, default_value_t = KeyChoice::Auto)]
        key_backend: KeyChoice,
    },
    /// Run under the Windows Service Control Manager (the MSI registers this).
    #[cfg(windows)]
    Service,
    /// Validate the configuration (file and MDM-managed values) and print what it resolves to.
    CheckConfig {
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Credential files that revocation moved into the quarantine: list them, or put one
    /// directive's files back where they were (withdraw the revocation first).
    Quarantine {
        #[command(subcommand)]
        command: QuarantineCommand,
    },
}

#[derive(Subcommand)]
enum QuarantineCommand {
    /// What is held, by directive, with where it came from.
    List {
        #[arg(long)]
        state_dir: Option<PathBuf>,
    },
    /// Move one directive's files back to their original paths, owners and modes.
    Restore {
        directive: String,
        #[arg(long)]
        state_dir: Option<PathBuf>,
        #[arg(long, default_value_os_t = scan::default_root())]
        root: PathBuf,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Table,
    Json,
}

fn main() -> ExitCode {
    // Before any thread starts: the OS's local offset is readable soundly only now.
    sightline_agent::detect::activity::set_local_offset_s(
        sightline_agent::detect::activity::read_local_offset_s(),
    );
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SIGHTLINE_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    match real_main(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("sightline-agent: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn real_main(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Scan { root, no_processes, format, state_dir, config } => {
            let config = RawConfig::load(config.as_deref())?.resolve()?;
            let activity = sightline_agent::detect::activity::Settings {
                enabled: config.activity,
                plain_paths: config.activity_plain_paths,
            };
            let catalog = Catalog::builtin()?;
            let fp = match state_dir {
                Some(dir) => StateDir::open(&dir)?.fingerprinter()?,
                None => default_fingerprinter(),
            };
            let report = scan::run(
                &ScanOptions { root, processes: !no_processes, limits: Limits::default(), activity },
                &catalog,
                &fp,
            )?;
            let text = match format {
                Format::Json => serde_json::to_string_pretty(&report::to_json(&report))? + "\n",
                Format::Table => report::to_table(&report),
            };
            let mut out = std::io::stdout().lock();
            match out.write_all(text.as_bytes()) {
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
                r => r.context("writing output")?,
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Enroll { server, token, token_file, ca, state_dir, key_backend } => {
            let token = match (token, token_file) {
                (Some(t), _) => t,
                (None, Some(p)) => std::fs::read_to_string(&p)
                    .with_context(|| format!("reading enrollment token {}", p.display()))?
                    .trim()
                    .to_owned(),
                (None, None) => anyhow::bail!("--token or --token-file is required"),
            };
            let ca = ca.context("--ca is required: the CA certificate the collector's certificate chains to (serve --dev writes it to DATA_DIR/ca.pem)")?;
            let ca_pem =
                std::fs::read(&ca).with_context(|| format!("reading CA certificate {}", ca.display()))?;
            let state = StateDir::open(&state_dir.unwrap_or_else(state::default_dir))?;
            let rt = runtime()?;
            let e = rt.block_on(enroll(&state, &EnrollOptions { server, token, ca_pem, key_backend }))?;
            println!("enrolled device {} with {} (assurance: {})", e.device_id, e.server_url, e.assurance);
            Ok(ExitCode::SUCCESS)
        }
        Command::Run { config, state_dir, root, once, key_backend } => {
            let mut raw = RawConfig::load(config.as_deref())?;
            raw.state_dir = state_dir.or(raw.state_dir);
            raw.root = root.or(raw.root);
            let config = raw.resolve()?;
            if config.nice > 0 {
                sightline_agent::govern::lower_priority(config.nice);
            }
            let grace = config.shutdown_grace;
            let state_dir = config.state_dir.clone();
            // One thread drives the stream and the timers; scans run on the blocking pool.
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .max_blocking_threads(4)
                .build()
                .context("starting the async runtime")?;
            let result = rt.block_on(run(
                RunOptions { config, once, key_backend, deliver: DeliverOptions::default() },
                shutdown::signal(),
            ));
            // A look still running on a blocking thread must not hold the exit hostage.
            rt.shutdown_timeout(grace);
            match result {
                Ok(_) => Ok(ExitCode::SUCCESS),
                Err(e) if damage::needs_enrollment(&e) => Ok(needs_enrollment(&state_dir, &e)),
                Err(e) => Err(e),
            }
        }
        #[cfg(windows)]
        Command::Service => {
            sightline_agent::winservice::dispatch()?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Quarantine { command } => {
            use sightline_agent::enforce::quarantine;
            let (state_dir, restore) = match command {
                QuarantineCommand::List { state_dir } => (state_dir, None),
                QuarantineCommand::Restore { directive, state_dir, root } => {
                    (state_dir, Some((directive, root)))
                }
            };
            let q = state_dir.unwrap_or_else(state::default_dir).join("quarantine");
            match restore {
                None => {
                    let held = quarantine::list(&q)?;
                    if held.is_empty() {
                        println!("The quarantine is empty.");
                    }
                    for h in held {
                        println!(
                            "{}  {}  from {}  ({} {})",
                            h.directive_id,
                            h.stored.display(),
                            h.record["original_path"].as_str().unwrap_or("?"),
                            h.record["provider"].as_str().unwrap_or(""),
                            h.record["fingerprint"].as_str().unwrap_or("")
                        );
                    }
                }
                Some((directive, root)) => {
                    for p in quarantine::restore(&q, &root, &directive)? {
                        println!("restored {p}");
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::CheckConfig { config } => {
            let c = RawConfig::load(config.as_deref())?.resolve()?;
            println!("{c:#?}");
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The way out of a damaged identity: say what is wrong and how to enroll again, set the
/// damaged files aside so enrollment can proceed, and exit with a status the service
/// manager does not restart on (no loop of identical failures).
fn needs_enrollment(state_dir: &std::path::Path, e: &anyhow::Error) -> ExitCode {
    let moved = StateDir::open(state_dir).and_then(|s| damage::retire(&s, e));
    eprintln!("sightline-agent: {e:#}");
    match moved {
        Ok(m) if !m.is_empty() => {
            let m: Vec<String> = m.iter().map(|p| p.display().to_string()).collect();
            eprintln!("sightline-agent: set aside for inspection: {}", m.join(", "));
        }
        Ok(_) => {}
        Err(e) => eprintln!("sightline-agent: could not set the damaged files aside: {e:#}"),
    }
    eprintln!(
        "sightline-agent: enroll this agent again (`sightline-agent enroll --server URL --token TOKEN --ca CA.pem`, \
         or have the MDM provide a new enrollment token); exiting with status {} so it is not restarted until then",
        state::EXIT_NEEDS_ENROLLMENT
    );
    ExitCode::from(state::EXIT_NEEDS_ENROLLMENT)
}

/// Without `--state-dir`, use the installed agent's key if it is enrolled and readable;
/// otherwise a throwaway key (fingerprints then only compare within this one run).
fn default_fingerprinter() -> Fingerprinter {
    let dir = state::default_dir();
    if dir.join("enrollment.json").exists()
        && let Ok(key) = std::fs::read(dir.join("org-fingerprint.key"))
    {
        return Fingerprinter::new(&key, true);
    }
    Fingerprinter::new(&state::random_bytes(32).unwrap_or_default(), false)
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the async runtime")
}
