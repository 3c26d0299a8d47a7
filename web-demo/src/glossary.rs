//! Plain French words for every kind, and the web's readings of the core's field table and
//! office names. The staff's report said they were lost in words like « action de médiation »:
//! every page takes its wording from here or from `atelier_core::fields`, so it is said once and
//! the same way.

use atelier_core::{fields, fr, OfficeId};

/// A kind of resource, said plainly.
#[derive(Debug, Clone, Copy)]
pub struct KindHelp {
    pub code: &'static str,
    /// Short name used on cards and buttons.
    pub name: &'static str,
    /// One plain sentence saying what it is, with examples.
    pub explanation: &'static str,
}

/// The five kinds, in the order the « Ajouter » page offers them.
pub const KINDS: &[KindHelp] = &[
    KindHelp {
        code: "realisation",
        name: "Réalisation",
        explanation: "Un bâtiment, un aménagement ou un espace public déjà construit, que l'on montre en exemple dans l'observatoire.",
    },
    KindHelp {
        code: "outil",
        name: "Outil",
        explanation: "Un support que l'on prête ou diffuse : guide, fiche conseil, exposition, maquette, jeu, vidéo…",
    },
    KindHelp {
        code: "action",
        name: "Action de médiation",
        explanation: "Une animation, une visite, un atelier, une conférence… organisée pour sensibiliser un public.",
    },
    KindHelp {
        code: "publication",
        name: "Publication",
        explanation: "Un article, une lettre d'information ou un dossier publié en ligne.",
    },
    KindHelp {
        code: "acteur",
        name: "Acteur",
        explanation: "Une personne ou une structure avec qui l'on travaille : architecte, artisan, association, collectivité…",
    },
];

/// The plain description of a kind code.
pub fn kind(code: &str) -> Option<&'static KindHelp> {
    KINDS.iter().find(|k| k.code == code)
}

/// The short French name of a kind code, or the code itself if unknown.
pub fn kind_name(code: &str) -> &str {
    kind(code).map(|k| k.name).unwrap_or(code)
}

/// The French label of a field or history event name (`location.commune` → « Commune »), for
/// change lists and error messages; the table is `atelier_core::fields`.
pub fn field_label(name: &str) -> String {
    fields::change_label(name).into_owned()
}

/// « CAUE du Puy-de-Dôme » for an office as stored (`caue-63`); the text itself if it is not an
/// office id (a foreign client's history entry, say).
pub fn office_name(office: &str) -> String {
    match office.parse::<OfficeId>() {
        Ok(id) => fr::office_name(&id),
        Err(_) => office.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use atelier_core::vocab;

    #[test]
    fn every_format_field_and_kind_is_explained() {
        for name in atelier_core::resource::KNOWN_FIELDS.iter() {
            assert!(fields::field(name).is_some(), "no French label for {name}");
        }
        for (code, _) in vocab::codes(vocab::KINDS) {
            assert!(kind(code).is_some(), "no explanation for kind {code}");
        }
        assert!(kind("action")
            .unwrap()
            .explanation
            .contains("sensibiliser un public"));
    }

    #[test]
    fn office_names_read_naturally() {
        assert_eq!(office_name("caue-63"), "CAUE du Puy-de-Dôme");
        assert_eq!(office_name("caue-15"), "CAUE du Cantal");
        assert_eq!(office_name("caue-01"), "CAUE de l'Ain");
        assert_eq!(office_name("caue-43"), "CAUE de la Haute-Loire");
        assert_eq!(office_name("caue-88"), "CAUE des Vosges");
        assert_eq!(office_name("caue-12"), "CAUE de l'Aveyron");
        assert_eq!(office_name("caue-68"), "CAUE du Haut-Rhin");
        assert_eq!(office_name("caue-34"), "CAUE de l'Hérault");
        assert_eq!(office_name("caue-974"), "CAUE de La Réunion");
        assert_eq!(office_name("inconnu"), "inconnu");
        assert_eq!(vocab::label_or_code(vocab::SECTORS, "terre"), "Terre crue");
        assert_eq!(field_label("location.commune"), "Commune");
    }
}
