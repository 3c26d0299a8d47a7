//! A small map drawn on the server: the département's outline, its neighbours, and a pin at the
//! resource's coordinates, as inline SVG (no tiles, no script, works offline).
//!
//! Outlines: IGN Admin Express COG 2018, Licence Ouverte / Etalab, via france-geojson (96
//! metropolitan départements, simplified); the map shows that credit.

use std::sync::OnceLock;

use maud::{html, Markup};
use serde_json::Value;

/// Credit line required by the outlines' licence.
pub const CREDIT: &str =
    "Contours : IGN Admin Express COG 2018, Licence Ouverte / Etalab, via france-geojson";
/// Drawing size in SVG units.
const SIZE: f64 = 320.0;

struct Dept {
    code: String,
    name: String,
    /// Rings of (lon, lat).
    rings: Vec<Vec<(f64, f64)>>,
    bbox: [f64; 4],
}

fn departements() -> &'static [Dept] {
    static D: OnceLock<Vec<Dept>> = OnceLock::new();
    D.get_or_init(|| {
        let v: Value =
            serde_json::from_slice(crate::assets::DEPARTEMENTS_GEOJSON).unwrap_or(Value::Null);
        let features = v["features"].as_array().cloned().unwrap_or_default();
        features.iter().filter_map(parse_feature).collect()
    })
}

fn parse_feature(f: &Value) -> Option<Dept> {
    let code = f["properties"]["code"].as_str()?.to_string();
    let name = f["properties"]["nom"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let polygons: Vec<&Value> = match f["geometry"]["type"].as_str()? {
        "Polygon" => vec![&f["geometry"]["coordinates"]],
        "MultiPolygon" => f["geometry"]["coordinates"].as_array()?.iter().collect(),
        _ => return None,
    };
    let mut rings = Vec::new();
    for poly in polygons {
        for ring in poly.as_array()? {
            let pts: Vec<(f64, f64)> = ring
                .as_array()?
                .iter()
                .filter_map(|p| Some((p[0].as_f64()?, p[1].as_f64()?)))
                .collect();
            rings.push(pts);
        }
    }
    let mut bbox = [f64::MAX, f64::MAX, f64::MIN, f64::MIN];
    for (x, y) in rings.iter().flatten() {
        bbox = [
            bbox[0].min(*x),
            bbox[1].min(*y),
            bbox[2].max(*x),
            bbox[3].max(*y),
        ];
    }
    Some(Dept {
        code,
        name,
        rings,
        bbox,
    })
}

/// The map for a location, or `None` when there is nothing to draw (no metropolitan
/// département and no coordinates inside one).
pub fn render(departement: Option<&str>, point: Option<(f64, f64)>) -> Option<Markup> {
    let all = departements();
    let dept = departement
        .and_then(|code| all.iter().find(|d| d.code == code))
        .or_else(|| point.and_then(|(lon, lat)| all.iter().find(|d| contains(d, lon, lat))))?;
    let [x0, y0, x1, y1] = dept.bbox;
    let margin = 0.12 * (x1 - x0).max(y1 - y0);
    let (x0, y0, x1, y1) = (x0 - margin, y0 - margin, x1 + margin, y1 + margin);
    // Equirectangular projection corrected for latitude, so shapes are not stretched.
    let k = ((y0 + y1) / 2.0).to_radians().cos();
    let scale = SIZE / ((x1 - x0) * k).max(y1 - y0);
    let (w, h) = ((x1 - x0) * k * scale, (y1 - y0) * scale);
    let project = |lon: f64, lat: f64| ((lon - x0) * k * scale, (y1 - lat) * scale);
    let path = |d: &Dept| -> String {
        let mut s = String::new();
        for ring in &d.rings {
            for (i, (lon, lat)) in ring.iter().enumerate() {
                let (x, y) = project(*lon, *lat);
                s.push_str(&format!("{}{x:.1},{y:.1}", if i == 0 { "M" } else { "L" }));
            }
            s.push('Z');
        }
        s
    };
    let neighbours: Vec<&Dept> = all
        .iter()
        .filter(|d| {
            d.code != dept.code
                && d.bbox[0] < x1
                && d.bbox[2] > x0
                && d.bbox[1] < y1
                && d.bbox[3] > y0
        })
        .collect();
    let pin = point.map(|(lon, lat)| project(lon, lat));
    let label = match point {
        Some((lon, lat)) => format!(
            "Carte : {} ({}), point à {lat:.4}° N, {lon:.4}° E",
            dept.name, dept.code
        ),
        None => format!("Carte : {} ({})", dept.name, dept.code),
    };
    Some(html! {
        figure.map {
            svg xmlns="http://www.w3.org/2000/svg" viewBox={ "0 0 " (format!("{w:.0}")) " " (format!("{h:.0}")) } role="img" aria-label=(label) {
                @for n in &neighbours { path.neighbour d=(path(n)) {} }
                path.dept d=(path(dept)) {}
                @if let Some((x, y)) = pin {
                    g.pin transform={ "translate(" (format!("{x:.1}")) "," (format!("{y:.1}")) ")" } {
                        path d="M0,0 C-6,-10 -10,-14 -10,-20 A10,10 0 1 1 10,-20 C10,-14 6,-10 0,0 Z" {}
                        circle cx="0" cy="-20" r="4" {}
                    }
                }
            }
            figcaption {
                (dept.name) " (" (dept.code) ")"
                @if pin.is_none() { " — position exacte non renseignée" }
                br;
                small { (CREDIT) }
            }
        }
    })
}

/// Even-odd point-in-polygon over every ring.
fn contains(d: &Dept, lon: f64, lat: f64) -> bool {
    if lon < d.bbox[0] || lon > d.bbox[2] || lat < d.bbox[1] || lat > d.bbox[3] {
        return false;
    }
    let mut inside = false;
    for ring in &d.rings {
        let mut j = ring.len().wrapping_sub(1);
        for i in 0..ring.len() {
            let ((xi, yi), (xj, yj)) = (ring[i], ring[j]);
            if (yi > lat) != (yj > lat) && lon < (xj - xi) * (lat - yi) / (yj - yi) + xi {
                inside = !inside;
            }
            j = i;
        }
    }
    inside
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_the_departement_with_a_pin_and_credit() {
        let m = render(Some("63"), Some((3.1455, 45.7859)))
            .unwrap()
            .into_string();
        assert!(m.contains("Puy-de-Dôme"));
        assert!(m.contains("class=\"pin\""));
        assert!(m.contains("Licence Ouverte / Etalab"));
        let found = render(None, Some((3.1455, 45.7859))).unwrap().into_string();
        assert!(
            found.contains("Puy-de-Dôme"),
            "département found from the point"
        );
        assert!(render(Some("974"), None).is_none());
    }
}
