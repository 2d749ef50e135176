//! The agent's HTTP endpoints (same rules as `watch --listen`: [`crate::serve::guarded`]).
//!
//! | endpoint | answer |
//! | --- | --- |
//! | `GET /sfgi/targets` | JSON array: `pid`, `ns_pid`, `exe`, `go_version`, `container`, `container_name`, `pod_uid`, `pod`, `namespace`, `state` (`tracing`, `inventory-only`, `failed`), `reason`, `attached_since`, `cgroup`; targets refused by `--max-targets` are listed `failed` with reason `refused: …` |
//! | `GET /sfgi/leaks` | every target's leak groups, each the engine's `Leak` JSON plus `pid`, `exe`, `container`, `container_name`, `pod_uid`; `?pid=`, `?status=`, `?min_severity=` |
//! | `GET /sfgi/groups` | the same over every group |
//! | `POST /sfgi/trigger-scan` | re-reads every target's inventory (or `?pid=`'s): JSON array of `{pid, scanned, leaked, duration_ms, fresh}` |
//! | `GET /metrics` | Prometheus: every `watch` series with `pid`, `exe`, `container`, `pod`, `namespace` labels, plus `sfgi_agent_targets{state}` and `sfgi_agent_target_info` |
//! | `GET /sfgi/evidence/GROUP` | the newest evidence bundle of GROUP (`?pid=`): `{dir, group, target, goroutines}` |
use super::{lock, Shared};
use crate::metrics::{self, Labels, TargetFamilies};
use crate::serve::{
    answer, check_params, error, guarded, not_found, prometheus_text, query, Filter, QueryParams,
    ALL_STATUSES, LEAK_STATUSES,
};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use sfgi_engine::judge::Status;
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::oneshot;

type St = Arc<Shared>;

/// The routes, guarded.
pub(super) fn router(shared: St) -> Router {
    let token = shared.token.clone();
    let app = Router::new()
        .route("/sfgi/targets", get(targets))
        .route("/sfgi/leaks", get(leaks))
        .route("/sfgi/groups", get(groups))
        .route("/sfgi/trigger-scan", post(trigger_scan))
        .route("/sfgi/evidence/{group}", get(evidence))
        .route("/metrics", get(metrics_handler))
        .fallback(not_found)
        .with_state(shared);
    guarded(app, token)
}

fn pid_param(q: &HashMap<String, String>) -> Result<Option<u32>, String> {
    q.get("pid")
        .map(|p| {
            p.trim()
                .parse::<u32>()
                .map_err(|_| format!("pid must be a process id, not {p:?}"))
        })
        .transpose()
}

async fn targets(State(st): State<St>) -> Response {
    let v: Vec<super::TargetView> = lock(&st.targets).values().map(|e| e.view.clone()).collect();
    Json(v).into_response()
}

fn groups_inner(st: &St, q: QueryParams, allowed: &[Status]) -> Result<Response, String> {
    let q = query(q)?;
    check_params(&q, &["pid", "status", "min_severity"])?;
    let pid = pid_param(&q)?;
    let filter = Filter::parse(&q, allowed)?;
    let snaps: Vec<_> = lock(&st.targets)
        .values()
        .filter(|e| pid.is_none_or(|p| p == e.view.target.pid))
        .filter_map(|e| Some((e.view.clone(), e.snapshot.clone()?)))
        .collect();
    let mut out = Vec::new();
    for (view, snap) in snaps {
        for g in snap
            .report
            .groups
            .iter()
            .filter(|g| allowed.contains(&g.status) && filter.keeps(g))
        {
            let mut v = serde_json::to_value(g).map_err(|e| e.to_string())?;
            if let Some(o) = v.as_object_mut() {
                o.insert("pid".into(), view.target.pid.into());
                o.insert("exe".into(), view.target.exe.clone().into());
                o.insert("container".into(), view.target.container.clone().into());
                o.insert(
                    "container_name".into(),
                    view.target.container_name.clone().into(),
                );
                o.insert("pod_uid".into(), view.target.pod_uid.clone().into());
                o.insert("pod".into(), view.target.pod.clone().into());
                o.insert("namespace".into(), view.target.namespace.clone().into());
            }
            out.push(v);
        }
    }
    Ok(Json(out).into_response())
}

async fn leaks(State(st): State<St>, q: QueryParams) -> Response {
    answer(groups_inner(&st, q, &LEAK_STATUSES))
}

async fn groups(State(st): State<St>, q: QueryParams) -> Response {
    answer(groups_inner(&st, q, &ALL_STATUSES))
}

async fn trigger_scan(State(st): State<St>, q: QueryParams) -> Response {
    let q = match query(q).and_then(|q| {
        check_params(&q, &["pid"])?;
        pid_param(&q)
    }) {
        Ok(p) => p,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    let senders: Vec<(u32, _)> = lock(&st.targets)
        .values()
        .filter(|e| q.is_none_or(|p| p == e.view.target.pid))
        .filter_map(|e| Some((e.view.target.pid, e.trigger.clone()?)))
        .collect();
    if let Some(p) = q {
        if senders.is_empty() {
            return error(
                StatusCode::NOT_FOUND,
                format!("no traced target with PID {p}"),
            );
        }
    }
    let mut waits = Vec::new();
    for (pid, tx) in senders {
        let (rtx, rrx) = oneshot::channel();
        if tx.send(rtx).await.is_ok() {
            waits.push((pid, rrx));
        }
    }
    let mut out = Vec::new();
    for (pid, rx) in waits {
        if let Ok(reply) = rx.await {
            out.push(serde_json::json!({
                "pid": pid,
                "scanned": reply.result.scanned,
                "leaked": reply.result.leaked,
                "duration_ms": reply.result.duration_ms,
                "fresh": reply.fresh,
            }));
        }
    }
    Json(out).into_response()
}

async fn evidence(State(st): State<St>, Path(group): Path<String>, q: QueryParams) -> Response {
    let pid = match query(q).and_then(|q| {
        check_params(&q, &["pid"])?;
        pid_param(&q)
    }) {
        Ok(p) => p,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    let Some(ev) = &st.evidence else {
        return error(StatusCode::NOT_FOUND, "no --evidence-dir");
    };
    let Some(dir) = ev.find(&group, pid) else {
        return error(
            StatusCode::NOT_FOUND,
            format!("no evidence for group {group:?}"),
        );
    };
    let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap_or_default();
    let json = |f: &str| serde_json::from_str::<serde_json::Value>(&read(f)).unwrap_or_default();
    Json(serde_json::json!({
        "dir": dir.display().to_string(),
        "group": json("group.json"),
        "target": json("target.json"),
        "goroutines": read("goroutines.txt"),
    }))
    .into_response()
}

/// `GET /metrics` of the agent.
pub(crate) fn encode(st: &Shared) -> String {
    let entries: Vec<_> = lock(&st.targets)
        .values()
        .map(|e| (e.view.clone(), e.snapshot.clone()))
        .collect();
    let mut reg = Registry::default();
    let mut fams = TargetFamilies::default();
    let states = Family::<Labels, Gauge>::default();
    let info = Family::<Labels, Gauge>::default();
    for s in ["tracing", "inventory-only", "failed"] {
        states
            .get_or_create(&vec![("state".into(), s.into())])
            .set(0);
    }
    for (view, snap) in &entries {
        let labels = view.labels();
        if let Some(snap) = snap {
            fams.add(snap, &labels);
        }
        states
            .get_or_create(&vec![("state".into(), view.state.into())])
            .inc();
        let mut l = labels;
        l.push(("go_version".into(), view.target.go_version.clone()));
        l.push(("state".into(), view.state.into()));
        info.get_or_create(&l).set(1);
    }
    fams.register(&mut reg, true, true);
    reg.register(
        "sfgi_inventory_scan_seconds",
        "Duration of goroutine inventory scans (start, periodic, triggered)",
        st.scans.clone(),
    );
    reg.register(
        "sfgi_agent_targets",
        "Go processes the agent knows by state (tracing, inventory-only, failed incl. refused)",
        states,
    );
    reg.register(
        "sfgi_agent_target_info",
        "1 per target, with its labels, Go version and state",
        info,
    );
    metrics::register_self_usage(&mut reg);
    metrics::encode_registry(&reg)
}

async fn metrics_handler(State(st): State<St>) -> Response {
    prometheus_text(encode(&st))
}
