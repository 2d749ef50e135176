//! What ends a long-running command from outside: SIGINT and SIGTERM (any Unix), or a stop
//! flag. Used by THE session loop (`session::drive`, Linux) and by `attach|watch --pprof`
//! (every OS).
use anyhow::{Context, Result};
use tokio::signal::unix::{signal, Signal, SignalKind};

/// What ends a session loop from outside: SIGINT and SIGTERM listeners, made once per process
/// run before anything slow (`attach`, `watch`), or a stop flag set by whoever runs the session
/// (`agent`, whose sessions each run on a thread of their own and are stopped by the agent).
pub struct Signals {
    inner: SignalSource,
}

enum SignalSource {
    Os {
        interrupt: Signal,
        terminate: Signal,
    },
    Stop(tokio::sync::watch::Receiver<bool>),
}

impl Signals {
    /// Installs the listeners. From here on a Ctrl-C is recorded even while the session is busy
    /// (attaching, reading the inventory) and ends it at the next turn of the loop.
    pub fn new() -> Result<Signals> {
        Ok(Signals {
            inner: SignalSource::Os {
                interrupt: signal(SignalKind::interrupt()).context("listening for SIGINT")?,
                terminate: signal(SignalKind::terminate()).context("listening for SIGTERM")?,
            },
        })
    }

    /// Stops when `stop` turns true (or its sender is dropped): the agent's per-target sessions.
    pub fn from_stop(stop: tokio::sync::watch::Receiver<bool>) -> Signals {
        Signals {
            inner: SignalSource::Stop(stop),
        }
    }

    /// Resolves when SIGINT or SIGTERM arrived (at once if one came since the last call), or the
    /// stop flag is set.
    pub async fn recv(&mut self) {
        match &mut self.inner {
            SignalSource::Os {
                interrupt,
                terminate,
            } => {
                tokio::select! {
                    _ = interrupt.recv() => {}
                    _ = terminate.recv() => {}
                }
            }
            SignalSource::Stop(rx) => {
                let _ = rx.wait_for(|v| *v).await;
            }
        }
    }
}
