//! Static files compiled into the binary: no CDN, nothing fetched from the internet.

use axum::extract::Path;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

/// The app's styles, the atlas's (also given alone to publications as `atlas::STYLE`) last.
pub const APP_CSS: &str = concat!(
    include_str!("../assets/app.css"),
    include_str!("../assets/atlas.css")
);
pub const APP_JS: &str = include_str!("../assets/app.js");
/// Outlines of the 96 metropolitan départements (IGN Admin Express COG 2018, Licence Ouverte /
/// Etalab, via france-geojson).
pub const DEPARTEMENTS_GEOJSON: &[u8] = include_bytes!("../assets/departements.geojson");
/// Outlines of the five overseas départements (971, 972, 973, 974, 976), same source and
/// licence, for the atlas's insets.
pub const DEPARTEMENTS_OUTRE_MER_GEOJSON: &[u8] =
    include_bytes!("../assets/departements-outre-mer.geojson");

/// `GET /assets/{file}`. Assets change only with the binary; a short cache keeps reloads fast
/// without serving an old script after an upgrade.
pub async fn serve(Path(file): Path<String>) -> Response {
    let (body, kind): (&'static [u8], &str) = match file.as_str() {
        "app.css" => (APP_CSS.as_bytes(), "text/css; charset=utf-8"),
        "app.js" => (APP_JS.as_bytes(), "text/javascript; charset=utf-8"),
        "departements.geojson" => (DEPARTEMENTS_GEOJSON, "application/geo+json"),
        "departements-outre-mer.geojson" => {
            (DEPARTEMENTS_OUTRE_MER_GEOJSON, "application/geo+json")
        }
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "max-age=60"),
        ],
        body,
    )
        .into_response()
}
