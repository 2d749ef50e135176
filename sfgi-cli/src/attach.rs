//! `sfgi attach`: one session (see [`crate::session`]) run for a while, then its report. Also
//! the options every session takes.
use crate::report::Report;
use crate::session::{drive, open_target, AttachOptions, FrontEnd, Pace, Session};
use crate::signals::Signals;
use anyhow::Result;
use std::time::Instant;

/// `sfgi attach` needs nothing from the loop but its stop.
struct Quiet;

impl FrontEnd for Quiet {}

/// Runs one attach session and returns its report. Probes are detached before it returns, on
/// every path (the tracer is dropped with the session).
pub async fn run(opts: &AttachOptions) -> Result<Report> {
    let mut signals = Signals::new()?;
    let target = open_target(opts.pid)?;
    let mut session = Session::start(&target, opts)?;
    eprintln!(
        "sfgi: attached {} probes to PID {} ({}, {}){}",
        session.tracer().plan.sites.len(),
        target.pid,
        target.exe_display.display(),
        target.binary.build_info().go_version,
        match opts.duration {
            Some(d) => format!(" for {}", sfgi_engine::format::go_duration(d.as_secs_f64())),
            None => "; Ctrl-C to stop".to_string(),
        }
    );
    for m in &session.tracer().plan.missing {
        eprintln!(
            "sfgi: warning: no {} probe ({}): {}",
            m.probe, m.function, m.why
        );
    }
    let pace = Pace {
        poll: opts.poll_interval,
        deadline: opts.duration.map(|d| Instant::now() + d),
    };
    let stop = drive(&mut session, &mut signals, pace, None, &mut Quiet).await;
    session.finish(stop);
    Ok(session.report())
}
