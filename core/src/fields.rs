//! The resource fields in one table: FORMAT.md name, type, vocabulary, French labels and help.
//!
//! Validation (`resource.rs`) takes each field's vocabulary from here; the CLI reads `--set`
//! values by their type and labels `show` and `history` with the short labels; the web app draws
//! its forms, its lexicon and its error messages from the labels and help lines. A field is
//! added or renamed here once.

use std::borrow::Cow;

use crate::vocab;
use FieldType::*;

/// What a field holds, as FORMAT.md writes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldType {
    /// One line of text.
    Text,
    /// Paragraphs, kept as Automerge `Text` and edited by splices.
    LongText,
    /// One code of the named vocabulary (`vocab::KINDS`…).
    Code(&'static str),
    /// A list of codes of the named vocabulary.
    Codes(&'static str),
    /// A free list of words.
    Words,
    /// An office id (`caue-63`).
    Office,
    /// A département code (`07`, `2A`, `974`).
    Departement,
    /// A commune's INSEE code: five characters, `63113` or `2A004`.
    InseeCode,
    /// A whole year.
    Year,
    /// A non-negative amount in `unit`.
    Amount { unit: &'static str },
    /// Decimal degrees (WGS84).
    Coordinate,
    /// A date `AAAA-MM-JJ`.
    Date,
    /// A web address starting with `http://` or `https://`.
    Url,
    /// An object whose sub-fields follow in the table (`location`, `dates`).
    Group,
    /// A list of objects whose keys follow in the table (`designers`, `links`).
    Rows,
    /// The resource's photos, plans and documents (`media::Media` entries): edited through
    /// the médiathèque (`Edit::AddMedia`…), never as a form field.
    Media,
}

impl FieldType {
    /// The vocabulary of a code or list of codes.
    pub fn vocabulary(self) -> Option<&'static str> {
        match self {
            FieldType::Code(v) | FieldType::Codes(v) => Some(v),
            _ => None,
        }
    }

    /// A list of words or codes.
    pub fn is_list(self) -> bool {
        matches!(self, FieldType::Codes(_) | FieldType::Words)
    }

    /// A value written as a JSON string, even when it looks like a number (`63113`, `07`).
    pub fn is_textual(self) -> bool {
        matches!(
            self,
            FieldType::Text
                | FieldType::LongText
                | FieldType::Code(_)
                | FieldType::Office
                | FieldType::Departement
                | FieldType::InseeCode
                | FieldType::Date
                | FieldType::Url
        )
    }
}

/// One field of a resource (dotted name for a sub-field), said in French.
#[derive(Debug, Clone, Copy)]
pub struct Field {
    /// FORMAT.md name, as in `FieldError::field` and in form inputs.
    pub name: &'static str,
    pub ty: FieldType,
    /// The field's name for office staff, without its unit (see [`Field::label_with_unit`]).
    pub label: &'static str,
    /// The label where the context already says much: the CLI's label column and history
    /// lines, the inputs of one row of a list in forms.
    pub short: &'static str,
    /// One plain line shown under the field in forms and in the lexicon; empty when the label
    /// says it all.
    pub help: &'static str,
    /// The kinds whose form shows this field; empty for every kind. FORMAT.md itself accepts
    /// every field on every kind.
    pub kinds: &'static [&'static str],
}

impl Field {
    /// « Coût des travaux (€ HT) »: the label, with the unit for an amount typed bare.
    pub fn label_with_unit(&self) -> Cow<'static, str> {
        match self.ty {
            FieldType::Amount { unit } => Cow::Owned(format!("{} ({unit})", self.label)),
            _ => Cow::Borrowed(self.label),
        }
    }

    /// An amount of this field in French with its unit: « 2 600 000 € HT ».
    pub fn amount(&self, x: f64) -> String {
        match self.ty {
            FieldType::Amount { unit } => format!("{} {unit}", crate::fr::number(x)),
            _ => crate::fr::number(x),
        }
    }

    /// Whether the form of `kind` shows this field.
    pub fn applies_to(&self, kind: &str) -> bool {
        self.kinds.is_empty() || self.kinds.contains(&kind)
    }

    /// A sub-field (`location.commune`), as opposed to a top-level field of FORMAT.md.
    pub fn is_nested(&self) -> bool {
        self.name.contains('.')
    }

    /// The field this one is part of (`location` for `location.commune`).
    pub fn parent(&self) -> Option<&'static Field> {
        field(self.name.rsplit_once('.')?.0)
    }
}

const REALISATION: &[&str] = &["realisation"];
const DATED: &[&str] = &["realisation", "outil", "action", "publication"];
const EVERY_KIND: &[&str] = &[];

const fn f(
    name: &'static str,
    ty: FieldType,
    label: &'static str,
    short: &'static str,
    help: &'static str,
    kinds: &'static [&'static str],
) -> Field {
    Field {
        name,
        ty,
        label,
        short,
        help,
        kinds,
    }
}

/// Every field of FORMAT.md in the order `export` writes them, each group's sub-fields right
/// after it.
pub const FIELDS: &[Field] = &[
    f("ref", Text, "Référence externe", "Référence", "Un code stable venant d'un autre fichier ou d'un tableur (facultatif).", EVERY_KIND),
    f("kind", Code(vocab::KINDS), "Type de fiche", "Type", "Ce que décrit la fiche : une réalisation, un outil, une action…", EVERY_KIND),
    f("title", Text, "Titre", "Titre", "Le nom sous lequel on retrouvera la fiche, par exemple « École en pisé de Montbrison ».", EVERY_KIND),
    f("summary", LongText, "Résumé", "Résumé", "Deux ou trois phrases affichées dans la liste (300 caractères au plus).", EVERY_KIND),
    f("description", LongText, "Description", "Description", "Le texte complet. Plusieurs personnes peuvent l'écrire en même temps, depuis plusieurs offices.", EVERY_KIND),
    f("office", Office, "Office", "Office", "Le CAUE qui s'occupe de cette fiche.", EVERY_KIND),
    f("status", Code(vocab::STATUSES), "État de la fiche", "Statut", "Brouillon tant qu'elle n'est pas prête, « À relire » pour demander une relecture, « Publié » quand elle peut être montrée.", EVERY_KIND),
    f("axes", Codes(vocab::AXES), "Axes du programme", "Axes", "Le ou les grands axes du programme auxquels la fiche se rattache.", EVERY_KIND),
    f("themes", Codes(vocab::THEMES), "Thèmes", "Thèmes", "Les sujets traités ; cochez tous ceux qui conviennent.", EVERY_KIND),
    f("sectors", Codes(vocab::SECTORS), "Filières de construction", "Filières", "Les matériaux « filières » mis en avant (bois, terre crue, pierre…).", EVERY_KIND),
    f("materials", Words, "Matériaux", "Matériaux", "Librement, séparés par des virgules : pisé, lauze, botte de paille…", EVERY_KIND),
    f("audiences", Codes(vocab::AUDIENCES), "Publics", "Publics", "À qui s'adresse la fiche ou l'action.", EVERY_KIND),
    f("keywords", Words, "Mots-clés", "Mots-clés", "Librement, séparés par des virgules ; ils aident à retrouver la fiche.", EVERY_KIND),
    f("location", Group, "Lieu", "Lieu", "Où se trouve la réalisation ou où a lieu l'action.", EVERY_KIND),
    f("location.commune", Text, "Commune", "Commune", "", EVERY_KIND),
    f("location.insee", InseeCode, "Code commune INSEE", "INSEE", "5 caractères, par exemple 63113 pour Clermont-Ferrand (facultatif).", EVERY_KIND),
    f("location.departement", Departement, "Département", "Département", "", EVERY_KIND),
    f("location.lat", Coordinate, "Latitude", "Latitude", "En degrés décimaux, par exemple 45.78 (facultatif : sert à placer le point sur la carte).", EVERY_KIND),
    f("location.lon", Coordinate, "Longitude", "Longitude", "En degrés décimaux, par exemple 3.08.", EVERY_KIND),
    f("year", Year, "Année", "Année", "Année de livraison (réalisation), d'édition (outil) ou de l'action.", DATED),
    f("client", Text, "Maître d'ouvrage", "Maître d'ouvrage", "Celui qui a commandé et financé les travaux (commune, particulier, bailleur…).", REALISATION),
    f("designers", Rows, "Concepteurs (maîtrise d'œuvre)", "Maîtrise d'œuvre", "Les architectes, paysagistes, bureaux d'études… avec leur rôle.", REALISATION),
    f("designers.role", Code(vocab::DESIGNER_ROLES), "Rôle du concepteur", "Rôle", "", REALISATION),
    f("designers.name", Text, "Nom du concepteur", "Nom (agence, bureau d'études, personne)", "", REALISATION),
    f("intervention", Code(vocab::INTERVENTIONS), "Nature des travaux", "Intervention", "Construction neuve, réhabilitation, extension…", REALISATION),
    f("building_type", Code(vocab::BUILDING_TYPES), "Type de bâtiment ou d'espace", "Programme", "À quoi sert le lieu : logement, école, mairie, espace public…", REALISATION),
    f("cost_eur_ht", Amount { unit: "€ HT" }, "Coût des travaux", "Coût", "Montant hors taxes, en euros, sans espaces ni symbole : 2600000.", REALISATION),
    f("floor_area_m2", Amount { unit: "m²" }, "Surface de plancher", "Surface", "En mètres carrés.", REALISATION),
    f("tool_type", Code(vocab::TOOL_TYPES), "Type d'outil", "Type d'outil", "", &["outil"]),
    f("action_type", Code(vocab::ACTION_TYPES), "Type d'action", "Type d'action", "", &["action"]),
    f("dates", Group, "Dates", "Dates", "Quand l'action a eu lieu.", &["action"]),
    f("dates.start", Date, "Date de début", "Début", "", &["action"]),
    f("dates.end", Date, "Date de fin", "Fin", "Laissez vide pour une action d'un seul jour.", &["action"]),
    f("links", Rows, "Liens", "Liens", "Pages web utiles (adresse commençant par https://) avec un intitulé.", EVERY_KIND),
    f("links.url", Url, "Adresse du lien", "Adresse (https://…)", "", EVERY_KIND),
    f("links.label", Text, "Intitulé du lien", "Intitulé", "", EVERY_KIND),
    f("media", Media, "Photos et documents", "médias", "Photos, plans et documents PDF de la fiche, chacun avec son crédit (« © auteur ») ; une photo a aussi une courte description pour les personnes qui ne la voient pas.", EVERY_KIND),
    f("media.credit", Text, "Crédit", "Crédit", "Qui détient les droits, tel qu'il doit être cité : « © Jeanne Martin / CAUE 63 ». Obligatoire pour une photo ou un plan.", EVERY_KIND),
    f("media.caption", Text, "Légende", "Légende", "Ce que l'on voit, affiché sous l'image : « Façade sud après travaux, 2023 » (facultatif).", EVERY_KIND),
    f("media.alt", Text, "Description de l'image", "Texte alternatif", "Une phrase courte lue aux personnes qui ne voient pas l'image : « Mur en pisé avec une fenêtre en bois ». Obligatoire pour une photo.", EVERY_KIND),
];

/// The field with this FORMAT.md name (dotted for a sub-field); `None` for a field FORMAT.md
/// does not define.
pub fn field(name: &str) -> Option<&'static Field> {
    FIELDS.iter().find(|f| f.name == name)
}

/// The top-level fields, in export order.
pub fn top_level() -> impl Iterator<Item = &'static Field> {
    FIELDS.iter().filter(|f| !f.is_nested())
}

/// The label of the year, which says what the year is for each kind.
pub fn year_label(kind: &str) -> &'static str {
    match kind {
        "realisation" => "Année de livraison",
        "outil" => "Année d'édition",
        "action" => "Année de l'action",
        _ => "Année",
    }
}

/// A whole-resource event the history names in parentheses instead of fields (`(création)`).
#[derive(Debug, Clone, Copy)]
pub struct Event {
    /// The name the core writes in a change's field list.
    pub name: &'static str,
    /// How the web app's history says it.
    pub label: &'static str,
    /// How the CLI's history line says it.
    pub short: &'static str,
}

/// Creation, deletion and restoration of a resource.
pub const EVENTS: &[Event] = &[
    Event {
        name: "(création)",
        label: "création de la fiche",
        short: "création",
    },
    Event {
        name: "(suppression)",
        label: "suppression",
        short: "suppression",
    },
    Event {
        name: "(restauration)",
        label: "restauration",
        short: "restauration",
    },
];

/// The event with this name, if `name` is one.
pub fn event(name: &str) -> Option<&'static Event> {
    EVENTS.iter().find(|e| e.name == name)
}

/// The label of a field or event in a change list, for the web app: « Commune », « création de
/// la fiche »; an unknown name as it is.
pub fn change_label(name: &str) -> Cow<'static, str> {
    if let Some(e) = event(name) {
        return Cow::Borrowed(e.label);
    }
    match field(name) {
        Some(f) => f.label_with_unit(),
        None => Cow::Owned(name.to_string()),
    }
}

/// The label of a field or event in a change list, for the CLI's one-line history: lowercase
/// short labels, a sub-field after its group (`location.commune` → « lieu (commune) »).
pub fn change_short_label(name: &str) -> String {
    if let Some(e) = event(name) {
        return e.short.to_string();
    }
    let (top, sub) = match name.split_once('.') {
        Some((top, sub)) => (top, Some(sub)),
        None => (name, None),
    };
    let top = field(top)
        .map(|f| lowercase_first(f.short))
        .unwrap_or_else(|| top.to_string());
    match sub {
        Some(sub) => format!("{top} ({sub})"),
        None => top,
    }
}

fn lowercase_first(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_sub_fields_follow_their_group() {
        for (i, f) in FIELDS.iter().enumerate() {
            assert!(
                FIELDS[..i].iter().all(|g| g.name != f.name),
                "{} twice",
                f.name
            );
            if let Some((group, _)) = f.name.rsplit_once('.') {
                let parent = f.parent().expect("a sub-field's group is in the table");
                assert_eq!(parent.name, group);
                assert!(
                    matches!(parent.ty, Group | Rows | Media),
                    "{group} is not a group"
                );
            }
        }
    }

    #[test]
    fn every_vocabulary_exists_and_labels_are_french() {
        for f in FIELDS {
            if let Some(v) = f.ty.vocabulary() {
                assert!(!vocab::codes(v).is_empty(), "{}: no vocabulary {v}", f.name);
            }
            assert!(!f.label.is_empty() && !f.short.is_empty(), "{}", f.name);
        }
        assert_eq!(
            field("cost_eur_ht").unwrap().label_with_unit(),
            "Coût des travaux (€ HT)"
        );
        assert_eq!(
            field("cost_eur_ht").unwrap().amount(2_600_000.0),
            "2\u{202f}600\u{202f}000 € HT"
        );
        assert_eq!(field("title").unwrap().label_with_unit(), "Titre");
    }

    #[test]
    fn kinds_decide_which_fields_a_form_shows() {
        let shown = |kind: &str| -> Vec<&str> {
            top_level()
                .filter(|f| f.applies_to(kind))
                .map(|f| f.name)
                .collect()
        };
        assert!(shown("realisation").contains(&"designers"));
        assert!(!shown("outil").contains(&"designers"));
        assert!(shown("action").contains(&"dates"));
        assert!(!shown("acteur").contains(&"year"));
        assert!(shown("acteur").contains(&"links"));
    }

    #[test]
    fn change_lists_read_in_french() {
        assert_eq!(change_label("location.commune"), "Commune");
        assert_eq!(change_label("(création)"), "création de la fiche");
        assert_eq!(change_label("photo_credit"), "photo_credit");
        assert_eq!(change_short_label("location.commune"), "lieu (commune)");
        assert_eq!(change_short_label("(création)"), "création");
        assert_eq!(change_short_label("client"), "maître d'ouvrage");
        assert_eq!(change_short_label("title"), "titre");
        assert_eq!(change_short_label("photo_credit"), "photo_credit");
    }
}
