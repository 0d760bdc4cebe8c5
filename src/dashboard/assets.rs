//! The page, its script and its style, inside the binary (no build step, no CDN).

use axum::http::header;
use axum::response::{IntoResponse, Response};

const PAGE: &str = include_str!("assets/index.html");
const SCRIPT: &str = include_str!("assets/app.js");
const STYLE: &str = include_str!("assets/app.css");

/// Scripts and styles only from the dashboard itself; nothing inline runs.
const POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'";

/// `initial` (JSON) made safe inside a `<script type="application/json">` element:
/// nothing in it can close the element or open a comment.
fn inert(initial: &str) -> String {
    // Both can only occur inside JSON strings, where these escapes mean the same.
    initial.replace("</", "<\\/").replace("<!--", "<\\u0021--")
}

/// The page with `initial`, the first overview, inside it.
pub fn page(initial: &str) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CONTENT_SECURITY_POLICY, POLICY),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        PAGE.replace("{{INITIAL}}", &inert(initial)),
    )
        .into_response()
}

/// `/app.js`.
pub fn script() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        SCRIPT,
    )
        .into_response()
}

/// `/app.css`.
pub fn style() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        STYLE,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_from_users_cannot_close_the_data_element() {
        let json =
            serde_json::json!({ "name": "</script><script>alert(1)</script><!--" }).to_string();
        let safe = inert(&json);
        assert!(!safe.contains("</"), "{safe}");
        assert!(!safe.contains("<!--"), "{safe}");
        let back: serde_json::Value = serde_json::from_str(&safe).unwrap();
        assert_eq!(
            back["name"], "</script><script>alert(1)</script><!--",
            "still the same JSON"
        );
    }

    #[test]
    fn the_page_has_one_place_for_the_overview() {
        assert_eq!(PAGE.matches("{{INITIAL}}").count(), 1);
        assert!(PAGE.contains("src=\"/app.js\"") && PAGE.contains("href=\"/app.css\""));
    }
}
