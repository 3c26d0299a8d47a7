//! The frame of every page: header with the office's name, navigation, the sync indicator, and
//! the error page. HTML is built with maud, which escapes every inserted value.

use atelier_core::fr;
use axum::http::StatusCode;
use maud::{html, Markup, PreEscaped, DOCTYPE};

use crate::sync_status::SyncView;
use crate::AppState;
use atelier_core::clock::now_ms;

/// What a page tells the frame about itself.
pub struct PageMeta<'a> {
    pub title: &'a str,
    /// `list`, `atlas`, `resource`, `edit`, `new`, `history`, `version`, `delete`, `lexicon`, `error`:
    /// which live behaviour the script turns on.
    pub page: &'a str,
    /// The bare document id the page is about, if any.
    pub doc: Option<String>,
    /// Which navigation entry is current.
    pub nav: Nav,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Nav {
    List,
    Atlas,
    New,
    Lexicon,
    Groups,
    Publications,
    ForYou,
    News,
    None,
}

/// A whole page around `content`.
pub fn page(state: &AppState, meta: PageMeta<'_>, content: Markup) -> Markup {
    let office = state.replica().office();
    let office_name = fr::office_name(office);
    let sync = SyncView::of(state.sync().as_ref(), now_ms());
    let counts = state.counts().get().unwrap_or_default();
    let current = |nav: Nav| (meta.nav == nav).then_some("page");
    html! {
        (DOCTYPE)
        html lang="fr" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (meta.title) " — Atelier, " (office_name) }
                link rel="icon" href="data:,";
                link rel="stylesheet" href="/assets/app.css";
                script src="/assets/app.js" defer {}
            }
            body data-page=(meta.page) data-doc=[meta.doc.as_deref()] data-office=(office) {
                a.skip href="#contenu" { "Aller au contenu" }
                header.top {
                    div.brand {
                        a href="/" { span.logo aria-hidden="true" { "◧" } " Atelier" }
                        span.office { (office_name) }
                    }
                    nav aria-label="Navigation principale" {
                        a href="/" aria-current=[current(Nav::List)] { "Toutes les fiches" }
                        a href="/atlas" aria-current=[current(Nav::Atlas)] { "Atlas" }
                        a href="/ressources/nouvelle" aria-current=[current(Nav::New)] { "Ajouter une fiche" }
                        a href="/groupes" aria-current=[current(Nav::Groups)] { "Groupes" }
                        a href="/publications" aria-current=[current(Nav::Publications)] { "Publications" }
                        span #compteurs .nav-counts {
                            a href="/pour-vous" aria-current=[current(Nav::ForYou)] {
                                "Pour vous" (count_badge(counts.for_you, "for_you", "élément", "éléments"))
                            }
                            a href="/nouveautes" aria-current=[current(Nav::News)] {
                                "Quoi de neuf" (count_badge(counts.news, "news", "nouveauté non lue", "nouveautés non lues"))
                            }
                        }
                        a href="/lexique" aria-current=[current(Nav::Lexicon)] { "Lexique" }
                    }
                    // The list page is the search page: it has its own box, with the filters.
                    @if meta.page != "list" { (search_box()) }
                    (sync_badge(&sync))
                }
                main id="contenu" { (content) }
                footer.bottom {
                    p { "Atelier — les ressources des CAUE, partagées entre offices. Tout est enregistré sur cet ordinateur, même sans connexion." }
                }
            }
        }
    }
}

/// A count next to a navigation entry, worded for screen readers; hidden when zero. The
/// script keeps it current from `counts` events (`data-count` names the count, `data-one` and
/// `data-many` the words).
fn count_badge(n: usize, which: &str, one: &str, many: &str) -> Markup {
    html! {
        span.count-wrap data-count=(which) data-one=(one) data-many=(many) hidden[n == 0] {
            " "
            span.nav-count aria-hidden="true" { (n) }
            span.visually-hidden { " : " (n) " " (if n == 1 { one } else { many }) }
        }
    }
}

/// A magnifying glass, drawn inline: the header has no room for a worded button, and no icon
/// font or image is fetched.
const MAGNIFIER_SVG: &str = r#"<svg viewBox="0 0 20 20" aria-hidden="true" focusable="false"><circle cx="8.5" cy="8.5" r="5.5" fill="none" stroke="currentColor" stroke-width="2"/><path d="M12.5 12.5 18 18" stroke="currentColor" stroke-width="2" stroke-linecap="round"/></svg>"#;

/// The search box of the header: it opens the list page with the query in the address.
fn search_box() -> Markup {
    html! {
        form.header-search method="get" action="/" role="search" {
            label.visually-hidden for="recherche" { "Rechercher dans le corpus" }
            input type="search" id="recherche" name="q" placeholder="Rechercher…" autocomplete="off";
            button type="submit" title="Chercher" {
                (PreEscaped(MAGNIFIER_SVG))
                span.visually-hidden { "Chercher" }
            }
        }
    }
}

/// The sync indicator; the script keeps it current from `sync` events.
pub fn sync_badge(view: &SyncView) -> Markup {
    let dot = match view.kind {
        "connecte" => "●",
        "hors_ligne" => "○",
        _ => "◌",
    };
    html! {
        div #sync .sync data-kind=(view.kind) role="status" aria-live="polite" title=(view.detail) {
            span.dot aria-hidden="true" { (dot) }
            span.headline { (view.headline) }
            button type="button" .link #sync-now hidden[view.kind != "hors_ligne"] { "Réessayer" }
            span.detail.visually-hidden { (view.detail) }
        }
    }
}

/// The French error page.
pub fn error_page(state: &AppState, status: StatusCode, message: &str) -> Markup {
    let title = match status {
        StatusCode::NOT_FOUND => "Page introuvable",
        StatusCode::FORBIDDEN | StatusCode::UNAUTHORIZED => "Accès refusé",
        StatusCode::PAYLOAD_TOO_LARGE => "Envoi trop volumineux",
        s if s.is_server_error() => "Erreur inattendue",
        _ => "Demande impossible",
    };
    page(
        state,
        PageMeta {
            title,
            page: "error",
            doc: None,
            nav: Nav::None,
        },
        html! {
            section.error-page {
                h1 { (title) }
                p.lead { (message) }
                p { a.button href="/" { "Revenir à la liste des fiches" } }
            }
        },
    )
}

/// The page a browser without the session gets: what happened (`message`) and how to get a
/// login link. No script (it would open the live events, which need the session), no data of
/// the replica but the office's name.
pub fn login_page(state: &AppState, message: &str) -> Markup {
    let office_name = fr::office_name(state.replica().office());
    let ttl_min = crate::auth::LOGIN_LINK_TTL.as_secs() / 60;
    // The replica's folder is worth showing only to someone at this computer.
    let dir = state.replica().dir();
    let dir = if state.loopback_only() && !dir.as_os_str().is_empty() {
        dir.display().to_string()
    } else {
        "DOSSIER_DU_REPLICA".to_string()
    };
    html! {
        (DOCTYPE)
        html lang="fr" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { "Connexion nécessaire — Atelier, " (office_name) }
                link rel="icon" href="data:,";
                link rel="stylesheet" href="/assets/app.css";
            }
            body data-page="connexion" {
                header.top {
                    div.brand {
                        span { span.logo aria-hidden="true" { "◧" } " Atelier" }
                        span.office { (office_name) }
                    }
                }
                main id="contenu" {
                    section.error-page.login-page {
                        h1 { "Connexion nécessaire" }
                        p.lead { (message) }
                        p { "Sur l'ordinateur où tourne Atelier, lancez dans un terminal :" }
                        pre { code { "atelier --dir " (dir) " ouvrir" } }
                        p {
                            "puis ouvrez le lien qu'elle affiche. Le lien affiché au démarrage d'atelier-web (ou d'« atelier demo ») convient aussi s'il n'a pas encore servi ; un lien expire au bout de "
                            (ttl_min) " minutes."
                        }
                    }
                }
            }
        }
    }
}

/// A `<time>` the script shows in local time; the text is UTC for browsers without script.
pub fn time(seconds: i64) -> Markup {
    let dt = time::OffsetDateTime::from_unix_timestamp(seconds)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let iso = dt
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let text = format!(
        "{:02}/{:02}/{} à {:02}h{:02} (UTC)",
        dt.day(),
        u8::from(dt.month()),
        dt.year(),
        dt.hour(),
        dt.minute()
    );
    html! { time datetime=(iso) { (text) } }
}

/// Trusted HTML made by core (search snippets escape the text and add `<mark>` only).
pub fn trusted(html: &str) -> PreEscaped<&str> {
    PreEscaped(html)
}
