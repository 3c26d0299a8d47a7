//! The renderer of a publication numérique: one HTML document drawn from a replica's
//! [`Assembled`] publication, used as it is for the web app's « Aperçu » (images from
//! `/media/…`), the exported folder (`index.html` and `images/` beside it) and the single-file
//! export (images inlined as `data:` URIs). No script, no external CSS, font or image: the
//! export reads offline; headings, landmarks, `lang="fr"` and the médiathèque's alt texts make
//! it accessible; its print stylesheet gives a clean A4 PDF (`@page`, one section per page).
//!
//! The output depends only on the documents it is made from: no clock, no random id, maps and
//! lists in the documents' order, so two replicas that synced export the same bytes.

pub mod zip;

use std::collections::{BTreeMap, BTreeSet};

use atelier_core::fields;
use atelier_core::media::{BlobHash, Media, MediaKind, Tier};
use atelier_core::replica::{Assembled, Body, MapPoint};
use atelier_core::resource::Resource;
use atelier_core::{fr, vocab, DocumentId};
use maud::{html, Markup, PreEscaped, DOCTYPE};

use crate::atlas::AtlasPoint;
use crate::glossary;

/// The stylesheet of every publication, inlined in its `<head>`.
pub const CSS: &str = include_str!("../assets/publication.css");
/// Photos shown per resource section: a publication shows a resource, it does not hold its
/// whole médiathèque (the resource's own page does).
pub const MAX_PHOTOS_PER_RESOURCE: usize = 4;
/// The exported folder's page.
pub const INDEX_FILE: &str = "index.html";
/// The folder of the exported images, beside `index.html`.
pub const IMAGES_DIR: &str = "images";

/// One image a publication shows: a blob and its type.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Picture {
    pub hash: BlobHash,
    pub mime: String,
}

impl Picture {
    /// The image of a media entry at `tier` (a rendition, or a small original), if it is one.
    pub fn of(m: &Media, tier: Tier) -> Option<Self> {
        if m.kind == MediaKind::Document {
            return None;
        }
        let hash = m.image_at(tier)?;
        let mime = if hash == m.hash {
            m.mime.clone()
        } else {
            "image/jpeg".to_string()
        };
        Some(Self { hash, mime })
    }

    fn extension(&self) -> &'static str {
        match self.mime.as_str() {
            "image/png" => "png",
            "image/webp" => "webp",
            "image/gif" => "gif",
            _ => "jpg",
        }
    }

    /// Its path in an exported folder.
    pub fn file(&self) -> String {
        format!("{IMAGES_DIR}/{}.{}", self.hash.to_hex(), self.extension())
    }
}

/// Where a rendered publication takes its images from: `None` when this replica does not
/// hold the blob (yet); the alt text is shown in its place.
pub type ImageSrc<'a> = &'a dyn Fn(&Picture) -> Option<String>;

/// One file of an export.
#[derive(Debug, Clone, PartialEq)]
pub struct ExportFile {
    /// Relative, `/`-separated.
    pub path: String,
    pub bytes: Vec<u8>,
}

/// The images of the web app (the preview).
pub fn app_src(p: &Picture) -> Option<String> {
    Some(format!("/media/{}", p.hash.to_hex()))
}

/// Every image the publication shows, each once, in a fixed order.
pub fn pictures(a: &Assembled) -> Vec<Picture> {
    let mut out = BTreeSet::new();
    if let Some(c) = a.cover.as_ref().and_then(|m| Picture::of(m, Tier::Display)) {
        out.insert(c);
    }
    for s in &a.sections {
        if let Body::Resource(res) = &s.body {
            out.extend(photos(&res.1.resource).filter_map(|m| Picture::of(m, Tier::Display)));
        }
    }
    out.into_iter().collect()
}

/// The files of an export: `index.html` and its images, or one HTML file with the images
/// inlined. `blob` reads a blob (`None`: not on this replica).
pub fn export(
    a: &Assembled,
    blob: &dyn Fn(&BlobHash) -> Option<Vec<u8>>,
    single_file: bool,
) -> Vec<ExportFile> {
    let mut images = Vec::new();
    for p in pictures(a) {
        if let Some(bytes) = blob(&p.hash) {
            images.push((p, bytes));
        }
    }
    let find = |p: &Picture| images.iter().find(|(q, _)| q == p);
    if single_file {
        let src = |p: &Picture| {
            find(p).map(|(_, bytes)| format!("data:{};base64,{}", p.mime, base64(bytes)))
        };
        let html = render(a, &src).into_string();
        return vec![ExportFile {
            path: single_file_name(a),
            bytes: html.into_bytes(),
        }];
    }
    let src = |p: &Picture| find(p).map(|_| p.file());
    let html = render(a, &src).into_string();
    let mut files = vec![ExportFile {
        path: INDEX_FILE.into(),
        bytes: html.into_bytes(),
    }];
    for (p, bytes) in images {
        files.push(ExportFile {
            path: p.file(),
            bytes,
        });
    }
    files
}

/// The single file's name: the title in plain letters (`batir-en-terre.html`).
pub fn single_file_name(a: &Assembled) -> String {
    format!("{}.html", slug(&a.publication.title))
}

/// The title in lowercase ASCII letters, digits and dashes, for file names.
pub fn slug(title: &str) -> String {
    let folded = fr::fold(title);
    let mut out = String::new();
    for c in folded.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    let out = out.trim_end_matches('-');
    let out: String = out.chars().take(60).collect();
    if out.is_empty() {
        "publication".into()
    } else {
        out
    }
}

/// The whole HTML document.
pub fn render(a: &Assembled, src: ImageSrc<'_>) -> Markup {
    let p = &a.publication;
    let title_of = |i: usize| section_title(a, i);
    html! {
        (DOCTYPE)
        html lang="fr" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="generator" content="Atelier";
                title { (p.title) }
                style { (PreEscaped(CSS)) (PreEscaped(crate::atlas::STYLE)) }
            }
            body {
                a.skip href="#contenu" { "Aller au contenu" }
                header.cover {
                    @if let Some(m) = &a.cover {
                        (figure(m, src, "cover-figure"))
                    }
                    div.cover-text {
                        p.kicker { "Publication numérique" }
                        h1 { (p.title) }
                        @if !p.subtitle.is_empty() { p.subtitle { (p.subtitle) } }
                    }
                }
                @if !a.sections.is_empty() {
                    nav.toc aria-label="Sommaire" {
                        h2 { "Sommaire" }
                        ol {
                            @for (i, s) in a.sections.iter().enumerate() {
                                li { a href={ "#s-" (s.id) } { (title_of(i)) } }
                            }
                        }
                    }
                }
                main id="contenu" {
                    @if !p.introduction.is_empty() {
                        section.intro aria-label="Introduction" { (paragraphs(&p.introduction)) }
                    }
                    @for (i, s) in a.sections.iter().enumerate() {
                        section.section id={ "s-" (s.id) } data-kind=(kind_of(&s.body)) aria-labelledby={ "h-" (s.id) } {
                            (section_body(a, i, src))
                        }
                    }
                }
                footer.colophon {
                    p { (p.title) @if !p.subtitle.is_empty() { " — " (p.subtitle) } }
                    p { "Publication assemblée avec Atelier par " (glossary::office_name(&p.created_by)) "." }
                    @if a.sections.iter().any(|s| matches!(s.body, Body::Map { .. })) {
                        p.credit { (crate::map::CREDIT) }
                    }
                }
            }
        }
    }
}

fn kind_of(b: &Body) -> &'static str {
    match b {
        Body::Resource(_) | Body::Missing(_) => "resource",
        Body::Text { .. } => "text",
        Body::Map { .. } => "map",
        Body::Theme { .. } => "theme",
    }
}

/// The heading of section `i` (the table of contents and the section share it).
pub fn section_title(a: &Assembled, i: usize) -> String {
    match &a.sections[i].body {
        Body::Resource(res) => res.1.resource.title.clone(),
        Body::Missing(_) => "Fiche indisponible".into(),
        Body::Text { title, .. } if !title.is_empty() => title.clone(),
        Body::Text { .. } => format!("Partie {}", i + 1),
        Body::Map { title, .. } if !title.is_empty() => title.clone(),
        Body::Map { .. } => "Carte".into(),
        Body::Theme { theme: Some(t), .. } => t.label.clone(),
        Body::Theme { .. } => "Thème indisponible".into(),
    }
}

fn section_body(a: &Assembled, i: usize, src: ImageSrc<'_>) -> Markup {
    let s = &a.sections[i];
    let heading = html! { h2 id={ "h-" (s.id) } { (section_title(a, i)) } };
    match &s.body {
        Body::Resource(res) => {
            let r = &res.1.resource;
            html! {
                (heading)
                p.meta { (glossary::kind_name(&r.kind)) " · " (glossary::office_name(&r.office)) }
                @if !r.summary.is_empty() { p.lead { (r.summary) } }
                div.photos {
                    @for m in photos(r) { (figure(m, src, "photo")) }
                }
                (facts(r))
                @if !r.description.is_empty() { div.description { (paragraphs(&r.description)) } }
            }
        }
        Body::Missing(_) => html! {
            (heading)
            p.missing { "Cette fiche a été supprimée ou n'est pas encore arrivée sur ce poste." }
        },
        Body::Text { text, .. } => html! { (heading) (paragraphs(text)) },
        Body::Map {
            points, matched, ..
        } => html! {
            (heading)
            p.meta { (count_line(*matched, points.len())) }
            (map_figure(a, &s.id, points))
        },
        Body::Theme {
            group,
            theme,
            resources,
            matched,
        } => html! {
            (heading)
            @if let Some(t) = theme {
                p.meta { "Thème du groupe de travail « " (group) " »" }
                @if !t.explanation.is_empty() { p.lead { (t.explanation) } }
                p.meta { (count_line(*matched, resources.len())) }
                ul.resources {
                    @for e in resources {
                        li {
                            strong { (e.title) }
                            " — " (glossary::kind_name(&e.kind))
                            @if let Some(c) = &e.commune { ", " (c) }
                            @if !e.summary.is_empty() { br; span.summary { (e.summary) } }
                        }
                    }
                }
            } @else {
                p.missing { "Ce thème a été retiré de son groupe." }
            }
        },
    }
}

fn count_line(matched: usize, shown: usize) -> String {
    let mut line = fr::count(matched as u64, "fiche");
    if shown < matched {
        line.push_str(&format!(" (les {shown} premières sont montrées)"));
    }
    line
}

/// The atlas of a map section (`atlas.rs`, the `/atlas` page's renderer): its element ids start
/// with `carte-<section>`, so two map sections stay apart; a resource also shown in a section of
/// its own links there, the others to their département in the atlas's list.
fn map_figure(a: &Assembled, section: &str, points: &[MapPoint]) -> Markup {
    let prefix = format!("carte-{section}");
    let shown: BTreeMap<DocumentId, &str> = a
        .sections
        .iter()
        .filter_map(|s| match &s.body {
            Body::Resource(res) => Some((res.0, s.id.as_str())),
            _ => None,
        })
        .collect();
    let atlas_points: Vec<AtlasPoint> = points
        .iter()
        .map(|p| AtlasPoint {
            id: p.entry.id,
            title: p.entry.title.clone(),
            kind: p.entry.kind.clone(),
            commune: p.entry.commune.clone(),
            departement: p.entry.departement.clone(),
            lon: p.lon,
            lat: p.lat,
        })
        .collect();
    let departements: BTreeMap<DocumentId, Option<&str>> = points
        .iter()
        .map(|p| (p.entry.id, p.entry.departement.as_deref()))
        .collect();
    let href = |id: &DocumentId| match (shown.get(id), departements.get(id).copied().flatten()) {
        (Some(sid), _) => format!("#s-{sid}"),
        (None, Some(d)) => format!("#{prefix}-d-{d}"),
        (None, None) => format!("#s-{section}"),
    };
    crate::atlas::render_with_id(&prefix, &atlas_points, &href)
}

/// The photos and plans a resource section shows, in gallery order.
fn photos(r: &Resource) -> impl Iterator<Item = &Media> {
    r.media
        .iter()
        .filter(|m| m.kind != MediaKind::Document)
        .take(MAX_PHOTOS_PER_RESOURCE)
}

fn figure(m: &Media, src: ImageSrc<'_>, class: &str) -> Markup {
    let alt = m
        .alt
        .clone()
        .or_else(|| m.caption.clone())
        .unwrap_or_else(|| format!("{} : {}", m.kind.label(), m.name));
    let picture = Picture::of(m, Tier::Display);
    let (w, h) = m
        .display
        .map(|d| (d.width, d.height))
        .or(m.width.zip(m.height))
        .unwrap_or((0, 0));
    html! {
        figure class=(class) {
            @match picture.as_ref().and_then(src) {
                Some(url) => {
                    @if w > 0 && h > 0 {
                        img src=(url) alt=(alt) width=(w) height=(h);
                    } @else {
                        img src=(url) alt=(alt);
                    }
                },
                None => p.missing-image { "Image pas encore reçue : " (alt) },
            }
            @if m.caption.is_some() || m.credit.is_some() {
                figcaption {
                    @if let Some(c) = &m.caption { (c) " " }
                    @if let Some(c) = &m.credit { span.credit { (c) } }
                }
            }
        }
    }
}

/// Key facts of a resource, as a definition list.
fn facts(r: &Resource) -> Markup {
    let label = |name: &'static str| fields::field(name).map_or(name, |f| f.label);
    let opt = |vocabulary: &str, v: &Option<String>| {
        v.as_deref()
            .map(|c| vocab::label_or_code(vocabulary, c).to_string())
    };
    let list = |vocabulary: &str, v: &[String]| {
        (!v.is_empty()).then(|| {
            v.iter()
                .map(|c| vocab::label_or_code(vocabulary, c).to_string())
                .collect::<Vec<_>>()
                .join(", ")
        })
    };
    let amount = |name: &str, x: Option<f64>| fields::field(name).and_then(|f| Some(f.amount(x?)));
    let loc = r.location.clone().unwrap_or_default();
    let lieu = match (&loc.commune, &loc.departement) {
        (Some(c), Some(d)) => Some(format!("{c}, {}", fr::departement_name(d))),
        (Some(c), None) => Some(c.clone()),
        (None, Some(d)) => Some(fr::departement_name(d)),
        (None, None) => None,
    };
    let designers = (!r.designers.is_empty()).then(|| {
        r.designers
            .iter()
            .map(|d| {
                format!(
                    "{} ({})",
                    d.name,
                    vocab::label_or_code(vocab::DESIGNER_ROLES, &d.role)
                )
            })
            .collect::<Vec<_>>()
            .join(", ")
    });
    let rows: Vec<(&str, Option<String>)> = vec![
        (label("location"), lieu),
        (fields::year_label(&r.kind), r.year.map(|y| y.to_string())),
        (label("client"), r.client.clone()),
        (label("designers"), designers),
        (
            label("intervention"),
            opt(vocab::INTERVENTIONS, &r.intervention),
        ),
        (
            label("building_type"),
            opt(vocab::BUILDING_TYPES, &r.building_type),
        ),
        (label("cost_eur_ht"), amount("cost_eur_ht", r.cost_eur_ht)),
        (
            label("floor_area_m2"),
            amount("floor_area_m2", r.floor_area_m2),
        ),
        (label("tool_type"), opt(vocab::TOOL_TYPES, &r.tool_type)),
        (
            label("action_type"),
            opt(vocab::ACTION_TYPES, &r.action_type),
        ),
        (label("sectors"), list(vocab::SECTORS, &r.sectors)),
        (
            label("materials"),
            (!r.materials.is_empty()).then(|| r.materials.join(", ")),
        ),
        (label("themes"), list(vocab::THEMES, &r.themes)),
    ];
    html! {
        dl.facts {
            @for (l, v) in &rows {
                @if let Some(v) = v { dt { (l) } dd { (v) } }
            }
        }
    }
}

/// Paragraphs split on blank lines; no HTML is ever made from the text.
fn paragraphs(text: &str) -> Markup {
    crate::pages::paragraphs(text)
}

/// Standard base64 (RFC 4648, with padding), for `data:` URIs.
pub fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_the_rfc_examples() {
        for (input, expected) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(input.as_bytes()), expected);
        }
    }

    #[test]
    fn slugs_are_plain_file_names() {
        assert_eq!(
            slug("Bâtir en terre : le Massif central !"),
            "batir-en-terre-le-massif-central"
        );
        assert_eq!(slug("« »"), "publication");
    }
}
