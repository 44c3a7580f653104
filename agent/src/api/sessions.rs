//! Cashiers' sign-in (see `crate::cashiers`): `POST /v1/cashiers/sign-in`
//! opens a session for a cashier whose PIN is right, `POST
//! /v1/cashiers/sign-out` ends it, and [`signed_staff`] puts the
//! session's cashier on a sale or a return (refusing one without an open
//! session when cashiers sign in at this store), [`session_staff`] on
//! anything else a till records while its cashier is signed in.

use std::time::Instant;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use tally_agent_api::answers::SignedIn as SignedInAnswer;
use tally_agent_api::requests::SignInRequest;
use tally_sync::command::Staff;

use super::guard::Till;
use super::json::ApiJson;
use super::{AppState, ErrorAnswer};
use crate::cashiers::{SignedIn, IDLE, SESSION_HEADER};

/// The session token a request carries.
fn token(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(SESSION_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

/// `POST /v1/cashiers/sign-in`: 201 with the session, 403
/// `sign_in_refused`, 429 `sign_in_locked` (the cashier's wrong PINs, as
/// managers'), 503 when the attempt could not be counted on disk
/// (`lockouts.redb`), 422 when no cashier is configured here.
pub(super) async fn sign_in(
    State(state): State<AppState>,
    till: Option<Extension<Till>>,
    ApiJson(body): ApiJson<SignInRequest>,
) -> Result<Response, ErrorAnswer> {
    if !state.cashiers.any() {
        return Err(ErrorAnswer::Invalid(
            "no cashier is configured at this store ([[cashiers]]): requests name their cashier"
                .into(),
        ));
    }
    let cashier = super::commands::staff_id("cashier", Some(body.cashier))?.unwrap_or_default();
    let (cashiers, who, pin) = (state.cashiers.clone(), cashier.clone(), body.pin);
    let checked =
        tokio::task::spawn_blocking(move || cashiers.verify(&who, Some(&pin), Instant::now()))
            .await
            .map_err(|e| ErrorAnswer::Unavailable(e.to_string()))?;
    if let Err(e) = checked {
        tracing::warn!(%cashier, why = %e, "Cashier sign-in refused.");
        return Err(ErrorAnswer::SignIn(e));
    }
    let session = state.sessions.open(
        SignedIn {
            cashier: cashier.clone(),
            till: till.map(|Extension(Till(t))| t),
        },
        Instant::now(),
    );
    tracing::info!(%cashier, "Cashier signed in.");
    Ok((
        StatusCode::CREATED,
        Json(SignedInAnswer {
            session,
            cashier,
            idle_timeout_s: IDLE.as_secs(),
        }),
    )
        .into_response())
}

/// `POST /v1/cashiers/sign-out`: ends the request's session (204, also
/// when it was not open).
pub(super) async fn sign_out(State(state): State<AppState>, headers: HeaderMap) -> StatusCode {
    if let Some(t) = token(&headers) {
        state.sessions.close(t);
    }
    StatusCode::NO_CONTENT
}

/// The session a request carries, as the agent finds it.
enum Session {
    /// No session header.
    None,
    /// A session that is not open (signed out, idle too long, or the
    /// agent restarted).
    Closed,
    /// An open session of another till than the request's.
    OtherTill(String),
    /// An open session of this till.
    Open(SignedIn),
}

fn session(state: &AppState, headers: &HeaderMap, staff: &Staff) -> Session {
    let Some(token) = token(headers) else {
        return Session::None;
    };
    match state.sessions.check(token, Instant::now()) {
        None => Session::Closed,
        Some(who) if who.till.is_some() && who.till != staff.till => {
            Session::OtherTill(who.till.unwrap_or_default())
        }
        Some(who) => Session::Open(who),
    }
}

/// `staff` under the session's cashier: 422 when it names another.
fn as_signed_in(who: SignedIn, staff: Staff) -> Result<Staff, ErrorAnswer> {
    if let Some(named) = &staff.cashier {
        if *named != who.cashier {
            return Err(ErrorAnswer::Invalid(format!(
                "cashier {named:?} is not the signed-in cashier ({:?})",
                who.cashier
            )));
        }
    }
    Ok(Staff {
        cashier: Some(who.cashier),
        ..staff
    })
}

/// `staff` with the cashier of the request's session, when cashiers sign
/// in at this store: 401 `sign_in_required` without an open session (or
/// with one opened at another till), 422 when the request names another
/// cashier. Without `[[cashiers]]`, `staff` as given. For sales and
/// returns.
pub(super) fn signed_staff(
    state: &AppState,
    headers: &HeaderMap,
    staff: Staff,
) -> Result<Staff, ErrorAnswer> {
    if !state.cashiers.any() {
        return Ok(staff);
    }
    match session(state, headers, &staff) {
        Session::Open(who) => as_signed_in(who, staff),
        Session::None => Err(ErrorAnswer::SignInRequired(format!(
            "cashiers sign in at this store: POST /v1/cashiers/sign-in, then send the session as {SESSION_HEADER}"
        ))),
        Session::Closed => Err(ErrorAnswer::SignInRequired(
            "the session is not open (signed out, idle too long, or the agent restarted): sign in again"
                .into(),
        )),
        Session::OtherTill(till) => Err(ErrorAnswer::SignInRequired(format!(
            "the session was opened at till {till:?}: sign in at this till"
        ))),
    }
}

/// `staff` with the cashier of the request's session when it carries one
/// open at this till (the terminal sends it with every request), so
/// receipts, counts, transfers and order moves keyed at a till record who
/// was signed in there; 422 when the request names another cashier.
/// These never need a sign-in: without an open session (the CLI, a
/// script), `staff` as given.
pub(super) fn session_staff(
    state: &AppState,
    headers: &HeaderMap,
    staff: Staff,
) -> Result<Staff, ErrorAnswer> {
    match session(state, headers, &staff) {
        Session::Open(who) => as_signed_in(who, staff),
        Session::None | Session::Closed | Session::OtherTill(_) => Ok(staff),
    }
}
