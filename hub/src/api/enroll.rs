//! `POST /v1/enroll` and `POST /v1/renew`: a store gets a certificate for
//! a key it made itself, by sending a certificate signing request.
//!
//! - `/v1/enroll` needs no client certificate (the store has none yet):
//!   the body's one-time code, made by `tally-hub enroll-code` for that
//!   store, authorises it. Every refusal of a code is the same
//!   `403 enrollment_refused` (the hub logs which check failed).
//! - `/v1/renew` is authenticated by the store's current certificate
//!   (mutual TLS, not revoked); the new certificate names the same store.
//!   The old one stays valid until it expires or is revoked: a store that
//!   renews and then loses the answer (or crashes before writing it) can
//!   still sync and renew again.
//!
//! # Design constraints
//! - The store a certificate names comes from the code (enroll) or the
//!   presented certificate (renew), never from the CSR, whose subject and
//!   extensions are ignored (`pki::CsrRequest`).
//! - The CSR is checked before the code is redeemed, so a malformed
//!   request does not burn a code; a redeemed code is gone even if
//!   signing then fails.
//! - Signing reads the CA key and writes `issued/<store>/<serial>.pem`:
//!   file I/O, so it runs on the blocking pool.

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use tally_service::identity::{EnrollRequest, IssuedIdentity, RenewRequest, MAX_IDENTITY_BODY};
use tracing::{info, warn};

use super::budget::Payer;
use super::sync::identify;
use super::{body_error, error, invalid, read_body, AppState};
use crate::pki::{self, CodeRefused, CsrRequest, PkiError};
use crate::tls::Peer;

/// Reads a JSON body of at most [`MAX_IDENTITY_BODY`] bytes, paid by
/// `payer` (enrolment: anyone; renewal: a store).
async fn json_body<T: serde::de::DeserializeOwned>(
    st: &AppState,
    headers: &HeaderMap,
    body: Body,
    payer: Payer,
) -> Result<T, Response> {
    let bytes = read_body(st, headers, body, MAX_IDENTITY_BODY, payer)
        .await
        .map_err(|e| body_error(e, MAX_IDENTITY_BODY))?
        .bytes;
    serde_json::from_slice(&bytes).map_err(|e| invalid(format!("unreadable request: {e}")))
}

fn csr(pem: &str) -> Result<CsrRequest, Response> {
    CsrRequest::from_pem(pem).map_err(|e| error(StatusCode::UNPROCESSABLE_ENTITY, "bad_csr", e))
}

fn pki_failure(e: &PkiError) -> Response {
    warn!(error = %e, "Signing a store certificate failed.");
    error(
        StatusCode::SERVICE_UNAVAILABLE,
        "pki_unavailable",
        "the hub could not issue a certificate",
    )
}

/// The handler of `POST /v1/enroll`.
pub(super) async fn enroll(
    State(st): State<AppState>,
    Extension(peer): Extension<Peer>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let req: EnrollRequest = match json_body(&st, &headers, body, Payer::Anonymous).await {
        Ok(r) => r,
        Err(r) => return r,
    };
    let store = match pki::check_store_id(&req.store) {
        Ok(s) => s,
        Err(e) => return invalid(e),
    };
    let csr = match csr(&req.csr) {
        Ok(c) => c,
        Err(r) => return r,
    };
    // Held until the redemption ends, even if the client goes away.
    let Ok(slot) = st.enrollments.clone().try_acquire_owned() else {
        warn!(store = %store, peer = %peer.addr, "Enrollment refused: too many at once.");
        let mut busy = error(
            StatusCode::SERVICE_UNAVAILABLE,
            "busy",
            "too many enrollments at once; try again in a second (the code is not spent)",
        );
        busy.headers_mut().insert(
            axum::http::header::RETRY_AFTER,
            axum::http::HeaderValue::from_static("1"),
        );
        return busy;
    };
    let revocations = st.revocations.clone();
    let book = st.enroll_codes.clone();
    let clock = st.clock.clone();
    let code = req.code;
    let who = store.clone();
    let outcome = tokio::task::spawn_blocking(move || {
        let _slot = slot;
        let dir = revocations.data_dir();
        pki::redeem_code(dir, book.as_deref(), &who, &code, clock.as_ref())?;
        let issued = pki::issue_for_csr(dir, &who, &csr, clock.as_ref());
        if let Ok(issued) = &issued {
            // The code is spent: answer even if the shared record fails
            // (this host's data directory has the certificate).
            if let Err(e) = revocations.record_issued(&who, &issued.serial) {
                warn!(store = %who, serial = %issued.serial, error = %e, "The new certificate is not recorded in the database: revoke the store from this host's data directory.");
            }
        }
        Ok::<_, CodeRefused>(issued)
    })
    .await;
    match outcome {
        Ok(Ok(Ok(issued))) => {
            info!(store = %store, serial = %issued.serial, peer = %peer.addr, "Store enrolled with a one-time code.");
            Json(issued).into_response()
        }
        Ok(Ok(Err(e))) => pki_failure(&e),
        Ok(Err(CodeRefused::Pki(e))) => pki_failure(&e),
        Ok(Err(refused)) => {
            warn!(store = %store, peer = %peer.addr, reason = %refused, "Enrollment refused.");
            error(
                StatusCode::FORBIDDEN,
                "enrollment_refused",
                "the enrollment code is unknown, used, expired or not for this store",
            )
        }
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, "internal", e),
    }
}

/// The handler of `POST /v1/renew`.
pub(super) async fn renew(
    State(st): State<AppState>,
    Extension(peer): Extension<Peer>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let (store, old_serial) = match identify(&st, &peer, "/v1/renew") {
        Ok(id) => (id.store.clone(), id.serial.clone()),
        Err((_, r)) => return r,
    };
    let req: RenewRequest = match json_body(&st, &headers, body, Payer::Known).await {
        Ok(r) => r,
        Err(r) => return r,
    };
    let csr = match csr(&req.csr) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let revocations = st.revocations.clone();
    let clock = st.clock.clone();
    let (who, old) = (store.clone(), old_serial.clone());
    let outcome: Result<Result<IssuedIdentity, PkiError>, _> =
        tokio::task::spawn_blocking(move || {
            pki::renew_for_csr(&revocations, &who, &old, &csr, clock.as_ref())
        })
        .await;
    match outcome {
        Ok(Ok(issued)) => {
            info!(store = %store, old_serial = %old_serial, serial = %issued.serial, "Store certificate renewed.");
            Json(issued).into_response()
        }
        Ok(Err(PkiError::Revoked(_))) => {
            // Revoked while the request was on its way: the certificate
            // just signed never leaves the hub.
            warn!(store = %store, old_serial = %old_serial, peer = %peer.addr, "Renewal refused: the certificate was revoked meanwhile.");
            error(
                StatusCode::FORBIDDEN,
                "certificate_revoked",
                format!("the certificate for store {store} was revoked"),
            )
        }
        Ok(Err(PkiError::TooManyRenewals {
            store,
            retry_after_s,
        })) => {
            warn!(store = %store, old_serial = %old_serial, peer = %peer.addr, "Renewal refused: too many certificates issued to the store today.");
            let mut limited = error(
                StatusCode::TOO_MANY_REQUESTS,
                "renewals_limited",
                format!(
                    "store {store} was issued {} certificates in the last 24 hours; its current certificate stays valid",
                    pki::MAX_ISSUED_PER_DAY
                ),
            );
            if let Ok(v) = axum::http::HeaderValue::from_str(&retry_after_s.to_string()) {
                limited
                    .headers_mut()
                    .insert(axum::http::header::RETRY_AFTER, v);
            }
            limited
        }
        Ok(Err(e)) => pki_failure(&e),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, "internal", e),
    }
}
