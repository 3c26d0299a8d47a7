//! `GET /groupes` (the groups, and « Créer un groupe »), `GET /groupes/{id}` (a group's home:
//! name, slogan, action, editorial line, publics, themes with their resources, members,
//! progress) and `/groupes/{id}/reglages` (its settings, for member offices; read-only, saying
//! why, for the others).

use atelier_core::card::ListingEntry;
use atelier_core::clock::now_ms;
use atelier_core::fields;
use atelier_core::replica::GroupSummary;
use atelier_core::resource::FieldError;
use atelier_core::vocab;
use atelier_core::work::group::{Group, GroupEdit, NewGroup, Theme, THEME_VOCABULARIES};
use atelier_core::work::new_key;
use atelier_core::DocumentId;
use axum::extract::rejection::FormRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use maud::{html, Markup};

use super::{
    checked, error_summary, field, group_path, input_id, me, public_label, split_list,
    theme_value_label, Failed, Input,
};
use crate::error::WebError;
use crate::form::FormData;
use crate::glossary;
use crate::layout::{self, Nav, PageMeta};
use crate::pages::{form_data, kind_badge, paragraphs, resource_path};
use crate::AppState;

/// Resources listed under each theme on a group's home; the rest are counted. A theme of a
/// corpus of 10,000 resources may hold hundreds: the page stays readable and light.
pub const MAX_THEME_RESOURCES_SHOWN: usize = 12;

/// Notices after a form: `?cree=1`, `?enregistre=1`.
#[derive(Debug, Default, serde::Deserialize)]
pub struct Notice {
    cree: Option<String>,
    enregistre: Option<String>,
}

impl Notice {
    fn message(&self) -> Option<&'static str> {
        if self.cree.is_some() {
            Some("Le groupe a été créé.")
        } else if self.enregistre.is_some() {
            Some("Modifications enregistrées.")
        } else {
            None
        }
    }
}

pub async fn list(State(state): State<AppState>) -> Result<Response, WebError> {
    let groups = state.blocking(|r| Ok(r.groups()?)).await?;
    Ok(list_page(&state, &groups, None).into_response())
}

pub async fn create(
    State(state): State<AppState>,
    form: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> Result<Response, WebError> {
    let data = form_data(form)?;
    let new = NewGroup {
        name: data.get("name").unwrap_or_default().to_string(),
        slogan: data.get("slogan").unwrap_or_default().to_string(),
        action: data.get("action").unwrap_or_default().to_string(),
        line: data.get("line").unwrap_or_default().replace("\r\n", "\n"),
        members: split_list(data.get("members").unwrap_or_default()),
        publics: publics_of(&data),
        approval_required: data.get("approval_required").is_some(),
    };
    let outcome = state
        .blocking(move |r| checked(r.create_group(&new, &mut rand::rngs::OsRng, now_ms())))
        .await?;
    match outcome {
        Ok(id) => Ok(Redirect::to(&format!("{}?cree=1", group_path(&id))).into_response()),
        Err(errors) => {
            let groups = state.blocking(|r| Ok(r.groups()?)).await?;
            let failed = Failed {
                form: "nouveau-groupe".into(),
                data,
                errors,
            };
            Ok((
                StatusCode::UNPROCESSABLE_ENTITY,
                list_page(&state, &groups, Some(&failed)),
            )
                .into_response())
        }
    }
}

/// The publics ticked in the audiences list and those typed in the group's own words.
fn publics_of(data: &FormData) -> Vec<String> {
    let mut publics: Vec<String> = data
        .all("publics")
        .into_iter()
        .filter(|p| !p.is_empty())
        .map(str::to_string)
        .collect();
    publics.extend(split_list(data.get("publics_own").unwrap_or_default()));
    publics.dedup();
    publics
}

fn list_page(state: &AppState, groups: &[GroupSummary], failed: Option<&Failed>) -> Markup {
    let me = me(state);
    let (data, errors) = Failed::of(failed, "nouveau-groupe");
    let fresh = failed.is_none();
    let f = "nouveau-groupe";
    let value = |name: &str| data.get(name).unwrap_or_default().to_string();
    let content = html! {
        h1 { "Groupes de travail" }
        p.lead { (glossary::WORK_TERMS[0].explanation) }
        @if groups.is_empty() {
            p.empty { "Aucun groupe pour l'instant. Créez le premier ci-dessous." }
        } @else {
            ul.cards.groups {
                @for g in groups {
                    li.card {
                        h2 { a href=(group_path(&g.id)) { (g.name) } }
                        p.meta {
                            (g.members.len()) @if g.members.len() == 1 { " office membre : " } @else { " offices membres : " }
                            (g.members.iter().map(|m| glossary::office_name(m)).collect::<Vec<_>>().join(", "))
                        }
                        @if g.members.contains(&me) { p { span.badge.member { "Votre office en est membre" } } }
                    }
                }
            }
        }
        section.work-form aria-labelledby="creer-titre" {
            h2 #creer-titre { "Créer un groupe" }
            p.help { "Votre office en sera membre. Seul le nom est obligatoire : le reste se complète ensuite dans les réglages du groupe." }
            form method="post" action="/groupes" novalidate {
                (error_summary(f, &errors))
                (field(f, "name", Input::Text { value: &value("name"), required: true }, &errors))
                (field(f, "slogan", Input::Text { value: &value("slogan"), required: false }, &errors))
                (field(f, "action", Input::Text { value: &value("action"), required: false }, &errors))
                (field(f, "members", Input::Text { value: &value("members"), required: false }, &errors))
                (publics_fields(f, &data.all("publics").iter().map(|s| s.to_string()).collect::<Vec<_>>(), &value("publics_own"), &errors))
                (approval_field(f, if fresh { true } else { data.get("approval_required").is_some() }))
                (field(f, "line", Input::Area { value: &value("line"), rows: 5 }, &errors))
                div.form-actions { button.primary type="submit" { "Créer le groupe" } }
            }
        }
    };
    layout::page(
        state,
        PageMeta {
            title: "Groupes de travail",
            page: "groups",
            doc: None,
            nav: Nav::Groups,
        },
        content,
    )
}

/// The audiences as checkboxes, and the group's own words.
fn publics_fields(f: &str, ticked: &[String], own: &str, errors: &[FieldError]) -> Markup {
    let (label, help) = glossary::work_field("publics");
    let mine: Vec<&FieldError> = errors.iter().filter(|e| e.field == "publics").collect();
    html! {
        fieldset.choices.invalid[!mine.is_empty()] id=(input_id(f, "publics")) {
            legend { (label) }
            p.help { (help) }
            @for e in &mine { p.error { (super::capitalise(&e.message)) } }
            div.options {
                @for (code, label) in vocab::codes(vocab::AUDIENCES) {
                    @let id = format!("{}-{}", input_id(f, "publics"), code);
                    label.option for=(id) {
                        input type="checkbox" id=(id) name="publics" value=(code) checked[ticked.contains(code)];
                        " " (label)
                    }
                }
            }
        }
        (field(f, "publics_own", Input::Text { value: own, required: false }, errors))
    }
}

fn approval_field(f: &str, checked: bool) -> Markup {
    let (label, help) = glossary::work_field("approval_required");
    let id = input_id(f, "approval_required");
    html! {
        div.field.check {
            input type="checkbox" id=(id) name="approval_required" value="1" checked[checked] aria-describedby={ (id) "-aide" };
            label for=(id) { (label) }
            p.help id={ (id) "-aide" } { (help) }
        }
    }
}

/// Reads a group and its resources; `id` is what the address holds (id, URL or name).
async fn load(
    state: &AppState,
    id: String,
) -> Result<(DocumentId, Group, Vec<ListingEntry>), WebError> {
    state
        .blocking(move |r| {
            let gid = r.resolve_group(&id)?;
            let g = r.group(&gid)?;
            let resources = r.group_resources(&g)?;
            Ok((gid, g, resources))
        })
        .await
}

/// The sentence a non-member office reads on a group's pages.
pub fn read_only_notice(state: &AppState, g: &Group) -> Markup {
    let office = glossary::office_name(&me(state));
    html! {
        div.notice.warn.read-only role="note" {
            "Votre office (" (office) ") n'est pas membre de ce groupe : vous voyez tout, en lecture seule. "
            "Seuls ses bureaux membres (" (g.members.iter().map(|m| glossary::office_name(m)).collect::<Vec<_>>().join(", ")) ") peuvent le modifier, et le relais refuse les modifications des autres offices."
        }
    }
}

/// The group's name, slogan and its pages, on top of each of them.
pub fn group_head(gid: &DocumentId, g: &Group, current: &str) -> Markup {
    let path = group_path(gid);
    let tab = |href: String, key: &str, text: &str| {
        html! { a href=(href) aria-current=[(current == key).then_some("page")] { (text) } }
    };
    html! {
        header.group-head {
            p.crumbs { a href="/groupes" { "← Tous les groupes" } }
            h1 { (g.name) }
            @if !g.slogan.is_empty() { p.slogan { "« " (g.slogan) " »" } }
            @if !g.action.is_empty() { p.meta { "Action : " strong { (g.action) } } }
            nav.tabs aria-label="Pages du groupe" {
                (tab(path.clone(), "home", "Le groupe"))
                (tab(format!("{path}/plan"), "plan", "Plan de charge"))
                (tab(format!("{path}/reglages"), "settings", "Réglages"))
            }
        }
    }
}

pub async fn home(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(notice): Query<Notice>,
) -> Result<Response, WebError> {
    let (gid, g, resources) = load(&state, id).await?;
    let today = super::today();
    let shares = g.shares(&today);
    let done = g
        .tasks
        .iter()
        .filter(|t| t.status == atelier_core::work::group::TaskStatus::Fait)
        .count();
    let me = me(&state);
    let content = html! {
        (group_head(&gid, &g, "home"))
        @if let Some(m) = notice.message() { div.notice.ok role="status" { (m) } }
        @if !g.is_member(&me) { (read_only_notice(&state, &g)) }
        div #groupe data-live-block="" data-watch=(gid.to_base58()) {
            div.group-layout {
                div.group-main {
                    section aria-labelledby="ligne-titre" {
                        h2 #ligne-titre { "Ligne éditoriale" }
                        @if g.line.is_empty() { p.empty { "Pas encore de ligne éditoriale." } } @else { div.line { (paragraphs(&g.line)) } }
                    }
                    section aria-labelledby="themes-titre" {
                        h2 #themes-titre { "Thèmes du groupe" }
                        p.help { (glossary::WORK_TERMS[3].explanation) }
                        @if g.themes.is_empty() { p.empty { "Pas encore de thème." } }
                        @for t in &g.themes {
                            @let under: Vec<&ListingEntry> = resources.iter().filter(|e| Group::theme_matches(t, e)).collect();
                            article.theme {
                                h3 { (t.label) }
                                p { (t.explanation) }
                                @if !t.values.is_empty() {
                                    ul.tags aria-label="Valeurs du vocabulaire" { @for v in &t.values { li { (theme_value_label(v)) } } }
                                }
                                @if under.is_empty() {
                                    p.empty { "Aucune fiche du groupe sous ce thème pour l'instant." }
                                } @else {
                                    p.meta { (atelier_core::fr::count(under.len() as u64, "fiche")) " du groupe sous ce thème" }
                                    ul.theme-resources {
                                        @for e in under.iter().take(MAX_THEME_RESOURCES_SHOWN) {
                                            li { (kind_badge(&e.kind)) " " a href=(resource_path(&e.id)) { (e.title) } " " span.meta { "— " (glossary::office_name(&e.office)) } }
                                        }
                                    }
                                    @if under.len() > MAX_THEME_RESOURCES_SHOWN {
                                        p.meta { "et " (atelier_core::fr::count((under.len() - MAX_THEME_RESOURCES_SHOWN) as u64, "autre fiche")) }
                                    }
                                }
                            }
                        }
                    }
                }
                aside.group-side {
                    section aria-labelledby="publics-titre" {
                        h2 #publics-titre { "Publics visés" }
                        @if g.publics.is_empty() { p.empty { "Pas encore précisés." } }
                        @else { ul.tags { @for p in &g.publics { li { (public_label(p)) } } } }
                    }
                    section aria-labelledby="membres-titre" {
                        h2 #membres-titre { "Offices membres" }
                        ul.plain.members {
                            @for m in &g.members {
                                li { (glossary::office_name(m)) @if *m == me { " " span.badge.member { "votre office" } } }
                            }
                        }
                        p.meta { (atelier_core::fr::count(resources.len() as u64, "fiche")) " dans le groupe (celles de ses offices et celles qu'on y a ajoutées)." }
                        p.meta { @if g.approval_required { "Publier une fiche du groupe demande l'approbation d'un autre office." } @else { "Les fiches du groupe se publient sans approbation." } }
                    }
                    section aria-labelledby="avancement-titre" {
                        h2 #avancement-titre { "Avancement" }
                        @if g.tasks.is_empty() {
                            p.empty {
                                "Le plan de charge n'a pas encore de tâche. "
                                @if g.is_member(&me) { a href={ (group_path(&gid)) "/plan#ajouter" } { "Ajouter une tâche" } }
                            }
                        } @else {
                            p {
                                label for="avancement" { (g.progress()) " % du plan de charge fait (" (done) " sur " (atelier_core::fr::count(g.tasks.len() as u64, "tâche")) ")" }
                                br;
                                progress #avancement max="100" value=(g.progress()) { (g.progress()) " %" }
                            }
                            (shares_table(&gid, &shares, g.tasks.len()))
                            p { a href={ (group_path(&gid)) "/plan" } { "Voir le plan de charge" } }
                        }
                    }
                }
            }
        }
    };
    Ok(layout::page(
        &state,
        PageMeta {
            title: &g.name,
            page: "group",
            doc: Some(gid.to_base58()),
            nav: Nav::Groups,
        },
        content,
    )
    .into_response())
}

/// Each office's share of the plan: tasks, done, late, part of the whole.
pub fn shares_table(
    gid: &DocumentId,
    shares: &[atelier_core::work::group::Share],
    total: usize,
) -> Markup {
    html! {
        div.table-scroll role="region" aria-labelledby="parts-legende" tabindex="0" {
            table.data.shares {
                caption #parts-legende { "La part de chaque office" }
                thead { tr { th scope="col" { "Office" } th scope="col" { "Tâches" } th scope="col" { "Faites" } th scope="col" { "En retard" } th scope="col" { "Part" } } }
                tbody {
                    @for s in shares {
                        tr {
                            th scope="row" {
                                @match &s.office {
                                    Some(o) => a href={ (group_path(gid)) "/plan?bureau=" (o) } { (glossary::office_name(o)) },
                                    None => "Personne encore",
                                }
                            }
                            td.n data-label="Tâches" { (s.tasks) }
                            td.n data-label="Faites" { (s.done) }
                            td.n data-label="En retard" { @if s.late > 0 { strong.late { (s.late) } } @else { "0" } }
                            td.n data-label="Part" { ((s.tasks * 100).checked_div(total).unwrap_or(0)) "\u{202f}%" }
                        }
                    }
                }
            }
        }
    }
}

pub async fn settings(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(notice): Query<Notice>,
) -> Result<Response, WebError> {
    let (gid, g, _) = load(&state, id).await?;
    Ok(settings_page(&state, &gid, &g, notice.message(), None).into_response())
}

pub async fn save_settings(
    State(state): State<AppState>,
    Path(id): Path<String>,
    form: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> Result<Response, WebError> {
    let data = form_data(form)?;
    let which = data.get("formulaire").unwrap_or_default().to_string();
    let submitted = data.clone();
    let outcome = state
        .blocking(move |r| {
            let gid = r.resolve_group(&id)?;
            let g = r.group(&gid)?;
            let edits = match settings_edits(&g, &which, &data) {
                Ok(edits) => edits,
                Err(WebError::Invalid(errors)) => return Ok((gid, Err(errors))),
                Err(other) => return Err(other),
            };
            Ok((gid, checked(r.edit_group(&gid, &edits, now_ms()))?))
        })
        .await?;
    match outcome {
        (gid, Ok(_)) => {
            let anchor = match submitted.get("formulaire").unwrap_or_default() {
                f @ ("membres" | "membre-retrait") => f.split('-').next().unwrap_or(f).to_string(),
                f if f.starts_with("theme") => "themes".to_string(),
                f => f.to_string(),
            };
            Ok(Redirect::to(&format!(
                "{}/reglages?enregistre=1#{anchor}",
                group_path(&gid)
            ))
            .into_response())
        }
        (gid, Err(errors)) => {
            let g = state.blocking(move |r| Ok(r.group(&gid)?)).await?;
            let failed = Failed {
                form: submitted.get("formulaire").unwrap_or_default().to_string(),
                data: submitted,
                errors,
            };
            Ok((
                StatusCode::UNPROCESSABLE_ENTITY,
                settings_page(&state, &gid, &g, None, Some(&failed)),
            )
                .into_response())
        }
    }
}

/// The edits one settings form asks for, compared with the group as it is.
fn settings_edits(g: &Group, which: &str, data: &FormData) -> Result<Vec<GroupEdit>, WebError> {
    let text = |name: &str| data.get(name).unwrap_or_default().replace("\r\n", "\n");
    let mut edits = Vec::new();
    match which {
        "texte" => {
            for (name, now) in [
                ("name", &g.name),
                ("slogan", &g.slogan),
                ("action", &g.action),
                ("line", &g.line),
            ] {
                let wanted = text(name);
                if wanted.trim() != now.trim() {
                    edits.push(GroupEdit::Set {
                        field: name.into(),
                        value: wanted,
                    });
                }
            }
        }
        "membres" => {
            for m in split_list(&text("members")) {
                edits.push(GroupEdit::AddMember(m));
            }
            if edits.is_empty() {
                return Err(WebError::Invalid(vec![FieldError {
                    field: "members".into(),
                    message: "écrivez le bureau à ajouter (caue-XX)".into(),
                }]));
            }
        }
        "membre-retrait" => edits.push(GroupEdit::RemoveMember(text("member"))),
        "approbation" => edits.push(GroupEdit::ApprovalRequired(
            data.get("approval_required").is_some(),
        )),
        "publics" => {
            let wanted = publics_of(data);
            for p in &wanted {
                if !g.publics.contains(p) {
                    edits.push(GroupEdit::AddPublic(p.clone()));
                }
            }
            for p in &g.publics {
                if !wanted.contains(p) {
                    edits.push(GroupEdit::RemovePublic(p.clone()));
                }
            }
        }
        f if f.starts_with("theme-") || f == "theme" => {
            let id = data
                .get("theme_id")
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .unwrap_or_else(|| new_key(&mut rand::rngs::OsRng));
            if data.get("retirer").is_some() {
                edits.push(GroupEdit::RemoveTheme(id));
            } else {
                edits.push(GroupEdit::PutTheme(Theme {
                    id,
                    label: text("theme_label"),
                    explanation: text("theme_explanation"),
                    values: data
                        .all("theme_values")
                        .into_iter()
                        .map(str::to_string)
                        .collect(),
                    created_at: 0,
                }));
            }
        }
        other => {
            return Err(WebError::BadRequest(format!(
                "formulaire de réglages inconnu : « {other} »"
            )))
        }
    }
    Ok(edits)
}

fn settings_page(
    state: &AppState,
    gid: &DocumentId,
    g: &Group,
    notice: Option<&str>,
    failed: Option<&Failed>,
) -> Markup {
    let member = g.is_member(&me(state));
    let action = format!("{}/reglages", group_path(gid));
    let content = html! {
        (group_head(gid, g, "settings"))
        @if let Some(m) = notice { div.notice.ok role="status" { (m) } }
        @if !member {
            (read_only_notice(state, g))
            (read_only_settings(g))
        } @else {
            (text_form(&action, g, failed))
            (members_form(&action, g, failed))
            (publics_form(&action, g, failed))
            (themes_forms(&action, g, failed))
        }
    };
    let title = format!("Réglages — {}", g.name);
    layout::page(
        state,
        PageMeta {
            title: &title,
            page: "group-settings",
            doc: Some(gid.to_base58()),
            nav: Nav::Groups,
        },
        content,
    )
}

fn read_only_settings(g: &Group) -> Markup {
    let label = |name: &str| glossary::work_field(name).0;
    html! {
        dl.details.read-only-settings {
            dt { (label("name")) } dd { (g.name) }
            dt { (label("slogan")) } dd { (g.slogan) }
            dt { (label("action")) } dd { (g.action) }
            dt { (label("members")) } dd { (g.members.iter().map(|m| glossary::office_name(m)).collect::<Vec<_>>().join(", ")) }
            dt { (label("publics")) } dd { (g.publics.iter().map(|p| public_label(p)).collect::<Vec<_>>().join(", ")) }
            dt { (label("approval_required")) } dd { @if g.approval_required { "Oui" } @else { "Non" } }
            dt { "Thèmes" } dd { (g.themes.iter().map(|t| t.label.clone()).collect::<Vec<_>>().join(", ")) }
        }
    }
}

fn text_form(action: &str, g: &Group, failed: Option<&Failed>) -> Markup {
    let f = "texte";
    let (data, errors) = Failed::of(failed, f);
    let ours = !errors.is_empty();
    let value = |name: &str, now: &str| {
        if ours {
            data.get(name).unwrap_or_default().to_string()
        } else {
            now.to_string()
        }
    };
    html! {
        section.work-form #texte aria-labelledby="texte-titre" {
            h2 #texte-titre { "Nom, slogan et ligne éditoriale" }
            form method="post" action=(action) novalidate {
                input type="hidden" name="formulaire" value=(f);
                (error_summary(f, &errors))
                (field(f, "name", Input::Text { value: &value("name", &g.name), required: true }, &errors))
                (field(f, "slogan", Input::Text { value: &value("slogan", &g.slogan), required: false }, &errors))
                (field(f, "action", Input::Text { value: &value("action", &g.action), required: false }, &errors))
                (field(f, "line", Input::Area { value: &value("line", &g.line), rows: 8 }, &errors))
                div.form-actions { button.primary type="submit" { "Enregistrer" } }
            }
        }
    }
}

fn members_form(action: &str, g: &Group, failed: Option<&Failed>) -> Markup {
    let f = "membres";
    let (data, errors) = Failed::of(failed, f);
    let (_, remove_errors) = Failed::of(failed, "membre-retrait");
    html! {
        section.work-form #membres aria-labelledby="membres-titre" {
            h2 #membres-titre { "Offices membres" }
            p.help { "Seuls les offices membres modifient le groupe (réglages, plan de charge) ; le relais refuse les modifications des autres." }
            @for e in &remove_errors { p.error role="alert" { (super::capitalise(&e.message)) } }
            ul.plain.members {
                @for m in &g.members {
                    li {
                        (glossary::office_name(m)) " (" (m) ") "
                        form.inline method="post" action=(action) {
                            input type="hidden" name="formulaire" value="membre-retrait";
                            input type="hidden" name="member" value=(m);
                            button.link type="submit" aria-label={ "Retirer " (glossary::office_name(m)) " du groupe" } { "Retirer" }
                        }
                    }
                }
            }
            form method="post" action=(action) novalidate {
                input type="hidden" name="formulaire" value=(f);
                (error_summary(f, &errors))
                (super::field_labelled(f, "members", "Ajouter des offices", Input::Text { value: data.get("members").unwrap_or_default(), required: true }, &errors))
                div.form-actions { button type="submit" { "Ajouter" } }
            }
            form method="post" action=(action) #approbation {
                input type="hidden" name="formulaire" value="approbation";
                (approval_field("approbation", g.approval_required))
                div.form-actions { button type="submit" { "Enregistrer ce réglage" } }
            }
        }
    }
}

fn publics_form(action: &str, g: &Group, failed: Option<&Failed>) -> Markup {
    let f = "publics";
    let (data, errors) = Failed::of(failed, f);
    let (ticked, own): (Vec<String>, String) = if errors.is_empty() {
        (
            g.publics.clone(),
            g.publics
                .iter()
                .filter(|p| vocab::label(vocab::AUDIENCES, p).is_none())
                .cloned()
                .collect::<Vec<_>>()
                .join(", "),
        )
    } else {
        (
            data.all("publics").iter().map(|s| s.to_string()).collect(),
            data.get("publics_own").unwrap_or_default().to_string(),
        )
    };
    html! {
        section.work-form #publics aria-labelledby="publics-reglage-titre" {
            h2 #publics-reglage-titre { "Publics visés (la cible)" }
            form method="post" action=(action) novalidate {
                input type="hidden" name="formulaire" value=(f);
                (error_summary(f, &errors))
                (publics_fields(f, &ticked, &own, &errors))
                div.form-actions { button.primary type="submit" { "Enregistrer les publics" } }
            }
        }
    }
}

fn themes_forms(action: &str, g: &Group, failed: Option<&Failed>) -> Markup {
    html! {
        section.work-form #themes aria-labelledby="themes-reglage-titre" {
            h2 #themes-reglage-titre { "Thèmes du groupe" }
            p.help { (glossary::WORK_TERMS[3].explanation) }
            @for t in &g.themes {
                @let f = format!("theme-{}", t.id);
                @let (data, errors) = Failed::of(failed, &f);
                details.theme-edit open[!errors.is_empty()] {
                    summary { (t.label) }
                    (theme_form(action, &f, Some(t), &data, &errors))
                }
            }
            h3 { "Ajouter un thème" }
            @let (data, errors) = Failed::of(failed, "theme");
            (theme_form(action, "theme", None, &data, &errors))
        }
    }
}

fn theme_form(
    action: &str,
    f: &str,
    theme: Option<&Theme>,
    data: &FormData,
    errors: &[FieldError],
) -> Markup {
    let ours = !errors.is_empty();
    let value = |name: &str, now: &str| {
        if ours {
            data.get(name).unwrap_or_default().to_string()
        } else {
            now.to_string()
        }
    };
    let ticked: Vec<String> = if ours {
        data.all("theme_values")
            .iter()
            .map(|s| s.to_string())
            .collect()
    } else {
        theme.map(|t| t.values.clone()).unwrap_or_default()
    };
    let (values_label, values_help) = glossary::work_field("theme_values");
    let value_errors: Vec<&FieldError> = errors
        .iter()
        .filter(|e| e.field == "theme_values")
        .collect();
    html! {
        form.theme-form method="post" action=(action) novalidate {
            input type="hidden" name="formulaire" value=(f);
            input type="hidden" name="theme_id" value=(theme.map(|t| t.id.as_str()).unwrap_or_default());
            (error_summary(f, errors))
            (field(f, "theme_label", Input::Text { value: &value("theme_label", theme.map(|t| t.label.as_str()).unwrap_or_default()), required: true }, errors))
            (field(f, "theme_explanation", Input::Text { value: &value("theme_explanation", theme.map(|t| t.explanation.as_str()).unwrap_or_default()), required: true }, errors))
            fieldset.choices.invalid[!value_errors.is_empty()] id=(input_id(f, "theme_values")) {
                legend { (values_label) }
                p.help { (values_help) }
                @for e in &value_errors { p.error { (super::capitalise(&e.message)) } }
                @for vocabulary in THEME_VOCABULARIES {
                    details.vocabulary open[vocabulary_ticked(&ticked, vocabulary)] {
                        summary { (fields::field(vocabulary).map_or(vocabulary, |fl| fl.label)) }
                        div.options {
                            @for (code, label) in vocab::codes(vocabulary) {
                                @let v = format!("{vocabulary}:{code}");
                                @let id = format!("{}-{}-{}", input_id(f, "theme_values"), vocabulary, code);
                                label.option for=(id) {
                                    input type="checkbox" id=(id) name="theme_values" value=(v) checked[ticked.contains(&v)];
                                    " " (label)
                                }
                            }
                        }
                    }
                }
            }
            div.form-actions {
                button.primary type="submit" { @if theme.is_some() { "Enregistrer le thème" } @else { "Ajouter le thème" } }
                @if theme.is_some() { button.danger type="submit" name="retirer" value="1" formnovalidate { "Retirer ce thème" } }
            }
        }
    }
}

fn vocabulary_ticked(ticked: &[String], vocabulary: &str) -> bool {
    ticked
        .iter()
        .any(|v| v.split_once(':').is_some_and(|(voc, _)| voc == vocabulary))
}
