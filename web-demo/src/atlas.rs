//! The atlas: many resources on one map of France drawn on the server as SVG (no tiles, no
//! script), with the same resources as a list grouped by département.
//!
//! Pure: [`render`] takes the points and a way to name each resource's link, and returns the
//! markup; the `/atlas` page (`pages/atlas.rs`) and a publication's « carte » section both call
//! it. Points are placed at their coordinates on metropolitan France or on one of the five
//! overseas insets (971, 972, 973, 974, 976), grouped into one marker with a count when they
//! fall in the same [`CLUSTER_CELL`]; départements are shaded by how many resources they hold
//! ([`CLASSES`]), counting those with a département but no coordinates. Colours are SVG
//! attributes, so the drawing looks the same without the app's stylesheet; [`STYLE`] adds the
//! layout (map beside the list on wide screens) and the focus ring.
//!
//! Outlines and projection come from `map.rs`; the credit line is its [`CREDIT`].

use std::collections::BTreeMap;

use atelier_core::{fr, vocab, DocumentId};
use maud::{html, Markup, PreEscaped};

use crate::glossary;
pub use crate::map::CREDIT;
use crate::map::{self, Dept, Frame};

/// One resource to place on the atlas.
#[derive(Debug, Clone, PartialEq)]
pub struct AtlasPoint {
    pub id: DocumentId,
    pub title: String,
    /// The kind's code (`realisation`, …), shown by its French name.
    pub kind: String,
    pub commune: Option<String>,
    /// The département's code (`63`, `2A`, `974`); when absent, the one whose outline holds
    /// the coordinates.
    pub departement: Option<String>,
    pub lon: Option<f64>,
    pub lat: Option<f64>,
}

/// The atlas's styles (layout, legend, focus ring), already part of the app's stylesheet; a
/// page outside the app (a publication's static export) includes it once.
pub const STYLE: &str = include_str!("../assets/atlas.css");

/// Width of the drawing in SVG units; the metropolitan map takes the whole width, the insets
/// share a row below it.
pub const WIDTH: f64 = 600.0;
/// Side of the square grid cell, in SVG units, within which points become one marker: a little
/// more than a marker's diameter, so markers never hide one another (with the drawing at its
/// usual 600–700 px, that is the width of a fingertip).
pub const CLUSTER_CELL: f64 = 24.0;
/// Shading classes: (fewest resources of the class, fill). Sequential blues of the app's accent;
/// the outline colour [`OUTLINE`] keeps a 3:1 contrast with every fill but the darkest, and a
/// marker stands out 3:1 from every fill by its body or its white ring (tested below).
pub const CLASSES: [(usize, &str); 5] = [
    (1, "#deebf7"),
    (2, "#b3d1ea"),
    (5, "#7fb0d8"),
    (10, "#4a86bd"),
    (20, "#1f5f8b"),
];
/// Fill of a département with no resource.
pub const EMPTY_FILL: &str = "#f7f7f5";
/// Département outlines and inset frames.
pub const OUTLINE: &str = "#2b3240";
/// Markers: a dark red, with a white ring and white count (contrast 8:1).
pub const MARKER_FILL: &str = "#9b1c14";
/// Text drawn in the SVG (inset names): the app's ink.
pub const INK: &str = "#1d2433";
/// Titles named in a group marker's accessible name before « et N autres »: enough to know
/// what is there, short enough to be read out.
const TITLES_IN_NAME: usize = 3;
/// Up to this many resources, the list's département groups are open; beyond, closed (each
/// group's summary still gives its count, and a marker's link opens its group).
pub const LIST_OPEN_UP_TO: usize = 300;

/// The atlas of these resources: SVG (points grouped when they overlap, départements shaded by
/// count, the five overseas départements as insets) and the list of the same points grouped by
/// département; `href` gives each resource's link.
pub fn render(points: &[AtlasPoint], href: &dyn Fn(&DocumentId) -> String) -> Markup {
    render_with_id(&id_prefix(points), points, href)
}

/// [`render`] with every element id starting with `id` (`{id}-titre`, `{id}-d-63`, …), for a
/// page with several atlases that may show the same points (two map sections of a
/// publication). [`render`] derives it from the points' ids.
pub fn render_with_id(
    id: &str,
    points: &[AtlasPoint],
    href: &dyn Fn(&DocumentId) -> String,
) -> Markup {
    let atlas = Atlas::build(points);
    let prefix = id;
    html! {
        div.atlas {
            (atlas.figure(prefix, href))
            (atlas.list(prefix, href))
        }
    }
}

/// Resources per département as the atlas counts them (the département given, or the one
/// whose outline holds the coordinates); resources with neither are not counted.
pub fn counts(points: &[AtlasPoint]) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for p in points {
        if let Some(d) = departement_of(p) {
            *out.entry(d).or_default() += 1;
        }
    }
    out
}

/// The département a point counts in.
fn departement_of(p: &AtlasPoint) -> Option<String> {
    if let Some(d) = p
        .departement
        .as_deref()
        .map(str::trim)
        .filter(|d| !d.is_empty())
    {
        return Some(d.to_string());
    }
    let (lon, lat) = p.lon.zip(p.lat)?;
    map::departement_at(lon, lat).map(|d| d.code.clone())
}

/// One marker: where it is drawn and the points it stands for (indexes into the points).
#[derive(Debug, Clone, PartialEq)]
struct Marker {
    x: f64,
    y: f64,
    members: Vec<usize>,
}

/// The drawing's areas: metropolitan France, then the insets.
struct Layout {
    metro: Frame,
    /// (département, its inset's frame, the inset's box `[left, top, w, h]`).
    insets: Vec<(&'static Dept, Frame, [f64; 4])>,
    /// Every outline as an SVG path, metropolitan then overseas: the same on every atlas, so
    /// drawn once.
    paths: BTreeMap<&'static str, String>,
    height: f64,
}

/// Gap between insets and above them.
const INSET_GAP: f64 = 10.0;
/// Size of an inset's name, in SVG units: large enough to stay readable (10 px) when the
/// drawing shrinks to a 390 px phone screen.
const INSET_FONT: &str = "16";
/// Room under an inset for its name.
const INSET_LABEL: f64 = 22.0;

impl Layout {
    fn get() -> &'static Layout {
        static L: std::sync::OnceLock<Layout> = std::sync::OnceLock::new();
        L.get_or_init(|| {
            let metro = Frame::fit(map::grown(map::bbox_of(map::departements()), 0.01), WIDTH);
            let overseas = map::overseas();
            let n = overseas.len().max(1) as f64;
            // Half a unit kept on each side, so the frames' strokes are not cut by the edge.
            let side = (WIDTH - 1.0 - INSET_GAP * (n - 1.0)) / n;
            let top = metro.height + INSET_GAP;
            let insets: Vec<(&'static Dept, Frame, [f64; 4])> = overseas
                .iter()
                .enumerate()
                .map(|(i, d)| {
                    let left = 0.5 + i as f64 * (side + INSET_GAP);
                    let inner = 6.0;
                    let frame = Frame::centred(
                        map::grown(d.bbox, 0.04),
                        left + inner,
                        top + inner,
                        side - 2.0 * inner,
                        side - 2.0 * inner,
                    );
                    (d, frame, [left, top, side, side])
                })
                .collect();
            let paths = map::departements()
                .iter()
                .map(|d| (d.code.as_str(), metro.path(d)))
                .chain(insets.iter().map(|(d, f, _)| (d.code.as_str(), f.path(d))))
                .collect();
            Layout {
                paths,
                metro,
                insets,
                height: top + side + INSET_LABEL,
            }
        })
    }

    /// Where a point is drawn: its area (0 metropolitan, then the insets) and position; `None`
    /// when it falls outside every area.
    fn place(&self, lon: f64, lat: f64) -> Option<(usize, (f64, f64))> {
        let at = self.metro.project(lon, lat);
        if self.metro.holds(at) {
            return Some((0, at));
        }
        self.insets
            .iter()
            .enumerate()
            .find_map(|(i, (_, frame, _))| {
                let at = frame.project(lon, lat);
                frame.holds(at).then_some((i + 1, at))
            })
    }
}

/// Everything the drawing and the list need, computed once.
struct Atlas<'a> {
    points: &'a [AtlasPoint],
    markers: Vec<Marker>,
    /// Département → its points, in input order.
    by_dept: BTreeMap<String, Vec<usize>>,
    /// Points with coordinates outside every area and no département.
    elsewhere: Vec<usize>,
    /// Points with neither département nor coordinates.
    unlocated: Vec<usize>,
    /// Whether each point is behind a marker.
    drawn: Vec<bool>,
}

impl<'a> Atlas<'a> {
    fn build(points: &'a [AtlasPoint]) -> Self {
        let layout = Layout::get();
        let placed: Vec<Option<(usize, (f64, f64))>> = points
            .iter()
            .map(|p| {
                p.lon
                    .zip(p.lat)
                    .and_then(|(lon, lat)| layout.place(lon, lat))
            })
            .collect();
        let mut by_dept: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        let (mut elsewhere, mut unlocated) = (Vec::new(), Vec::new());
        for (i, p) in points.iter().enumerate() {
            match departement_of(p) {
                Some(d) => by_dept.entry(d).or_default().push(i),
                None if p.lon.is_some() && p.lat.is_some() => elsewhere.push(i),
                None => unlocated.push(i),
            }
        }
        Atlas {
            points,
            markers: cluster(&placed, CLUSTER_CELL),
            drawn: placed.iter().map(Option::is_some).collect(),
            by_dept,
            elsewhere,
            unlocated,
        }
    }

    fn count(&self, code: &str) -> usize {
        self.by_dept.get(code).map_or(0, Vec::len)
    }

    /// The map, its legend and the credit line.
    fn figure(&self, prefix: &str, href: &dyn Fn(&DocumentId) -> String) -> Markup {
        let layout = Layout::get();
        let title_id = format!("{prefix}-titre");
        let desc_id = format!("{prefix}-desc");
        let on_map: usize = self.markers.iter().map(|m| m.members.len()).sum();
        let placed = match on_map {
            0 => "Aucune fiche n'a de position sur la carte".to_string(),
            n => format!(
                "{} placée{} sur la carte en {}",
                fiches(n),
                fr::plural_s(n as u64),
                marker_count(self.markers.len())
            ),
        };
        let desc = format!(
            "Carte de la France métropolitaine et, en médaillons, de la Guadeloupe, de la \
             Martinique, de la Guyane, de La Réunion et de Mayotte. {placed} ; les départements \
             sont teintés selon leur nombre de fiches. La liste des mêmes fiches, par \
             département, suit la carte."
        );
        html! {
            figure.atlas-map {
                svg xmlns="http://www.w3.org/2000/svg"
                    viewBox={ "0 0 " (num(WIDTH)) " " (num(layout.height)) }
                    role="group" aria-labelledby={ (title_id) " " (desc_id) } {
                    title id=(title_id) { "Atlas : " (fiches(self.points.len())) }
                    desc id=(desc_id) { (desc) }
                    g aria-hidden="true" stroke=(OUTLINE) stroke-width="0.5" stroke-linejoin="round" {
                        @for d in map::departements() { (self.shape(layout, d)) }
                        @for (d, _, [x, y, w, h]) in &layout.insets {
                            rect x=(num(*x)) y=(num(*y)) width=(num(*w)) height=(num(*h)) rx="4" fill="#ffffff" stroke-width="1" {}
                            (self.shape(layout, d))
                            text x=(num(x + w / 2.0)) y=(num(y + h + 17.0)) text-anchor="middle" font-size=(INSET_FONT) fill=(INK) stroke="none" { (d.name) }
                        }
                    }
                    g.atlas-markers {
                        @for m in &self.markers { (self.marker(m, prefix, href)) }
                    }
                }
                figcaption {
                    (legend())
                    p.atlas-credit { small { (CREDIT) } }
                }
            }
        }
    }

    /// One département's outline, shaded by its count, with a tooltip.
    fn shape(&self, layout: &Layout, d: &Dept) -> Markup {
        let n = self.count(&d.code);
        let path = layout.paths.get(d.code.as_str()).map_or("", String::as_str);
        html! {
            path d=(path) fill=(fill(n)) data-departement=(d.code) data-count=(n) {
                title { (d.name) " (" (d.code) ") : " (fiches(n)) }
            }
        }
    }

    /// A marker: a link to the resource, or for a group to its département in the list.
    fn marker(&self, m: &Marker, prefix: &str, href: &dyn Fn(&DocumentId) -> String) -> Markup {
        let n = m.members.len();
        let first = &self.points[m.members[0]];
        let (link, name) = if n == 1 {
            let name = match &first.commune {
                Some(c) => format!("{}, {c}", first.title),
                None => first.title.clone(),
            };
            (href(&first.id), name)
        } else {
            (
                format!(
                    "#{}",
                    group_anchor(prefix, departement_of(first).as_deref())
                ),
                self.group_name(&m.members),
            )
        };
        let r = marker_radius(n);
        html! {
            a href=(link) aria-label=(name) data-count=(n) {
                title { (name) }
                // The focus ring, shown by the stylesheet: dark inside, white outside, so it
                // shows on the lightest and the darkest départements alike.
                circle.atlas-focus cx=(num(m.x)) cy=(num(m.y)) r=(num(r + 5.5)) fill="none" stroke="#ffffff" stroke-width="2" visibility="hidden" {}
                circle.atlas-focus cx=(num(m.x)) cy=(num(m.y)) r=(num(r + 3.0)) fill="none" stroke=(INK) stroke-width="3" visibility="hidden" {}
                circle cx=(num(m.x)) cy=(num(m.y)) r=(num(r)) fill=(MARKER_FILL) stroke="#ffffff" stroke-width="1.5" {}
                @if n > 1 {
                    text x=(num(m.x)) y=(num(m.y + 4.0)) text-anchor="middle" font-size="11" font-weight="700" fill="#ffffff" aria-hidden="true" { (n) }
                }
            }
        }
    }

    /// « 3 fiches à Clermont-Ferrand : A, B, C », « 5 fiches — Cantal (15), Lozère (48) : A,
    /// B, C et 2 autres ».
    fn group_name(&self, members: &[usize]) -> String {
        let pts: Vec<&AtlasPoint> = members.iter().map(|&i| &self.points[i]).collect();
        let mut communes: Vec<&str> = pts.iter().filter_map(|p| p.commune.as_deref()).collect();
        communes.dedup();
        let where_ = if communes.len() == 1 && pts.iter().all(|p| p.commune.is_some()) {
            format!(" à {}", communes[0])
        } else {
            let mut depts: Vec<String> = pts.iter().filter_map(|p| departement_of(p)).collect();
            depts.sort_by_key(|d| dept_order(d));
            depts.dedup();
            let names: Vec<String> = depts.iter().map(|d| fr::departement_name(d)).collect();
            if names.is_empty() {
                String::new()
            } else {
                format!(" — {}", names.join(", "))
            }
        };
        let titles: Vec<&str> = pts
            .iter()
            .take(TITLES_IN_NAME)
            .map(|p| p.title.as_str())
            .collect();
        let more = pts.len().saturating_sub(TITLES_IN_NAME);
        let more = match more {
            0 => String::new(),
            1 => " et 1 autre".into(),
            n => format!(" et {n} autres"),
        };
        format!(
            "{}{where_} : {}{more}",
            fiches(pts.len()),
            titles.join(", ")
        )
    }

    /// The same points as a list, by département (in the order of the département codes), then
    /// those placed outside every département and those with no place.
    fn list(&self, prefix: &str, href: &dyn Fn(&DocumentId) -> String) -> Markup {
        let mut depts: Vec<(&String, &Vec<usize>)> = self.by_dept.iter().collect();
        depts.sort_by_key(|(d, _)| dept_order(d));
        let open = self.points.len() <= LIST_OPEN_UP_TO;
        let heading = format!("{prefix}-liste");
        html! {
            section.atlas-list aria-labelledby=(heading) {
                h2 id=(heading) { "Les fiches par département" }
                @if self.points.is_empty() {
                    p { "Aucune fiche à montrer." }
                }
                @for (code, members) in depts {
                    (self.group(&group_anchor(prefix, Some(code)), &fr::departement_name(code), code, members, open, href))
                }
                @if !self.elsewhere.is_empty() {
                    (self.group(&group_anchor(prefix, None), "Hors des départements dessinés", "", &self.elsewhere, open, href))
                }
                @if !self.unlocated.is_empty() {
                    (self.group(&format!("{prefix}-sans-lieu"), "Sans localisation", "", &self.unlocated, open, href))
                }
            }
        }
    }

    fn group(
        &self,
        anchor: &str,
        name: &str,
        code: &str,
        members: &[usize],
        open: bool,
        href: &dyn Fn(&DocumentId) -> String,
    ) -> Markup {
        html! {
            details.atlas-group id=(anchor) open[open] data-departement=(code) data-count=(members.len()) {
                summary { (name) " — " (fiches(members.len())) }
                ul {
                    @for &i in members {
                        @let p = &self.points[i];
                        li {
                            a href=(href(&p.id)) { (p.title) }
                            span.atlas-meta {
                                " · " (glossary::kind_name(&p.kind))
                                @if let Some(c) = &p.commune { " · " (c) }
                                @if p.lon.is_none() || p.lat.is_none() { " · position non renseignée" }
                                @else if !self.drawn[i] { " · position hors de la carte" }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Groups placed points into markers: first by grid cell of side `cell` within their area,
/// then markers of one area that would overlap (their discs, with a unit between them) are
/// merged, until none do. A marker sits at the mean of its points. Markers come top to bottom,
/// then left to right, area by area (the keyboard's order); points not placed (`None`) are
/// left out.
fn cluster(placed: &[Option<(usize, (f64, f64))>], cell: f64) -> Vec<Marker> {
    let mut cells: BTreeMap<(usize, i64, i64), Vec<usize>> = BTreeMap::new();
    for (i, p) in placed.iter().enumerate() {
        if let Some((area, (x, y))) = p {
            let key = (*area, (y / cell).floor() as i64, (x / cell).floor() as i64);
            cells.entry(key).or_default().push(i);
        }
    }
    let at = |i: usize| placed[i].map_or((0, (0.0, 0.0)), |p| p);
    let marker = |members: Vec<usize>| {
        let n = members.len() as f64;
        let (sx, sy) = members.iter().fold((0.0, 0.0), |(sx, sy), &i| {
            let (_, (x, y)) = at(i);
            (sx + x, sy + y)
        });
        Marker {
            x: sx / n,
            y: sy / n,
            members,
        }
    };
    let mut markers: Vec<(usize, Marker)> = cells
        .into_iter()
        .map(|((area, _, _), members)| (area, marker(members)))
        .collect();
    // Each merge removes a marker, so this ends after at most as many passes as markers.
    'merge: loop {
        for a in 0..markers.len() {
            for b in a + 1..markers.len() {
                let ((area_a, ma), (area_b, mb)) = (&markers[a], &markers[b]);
                let reach = marker_radius(ma.members.len()) + marker_radius(mb.members.len()) + 1.0;
                if area_a == area_b && (ma.x - mb.x).hypot(ma.y - mb.y) < reach {
                    let (_, gone) = markers.remove(b);
                    let mut members = std::mem::take(&mut markers[a].1.members);
                    members.extend(gone.members);
                    members.sort_unstable();
                    markers[a].1 = marker(members);
                    continue 'merge;
                }
            }
        }
        break;
    }
    markers.sort_by(|(area_a, a), (area_b, b)| {
        (area_a, a.y, a.x)
            .partial_cmp(&(area_b, b.y, b.x))
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    markers.into_iter().map(|(_, m)| m).collect()
}

/// Radius of a marker for `n` points: 7 units for one, growing with the logarithm, at most
/// half a cell.
fn marker_radius(n: usize) -> f64 {
    (7.0 + 2.0 * (n as f64).log2()).min(CLUSTER_CELL / 2.0)
}

/// The fill of a département holding `n` resources.
fn fill(n: usize) -> &'static str {
    CLASSES
        .iter()
        .rev()
        .find(|(min, _)| n >= *min)
        .map_or(EMPTY_FILL, |(_, c)| c)
}

/// The legend of the shading and of the markers.
fn legend() -> Markup {
    let mut rows: Vec<(&str, String)> = vec![(EMPTY_FILL, "aucune fiche".into())];
    for (i, (min, colour)) in CLASSES.iter().enumerate() {
        let label = match CLASSES.get(i + 1) {
            Some((next, _)) if next - 1 == *min => fiches(*min),
            Some((next, _)) => format!("{min} à {} fiches", next - 1),
            None => format!("{min} fiches ou plus"),
        };
        rows.push((colour, label));
    }
    html! {
        ul.atlas-legend aria-label="Légende" {
            @for (colour, label) in rows {
                li {
                    svg width="16" height="16" viewBox="0 0 16 16" aria-hidden="true" {
                        rect x="0.5" y="0.5" width="15" height="15" fill=(colour) stroke=(OUTLINE) {}
                    }
                    " " (label)
                }
            }
            li {
                svg width="16" height="16" viewBox="0 0 16 16" aria-hidden="true" {
                    circle cx="8" cy="8" r="7" fill=(MARKER_FILL) stroke="#ffffff" stroke-width="1.5" {}
                }
                " une fiche, ou le nombre de fiches proches"
            }
        }
    }
}

/// « 1 fiche », « 12 fiches ».
fn fiches(n: usize) -> String {
    match n {
        0 => "aucune fiche".into(),
        1 => "1 fiche".into(),
        n => format!("{} fiches", fr::integer(n as u64)),
    }
}

fn marker_count(n: usize) -> String {
    match n {
        1 => "1 repère".into(),
        n => format!("{} repères", fr::integer(n as u64)),
    }
}

/// Sorts départements as the official list does (01 … 95, 2A, 2B, 971 …), unknown codes last.
fn dept_order(code: &str) -> (usize, String) {
    let i = vocab::departements()
        .iter()
        .position(|d| d.code == code)
        .unwrap_or(usize::MAX);
    (i, code.to_string())
}

/// The list group's anchor for a département (or for « hors des départements »).
fn group_anchor(prefix: &str, code: Option<&str>) -> String {
    match code {
        Some(c) => format!("{prefix}-d-{c}"),
        None => format!("{prefix}-ailleurs"),
    }
}

/// An id prefix of these points (FNV-1a of their ids), so two atlases on one page (two
/// sections of a publication) keep their anchors apart.
fn id_prefix(points: &[AtlasPoint]) -> String {
    let mut h: u32 = 0x811c_9dc5;
    for p in points {
        for b in p.id.to_base58().bytes() {
            h = (h ^ b as u32).wrapping_mul(0x0100_0193);
        }
    }
    format!("atlas-{h:08x}")
}

/// An SVG number: one decimal, no trailing « .0 ».
fn num(v: f64) -> PreEscaped<String> {
    let s = format!("{v:.1}");
    PreEscaped(s.strip_suffix(".0").map(str::to_string).unwrap_or(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(n: u8, dept: Option<&str>, at: Option<(f64, f64)>) -> AtlasPoint {
        AtlasPoint {
            id: DocumentId::from_bytes([n; 16]),
            title: format!("Fiche {n}"),
            kind: "realisation".into(),
            commune: None,
            departement: dept.map(str::to_string),
            lon: at.map(|a| a.0),
            lat: at.map(|a| a.1),
        }
    }

    #[test]
    fn points_in_one_cell_make_one_marker_at_their_mean() {
        let placed = vec![
            Some((0, (10.0, 10.0))),
            Some((0, (14.0, 12.0))),
            Some((0, (100.0, 30.0))),
            None,
            // Same position, other area: never grouped with the first two.
            Some((1, (10.0, 10.0))),
        ];
        let markers = cluster(&placed, 24.0);
        assert_eq!(markers.len(), 3);
        // Area by area, top to bottom.
        assert_eq!(markers[0].members, vec![0, 1]);
        assert_eq!((markers[0].x, markers[0].y), (12.0, 11.0));
        assert_eq!(markers[1].members, vec![2]);
        assert_eq!(markers[2].members, vec![4]);
    }

    #[test]
    fn markers_never_overlap_and_keep_every_point_once() {
        // A dense, seeded scatter: many cells' markers would touch before merging.
        let mut seed = 7u64;
        let mut next = || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) as f64 / (1u64 << 31) as f64
        };
        let placed: Vec<Option<(usize, (f64, f64))>> = (0..400)
            .map(|_| Some((0, (100.0 + 150.0 * next(), 100.0 + 150.0 * next()))))
            .collect();
        let markers = cluster(&placed, CLUSTER_CELL);
        let mut seen: Vec<usize> = markers.iter().flat_map(|m| m.members.clone()).collect();
        seen.sort_unstable();
        assert_eq!(seen, (0..400).collect::<Vec<_>>());
        for (i, a) in markers.iter().enumerate() {
            for b in &markers[i + 1..] {
                let reach = marker_radius(a.members.len()) + marker_radius(b.members.len());
                assert!(
                    (a.x - b.x).hypot(a.y - b.y) >= reach,
                    "{a:?} overlaps {b:?}"
                );
            }
        }
        assert!(markers.len() > 1);
    }

    #[test]
    fn counts_take_the_departement_given_or_the_one_under_the_point() {
        let points = vec![
            // Clermont-Ferrand, with its département.
            point(1, Some("63"), Some((3.1455, 45.7859))),
            // Thiers, département only.
            point(2, Some("63"), None),
            // Aurillac, coordinates only.
            point(3, None, Some((2.4449, 44.9264))),
            // Saint-Denis de La Réunion.
            point(4, Some("974"), Some((55.4504, -20.8789))),
            // Nowhere.
            point(5, None, None),
        ];
        let counts = counts(&points);
        assert_eq!(
            counts.into_iter().collect::<Vec<_>>(),
            vec![("15".into(), 1), ("63".into(), 2), ("974".into(), 1)]
        );
        let atlas = Atlas::build(&points);
        // Clermont, Aurillac (metropolitan) and Saint-Denis (an inset) are drawn; Thiers counts
        // in the shading only.
        assert_eq!(atlas.markers.len(), 3);
        assert_eq!(atlas.unlocated, vec![4]);
    }

    #[test]
    fn markup_has_links_shading_insets_list_and_credit() {
        let mut points = vec![
            point(1, Some("63"), Some((3.1455, 45.7859))),
            point(2, Some("63"), Some((3.1460, 45.7860))),
            point(3, Some("63"), None),
            point(4, Some("972"), Some((-61.07, 14.6))),
            // Coordinates far from every drawn area (Montréal): listed, counted, not drawn.
            point(5, Some("15"), Some((-73.57, 45.5))),
        ];
        points[0].commune = Some("Clermont-Ferrand".into());
        points[1].commune = Some("Clermont-Ferrand".into());
        let html = render(&points, &|id| format!("/r/{}", id.to_base58())).into_string();
        assert!(html.contains("aria-label=\"2 fiches à Clermont-Ferrand : Fiche 1, Fiche 2\""));
        let prefix = id_prefix(&points);
        assert!(html.contains(&format!("<a href=\"#{prefix}-d-63\" aria-label=\"2 fiches")));
        assert!(html.contains(&format!(
            "<details class=\"atlas-group\" id=\"{prefix}-d-63\""
        )));
        assert!(html.contains(&format!(
            "href=\"/r/{}\" aria-label=\"Fiche 4\"",
            points[3].id.to_base58()
        )));
        // Puy-de-Dôme shaded as 3 (2–4 class), in the drawing and the list.
        assert!(html.contains("fill=\"#b3d1ea\" data-departement=\"63\" data-count=\"3\""));
        assert!(html.contains("data-departement=\"63\" data-count=\"3\">"));
        for name in [
            "Guadeloupe",
            "Martinique",
            "Guyane",
            "La Réunion",
            "Mayotte",
        ] {
            assert!(html.contains(&format!(">{name}</text>")), "{name} inset");
        }
        assert!(html.contains(
            "Fiche 3</a><span class=\"atlas-meta\"> · Réalisation · position non renseignée"
        ));
        assert!(html.contains(CREDIT));
        assert!(html.contains("<title id=\"atlas-"));
        assert!(html.contains("3 fiches placées sur la carte en 2 repères"));
        let named = render_with_id("carte-2", &points, &|_| String::new()).into_string();
        assert!(
            named.contains("<title id=\"carte-2-titre\">") && named.contains("id=\"carte-2-d-63\"")
        );
        assert!(html.contains(
            "Fiche 5</a><span class=\"atlas-meta\"> · Réalisation · position hors de la carte"
        ));
        assert!(html.contains("data-departement=\"15\" data-count=\"1\">"));
        // Clermont's group and Martinique, each with its two focus rings.
        assert_eq!(html.matches("<circle class=\"atlas-focus\"").count(), 4);
    }

    #[test]
    fn an_empty_atlas_still_draws_the_map_and_says_so() {
        let html = render(&[], &|_| String::new()).into_string();
        assert!(html.contains(">Atlas : aucune fiche</title>"));
        assert!(html.contains("Aucune fiche n'a de position sur la carte ;"));
        assert!(html.contains("Aucune fiche à montrer."));
        assert!(html.contains("data-departement=\"974\" data-count=\"0\""));
    }

    #[test]
    fn legend_classes_read_as_ranges() {
        let html = legend().into_string();
        for label in [
            "aucune fiche",
            "1 fiche",
            "2 à 4 fiches",
            "5 à 9 fiches",
            "10 à 19 fiches",
            "20 fiches ou plus",
        ] {
            assert!(html.contains(label), "{label}");
        }
        assert_eq!(fill(0), EMPTY_FILL);
        assert_eq!(fill(4), CLASSES[1].1);
        assert_eq!(fill(250), CLASSES[4].1);
    }

    /// WCAG 2 contrast of two `#rrggbb` colours.
    fn contrast(a: &str, b: &str) -> f64 {
        let lum = |c: &str| {
            let ch = |i: usize| {
                let v = u8::from_str_radix(&c[i..i + 2], 16).unwrap() as f64 / 255.0;
                if v <= 0.03928 {
                    v / 12.92
                } else {
                    ((v + 0.055) / 1.055).powf(2.4)
                }
            };
            0.2126 * ch(1) + 0.7152 * ch(3) + 0.0722 * ch(5)
        };
        let (x, y) = (lum(a), lum(b));
        (x.max(y) + 0.05) / (x.min(y) + 0.05)
    }

    #[test]
    fn colours_keep_their_contrast() {
        // Inset names and legend text on white: text contrast.
        assert!(contrast(INK, "#ffffff") >= 4.5);
        // Counts in white on the marker.
        assert!(contrast("#ffffff", MARKER_FILL) >= 4.5);
        // Graphics contrast (3:1): outlines against every fill but the darkest; a marker's
        // body or its white ring against every fill.
        let fills: Vec<&str> = std::iter::once(EMPTY_FILL)
            .chain(CLASSES.iter().map(|c| c.1))
            .collect();
        for fill in &fills[..fills.len() - 1] {
            assert!(contrast(OUTLINE, fill) >= 3.0, "outline on {fill}");
        }
        for fill in &fills {
            let best = contrast(MARKER_FILL, fill).max(contrast("#ffffff", fill));
            assert!(best >= 3.0, "marker on {fill}");
        }
    }
}
