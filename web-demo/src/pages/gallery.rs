//! How the médiathèque reads on the pages: a resource's gallery (photos and plans with their
//! credit and caption, a full-size view), its documents with their size, the cover image of a
//! card, and the placeholder of a blob not received yet (« photo en cours de réception », with
//! which renditions are missing and their size).
//!
//! Whether a blob is here is asked once per page render ([`Presence::of`]); a placeholder carries
//! `data-waiting` with the hashes it waits for, so the script redraws it when the server says one
//! arrived (the `media` live event).

use std::collections::HashSet;

use atelier_core::fr;
use atelier_core::media::{BlobHash, Media, MediaKind, Rendition, Tier};
use atelier_core::replica::Replica;
use atelier_core::DocumentId;
use maud::{html, Markup};

use crate::media::{blob_path, download_path};
use crate::pages::resource_path;

/// Which of some media's blobs are on this device.
#[derive(Debug, Default, Clone)]
pub struct Presence(HashSet<BlobHash>);

impl Presence {
    /// Looks up every blob of `media` in the replica's store.
    pub fn of(r: &Replica, media: &[Media]) -> Self {
        let store = r.media_store();
        Self(
            media
                .iter()
                .flat_map(Media::blobs)
                .map(|b| b.hash)
                .filter(|h| store.contains(h))
                .collect(),
        )
    }

    pub fn has(&self, hash: &BlobHash) -> bool {
        self.0.contains(hash)
    }
}

/// The address of a resource's media page (adding, texts, removal).
pub fn media_page_path(id: &DocumentId) -> String {
    format!("{}/medias", resource_path(id))
}

/// « © J. Martin » as credits are shown: the sign added when the text lacks it.
pub fn credit_text(credit: &str) -> String {
    let c = credit.trim();
    if c.starts_with('©') {
        c.to_string()
    } else {
        format!("© {c}")
    }
}

/// « PDF », « JPEG »: a file's type as staff name it.
pub fn type_label(mime: &str) -> &'static str {
    match mime {
        "application/pdf" => "PDF",
        "image/jpeg" => "JPEG",
        "image/png" => "PNG",
        "image/webp" => "WebP",
        _ => "fichier",
    }
}

/// The image of a media entry to show at `tier`, when it is here; else the other image tier.
pub fn shown(m: &Media, tier: Tier, present: &Presence) -> Option<(BlobHash, Option<(u32, u32)>)> {
    let size = |r: Option<Rendition>| r.map(|r| (r.width, r.height));
    let (first, second) = match tier {
        Tier::Thumb => (m.thumb, m.display),
        _ => (m.display, m.thumb),
    };
    [first, second]
        .into_iter()
        .flatten()
        .find(|r| present.has(&r.hash))
        .map(|r| (r.hash, size(Some(r))))
        .or_else(|| {
            // An image without renditions (none made) is shown as it is.
            (m.thumb.is_none() && m.display.is_none() && m.mime.starts_with("image/"))
                .then_some(m.hash)
                .filter(|h| present.has(h))
                .map(|h| (h, m.width.zip(m.height)))
        })
}

/// The image blobs of an entry not here yet, as « vignette (12,3 ko) », for a placeholder.
fn missing_images(m: &Media, present: &Presence) -> Vec<(BlobHash, String)> {
    let mut out: Vec<(BlobHash, String)> = [(Tier::Thumb, m.thumb), (Tier::Display, m.display)]
        .into_iter()
        .filter_map(|(tier, r)| r.map(|r| (tier, r)))
        .filter(|(_, r)| !present.has(&r.hash))
        .map(|(tier, r)| (r.hash, format!("{} ({})", tier.label(), fr::size(r.bytes))))
        .collect();
    if m.thumb.is_none() && m.display.is_none() && !present.has(&m.hash) {
        out.push((
            m.hash,
            format!("{} ({})", Tier::Original.label(), fr::size(m.bytes)),
        ));
    }
    out
}

/// The placeholder of an image not received yet.
pub fn placeholder(m: &Media, present: &Presence) -> Markup {
    let missing = missing_images(m, present);
    let waiting: Vec<String> = missing.iter().map(|(h, _)| h.to_hex()).collect();
    let what: Vec<&str> = missing.iter().map(|(_, w)| w.as_str()).collect();
    html! {
        div.placeholder data-waiting=(waiting.join(" ")) {
            span.ph-title { (m.kind.label_capitalized()) " en cours de réception" }
            @if !what.is_empty() { span.ph-detail { "Manque : " (what.join(", ")) } }
        }
    }
}

/// A resource's gallery and documents (`#mediatheque`), with the link to add some.
pub fn gallery(id: &DocumentId, media: &[Media], present: &Presence, can_add: bool) -> Markup {
    let images: Vec<&Media> = media
        .iter()
        .filter(|m| m.kind != MediaKind::Document)
        .collect();
    let documents: Vec<&Media> = media
        .iter()
        .filter(|m| m.kind == MediaKind::Document)
        .collect();
    html! {
        section #mediatheque .mediatheque aria-labelledby="mediatheque-titre" {
            div.section-head {
                h2 #mediatheque-titre { "Photos et documents" }
                @if can_add {
                    a.button href=(media_page_path(id)) {
                        @if media.is_empty() { "Ajouter des photos ou des documents" } @else { "Ajouter ou modifier" }
                    }
                }
            }
            @if media.is_empty() {
                p.empty { "Pas encore de photo ni de document." }
            }
            @if !images.is_empty() {
                ul.gallery {
                    @for (i, m) in images.iter().enumerate() {
                        li { (figure(m, i, present)) }
                    }
                }
            }
            @if !documents.is_empty() {
                h3 { "Documents" }
                ul.documents {
                    @for m in &documents { li { (document(m, present)) } }
                }
            }
        }
    }
}

/// One photo or plan of the gallery: its thumbnail opens the full-size view (a plain link to the
/// display size without script; a dialog with the script).
fn figure(m: &Media, index: usize, present: &Presence) -> Markup {
    let alt = m
        .alt
        .as_deref()
        .unwrap_or(m.caption.as_deref().unwrap_or(&m.name));
    let thumb = shown(m, Tier::Thumb, present);
    let full = shown(m, Tier::Display, present);
    html! {
        figure.media data-hash=(m.hash.to_hex()) {
            @if let (Some((t, size)), Some((f, _))) = (thumb, full) {
                a.media-open href=(blob_path(&f)) data-index=(index)
                    data-original=[present.has(&m.hash).then(|| download_path(&m.hash, &m.name))]
                    data-original-size=(fr::size(m.bytes)) {
                    img src=(blob_path(&t)) alt=(alt) loading="lazy" decoding="async"
                        width=[size.map(|s| s.0)] height=[size.map(|s| s.1)];
                    span.visually-hidden { " (agrandir)" }
                }
            } @else {
                (placeholder(m, present))
            }
            figcaption {
                @if let Some(c) = &m.caption { span.caption { (c) } }
                @if let Some(c) = &m.credit { span.credit { (credit_text(c)) } }
                span.original {
                    @if present.has(&m.hash) {
                        a href=(download_path(&m.hash, &m.name)) {
                            "Original " span.visually-hidden { "de « " (alt) " » " } "(" (type_label(&m.mime)) ", " (fr::size(m.bytes)) ")"
                        }
                    } @else {
                        "Original pas encore sur cet ordinateur (" (fr::size(m.bytes)) ")"
                    }
                }
            }
        }
    }
}

/// One document: its name, type and size, and a download link when it is here.
fn document(m: &Media, present: &Presence) -> Markup {
    let what = format!("{}, {}", type_label(&m.mime), fr::size(m.bytes));
    html! {
        div.document data-hash=(m.hash.to_hex()) {
            span.doc-icon aria-hidden="true" { (type_label(&m.mime)) }
            div {
                @if present.has(&m.hash) {
                    a href=(download_path(&m.hash, &m.name)) { (m.name) }
                    " " span.doc-size { "(" (what) ")" }
                } @else {
                    span data-waiting=(m.hash.to_hex()) {
                        strong { (m.name) }
                        " " span.doc-size { "(" (what) ") — en cours de réception" }
                    }
                }
                @if let Some(c) = &m.caption { br; span.caption { (c) } }
                @if let Some(c) = &m.credit { br; span.credit { (credit_text(c)) } }
            }
        }
    }
}

/// The full-size view the script opens from the gallery: a modal dialog (focus stays inside,
/// Échap closes it), with the previous and next images.
pub fn viewer() -> Markup {
    html! {
        dialog #visionneuse aria-labelledby="visionneuse-titre" {
            div.viewer-bar {
                h2 #visionneuse-titre .visually-hidden { "Image en grand" }
                span #visionneuse-position {}
                button type="button" #visionneuse-precedente { "← Précédente" }
                button type="button" #visionneuse-suivante { "Suivante →" }
                button type="button" #visionneuse-fermer { "Fermer" }
            }
            figure {
                img #visionneuse-image src="data:," alt="";
                figcaption #visionneuse-legende {}
            }
        }
    }
}

/// A card's cover: the first photo's thumbnail, decorative (the title is next to it), or its
/// placeholder.
pub fn card_cover(m: &Media, present: &Presence) -> Markup {
    match shown(m, Tier::Thumb, present) {
        Some((hash, size)) => html! {
            div.card-cover {
                img src=(blob_path(&hash)) alt="" loading="lazy" decoding="async"
                    width=[size.map(|s| s.0)] height=[size.map(|s| s.1)];
            }
        },
        None => html! { div.card-cover.waiting { (placeholder(m, present)) } },
    }
}

/// French, capitalised kind names for headings (« Photo », « Plan »).
trait Capitalized {
    fn label_capitalized(self) -> &'static str;
}

impl Capitalized for MediaKind {
    fn label_capitalized(self) -> &'static str {
        match self {
            MediaKind::Photo => "Photo",
            MediaKind::Plan => "Plan",
            MediaKind::Document => "Document",
        }
    }
}
