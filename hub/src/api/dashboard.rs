//! The HQ dashboard's static files (`/`, `/assets/app.js`,
//! `/assets/style.css`), built into the binary from `hub/assets/`. They
//! hold no data: the page asks for the admin token and calls the admin API
//! with it.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

const DASHBOARD_HTML: &str = include_str!("../../assets/index.html");
const DASHBOARD_JS: &str = include_str!("../../assets/app.js");
const DASHBOARD_CSS: &str = include_str!("../../assets/style.css");

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}

/// `GET /`: the page.
pub(super) async fn page() -> Response {
    asset("text/html; charset=utf-8", DASHBOARD_HTML)
}

/// `GET /assets/app.js`.
pub(super) async fn js() -> Response {
    asset("text/javascript; charset=utf-8", DASHBOARD_JS)
}

/// `GET /assets/style.css`.
pub(super) async fn css() -> Response {
    asset("text/css; charset=utf-8", DASHBOARD_CSS)
}
