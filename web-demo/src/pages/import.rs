//! `/import`: « Importer un tableur ». A CSV (or GeoJSON) file is sent, the page shows how its
//! columns map to fields (a select per column, with the reason in plain French), its first
//! rows, the remarks and every problem by line and column, each linked to its column's select;
//! « Importer » writes all the rows through the replica's import, or nothing.
//!
//! No script: the file's text comes back in a hidden field with the columns' choices, so a new
//! check (« Vérifier à nouveau ») or the import needs no second upload. Everything is read by
//! core's `opendata::sheet`, as `atelier import --format csv` does.

use atelier_core::clock::now_ms;
use atelier_core::fr;
use atelier_core::opendata::sheet::{
    self, ColumnPlan, Mapping, Options, Origin, Plan, Problem, Sheet, Target,
};
use axum::extract::multipart::MultipartRejection;
use axum::extract::{Multipart, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::{html, Markup};

use crate::error::WebError;
use crate::layout::{self, Nav, PageMeta};
use crate::AppState;

/// Largest request: the largest sheet core reads, sent once (as a file or as the hidden text),
/// plus the columns' choices.
pub const MAX_UPLOAD_BYTES: usize = sheet::MAX_SHEET_BYTES + 1024 * 1024;
/// Rows shown in the preview: enough to recognise the sheet, not to scroll through it.
const PREVIEW_ROWS: usize = 5;

pub async fn page(State(state): State<AppState>) -> Result<Response, WebError> {
    Ok(render(
        &state,
        html! { (upload_form(None)) },
        StatusCode::OK,
    ))
}

/// What the form sends.
#[derive(Default)]
struct Sent {
    /// The file's bytes, or the text of a preview sent back.
    bytes: Vec<u8>,
    geojson: bool,
    /// `colonne.N` → target name.
    choices: Vec<(usize, String)>,
    import: bool,
}

pub async fn submit(
    State(state): State<AppState>,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<Response, WebError> {
    let sent = match read(multipart).await {
        Ok(s) => s,
        Err(message) => {
            return Ok(render(
                &state,
                upload_form(Some(&message)),
                StatusCode::BAD_REQUEST,
            ))
        }
    };
    if sent.bytes.is_empty() {
        let message = "Choisissez un fichier CSV enregistré depuis votre tableur.".to_string();
        return Ok(render(
            &state,
            upload_form(Some(&message)),
            StatusCode::UNPROCESSABLE_ENTITY,
        ));
    }
    let read = if sent.geojson {
        sheet::read_geojson(&sent.bytes)
    } else {
        sheet::read_csv(&sent.bytes)
    };
    let sheet = match read {
        Ok(s) => s,
        Err(e) => {
            let message = format!("Ce fichier n'a pas pu être lu : {e}.");
            return Ok(render(
                &state,
                upload_form(Some(&message)),
                StatusCode::UNPROCESSABLE_ENTITY,
            ));
        }
    };
    let mut mapping = Mapping::default();
    for (index, name) in &sent.choices {
        if let Some(t) = Target::parse(name) {
            mapping.set_column(*index, t);
        }
    }
    let options = Options {
        office: Some(state.replica().office().to_string()),
        mapping,
    };
    let plan = sheet::plan(&sheet, &options);
    if sent.import {
        if let Some(resources) = plan.resources() {
            let report = state
                .blocking(move |r| Ok(r.import(&resources, now_ms(), &mut |_| {})?))
                .await?;
            let s = |n: usize| fr::plural_s(n as u64);
            let content = html! {
                h1 { "Importer un tableur" }
                div.notice.ok role="status" {
                    p { "Import terminé : "
                        (report.created) " fiche" (s(report.created)) " créée" (s(report.created)) ", "
                        (report.updated) " mise" (s(report.updated)) " à jour, "
                        (report.unchanged) " inchangée" (s(report.unchanged)) "." }
                }
                p { a href="/" { "Voir les fiches" } " · " a href="/import" { "Importer un autre tableur" } }
            };
            return Ok(render(&state, content, StatusCode::OK));
        }
    }
    let status = if sent.import {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    let text = String::from_utf8_lossy(&sent.bytes).into_owned();
    Ok(render(
        &state,
        preview(&sheet, &plan, &text, sent.geojson),
        status,
    ))
}

fn render(state: &AppState, content: Markup, status: StatusCode) -> Response {
    let page = layout::page(
        state,
        PageMeta {
            title: "Importer un tableur",
            page: "import",
            doc: None,
            nav: Nav::None,
        },
        content,
    );
    (status, page).into_response()
}

fn upload_form(error: Option<&str>) -> Markup {
    html! {
        h1 { "Importer un tableur" }
        p { "Vos réalisations, outils ou actions sont dans un tableur (Excel, LibreOffice) ? Enregistrez-le au format CSV, puis choisissez-le ici. "
            "Atelier reconnaît les colonnes à leur titre (« Intitulé », « Commune », « Maître d'ouvrage », « Année de livraison »…), "
            "vous montre ce qu'il a compris et tous les problèmes, et n'importe rien tant qu'il en reste." }
        form.import method="post" action="/import" enctype="multipart/form-data" {
            div.field.invalid[error.is_some()] {
                label for="fichier" { "Fichier CSV (ou GeoJSON)" }
                p.help #fichier-aide { "Dans Excel : Fichier › Enregistrer sous › « CSV UTF-8 » ou « CSV (séparateur : point-virgule) ». Dans LibreOffice : Fichier › Enregistrer sous › « Texte CSV »." }
                @if let Some(e) = error { p.error #fichier-erreur role="alert" { (e) } }
                input #fichier type="file" name="fichier" accept=".csv,.txt,.geojson,.json,text/csv"
                    aria-describedby=(if error.is_some() { "fichier-aide fichier-erreur" } else { "fichier-aide" })
                    aria-invalid=[error.map(|_| "true")];
            }
            button.primary type="submit" name="action" value="apercu" { "Voir l'aperçu" }
        }
        p { "Rien n'est écrit avant que vous confirmiez. Le format des colonnes est décrit dans le lexique des exports : "
            a href="/export.csv" { "un export CSV" } " a les mêmes colonnes et se réimporte tel quel." }
    }
}

/// The preview: summary, problems (linked to their column), columns with their selects,
/// remarks, first rows, and the buttons.
fn preview(sheet: &Sheet, plan: &Plan, text: &str, geojson: bool) -> Markup {
    let n = plan.problems.len();
    let ready = plan.resources.len();
    html! {
        h1 { "Importer un tableur : aperçu" }
        @if n == 0 {
            div.notice.ok role="status" {
                p { (fr::count(plan.rows as u64, "ligne")) " lue" (fr::plural_s(plan.rows as u64)) ", aucun problème : "
                    (fr::count(ready as u64, "fiche")) " prête" (fr::plural_s(ready as u64)) " à importer. Vérifiez les colonnes ci-dessous, puis importez." }
            }
        } @else {
            div.error-summary role="alert" tabindex="-1" #problemes {
                h2 { @if n == 1 { "Un problème à corriger" } @else { (n) " problèmes à corriger" } " : rien ne sera importé avant." }
                p { "Corrigez le tableur puis envoyez-le de nouveau, ou changez le champ d'une colonne ci-dessous." }
                ul {
                    @for p in &plan.problems { li { (problem_item(p)) } }
                }
            }
        }
        form.import method="post" action="/import" enctype="multipart/form-data" {
            textarea name="contenu" hidden aria-hidden="true" { (text) }
            @if geojson { input type="hidden" name="format" value="geojson"; }
            h2 { "Colonnes du tableur" }
            p.help { "Pour chaque colonne, le champ de la fiche où vont ses valeurs. « Ne pas importer » laisse la colonne de côté." }
            ol.import-columns {
                @for c in &plan.columns { li { (column_field(c, plan)) } }
            }
            @if !plan.notes.is_empty() {
                h2 { "Remarques" }
                ul.import-notes { @for note in &plan.notes { li { (capitalise(&note.to_string())) } } }
            }
            (first_rows(sheet, plan))
            div.form-actions {
                button type="submit" name="action" value="apercu" { "Vérifier à nouveau" }
                @if n == 0 && ready > 0 {
                    button.primary type="submit" name="action" value="importer" {
                        "Importer " (fr::count(ready as u64, "fiche"))
                    }
                }
            }
            details {
                summary { "Envoyer un autre fichier" }
                div.field {
                    label for="fichier" { "Fichier CSV (ou GeoJSON)" }
                    input #fichier type="file" name="fichier" accept=".csv,.txt,.geojson,.json,text/csv";
                }
            }
        }
    }
}

fn problem_item(p: &Problem) -> Markup {
    html! {
        @match p.column {
            Some(i) => a href={ "#colonne-" (i) } { (capitalise(&p.place)) },
            None => @if !p.place.is_empty() { (capitalise(&p.place)) },
        }
        @if p.place.is_empty() { (capitalise(&p.message)) } @else { " : " (p.message) }
        @if let Some(s) = &p.suggestion { " " span.suggestion { "Suggestion : " code { (s) } } }
    }
}

fn column_field(c: &ColumnPlan, plan: &Plan) -> Markup {
    let id = format!("colonne-{}", c.index);
    let why = match c.origin {
        Origin::Mapping => "Choisi par vous.".to_string(),
        Origin::Guessed => "Reconnu d'après le titre de la colonne.".to_string(),
        Origin::Inherited => "Colonne sans titre à droite d'une cellule fusionnée : ses valeurs s'ajoutent à celles de la colonne de gauche.".to_string(),
        Origin::Unknown => "Titre non reconnu : la colonne n'est pas importée, sauf si vous choisissez un champ.".to_string(),
        Origin::Blank => "Colonne sans titre : elle n'est pas importée, sauf si vous choisissez un champ.".to_string(),
    };
    let problems: Vec<&Problem> = plan
        .problems
        .iter()
        .filter(|p| p.column == Some(c.index))
        .collect();
    let mut described = format!("{id}-aide");
    if !problems.is_empty() {
        described.push_str(&format!(" {id}-erreur"));
    }
    html! {
        div.field.invalid[!problems.is_empty()] {
            label for=(id) { (capitalise(&c.describe())) }
            p.help id={ (id) "-aide" } { (why) }
            @if !problems.is_empty() {
                p.error id={ (id) "-erreur" } {
                    @if problems.len() == 1 { "1 problème dans cette colonne : " (problems[0].message) }
                    @else { (problems.len()) " problèmes dans cette colonne, voir la liste en haut de la page." }
                }
            }
            select id=(id) name={ "colonne." (c.index) } aria-describedby=(described) aria-invalid=[(!problems.is_empty()).then_some("true")] {
                @for t in Target::all() {
                    option value=(t.name()) selected[t == c.target] { (t.label()) }
                }
            }
        }
    }
}

fn first_rows(sheet: &Sheet, plan: &Plan) -> Markup {
    let rows: Vec<_> = sheet.rows.iter().take(PREVIEW_ROWS).collect();
    html! {
        h2 #premieres-lignes { "Premières lignes" }
        div.table-scroll role="region" aria-labelledby="premieres-lignes" tabindex="0" {
            table.data.import-rows {
                thead { tr {
                    th scope="col" { "Ligne" }
                    @for c in &plan.columns { th scope="col" { (capitalise(&c.describe())) br; span.help { (c.target.label()) } } }
                } }
                tbody {
                    @for r in &rows {
                        tr {
                            th scope="row" { (r.line) }
                            @for c in &plan.columns { td { (Sheet::cell(r, c.index)) } }
                        }
                    }
                }
            }
        }
        @if sheet.rows.len() > PREVIEW_ROWS {
            p.help { "… et " (fr::count((sheet.rows.len() - PREVIEW_ROWS) as u64, "autre ligne")) "." }
        }
    }
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(first) => first.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

/// Reads the form: the file (or the text sent back), the columns' choices, the button.
async fn read(multipart: Result<Multipart, MultipartRejection>) -> Result<Sent, String> {
    let unreadable =
        || "Le formulaire envoyé n'a pas pu être lu (envoi interrompu ?). Réessayez.".to_string();
    let too_large = || {
        format!(
            "Fichier trop volumineux : {} au plus.",
            fr::size(sheet::MAX_SHEET_BYTES as u64)
        )
    };
    let mut multipart = multipart.map_err(|_| unreadable())?;
    let mut sent = Sent::default();
    let mut file: Option<(String, Vec<u8>)> = None;
    let mut contenu = Vec::new();
    loop {
        let field = match multipart.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => return Err(too_large()),
            Err(_) => return Err(unreadable()),
        };
        let name = field.name().unwrap_or_default().to_string();
        let file_name = field.file_name().map(str::to_string);
        let bytes = field.bytes().await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                too_large()
            } else {
                unreadable()
            }
        })?;
        match (name.as_str(), file_name) {
            ("fichier", Some(file_name)) if !bytes.is_empty() => {
                file = Some((file_name, bytes.to_vec()))
            }
            ("contenu", _) => contenu = bytes.to_vec(),
            ("format", _) => sent.geojson = &bytes[..] == b"geojson",
            ("action", _) => sent.import = &bytes[..] == b"importer",
            (n, _) => {
                if let Some(i) = n.strip_prefix("colonne.").and_then(|i| i.parse().ok()) {
                    sent.choices
                        .push((i, String::from_utf8_lossy(&bytes).into_owned()));
                }
            }
        }
    }
    match file {
        // A new file starts over: its columns are guessed afresh.
        Some((file_name, bytes)) => {
            let lower = file_name.to_ascii_lowercase();
            sent.geojson = lower.ends_with(".geojson") || lower.ends_with(".json");
            sent.choices.clear();
            sent.import = false;
            sent.bytes = bytes;
        }
        None => sent.bytes = contenu,
    }
    Ok(sent)
}
