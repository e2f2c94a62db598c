//! Waiting for the platform's shutdown request: SIGTERM or SIGINT on Unix, Ctrl-C elsewhere.
//! (The agent has its own copy in spirit: the two binaries share only the wire-contract
//! crate, and a signal helper does not belong in the contract.)

pub async fn signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            tracing::info!("Shutdown requested; finishing open requests.");
            return;
        }
    }
    if let Err(e) = tokio::signal::ctrl_c().await {
        tracing::warn!(error = %e, "Cannot listen for Ctrl-C; stop the collector with a signal.");
        std::future::pending::<()>().await;
    }
    tracing::info!("Shutdown requested; finishing open requests.");
}
