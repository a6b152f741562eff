//! The runtime API: HTTP/JSON (axum) on a Unix socket, mode 0600. Every
//! request is applied by the controller, one at a time, through the same path
//! as the config file; invalid requests get a 4xx with a JSON error naming the
//! field. Bodies over 64 KiB are refused (413).
//!
//! | method | path | |
//! |---|---|---|
//! | GET | /v1/vips | VIPs, backends, health |
//! | POST | /v1/vips | add a VIP (body: a `[[vip]]` table as JSON) |
//! | DELETE | /v1/vips/{vip} | remove a VIP (by name or `addr:port/proto`) |
//! | POST | /v1/vips/{vip}/backends | add a backend (body: a `[[vip.backend]]` table) |
//! | DELETE | /v1/vips/{vip}/backends/{addr} | remove a backend |
//! | PUT | /v1/vips/{vip}/backends/{addr}/weight | `{"weight": n}` |
//! | POST | /v1/vips/{vip}/backends/{addr}/drain | weight 0 |
//! | POST | /v1/reload | re-read the config file |
//! | GET | /v1/stats | counters (JSON) |
//! | GET | /v1/config | the effective config as TOML |
//! | GET | /v1/explain?src=&sport=&dst=&dport=&proto=[&syn=true] | which backend and why |
//! | POST | /v1/shutdown | stop the daemon (the data plane keeps running); body `{"withdraw": true}` (`xlb down`): withdraw the announced routes and wait `announce.drain_on_stop` first |

use std::{
    net::IpAddr,
    sync::{Arc, Mutex},
};

use axum::{
    extract::{DefaultBodyLimit, Path, Query, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::{delete, get, post, put},
    Json, Router,
};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use super::controller::{ControlError, Controller, PrefixChange, PrefixList};
use crate::{config, explain::FlowQuery, reconcile::ApplyReport};

pub const MAX_BODY: usize = 64 * 1024;

/// What the API tells the daemon loop after a change.
#[derive(Debug)]
pub enum Event {
    /// The config changed: re-sync the health checks.
    ConfigChanged,
    /// Exit; `withdraw`: a planned stop, which withdraws the announced
    /// routes first (a restart keeps them).
    Shutdown { withdraw: bool },
}

/// Body of `POST /v1/shutdown` (optional).
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShutdownBody {
    #[serde(default)]
    pub withdraw: bool,
}

#[derive(Clone)]
pub struct ApiState {
    pub ctl: Arc<Mutex<Controller>>,
    pub events: mpsc::UnboundedSender<Event>,
}

/// A JSON error: `{"error": "...", "field": "backend[0].address"}`.
#[derive(Debug, Serialize, Deserialize)]
pub struct ApiError {
    pub error: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

struct Failure(StatusCode, ApiError);

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        (self.0, Json(self.1)).into_response()
    }
}

impl From<ControlError> for Failure {
    fn from(e: ControlError) -> Self {
        let status = match &e {
            ControlError::NoSuchVip(_) | ControlError::NoSuchBackend { .. } => {
                StatusCode::NOT_FOUND
            }
            ControlError::NeedsRestart { .. } => StatusCode::CONFLICT,
            e if e.is_client_error() => StatusCode::UNPROCESSABLE_ENTITY,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let field = e.field();
        Failure(
            status,
            ApiError {
                error: crate::dataplane::attach::error_chain(&e),
                field,
            },
        )
    }
}

fn bad_request(field: &str, error: impl ToString) -> Failure {
    Failure(
        StatusCode::BAD_REQUEST,
        ApiError {
            error: error.to_string(),
            field: Some(field.to_string()),
        },
    )
}

/// Runs `f` on the controller off the async threads (table builds are CPU work).
async fn with_ctl<T: Send + 'static>(
    s: &ApiState,
    f: impl FnOnce(&mut Controller) -> Result<T, ControlError> + Send + 'static,
) -> Result<T, Failure> {
    let ctl = s.ctl.clone();
    tokio::task::spawn_blocking(move || {
        let mut guard = ctl.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut guard)
    })
    .await
    .map_err(|e| {
        Failure(
            StatusCode::INTERNAL_SERVER_ERROR,
            ApiError {
                error: format!("request task failed: {e}"),
                field: None,
            },
        )
    })?
    .map_err(Failure::from)
}

/// Applies a change and tells the daemon loop the config changed.
async fn change(
    s: &ApiState,
    f: impl FnOnce(&mut Controller) -> Result<ApplyReport, ControlError> + Send + 'static,
) -> Result<Json<ChangeReport>, Failure> {
    let r = with_ctl(s, f).await?;
    let _ = s.events.send(Event::ConfigChanged);
    Ok(Json(ChangeReport::from(r)))
}

#[derive(Debug, Serialize, Deserialize)]
pub struct ChangeReport {
    pub ok: bool,
    pub map_writes: usize,
    pub tables_rebuilt: usize,
    pub slots_changed: usize,
}

impl From<ApplyReport> for ChangeReport {
    fn from(r: ApplyReport) -> Self {
        Self {
            ok: true,
            map_writes: r.ops,
            tables_rebuilt: r.tables_rebuilt,
            slots_changed: r.slots_changed,
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub struct WeightBody {
    pub weight: u16,
}

pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/v1/vips", get(list_vips).post(add_vip))
        .route("/v1/vips/{vip}", delete(remove_vip))
        .route("/v1/vips/{vip}/allow", post(change_allow))
        .route("/v1/vips/{vip}/deny", post(change_deny))
        .route("/v1/vips/{vip}/backends", post(add_backend))
        .route("/v1/vips/{vip}/backends/{addr}", delete(remove_backend))
        .route("/v1/vips/{vip}/backends/{addr}/weight", put(set_weight))
        .route("/v1/vips/{vip}/backends/{addr}/drain", post(drain))
        .route("/v1/reload", post(reload))
        .route("/v1/stats", get(stats))
        .route("/v1/config", get(config_dump))
        .route("/v1/explain", get(explain))
        .route("/v1/shutdown", post(shutdown))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(state)
}

async fn list_vips(State(s): State<ApiState>) -> Result<Response, Failure> {
    let v = with_ctl(&s, |c| Ok(c.vip_statuses())).await?;
    Ok(Json(v).into_response())
}

/// The body as JSON, or a 400 naming what is wrong.
fn json_body(body: &[u8]) -> Result<serde_json::Value, Failure> {
    serde_json::from_slice(body).map_err(|e| bad_request("body", format!("not valid JSON: {e}")))
}

async fn add_vip(State(s): State<ApiState>, body: axum::body::Bytes) -> Result<Response, Failure> {
    let v = json_body(&body)?;
    let global = with_ctl(&s, |c| Ok(c.config().global.clone())).await?;
    let vip = config::vip_from_json(&v, &global).map_err(ControlError::from)?;
    let r = change(&s, move |c| c.add_vip(vip)).await?;
    Ok((StatusCode::CREATED, r).into_response())
}

async fn remove_vip(
    State(s): State<ApiState>,
    Path(vip): Path<String>,
) -> Result<Response, Failure> {
    Ok(change(&s, move |c| c.remove_vip(&vip))
        .await?
        .into_response())
}

async fn add_backend(
    State(s): State<ApiState>,
    Path(vip): Path<String>,
    body: axum::body::Bytes,
) -> Result<Response, Failure> {
    let v = json_body(&body)?;
    let name = vip.clone();
    let vip_cfg = with_ctl(&s, move |c| {
        c.config()
            .vips
            .iter()
            .find(|x| x.matches(&name))
            .cloned()
            .ok_or(ControlError::NoSuchVip(name))
    })
    .await?;
    let backend = config::backend_from_json(&v, &vip_cfg).map_err(ControlError::from)?;
    let r = change(&s, move |c| c.add_backend(&vip, backend)).await?;
    Ok((StatusCode::CREATED, r).into_response())
}

async fn change_allow(
    State(s): State<ApiState>,
    Path(vip): Path<String>,
    body: axum::body::Bytes,
) -> Result<Response, Failure> {
    change_prefixes(s, vip, PrefixList::Allow, &body).await
}

async fn change_deny(
    State(s): State<ApiState>,
    Path(vip): Path<String>,
    body: axum::body::Bytes,
) -> Result<Response, Failure> {
    change_prefixes(s, vip, PrefixList::Deny, &body).await
}

/// `{"add": ["203.0.113.0/24"], "remove": [...]}` for a VIP's allow or deny
/// list.
async fn change_prefixes(
    s: ApiState,
    vip: String,
    list: PrefixList,
    body: &[u8],
) -> Result<Response, Failure> {
    let wanted: PrefixChange = serde_json::from_slice(body).map_err(|e| {
        bad_request(
            "body",
            format!("expected {{\"add\": [prefixes], \"remove\": [prefixes]}}: {e}"),
        )
    })?;
    Ok(change(&s, move |c| c.change_prefixes(&vip, list, &wanted))
        .await?
        .into_response())
}

fn parse_addr(addr: &str) -> Result<IpAddr, Failure> {
    addr.parse()
        .map_err(|e| bad_request("address", format!("{addr:?} is not an IP address: {e}")))
}

async fn remove_backend(
    State(s): State<ApiState>,
    Path((vip, addr)): Path<(String, String)>,
) -> Result<Response, Failure> {
    let addr = parse_addr(&addr)?;
    Ok(change(&s, move |c| c.remove_backend(&vip, addr))
        .await?
        .into_response())
}

async fn set_weight(
    State(s): State<ApiState>,
    Path((vip, addr)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> Result<Response, Failure> {
    let addr = parse_addr(&addr)?;
    let w: WeightBody = serde_json::from_slice(&body)
        .map_err(|e| bad_request("weight", format!("expected {{\"weight\": 0..65535}}: {e}")))?;
    Ok(change(&s, move |c| c.set_weight(&vip, addr, w.weight))
        .await?
        .into_response())
}

async fn drain(
    State(s): State<ApiState>,
    Path((vip, addr)): Path<(String, String)>,
) -> Result<Response, Failure> {
    let addr = parse_addr(&addr)?;
    Ok(change(&s, move |c| c.set_weight(&vip, addr, 0))
        .await?
        .into_response())
}

async fn reload(State(s): State<ApiState>) -> Result<Response, Failure> {
    Ok(change(&s, |c| c.reload()).await?.into_response())
}

async fn stats(State(s): State<ApiState>) -> Result<Response, Failure> {
    Ok(Json(with_ctl(&s, |c| c.snapshot()).await?).into_response())
}

async fn config_dump(State(s): State<ApiState>) -> Result<Response, Failure> {
    let text = with_ctl(&s, |c| Ok(c.config().to_toml_string())).await?;
    Ok((
        [(axum::http::header::CONTENT_TYPE, "application/toml")],
        text,
    )
        .into_response())
}

async fn explain(
    State(s): State<ApiState>,
    q: Result<Query<FlowQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, Failure> {
    let Query(q) = q.map_err(|e| {
        bad_request(
            "query",
            format!("expected src, sport, dst, dport, proto: {e}"),
        )
    })?;
    Ok(Json(with_ctl(&s, move |c| c.explain(&q)).await?).into_response())
}

async fn shutdown(State(s): State<ApiState>, body: axum::body::Bytes) -> Result<Response, Failure> {
    let body: ShutdownBody = if body.is_empty() {
        ShutdownBody::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| bad_request("withdraw", format!("expected {{\"withdraw\": bool}}: {e}")))?
    };
    let _ = s.events.send(Event::Shutdown {
        withdraw: body.withdraw,
    });
    Ok((StatusCode::ACCEPTED, Json(serde_json::json!({"ok": true}))).into_response())
}
