//! The HQ dashboard's static files (`/`, `/assets/app.js`,
//! `/assets/style.css`), built into the binary from `hub/assets/`. They
//! hold no data: the page asks for the admin token and calls the admin API
//! with it. The page is served with a Content-Security-Policy: its own
//! script only, no framing.

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

/// What the page may load and run: its own script and styles only (the
/// tables' bars and the chart's legend set inline `style` attributes), no
/// framing. The admin token sits in the page's session storage: a slip in
/// the escaping of a store's text must not run script.
const DASHBOARD_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// `GET /`: the page.
pub(super) async fn page() -> Response {
    let mut page = asset("text/html; charset=utf-8", DASHBOARD_HTML);
    page.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        header::HeaderValue::from_static(DASHBOARD_CSP),
    );
    page.headers_mut().insert(
        header::X_FRAME_OPTIONS,
        header::HeaderValue::from_static("DENY"),
    );
    page
}

/// `GET /assets/app.js`.
pub(super) async fn js() -> Response {
    asset("text/javascript; charset=utf-8", DASHBOARD_JS)
}

/// `GET /assets/style.css`.
pub(super) async fn css() -> Response {
    asset("text/css; charset=utf-8", DASHBOARD_CSS)
}
