//! The publications numériques in pages: `GET /publications` (the list, « Créer une
//! publication »), `/publications/{id}` (the editor: title, subtitle, cover from the
//! médiathèque, introduction, sections added, moved with « Monter » / « Descendre » and removed
//! by plain forms that need no script), `/apercu` (the publication exactly as exported),
//! `POST /exporter` (a zip of the folder, or the single HTML file) and `/regenerer` (what
//! changed since the last export).

use atelier_core::clock::now_ms;
use atelier_core::media::{MediaKind, Tier};
use atelier_core::replica::{Body, PublicationSummary, ReplicaError, SinceExport};
use atelier_core::resource::FieldError;
use atelier_core::work::publication::{
    Cover, NewPublication, PublicationEdit, SectionContent, MAX_SECTIONS,
};
use atelier_core::{fr, DocumentId};
use axum::extract::rejection::FormRejection;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use maud::{html, Markup};

use super::{capitalise, checked, input_id, Failed};
use crate::api::publication::{add_section, export, publication_view, SectionRequest};
use crate::error::WebError;
use crate::form::FormData;
use crate::layout::{self, Nav, PageMeta};
use crate::pages::{form_data, resource_path};
use crate::publication::{self as render, zip};
use crate::AppState;

/// Resource titles offered as suggestions in « Ajouter une fiche » (a `datalist`): enough for
/// an office's corpus; beyond, people type the ref or the start of the title.
pub const MAX_SUGGESTED_TITLES: usize = 2_000;

/// The page of a publication's editor.
pub fn publication_path(id: &DocumentId) -> String {
    format!("/publications/{}", id.to_base58())
}

/// Labels of the publication forms' fields (for the error summary and the inputs).
fn label(field: &str) -> &'static str {
    match field {
        "title" => "Titre",
        "subtitle" => "Sous-titre",
        "introduction" => "Introduction",
        "cover" => "Photo de couverture",
        "section_title" | "titre" => "Titre de la section",
        "section_text" | "texte" => "Texte",
        "filter" | "carte" => "Filtre de la carte",
        "fiche" | "resource" => "Fiche",
        "theme" => "Thème de groupe",
        _ => "Section",
    }
}

/// Notices after a form.
#[derive(Debug, Default, serde::Deserialize)]
pub struct Notice {
    cree: Option<String>,
    enregistre: Option<String>,
    ajoutee: Option<String>,
    retiree: Option<String>,
    deplacee: Option<String>,
}

impl Notice {
    fn message(&self) -> Option<&'static str> {
        if self.cree.is_some() {
            Some("La publication a été créée. Ajoutez-lui des sections ci-dessous.")
        } else if self.ajoutee.is_some() {
            Some("Section ajoutée.")
        } else if self.retiree.is_some() {
            Some("Section retirée.")
        } else if self.deplacee.is_some() {
            Some("Section déplacée.")
        } else if self.enregistre.is_some() {
            Some("Modifications enregistrées.")
        } else {
            None
        }
    }
}

pub async fn list(State(state): State<AppState>) -> Result<Response, WebError> {
    let all = state.blocking(|r| Ok(r.publications()?)).await?;
    Ok(list_page(&state, &all, None).into_response())
}

pub async fn create(
    State(state): State<AppState>,
    form: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> Result<Response, WebError> {
    let data = form_data(form)?;
    let new = NewPublication {
        title: data.get("title").unwrap_or_default().to_string(),
        subtitle: data.get("subtitle").unwrap_or_default().to_string(),
        introduction: data
            .get("introduction")
            .unwrap_or_default()
            .replace("\r\n", "\n"),
    };
    let outcome = state
        .blocking(move |r| checked(r.create_publication(&new, &mut rand::rngs::OsRng, now_ms())))
        .await?;
    match outcome {
        Ok(id) => Ok(Redirect::to(&format!("{}?cree=1", publication_path(&id))).into_response()),
        Err(errors) => {
            let all = state.blocking(|r| Ok(r.publications()?)).await?;
            let failed = Failed {
                form: "nouvelle-publication".into(),
                data,
                errors,
            };
            Ok((
                StatusCode::UNPROCESSABLE_ENTITY,
                list_page(&state, &all, Some(&failed)),
            )
                .into_response())
        }
    }
}

fn list_page(state: &AppState, all: &[PublicationSummary], failed: Option<&Failed>) -> Markup {
    let f = "nouvelle-publication";
    let (data, errors) = Failed::of(failed, f);
    let value = |name: &str| data.get(name).unwrap_or_default().to_string();
    let content = html! {
        h1 { "Publications numériques" }
        p.lead { "Une publication rassemble des fiches, des textes, des cartes et des thèmes de groupe en un document à lire, à imprimer ou à envoyer : elle s'exporte en un dossier ou un seul fichier HTML qui s'ouvre sans connexion. Plusieurs offices peuvent l'écrire en même temps." }
        @if all.is_empty() {
            p.empty { "Aucune publication pour l'instant. Créez la première ci-dessous." }
        } @else {
            ul.cards.publications {
                @for p in all {
                    li.card {
                        h2 { a href=(publication_path(&p.id)) { (p.title) } }
                        p.meta { (fr::count(p.sections as u64, "section")) }
                        p { a href={ (publication_path(&p.id)) "/apercu" } { "Aperçu" span.visually-hidden { " de « " (p.title) " »" } } }
                    }
                }
            }
        }
        section.work-form aria-labelledby="creer-publication" {
            h2 #creer-publication { "Créer une publication" }
            p.help { "Seul le titre est obligatoire. La publication est aussi rangée parmi les fiches, au genre « Publication numérique »." }
            form method="post" action="/publications" novalidate {
                (summary(f, &errors))
                (text_field(f, "title", &value("title"), true, &errors))
                (text_field(f, "subtitle", &value("subtitle"), false, &errors))
                (area_field(f, "introduction", &value("introduction"), 5, &errors))
                div.form-actions { button.primary type="submit" { "Créer la publication" } }
            }
        }
    };
    layout::page(
        state,
        PageMeta {
            title: "Publications numériques",
            page: "publications",
            doc: None,
            nav: Nav::Publications,
        },
        content,
    )
}

/// What the editor draws, read once.
struct Editor {
    view: crate::api::publication::PublicationView,
    /// (value `resource:hash`, label) of every photo the cover may be.
    photos: Vec<(String, String)>,
    /// Titles of live resources, for the suggestions.
    titles: Vec<String>,
    /// (value `group:theme`, label) of every group theme.
    themes: Vec<(String, String)>,
    resource: Option<DocumentId>,
}

async fn editor_data(state: &AppState, id: String) -> Result<Editor, WebError> {
    state
        .blocking(move |r| {
            let view = publication_view(r, &id)?;
            let a = r.assemble(&view.id)?;
            let mut photos = Vec::new();
            for s in &a.sections {
                if let Body::Resource(res) = &s.body {
                    for m in &res.1.resource.media {
                        if m.kind == MediaKind::Document || m.image_at(Tier::Display).is_none() {
                            continue;
                        }
                        let what = m.alt.clone().unwrap_or_else(|| m.name.clone());
                        photos.push((
                            format!("{}:{}", res.0.to_base58(), m.hash.to_hex()),
                            format!("{what} — {}", res.1.resource.title),
                        ));
                    }
                }
            }
            let mut titles: Vec<String> = r
                .list(&atelier_core::replica::ListFilter::default())?
                .into_iter()
                .filter(|e| e.kind != "publication")
                .map(|e| e.title)
                .take(MAX_SUGGESTED_TITLES)
                .collect();
            titles.dedup();
            let mut themes = Vec::new();
            for g in r.groups()? {
                let group = r.group(&g.id)?;
                for t in &group.themes {
                    themes.push((
                        format!("{}:{}", g.id.to_base58(), t.id),
                        format!("{} — {}", group.name, t.label),
                    ));
                }
            }
            let resource = view.publication.resource;
            Ok(Editor {
                view,
                photos,
                titles,
                themes,
                resource,
            })
        })
        .await
}

pub async fn editor(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(notice): Query<Notice>,
) -> Result<Response, WebError> {
    let e = editor_data(&state, id).await?;
    Ok(editor_page(&state, &e, notice.message(), None).into_response())
}

fn editor_page(
    state: &AppState,
    e: &Editor,
    message: Option<&str>,
    failed: Option<&Failed>,
) -> Markup {
    let p = &e.view.publication;
    let path = publication_path(&e.view.id);
    let f = "presentation";
    let (data, errors) = Failed::of(failed, f);
    let fresh = failed.is_none_or(|x| x.form != f);
    let value = |name: &str, stored: &str| {
        if fresh {
            stored.to_string()
        } else {
            data.get(name).unwrap_or_default().to_string()
        }
    };
    let cover_value = p
        .cover
        .as_ref()
        .map(|c| format!("{}:{}", c.resource.to_base58(), c.hash.to_hex()))
        .unwrap_or_default();
    let n = p.sections.len();
    let content = html! {
        p.crumbs { a href="/publications" { "← Publications numériques" } }
        @if let Some(m) = message { div.notice.ok role="status" { (m) } }
        header.publication-head {
            p.kicker { "Publication numérique" }
            h1 { (p.title) }
            @if !p.subtitle.is_empty() { p.lead { (p.subtitle) } }
            div.actions {
                a.button.primary href={ (path) "/apercu" } { "Aperçu" }
                a.button href={ (path) "/regenerer" } { "Régénérer" }
                @if let Some(res) = &e.resource { a.button href=(resource_path(res)) { "Sa fiche" } }
            }
            (export_form(&path, "Exporter"))
        }
        section.work-form aria-labelledby="presentation-titre" {
            h2 #presentation-titre { "Présentation" }
            form method="post" action=(path) novalidate {
                (summary(f, &errors))
                (text_field(f, "title", &value("title", &p.title), true, &errors))
                (text_field(f, "subtitle", &value("subtitle", &p.subtitle), false, &errors))
                div.field {
                    label for=(input_id(f, "cover")) { (label("cover")) }
                    p.help id={ (input_id(f, "cover")) "-aide" } { "Une photo de la médiathèque des fiches de la publication, avec son texte de remplacement." }
                    select id=(input_id(f, "cover")) name="cover" aria-describedby={ (input_id(f, "cover")) "-aide" } {
                        option value="" selected[cover_value.is_empty()] { "Pas de couverture" }
                        @for (v, l) in &e.photos {
                            option value=(v) selected[*v == cover_value] { (l) }
                        }
                    }
                }
                (area_field(f, "introduction", &value("introduction", &p.introduction), 8, &errors))
                div.form-actions { button.primary type="submit" { "Enregistrer" } }
            }
        }
        section.publication-sections aria-labelledby="sections-titre" id="sections" {
            h2 #sections-titre { "Sections (" (n) ")" }
            @if n == 0 {
                p.empty { "Pas encore de section : ajoutez une fiche, un texte, une carte ou un thème ci-dessous." }
            }
            ol.sections {
                @for (i, s) in p.sections.iter().enumerate() {
                    @let heading = e.view.headings.get(i).cloned().unwrap_or_default();
                    @let spath = format!("{path}/sections/{}", s.id);
                    li.section-item id={ "section-" (s.id) } {
                        div.section-line {
                            span.badge { (s.content.label()) }
                            " "
                            strong { (heading) }
                        }
                        div.section-actions {
                            form.inline method="post" action={ (spath) "/deplacer" } {
                                input type="hidden" name="index" value=(i.saturating_sub(1));
                                button type="submit" disabled[i == 0] { "Monter" span.visually-hidden { " « " (heading) " »" } }
                            }
                            form.inline method="post" action={ (spath) "/deplacer" } {
                                input type="hidden" name="index" value=(i + 1);
                                button type="submit" disabled[i + 1 == n] { "Descendre" span.visually-hidden { " « " (heading) " »" } }
                            }
                            form.inline method="post" action={ (spath) "/retirer" } {
                                button.danger type="submit" { "Retirer" span.visually-hidden { " « " (heading) " »" } }
                            }
                        }
                        @match &s.content {
                            SectionContent::Text { title, text } => {
                                details {
                                    summary { "Modifier le texte" }
                                    form method="post" action={ (spath) "/modifier" } {
                                        @let sf = format!("texte-{}", s.id);
                                        (text_field(&sf, "titre", title, false, &[]))
                                        (area_field(&sf, "texte", text, 6, &[]))
                                        button type="submit" { "Enregistrer le texte" }
                                    }
                                }
                            },
                            SectionContent::Map { title, filter } => {
                                details {
                                    summary { "Modifier la carte" }
                                    form method="post" action={ (spath) "/modifier" } {
                                        @let sf = format!("carte-{}", s.id);
                                        (text_field(&sf, "titre", title, false, &[]))
                                        (text_field(&sf, "carte", filter, false, &[]))
                                        button type="submit" { "Enregistrer la carte" }
                                    }
                                }
                            },
                            _ => {},
                        }
                    }
                }
            }
        }
        @if n < MAX_SECTIONS {
            (add_forms(&path, e, failed))
        }
    };
    layout::page(
        state,
        PageMeta {
            title: &p.title,
            page: "publication",
            doc: None,
            nav: Nav::Publications,
        },
        content,
    )
}

fn export_form(path: &str, button: &str) -> Markup {
    html! {
        form.export-form method="post" action={ (path) "/exporter" } {
            fieldset {
                legend { "Format de l'export" }
                label.option { input type="radio" name="format" value="zip" checked; " Un dossier (archive zip : index.html et ses images)" }
                label.option { input type="radio" name="format" value="html"; " Un seul fichier HTML (images incluses)" }
            }
            button type="submit" { (button) }
        }
    }
}

fn add_forms(path: &str, e: &Editor, failed: Option<&Failed>) -> Markup {
    let action = format!("{path}/sections");
    let one = |form: &str| Failed::of(failed, form);
    let (fd, fe) = one("ajout-fiche");
    let (td, te) = one("ajout-texte");
    let (cd, ce) = one("ajout-carte");
    let (hd, he) = one("ajout-theme");
    let v = |d: &FormData, name: &str| d.get(name).unwrap_or_default().to_string();
    html! {
        section.work-form.add-sections aria-labelledby="ajouter-titre" {
            h2 #ajouter-titre { "Ajouter une section" }
            p.help { "Chaque section s'ajoute à la fin ; déplacez-la ensuite avec « Monter » et « Descendre »." }
            form method="post" action=(action) novalidate {
                input type="hidden" name="formulaire" value="ajout-fiche";
                h3 { "Une fiche" }
                (summary("ajout-fiche", &fe))
                div.field.invalid[!fe.is_empty()] {
                    label for="ajout-fiche-fiche" { "Titre ou référence de la fiche" }
                    p.help id="ajout-fiche-fiche-aide" { "Montrée avec son résumé, ses informations clés et ses photos." }
                    @for err in &fe { p.error { (capitalise(&err.message)) } }
                    input type="text" id="ajout-fiche-fiche" name="fiche" list="titres-fiches" value=(v(&fd, "fiche")) aria-describedby="ajout-fiche-fiche-aide";
                    datalist #titres-fiches { @for t in &e.titles { option value=(t) {} } }
                }
                button type="submit" { "Ajouter la fiche" }
            }
            form method="post" action=(action) novalidate {
                input type="hidden" name="formulaire" value="ajout-texte";
                h3 { "Un texte" }
                (summary("ajout-texte", &te))
                (text_field("ajout-texte", "titre", &v(&td, "titre"), false, &te))
                (area_field("ajout-texte", "texte", &v(&td, "texte"), 5, &te))
                button type="submit" { "Ajouter le texte" }
            }
            form method="post" action=(action) novalidate {
                input type="hidden" name="formulaire" value="ajout-carte";
                h3 { "Une carte" }
                (summary("ajout-carte", &ce))
                (text_field("ajout-carte", "titre", &v(&cd, "titre"), false, &ce))
                div.field.invalid[ce.iter().any(|x| x.field == "filter")] {
                    label for="ajout-carte-carte" { (label("carte")) }
                    @for err in ce.iter().filter(|x| x.field == "filter") { p.error { (capitalise(&err.message)) } }
                    p.help id="ajout-carte-carte-aide" { "Les fiches montrées : choisissez les filtres dans la liste des fiches, puis copiez ici la fin de son adresse (après « ? »), par exemple kind=realisation&departement=63. Vide : toutes les fiches." }
                    input type="text" id="ajout-carte-carte" name="carte" value=(v(&cd, "carte")) aria-describedby="ajout-carte-carte-aide";
                }
                button type="submit" { "Ajouter la carte" }
            }
            @if !e.themes.is_empty() {
                form method="post" action=(action) novalidate {
                    input type="hidden" name="formulaire" value="ajout-theme";
                    h3 { "Un thème de groupe" }
                    (summary("ajout-theme", &he))
                    div.field {
                        label for="ajout-theme-theme" { (label("theme")) }
                        select id="ajout-theme-theme" name="theme" {
                            @for (val, l) in &e.themes { option value=(val) selected[v(&hd, "theme") == *val] { (l) } }
                        }
                    }
                    button type="submit" { "Ajouter le thème" }
                }
            }
        }
    }
}

fn text_field(
    form: &str,
    name: &str,
    value: &str,
    required: bool,
    errors: &[FieldError],
) -> Markup {
    let id = input_id(form, name);
    let mine: Vec<&FieldError> = errors
        .iter()
        .filter(|e| e.field == name || (name == "titre" && e.field == "section_title"))
        .collect();
    html! {
        div.field.invalid[!mine.is_empty()] {
            label for=(id) { (label(name)) }
            @for e in &mine { p.error id={ (id) "-erreur" } { (capitalise(&e.message)) } }
            input type="text" id=(id) name=(name) value=(value) required[required] aria-invalid=[(!mine.is_empty()).then_some("true")];
        }
    }
}

fn area_field(form: &str, name: &str, value: &str, rows: u32, errors: &[FieldError]) -> Markup {
    let id = input_id(form, name);
    let mine: Vec<&FieldError> = errors
        .iter()
        .filter(|e| e.field == name || (name == "texte" && e.field == "section_text"))
        .collect();
    html! {
        div.field.invalid[!mine.is_empty()] {
            label for=(id) { (label(name)) }
            @if name == "introduction" || name == "texte" {
                p.help id={ (id) "-aide" } { "Séparez les paragraphes par une ligne vide." }
            }
            @for e in &mine { p.error id={ (id) "-erreur" } { (capitalise(&e.message)) } }
            textarea id=(id) name=(name) rows=(rows) aria-invalid=[(!mine.is_empty()).then_some("true")] { (value) }
        }
    }
}

fn summary(form: &str, errors: &[FieldError]) -> Markup {
    html! {
        @if !errors.is_empty() {
            div.error-summary role="alert" tabindex="-1" id={ (form) "-erreurs" } {
                h2 { "Rien n'a été enregistré : " @if errors.len() == 1 { "un point est à corriger." } @else { (errors.len()) " points sont à corriger." } }
                ul { @for e in errors { li { (label(&e.field)) " : " (capitalise(&e.message)) } } }
            }
        }
    }
}

/// A refused form drawn again in the editor (422), what was typed kept.
async fn refused(state: &AppState, id: DocumentId, failed: Failed) -> Result<Response, WebError> {
    let e = editor_data(state, id.to_base58()).await?;
    Ok((
        StatusCode::UNPROCESSABLE_ENTITY,
        editor_page(state, &e, None, Some(&failed)),
    )
        .into_response())
}

async fn resolve(state: &AppState, id: String) -> Result<DocumentId, WebError> {
    state
        .blocking(move |r| Ok(r.resolve_publication(&id)?))
        .await
}

/// Runs edits; redirects to the editor with `notice`, or draws the form again with its errors.
async fn edit(
    state: &AppState,
    id: DocumentId,
    form: &str,
    data: FormData,
    notice: &str,
    edits: impl FnOnce(&atelier_core::replica::Replica) -> Result<Vec<PublicationEdit>, ReplicaError>
        + Send
        + 'static,
) -> Result<Response, WebError> {
    let outcome = state
        .blocking(move |r| checked(edits(r).and_then(|e| r.edit_publication(&id, &e, now_ms()))))
        .await?;
    match outcome {
        Ok(_) => Ok(
            Redirect::to(&format!("{}?{notice}=1#sections", publication_path(&id))).into_response(),
        ),
        Err(errors) => {
            refused(
                state,
                id,
                Failed {
                    form: form.into(),
                    data,
                    errors,
                },
            )
            .await
        }
    }
}

pub async fn save(
    State(state): State<AppState>,
    Path(id): Path<String>,
    form: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> Result<Response, WebError> {
    let data = form_data(form)?;
    let id = resolve(&state, id).await?;
    let set = |field: &str| PublicationEdit::Set {
        field: field.into(),
        value: data.get(field).unwrap_or_default().replace("\r\n", "\n"),
    };
    let mut edits = vec![set("title"), set("subtitle"), set("introduction")];
    let cover = data.get("cover").unwrap_or_default().to_string();
    let outcome = (|| {
        if cover.is_empty() {
            return Ok(None);
        }
        let (res, hash) = cover.split_once(':').ok_or(())?;
        Ok::<_, ()>(Some(Cover {
            resource: res.parse().map_err(|_| ())?,
            hash: hash.parse().map_err(|_| ())?,
        }))
    })();
    let Ok(cover) = outcome else {
        return Err(WebError::BadRequest("Photo de couverture inconnue.".into()));
    };
    let current = state
        .blocking(move |r| Ok(r.publication(&id)?.cover))
        .await?;
    if current != cover {
        edits.push(PublicationEdit::Cover(cover));
    }
    edit(&state, id, "presentation", data, "enregistre", move |_| {
        Ok(edits)
    })
    .await
}

pub async fn add(
    State(state): State<AppState>,
    Path(id): Path<String>,
    form: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> Result<Response, WebError> {
    let data = form_data(form)?;
    let id = resolve(&state, id).await?;
    let which = data.get("formulaire").unwrap_or_default().to_string();
    let get = |k: &str| data.get(k).map(str::to_string);
    let req = match which.as_str() {
        "ajout-fiche" => SectionRequest {
            fiche: Some(get("fiche").unwrap_or_default()),
            ..SectionRequest::default()
        },
        "ajout-texte" => SectionRequest {
            texte: Some(get("texte").unwrap_or_default()),
            titre: get("titre").unwrap_or_default(),
            ..SectionRequest::default()
        },
        "ajout-carte" => SectionRequest {
            carte: Some(get("carte").unwrap_or_default()),
            titre: get("titre").unwrap_or_default(),
            ..SectionRequest::default()
        },
        "ajout-theme" => SectionRequest {
            theme: Some(get("theme").unwrap_or_default()),
            ..SectionRequest::default()
        },
        _ => return Err(WebError::BadRequest("Formulaire inconnu.".into())),
    };
    let name = id.to_base58();
    let outcome = state
        .blocking(move |r| {
            checked(add_section(
                r,
                &name,
                &req,
                &mut rand::rngs::OsRng,
                now_ms(),
            ))
        })
        .await?;
    match outcome {
        Ok(_) => Ok(
            Redirect::to(&format!("{}?ajoutee=1#sections", publication_path(&id))).into_response(),
        ),
        Err(errors) => {
            refused(
                &state,
                id,
                Failed {
                    form: which,
                    data,
                    errors,
                },
            )
            .await
        }
    }
}

pub async fn move_section(
    State(state): State<AppState>,
    Path((id, section)): Path<(String, String)>,
    form: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> Result<Response, WebError> {
    let data = form_data(form)?;
    let id = resolve(&state, id).await?;
    let index: usize = data
        .get("index")
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| WebError::BadRequest("Place de la section manquante.".into()))?;
    let edits = vec![PublicationEdit::MoveSection { id: section, index }];
    edit(&state, id, "deplacer", data, "deplacee", move |_| Ok(edits)).await
}

pub async fn remove_section(
    State(state): State<AppState>,
    Path((id, section)): Path<(String, String)>,
) -> Result<Response, WebError> {
    let id = resolve(&state, id).await?;
    let edits = vec![PublicationEdit::RemoveSection(section)];
    edit(
        &state,
        id,
        "retirer",
        FormData::default(),
        "retiree",
        move |_| Ok(edits),
    )
    .await
}

pub async fn set_section(
    State(state): State<AppState>,
    Path((id, section)): Path<(String, String)>,
    form: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> Result<Response, WebError> {
    let data = form_data(form)?;
    let id = resolve(&state, id).await?;
    let title = data.get("titre").unwrap_or_default().to_string();
    let text = data.get("texte").map(|t| t.replace("\r\n", "\n"));
    let filter = data.get("carte").map(str::to_string);
    let sid = section.clone();
    edit(
        &state,
        id,
        &format!("section-{section}"),
        data,
        "enregistre",
        move |r| {
            let p = r.publication(&id)?;
            let current = p.section(&sid).ok_or_else(|| {
                atelier_core::work::WorkError::NotFound(format!("section « {sid} »"))
            })?;
            let content = match &current.content {
                SectionContent::Text { .. } => SectionContent::Text {
                    title,
                    text: text.unwrap_or_default(),
                },
                SectionContent::Map { .. } => SectionContent::Map {
                    title,
                    filter: filter.unwrap_or_default(),
                },
                other => other.clone(),
            };
            Ok(vec![PublicationEdit::SetSection {
                id: sid,
                section: content,
            }])
        },
    )
    .await
}

/// `GET /publications/{id}/apercu`: the publication exactly as exported, images from this app.
pub async fn preview(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, WebError> {
    let html = state
        .blocking(move |r| {
            let id = r.resolve_publication(&id)?;
            let a = r.assemble(&id)?;
            Ok(render::render(&a, &render::app_src).into_string())
        })
        .await?;
    let mut response = ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], html).into_response();
    // The publication carries its stylesheet inline (as exported); it has no script.
    response.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(PREVIEW_CSP),
    );
    Ok(response)
}

/// The preview's policy: its inline stylesheet and this app's images, nothing else.
pub const PREVIEW_CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// `POST /publications/{id}/exporter` (`format=zip|html`): the export as a download; the
/// snapshot is recorded for « Régénérer ».
pub async fn export_download(
    State(state): State<AppState>,
    Path(id): Path<String>,
    form: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> Result<Response, WebError> {
    let data = form_data(form)?;
    let single = data.get("format") == Some("html");
    let (name, bytes) = state
        .blocking(move |r| {
            let (pid, files, _, _) = export(r, &id, single, &mut rand::rngs::OsRng, now_ms())?;
            let a_title = r.publication(&pid)?.title;
            let slug = render::slug(&a_title);
            if single {
                let file = files
                    .into_iter()
                    .next()
                    .map(|f| f.bytes)
                    .unwrap_or_default();
                Ok((format!("{slug}.html"), file))
            } else {
                let bytes = zip::write(&slug, &files).map_err(WebError::internal)?;
                Ok((format!("{slug}.zip"), bytes))
            }
        })
        .await?;
    let kind = if single {
        "text/html; charset=utf-8"
    } else {
        "application/zip"
    };
    Ok((
        [
            (header::CONTENT_TYPE, kind.to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        bytes,
    )
        .into_response())
}

/// `GET /publications/{id}/regenerer`: what changed since the last export, and the export
/// form again.
pub async fn regenerate(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, WebError> {
    let (pid, title, since) = state
        .blocking(move |r| {
            let pid = r.resolve_publication(&id)?;
            Ok((pid, r.publication(&pid)?.title, r.since_export(&pid)?))
        })
        .await?;
    let path = publication_path(&pid);
    let content = html! {
        p.crumbs { a href=(path) { "← " (title) } }
        h1 { "Régénérer « " (title) " »" }
        (since_block(&since))
        (export_form(&path, "Exporter à nouveau"))
    };
    Ok(layout::page(
        &state,
        PageMeta {
            title: "Régénérer la publication",
            page: "publication",
            doc: None,
            nav: Nav::Publications,
        },
        content,
    )
    .into_response())
}

/// What changed since the last export, in sentences and lists.
fn since_block(s: &SinceExport) -> Markup {
    let list = |title: &str, items: &[atelier_core::replica::Source]| {
        html! {
            @if !items.is_empty() {
                h2 { (title) " (" (items.len()) ")" }
                ul { @for i in items { li { a href=(resource_path(&i.id)) { (i.title) } } } }
            }
        }
    };
    html! {
        section.since aria-label="Ce qui a changé" {
            @match &s.export {
                None => p.lead { "Cette publication n'a jamais été exportée : tout est nouveau." },
                Some(e) => p.lead {
                    "Dernier export : " (layout::time(e.at / 1000)) " par " (crate::glossary::office_name(&e.by)) "."
                },
            }
            @if s.export.is_some() && s.is_empty() {
                p { "Rien n'a changé depuis : l'export serait le même." }
            }
            @if !s.publication.is_empty() {
                h2 { "Dans la publication" }
                ul { @for f in &s.publication { li { (change_label(f)) } } }
            }
            (list("Fiches modifiées", &s.changed))
            (list("Fiches ajoutées", &s.added))
            (list("Fiches retirées", &s.removed))
        }
    }
}

/// A change note's field in words.
fn change_label(field: &str) -> String {
    match field {
        "publication:title" => "Le titre".into(),
        "publication:subtitle" => "Le sous-titre".into(),
        "publication:introduction" => "L'introduction".into(),
        "publication:cover" => "La photo de couverture".into(),
        "publication:order" => "L'ordre des sections".into(),
        "publication:created" => "La création".into(),
        f if f.ends_with(":created") => "Une section ajoutée".into(),
        f if f.ends_with(":removed") => "Une section retirée".into(),
        f if f.starts_with("section:") => "Une section modifiée".into(),
        f => f.to_string(),
    }
}
