//! `GET /lexique`: every kind, field and list of the app explained in plain words.

use atelier_core::fields::{self, Field};
use atelier_core::vocab;
use axum::extract::State;
use maud::{html, Markup};

use crate::glossary;
use crate::layout::{self, Nav, PageMeta};
use crate::AppState;

pub async fn page(State(state): State<AppState>) -> Markup {
    // The external reference is for imports from spreadsheets: last, as in the form, where it
    // sits under « Référence externe (facultatif) ».
    let mut explained: Vec<&Field> = fields::top_level().filter(|f| !f.help.is_empty()).collect();
    explained.sort_by_key(|f| f.name == "ref");
    let label = |name: &str| fields::field(name).map_or("", |f| f.label);
    let lists = [
        (label("axes"), vocab::AXES),
        (label("themes"), vocab::THEMES),
        (label("sectors"), vocab::SECTORS),
        (label("audiences"), vocab::AUDIENCES),
        ("États d'une fiche", vocab::STATUSES),
    ];
    let content = html! {
        h1 { "Lexique" }
        p.lead { "Les mots de l'application, expliqués simplement." }
        section {
            h2 { "Les types de fiche" }
            dl.lexicon {
                @for k in glossary::KINDS { dt { (k.name) } dd { (k.explanation) } }
            }
        }
        section {
            h2 { "Les champs d'une fiche" }
            dl.lexicon {
                @for f in &explained {
                    dt { (f.label_with_unit()) } dd { (f.help) }
                }
            }
        }
        @for (title, vocabulary) in lists {
            section {
                h2 { (title) }
                ul.tags { @for (_, label) in vocab::codes(vocabulary) { li { (label) } } }
            }
        }
        section #travailler-ensemble {
            h2 { "Travailler ensemble" }
            dl.lexicon {
                @for t in glossary::WORK_TERMS { dt { (t.name) } dd { (t.explanation) } }
            }
        }
        section {
            h2 { "La synchronisation" }
            dl.lexicon {
                dt { "Connecté au relais" } dd { "Vos modifications partent tout de suite vers les autres offices, et les leurs arrivent ici." }
                dt { "Hors ligne" } dd { "Pas de connexion au relais : vous travaillez normalement, tout est gardé sur cet ordinateur et partira au retour de la connexion." }
                dt { "Modifications pas encore sur le relais" } dd { "Ce qui a été enregistré ici mais pas encore envoyé aux autres offices." }
            }
        }
    };
    layout::page(
        &state,
        PageMeta {
            title: "Lexique",
            page: "lexicon",
            doc: None,
            nav: Nav::Lexicon,
        },
        content,
    )
}
