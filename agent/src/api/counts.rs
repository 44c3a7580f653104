//! RFID cycle counts (issue 23), the local API: `POST /v1/counts/sessions`
//! starts a session (one counting at a time), the reader in
//! `--rfid-mode count` feeds it, `GET /v1/counts/sessions/{id}` shows the
//! tags so far, `POST …/finish` stops the reads and answers the variance
//! report (`GET …/report` again later), `POST …/accept` records one
//! `Command::Count` per item whose count differs, through the command core
//! and its rights rules.
//!
//! Session moves are committer jobs (`crate::store::CountJob`), durable
//! before the answer. Acceptance is idempotent: each adjustment's event id
//! is derived from the session and the item, so a retry after a crash
//! records nothing twice.

use std::collections::BTreeSet;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use tally_agent_api::counts::{
    CountAccepted, CountAdjustment, CountReportView, CountSessionRequest, CountSessionView,
};
use tally_sync::command::{Command, Outcome};
use tally_sync::cycle_count::{self, CountSession, CountStatus};
use tally_sync::event::{Direction, EventKind};

use super::guard::Till;
use super::json::ApiJson;
use super::{pages, AppState, ErrorAnswer};
use crate::store::{CountDone, CountJob, CountRefusal};

fn refused(r: CountRefusal) -> ErrorAnswer {
    match r {
        CountRefusal::Unknown(id) => ErrorAnswer::NotFound(format!("no count session {id}")),
        CountRefusal::Exists(id) => ErrorAnswer::Conflict(format!(
            "count session {id} exists; a new session needs a new id"
        )),
        CountRefusal::AnotherCounting(id) => {
            ErrorAnswer::Conflict(format!("count session {id} is counting; finish it first"))
        }
        CountRefusal::WrongStatus { session_id, status } => {
            ErrorAnswer::Conflict(format!("count session {session_id} is {}", status.name()))
        }
    }
}

async fn job(state: &AppState, job: CountJob) -> Result<CountSession, ErrorAnswer> {
    match state.committer.count(job).await? {
        CountDone::Session(s) => Ok(*s),
        CountDone::Refused(r) => Err(refused(r)),
        CountDone::Fed { .. } => Err(ErrorAnswer::Unavailable("unexpected answer".into())),
    }
}

/// Runs `read` (snapshot and catalog reads) on the blocking pool, so no
/// async worker waits on the disk.
async fn off_worker<T: Send + 'static>(
    state: &AppState,
    read: impl FnOnce(&AppState) -> Result<T, ErrorAnswer> + Send + 'static,
) -> Result<T, ErrorAnswer> {
    let state = state.clone();
    tokio::task::spawn_blocking(move || read(&state))
        .await
        .map_err(|e| ErrorAnswer::Unavailable(format!("a read panicked: {e}")))?
}

fn session_view(state: &AppState, id: &str) -> Result<CountSessionView, ErrorAnswer> {
    let (session, items) = state
        .db
        .count_session(id)?
        .ok_or_else(|| ErrorAnswer::NotFound(format!("no count session {id}")))?;
    Ok(CountSessionView::of(&session, items, |g| {
        pages::name(state, g)
    }))
}

fn report_view(state: &AppState, id: &str) -> Result<CountReportView, ErrorAnswer> {
    let report = state
        .db
        .count_report(id)?
        .ok_or_else(|| ErrorAnswer::NotFound(format!("no count session {id}")))?;
    Ok(CountReportView::of(&report, |g| pages::name(state, g)))
}

/// `POST /v1/counts/sessions`: 201 with the session, 409 while another
/// counts or when the id exists, 422 for a bad body.
pub(super) async fn start(
    State(state): State<AppState>,
    till: Option<Extension<Till>>,
    headers: axum::http::HeaderMap,
    ApiJson(body): ApiJson<CountSessionRequest>,
) -> Result<Response, ErrorAnswer> {
    let staff = super::commands::staff(till, body.cashier, body.till)?;
    let staff = super::sessions::session_staff(&state, &headers, staff)?;
    let gtins = body
        .gtins
        .map(|list| {
            list.iter()
                .map(|g| super::commands::gtin(g))
                .collect::<Result<BTreeSet<_>, _>>()
        })
        .transpose()?;
    let session_id = body
        .session_id
        .unwrap_or_else(|| format!("count-{}", uuid::Uuid::now_v7().simple()));
    cycle_count::check_new(&session_id, body.zone.as_deref(), gtins.as_ref())
        .map_err(|e| ErrorAnswer::Invalid(e.to_string()))?;
    let session = CountSession::new(session_id, body.zone, gtins, staff, 0);
    let session = job(&state, CountJob::Start(Box::new(session))).await?;
    tracing::info!(session_id = %session.session_id, zone = ?session.zone, "Count session started.");
    let view = off_worker(&state, move |st| session_view(st, &session.session_id)).await?;
    Ok((StatusCode::CREATED, Json(view)).into_response())
}

/// `GET /v1/counts/sessions/{id}`: the session and its tags so far.
pub(super) async fn get(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<CountSessionView>, ErrorAnswer> {
    Ok(Json(
        off_worker(&state, move |st| session_view(st, &id)).await?,
    ))
}

/// `GET /v1/counts/sessions/{id}/report`: the variance report as of now.
pub(super) async fn report(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<CountReportView>, ErrorAnswer> {
    Ok(Json(
        off_worker(&state, move |st| report_view(st, &id)).await?,
    ))
}

/// `POST /v1/counts/sessions/{id}/finish`: no more reads; the variance
/// report. Finishing a finished session answers its report again.
pub(super) async fn finish(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<CountReportView>, ErrorAnswer> {
    match job(
        &state,
        CountJob::Finish {
            session_id: id.clone(),
        },
    )
    .await
    {
        Ok(s) => {
            tracing::info!(session_id = %s.session_id, tags = s.tags, reads = s.reads, "Count session finished.")
        }
        Err(conflict @ ErrorAnswer::Conflict(_)) => {
            let key = id.clone();
            let finished = state
                .db
                .read_blocking(move |db| db.count_session(&key))
                .await?
                .is_some_and(|(s, _)| s.status == CountStatus::Finished);
            if !finished {
                return Err(conflict);
            }
        }
        Err(e) => return Err(e),
    }
    report(State(state), Path(id)).await
}

/// `POST /v1/counts/sessions/{id}/accept`: records the report's
/// adjustments (a finished session; 409 otherwise). The report is taken
/// again now, so tagged units sold since the reads do not count.
pub(super) async fn accept(
    State(state): State<AppState>,
    till: Option<Extension<Till>>,
    headers: axum::http::HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<CountAccepted>, ErrorAnswer> {
    let staff = super::commands::staff(till, None, None)?;
    let staff = super::sessions::session_staff(&state, &headers, staff)?;
    let key = id.clone();
    let (session, _) = state
        .db
        .read_blocking(move |db| db.count_session(&key))
        .await?
        .ok_or_else(|| ErrorAnswer::NotFound(format!("no count session {id}")))?;
    if session.status != CountStatus::Finished {
        return Err(refused(CountRefusal::WrongStatus {
            session_id: id,
            status: session.status,
        }));
    }
    let key = id.clone();
    let report = state
        .db
        .read_blocking(move |db| db.count_report(&key))
        .await?
        .ok_or_else(|| ErrorAnswer::NotFound(format!("no count session {id}")))?;
    let mut adjustments = Vec::new();
    for (gtin, counted) in cycle_count::adjustments(&report.items) {
        let event_id = state.db.event_ids().count_adjustment(&id, gtin);
        let staff = if staff.till.is_some() {
            staff.clone()
        } else {
            session.staff.clone()
        };
        let cmd = Command::Count {
            id: Some(event_id),
            gtin,
            counted,
            staff,
        };
        match state.committer.command(cmd).await? {
            Outcome::Recorded { event, .. } => {
                if let EventKind::CountAdjustment {
                    direction,
                    unresolved,
                    ..
                } = event.kind
                {
                    adjustments.push(CountAdjustment {
                        gtin,
                        counted,
                        direction: match direction {
                            Direction::Up => "up",
                            Direction::Down => "down",
                        }
                        .into(),
                        units: event.lines.first().map_or(0, |l| l.qty),
                        unresolved,
                        event_id: event.id,
                    });
                }
            }
            Outcome::Refused { refusal, .. } => {
                return Err(ErrorAnswer::Refused {
                    refusal,
                    hub_reachable: state.sync.snapshot().hub_reachable(),
                })
            }
        }
    }
    let session = job(
        &state,
        CountJob::Accepted {
            session_id: id.clone(),
            items: report.items.iter().map(|l| l.gtin).collect(),
        },
    )
    .await?;
    tracing::info!(session_id = %id, adjustments = adjustments.len(), "Count accepted.");
    let mut report_view = off_worker(&state, move |st| {
        Ok(CountReportView::of(&report, |g| pages::name(st, g)))
    })
    .await?;
    report_view.status = session.status.name().into();
    Ok(Json(CountAccepted {
        session_id: id,
        status: session.status.name().into(),
        adjustments,
        report: report_view,
    }))
}
