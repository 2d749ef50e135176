//! `sfgi watch --listen ADDR`: the HTTP endpoints, served from the watch loop's snapshots.
//!
//! | endpoint | answer |
//! | --- | --- |
//! | `GET /sfgi/leaks` | JSON array of leak groups (`growing`, `suspect`, `proven`), most severe first, each exactly the engine's `Leak` JSON. `?status=growing,suspect`, `?min_severity=L2`. `?view=goroutines[&limit=100][&offset=0]`: `{"total","offset","limit","goroutines":[{id, group, duration, first_seen, stack_trace}]}` (limit ≤ 1000) |
//! | `GET /sfgi/groups` | every group, `resident` and `normal` included (same fields and filters) |
//! | `GET /sfgi/profile` | goroutines per state and per leak group, one sample per 5 min over the last hour plus now, Prometheus text with timestamps |
//! | `POST /sfgi/trigger-scan` | re-reads the inventory and re-judges: `{"scanned","leaked","duration_ms"}`. Concurrent requests share one scan; within a second of the last scan the request gets that scan's result (header `x-sfgi-scan: reused`, else `new`) — never a 429 |
//! | `GET /metrics` | Prometheus metrics (`prometheus-client`) |
//!
//! Unknown paths get 404, wrong methods 405 (with `Allow`), bad query parameters 400 (JSON
//! `{"error": ...}`). With `--token` every request needs `Authorization: Bearer TOKEN` (else 401).
//! Request bodies over 1 KiB get 413; a request that takes longer than 10 s gets 503. A client
//! must send a request's headers within 5 s of starting them (else the connection is closed: no
//! slowloris), and at most 64 connections are open at once (more are closed on accept), so
//! SFGI's memory stays bounded whatever connects.
//!
//! The server runs on its own thread and runtime; it never touches the session, only the
//! published [`Snapshot`]s and the trigger channel.
use crate::metrics;
use crate::snapshot::{Snapshot, TriggerRequest};
use anyhow::{bail, Context, Result};
use axum::extract::{DefaultBodyLimit, Query, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use prometheus_client::metrics::histogram::Histogram;
use sfgi_engine::engine::Leak;
use sfgi_engine::judge::{Severity, Status};
use std::collections::HashMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};

/// Largest request body accepted.
pub const BODY_LIMIT: usize = 1024;
/// Longest a request may take.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Default page size of `?view=goroutines`.
pub const DEFAULT_LIMIT: usize = 100;
/// Largest page size of `?view=goroutines`.
pub const MAX_LIMIT: usize = 1000;
/// Longest a client may take to send a request's headers.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(5);
/// Most connections served at once; further ones are closed as soon as they are accepted.
pub const MAX_CONNECTIONS: usize = 64;

/// What the handlers share.
#[derive(Clone)]
pub struct ServeState {
    /// The newest snapshot.
    pub snapshot: watch::Receiver<Arc<Snapshot>>,
    /// Scan requests to the watch loop.
    pub trigger: mpsc::Sender<TriggerRequest>,
    /// Scan durations (shared with the watch loop).
    pub scans: Histogram,
    /// Bearer token required, if any.
    pub token: Option<String>,
}

/// `--listen` address: `:9090` and `9090` mean `127.0.0.1:9090`; `127.0.0.1:9090`, `[::1]:9090`,
/// `0.0.0.0:9090` and `host:port` are taken as given.
pub fn parse_listen(s: &str) -> Result<SocketAddr> {
    let s = s.trim();
    let port_only = s.strip_prefix(':').unwrap_or(s);
    if let Ok(port) = port_only.parse::<u16>() {
        return Ok(SocketAddr::from(([127, 0, 0, 1], port)));
    }
    if let Ok(a) = s.parse::<SocketAddr>() {
        return Ok(a);
    }
    if s.rsplit_once(':')
        .is_none_or(|(h, p)| h.is_empty() || p.parse::<u16>().is_err())
    {
        bail!("bad --listen address {s:?} (examples: :9090, 127.0.0.1:9090, [::1]:9090)");
    }
    s.to_socket_addrs()
        .with_context(|| format!("resolving --listen address {s:?}"))?
        .next()
        .with_context(|| format!("--listen address {s:?} resolves to nothing"))
}

/// Binds the `--listen` address (before anything slow, so a bad or busy address fails in
/// milliseconds).
pub fn bind(text: &str) -> Result<std::net::TcpListener> {
    let addr = parse_listen(text)?;
    std::net::TcpListener::bind(addr).with_context(|| format!("listening on {addr}"))
}

/// Serves the endpoints on `listener` ([`start`]), warns on stderr when stacks go out on a
/// non-loopback address without a token, and says where it serves (`sfgi: serving on
/// http://ADDR`, the line scripts and tests wait for). Returns the server and its URL.
pub fn serve_announced(
    listener: std::net::TcpListener,
    state: ServeState,
) -> Result<(Server, String)> {
    let bound = listener.local_addr().context("reading the bound address")?;
    if !bound.ip().is_loopback() && state.token.is_none() {
        eprintln!(
            "sfgi: warning: serving goroutine stacks on {bound} (not loopback) without --token"
        );
    }
    let server = start(listener, state)?;
    eprintln!("sfgi: serving on http://{bound}");
    Ok((server, format!("http://{bound}")))
}

/// A running HTTP server.
pub struct Server {
    stop: Option<oneshot::Sender<()>>,
    done: std::sync::mpsc::Receiver<()>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    /// Stops accepting, lets requests in flight finish for up to `wait`, then returns.
    pub fn stop(mut self, wait: Duration) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if self.done.recv_timeout(wait).is_ok() {
            if let Some(t) = self.thread.take() {
                let _ = t.join();
            }
        }
    }
}

/// Serves the endpoints on `listener` from a thread of its own.
pub fn start(listener: std::net::TcpListener, state: ServeState) -> Result<Server> {
    start_router(listener, router(state))
}

/// Serves `app` (already [`guarded`]) on `listener` from a thread of its own, with the same
/// connection limits as `watch --listen` (the agent's endpoints).
pub fn start_router(listener: std::net::TcpListener, app: Router) -> Result<Server> {
    listener
        .set_nonblocking(true)
        .context("configuring the listening socket")?;
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the HTTP runtime")?;
    let thread = std::thread::Builder::new()
        .name("sfgi-http".into())
        .spawn(move || {
            let res = rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener)?;
                serve_connections(listener, app, stop_rx).await
            });
            if let Err(e) = res {
                eprintln!("sfgi: HTTP server stopped: {e}");
            }
            let _ = done_tx.send(());
        })
        .context("starting the HTTP thread")?;
    Ok(Server {
        stop: Some(stop_tx),
        done: done_rx,
        thread: Some(thread),
    })
}

/// The accept loop (instead of `axum::serve`, which sets no header-read timeout and no
/// connection limit): each connection is served by hyper's HTTP/1 server with a
/// [`HEADER_READ_TIMEOUT`], at most [`MAX_CONNECTIONS`] at once. On `stop`, accepting stops and
/// open connections finish their request in flight (graceful shutdown).
async fn serve_connections(
    listener: tokio::net::TcpListener,
    app: Router,
    mut stop: oneshot::Receiver<()>,
) -> std::io::Result<()> {
    use hyper_util::rt::{TokioIo, TokioTimer};
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    let (closing_tx, closing_rx) = watch::channel(false);
    let mut conns = tokio::task::JoinSet::new();
    loop {
        let stream = tokio::select! {
            _ = &mut stop => break,
            Some(_) = conns.join_next(), if !conns.is_empty() => continue,
            r = listener.accept() => match r {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of fds or a connection reset before accept: back off, keep serving.
                    log::debug!("accept: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            drop(stream);
            continue;
        };
        let svc = hyper_util::service::TowerToHyperService::new(app.clone());
        let mut closing = closing_rx.clone();
        conns.spawn(async move {
            let _slot = slot;
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT)
                .serve_connection(TokioIo::new(stream), svc);
            let mut conn = std::pin::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                _ = closing.changed() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
        });
    }
    drop(listener);
    let _ = closing_tx.send(true);
    while conns.join_next().await.is_some() {}
    Ok(())
}

/// The routes.
pub fn router(state: ServeState) -> Router {
    let app = Router::new()
        .route("/sfgi/leaks", get(leaks))
        .route("/sfgi/groups", get(groups))
        .route("/sfgi/profile", get(profile))
        .route("/sfgi/trigger-scan", post(trigger_scan))
        .route("/metrics", get(metrics_handler))
        .fallback(not_found)
        .with_state(state.clone());
    guarded(app, state.token)
}

/// `app` behind the rules every SFGI endpoint follows: the optional bearer token, the body limit
/// and the request time limit.
pub fn guarded(app: Router, token: Option<String>) -> Router {
    app.layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(middleware::from_fn_with_state(Arc::new(token), guard))
}

pub(crate) fn error(status: StatusCode, msg: impl Into<String>) -> Response {
    (status, Json(serde_json::json!({ "error": msg.into() }))).into_response()
}

/// Auth, body size, time limit.
async fn guard(State(token): State<Arc<Option<String>>>, req: Request, next: Next) -> Response {
    if let Some(token) = token.as_ref() {
        let ok = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .is_some_and(|t| constant_time_eq(t.trim().as_bytes(), token.as_bytes()));
        if !ok {
            let mut r = error(StatusCode::UNAUTHORIZED, "missing or wrong bearer token");
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"sfgi\""),
            );
            return r;
        }
    }
    let too_big = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .is_some_and(|n| n > BODY_LIMIT as u64);
    if too_big {
        return error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body over {BODY_LIMIT} bytes"),
        );
    }
    match tokio::time::timeout(REQUEST_TIMEOUT, next.run(req)).await {
        Ok(r) => r,
        Err(_) => error(StatusCode::SERVICE_UNAVAILABLE, "request timed out"),
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

pub(crate) async fn not_found() -> Response {
    error(StatusCode::NOT_FOUND, "not found")
}

/// `?status=` and `?min_severity=`.
pub(crate) struct Filter {
    statuses: Option<Vec<Status>>,
    min_severity: Option<Severity>,
}

impl Filter {
    pub(crate) fn parse(q: &HashMap<String, String>, allowed: &[Status]) -> Result<Filter, String> {
        let statuses = match q.get("status") {
            None => None,
            Some(s) => {
                let mut v = Vec::new();
                for name in s.split(',').map(str::trim).filter(|n| !n.is_empty()) {
                    match allowed.iter().find(|st| st.as_str() == name) {
                        Some(&st) => v.push(st),
                        None => {
                            let names: Vec<&str> = allowed.iter().map(|s| s.as_str()).collect();
                            return Err(format!(
                                "unknown status {name:?} (one of: {})",
                                names.join(", ")
                            ));
                        }
                    }
                }
                Some(v)
            }
        };
        let min_severity = match q.get("min_severity") {
            None => None,
            Some(s) => Some(
                Severity::parse(s)
                    .ok_or_else(|| format!("bad min_severity {s:?} (L1, L2, L3 or L4)"))?,
            ),
        };
        Ok(Filter {
            statuses,
            min_severity,
        })
    }

    pub(crate) fn keeps(&self, g: &Leak) -> bool {
        self.statuses.as_ref().is_none_or(|s| s.contains(&g.status))
            && self
                .min_severity
                .is_none_or(|min| g.severity.is_some_and(|s| s >= min))
    }
}

pub(crate) const LEAK_STATUSES: [Status; 3] = [Status::Proven, Status::Growing, Status::Suspect];
pub(crate) const ALL_STATUSES: [Status; 5] = [
    Status::Proven,
    Status::Growing,
    Status::Suspect,
    Status::Resident,
    Status::Normal,
];

pub(crate) fn check_params(q: &HashMap<String, String>, known: &[&str]) -> Result<(), String> {
    match q.keys().find(|k| !known.contains(&k.as_str())) {
        Some(k) => Err(format!(
            "unknown parameter {k:?} (known: {})",
            known.join(", ")
        )),
        None => Ok(()),
    }
}

fn parse_usize(q: &HashMap<String, String>, key: &str, default: usize) -> Result<usize, String> {
    match q.get(key) {
        None => Ok(default),
        Some(v) => v
            .trim()
            .parse()
            .map_err(|_| format!("{key} must be a non-negative integer, not {v:?}")),
    }
}

pub(crate) type QueryParams =
    Result<Query<HashMap<String, String>>, axum::extract::rejection::QueryRejection>;

pub(crate) fn query(q: QueryParams) -> Result<HashMap<String, String>, String> {
    q.map(|Query(q)| q).map_err(|e| e.body_text())
}

/// A handler's answer, or the message of a 400.
pub(crate) fn answer(r: Result<Response, String>) -> Response {
    r.unwrap_or_else(|e| error(StatusCode::BAD_REQUEST, e))
}

/// One goroutine in `?view=goroutines`.
#[derive(serde::Serialize)]
struct GoroutineView<'a> {
    id: u64,
    group: &'a str,
    duration: String,
    first_seen: String,
    stack_trace: &'a str,
}

#[derive(serde::Serialize)]
struct GoroutinePage<'a> {
    total: usize,
    offset: usize,
    limit: usize,
    goroutines: Vec<GoroutineView<'a>>,
}

async fn leaks(State(st): State<ServeState>, q: QueryParams) -> Response {
    answer(leaks_inner(&st, q))
}

fn leaks_inner(st: &ServeState, q: QueryParams) -> Result<Response, String> {
    let q = query(q)?;
    check_params(&q, &["status", "min_severity", "view", "limit", "offset"])?;
    let filter = Filter::parse(&q, &LEAK_STATUSES)?;
    let snap = st.snapshot.borrow().clone();
    match q.get("view").map(String::as_str) {
        None | Some("groups") => {
            let v: Vec<&Leak> = snap
                .report
                .leaks
                .iter()
                .filter(|g| filter.keeps(g))
                .collect();
            Ok(Json(v).into_response())
        }
        Some("goroutines") => {
            let limit = parse_usize(&q, "limit", DEFAULT_LIMIT)?.min(MAX_LIMIT);
            let offset = parse_usize(&q, "offset", 0)?;
            let groups = &snap.report.groups;
            let keep: Vec<bool> = groups
                .iter()
                .map(|g| g.status.is_leak() && filter.keeps(g))
                .collect();
            let mut total = 0;
            let mut page = Vec::new();
            for m in &snap.members {
                if !keep[m.group as usize] {
                    continue;
                }
                if total >= offset && page.len() < limit {
                    let g = &groups[m.group as usize];
                    page.push(GoroutineView {
                        id: m.goid,
                        group: &g.id,
                        duration: snap.member_duration(m),
                        first_seen: snap.member_first_seen(m),
                        stack_trace: &g.stack_trace,
                    });
                }
                total += 1;
            }
            Ok(Json(GoroutinePage {
                total,
                offset,
                limit,
                goroutines: page,
            })
            .into_response())
        }
        Some(v) => Err(format!("unknown view {v:?} (groups or goroutines)")),
    }
}

async fn groups(State(st): State<ServeState>, q: QueryParams) -> Response {
    answer(groups_inner(&st, q))
}

fn groups_inner(st: &ServeState, q: QueryParams) -> Result<Response, String> {
    let q = query(q)?;
    check_params(&q, &["status", "min_severity"])?;
    let filter = Filter::parse(&q, &ALL_STATUSES)?;
    let snap = st.snapshot.borrow().clone();
    let v: Vec<&Leak> = snap
        .report
        .groups
        .iter()
        .filter(|g| filter.keeps(g))
        .collect();
    Ok(Json(v).into_response())
}

pub(crate) fn prometheus_text(body: String) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static(metrics::CONTENT_TYPE),
        )],
        body,
    )
        .into_response()
}

async fn profile(State(st): State<ServeState>) -> Response {
    let snap = st.snapshot.borrow().clone();
    prometheus_text(metrics::encode_profile(&snap))
}

async fn metrics_handler(State(st): State<ServeState>) -> Response {
    let snap = st.snapshot.borrow().clone();
    prometheus_text(metrics::encode_metrics(&snap, &st.scans))
}

async fn trigger_scan(State(st): State<ServeState>) -> Response {
    let (tx, rx) = oneshot::channel();
    if st.trigger.send(tx).await.is_err() {
        return error(StatusCode::SERVICE_UNAVAILABLE, "detaching: no more scans");
    }
    match rx.await {
        Ok(reply) => {
            let mut r = Json(reply.result).into_response();
            r.headers_mut().insert(
                "x-sfgi-scan",
                HeaderValue::from_static(if reply.fresh { "new" } else { "reused" }),
            );
            r
        }
        Err(_) => error(StatusCode::SERVICE_UNAVAILABLE, "detaching: no more scans"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_addresses() {
        let a = |s: &str| parse_listen(s).unwrap().to_string();
        assert_eq!(a(":9090"), "127.0.0.1:9090");
        assert_eq!(a("9090"), "127.0.0.1:9090");
        assert_eq!(a("127.0.0.1:9090"), "127.0.0.1:9090");
        assert_eq!(a("[::1]:9090"), "[::1]:9090");
        assert_eq!(a("0.0.0.0:9090"), "0.0.0.0:9090");
        assert_eq!(a(":0"), "127.0.0.1:0");
        assert!(parse_listen("nonsense").is_err());
        assert!(parse_listen(":99999").is_err());
        assert!(parse_listen("[::1]").is_err());
    }

    #[test]
    fn token_comparison() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
