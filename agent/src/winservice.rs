//! Running under the Windows Service Control Manager (`sightline-agent service`), behind
//! `cfg(windows)`. The SCM starts the process, the dispatcher hands this thread to it, and a
//! Stop or Shutdown control becomes the same graceful shutdown SIGTERM is on Unix.
//!
//! Built for `x86_64-pc-windows-gnu` in CI; the MSI installs it and Wine's SCM starts it
//! (scripts/cross-platform.sh).
// The dispatcher's entry point is an FFI callback the windows-service macro generates with
// an `unsafe` block (FFI is confined to this module, `macos/`, `windows/` and `keys::{pcp,enclave}`).
#![allow(unsafe_code)]

use std::ffi::OsString;
use std::time::Duration;

use anyhow::Context;
use windows_service::service::{
    ServiceControl, ServiceControlAccept, ServiceExitCode, ServiceState, ServiceStatus, ServiceType,
};
use windows_service::service_control_handler::{self, ServiceControlHandlerResult};
use windows_service::{define_windows_service, service_dispatcher};

use crate::config::RawConfig;
use crate::deliver::DeliverOptions;
use crate::keys::KeyChoice;
use crate::run::{RunOptions, run};

/// The name the MSI registers the service under.
pub const SERVICE_NAME: &str = "SightlineAgent";

define_windows_service!(ffi_service_main, service_main);

/// Hands this process to the SCM; returns when the service has stopped.
pub fn dispatch() -> anyhow::Result<()> {
    service_dispatcher::start(SERVICE_NAME, ffi_service_main).context("starting the service dispatcher")
}

fn service_main(_arguments: Vec<OsString>) {
    if let Err(e) = run_service() {
        tracing::error!(error = %format!("{e:#}"), "Service stopped with an error.");
    }
}

fn run_service() -> anyhow::Result<()> {
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let stop_tx = std::sync::Mutex::new(Some(stop_tx));
    let handler = move |control| match control {
        ServiceControl::Stop | ServiceControl::Shutdown => {
            if let Some(tx) = stop_tx.lock().unwrap_or_else(|p| p.into_inner()).take() {
                tx.send(()).ok();
            }
            ServiceControlHandlerResult::NoError
        }
        ServiceControl::Interrogate => ServiceControlHandlerResult::NoError,
        _ => ServiceControlHandlerResult::NotImplemented,
    };
    let status =
        service_control_handler::register(SERVICE_NAME, handler).context("registering with the SCM")?;
    let report = |state: ServiceState, accept: ServiceControlAccept, code: u32| {
        status.set_service_status(ServiceStatus {
            service_type: ServiceType::OWN_PROCESS,
            current_state: state,
            controls_accepted: accept,
            exit_code: ServiceExitCode::Win32(code),
            checkpoint: 0,
            wait_hint: Duration::from_secs(15),
            process_id: None,
        })
    };
    report(ServiceState::Running, ServiceControlAccept::STOP | ServiceControlAccept::SHUTDOWN, 0)?;

    let result = (|| -> anyhow::Result<()> {
        let config = RawConfig::load(None)?.resolve()?;
        let grace = config.shutdown_grace;
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let opts = RunOptions {
            config,
            once: false,
            key_backend: KeyChoice::Auto,
            deliver: DeliverOptions::default(),
        };
        let r = rt.block_on(run(opts, async {
            stop_rx.await.ok();
        }));
        rt.shutdown_timeout(grace);
        r.map(|_| ())
    })();
    report(ServiceState::Stopped, ServiceControlAccept::empty(), u32::from(result.is_err()))?;
    result
}
