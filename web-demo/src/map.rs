//! A small map drawn on the server: the département's outline, its neighbours, and a pin at the
//! resource's coordinates, as inline SVG (no tiles, no script, works offline).
//!
//! Outlines: IGN Admin Express COG 2018, Licence Ouverte / Etalab, via france-geojson (96
//! metropolitan départements, simplified, and the five overseas ones); the map shows that
//! credit. The outlines, the projection ([`Frame`]) and the point-in-outline test are shared
//! with the atlas (`atlas.rs`).

use std::sync::OnceLock;

use maud::{html, Markup};
use serde_json::Value;

/// Credit line required by the outlines' licence.
pub const CREDIT: &str =
    "Contours : IGN Admin Express COG 2018, Licence Ouverte / Etalab, via france-geojson";
/// Drawing size in SVG units.
const SIZE: f64 = 320.0;

/// One département's outline, as the shipped GeoJSON gives it.
pub(crate) struct Dept {
    pub code: String,
    pub name: String,
    /// Rings of (lon, lat).
    rings: Vec<Vec<(f64, f64)>>,
    /// `[min lon, min lat, max lon, max lat]`.
    pub bbox: [f64; 4],
}

/// The 96 metropolitan départements.
pub(crate) fn departements() -> &'static [Dept] {
    static D: OnceLock<Vec<Dept>> = OnceLock::new();
    D.get_or_init(|| parse_collection(crate::assets::DEPARTEMENTS_GEOJSON))
}

/// The five overseas départements (971 Guadeloupe, 972 Martinique, 973 Guyane, 974 La Réunion,
/// 976 Mayotte), drawn as insets by the atlas.
pub(crate) fn overseas() -> &'static [Dept] {
    static D: OnceLock<Vec<Dept>> = OnceLock::new();
    D.get_or_init(|| parse_collection(crate::assets::DEPARTEMENTS_OUTRE_MER_GEOJSON))
}

/// The département whose outline holds a point, metropolitan or overseas.
pub(crate) fn departement_at(lon: f64, lat: f64) -> Option<&'static Dept> {
    departements()
        .iter()
        .chain(overseas())
        .find(|d| contains(d, lon, lat))
}

/// The smallest box around every outline of `depts`.
pub(crate) fn bbox_of(depts: &[Dept]) -> [f64; 4] {
    depts
        .iter()
        .fold([f64::MAX, f64::MAX, f64::MIN, f64::MIN], |b, d| {
            [
                b[0].min(d.bbox[0]),
                b[1].min(d.bbox[1]),
                b[2].max(d.bbox[2]),
                b[3].max(d.bbox[3]),
            ]
        })
}

/// A box grown by `ratio` of its longest side on every side.
pub(crate) fn grown(bbox: [f64; 4], ratio: f64) -> [f64; 4] {
    let [x0, y0, x1, y1] = bbox;
    let m = ratio * (x1 - x0).max(y1 - y0);
    [x0 - m, y0 - m, x1 + m, y1 + m]
}

/// Where a box of (lon, lat) lands in SVG units: an equirectangular projection corrected for
/// the latitude of the box's middle, so shapes are not stretched.
pub(crate) struct Frame {
    x0: f64,
    y1: f64,
    /// Cosine of the middle latitude.
    k: f64,
    scale: f64,
    /// Where the box's top left corner is drawn.
    left: f64,
    top: f64,
    /// Drawn size of the box.
    pub width: f64,
    pub height: f64,
}

impl Frame {
    /// `bbox` drawn from (0, 0) with its longest side `size` units long.
    pub fn fit(bbox: [f64; 4], size: f64) -> Frame {
        Frame::placed(bbox, 0.0, 0.0, size, size, false)
    }

    /// `bbox` drawn as large as fits in the `w` × `h` box at (`left`, `top`), centred in it.
    pub fn centred(bbox: [f64; 4], left: f64, top: f64, w: f64, h: f64) -> Frame {
        Frame::placed(bbox, left, top, w, h, true)
    }

    fn placed(bbox: [f64; 4], left: f64, top: f64, w: f64, h: f64, centre: bool) -> Frame {
        let [x0, y0, x1, y1] = bbox;
        let k = ((y0 + y1) / 2.0).to_radians().cos();
        let (dx, dy) = (((x1 - x0) * k).max(1e-9), (y1 - y0).max(1e-9));
        let scale = (w / dx).min(h / dy);
        let (width, height) = (dx * scale, dy * scale);
        let (left, top) = if centre {
            (left + (w - width) / 2.0, top + (h - height) / 2.0)
        } else {
            (left, top)
        };
        Frame {
            x0,
            y1,
            k,
            scale,
            left,
            top,
            width,
            height,
        }
    }

    /// A point in SVG units.
    pub fn project(&self, lon: f64, lat: f64) -> (f64, f64) {
        (
            self.left + (lon - self.x0) * self.k * self.scale,
            self.top + (self.y1 - lat) * self.scale,
        )
    }

    /// Whether a projected point falls inside the drawn box.
    pub fn holds(&self, (x, y): (f64, f64)) -> bool {
        x >= self.left
            && x <= self.left + self.width
            && y >= self.top
            && y <= self.top + self.height
    }

    /// The SVG path of a département's outline (points that land on the same tenth of a unit
    /// as the previous one are dropped: at atlas scale most of the outline's points do).
    pub fn path(&self, d: &Dept) -> String {
        let mut s = String::new();
        for ring in &d.rings {
            let mut last = String::new();
            for (i, (lon, lat)) in ring.iter().enumerate() {
                let (x, y) = self.project(*lon, *lat);
                let at = format!("{x:.1},{y:.1}");
                if at == last {
                    continue;
                }
                s.push(if i == 0 { 'M' } else { 'L' });
                s.push_str(&at);
                last = at;
            }
            s.push('Z');
        }
        s
    }
}

fn parse_collection(bytes: &[u8]) -> Vec<Dept> {
    let v: Value = serde_json::from_slice(bytes).unwrap_or(Value::Null);
    let features = v["features"].as_array().cloned().unwrap_or_default();
    features.iter().filter_map(parse_feature).collect()
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
    let [x0, y0, x1, y1] = grown(dept.bbox, 0.12);
    let frame = Frame::fit([x0, y0, x1, y1], SIZE);
    let (w, h) = (frame.width, frame.height);
    let project = |lon: f64, lat: f64| frame.project(lon, lat);
    let path = |d: &Dept| frame.path(d);
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
pub(crate) fn contains(d: &Dept, lon: f64, lat: f64) -> bool {
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
