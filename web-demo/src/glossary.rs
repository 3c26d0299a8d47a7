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

/// A word of working together, said plainly (the lexicon's « Travailler ensemble »).
#[derive(Debug, Clone, Copy)]
pub struct Term {
    pub name: &'static str,
    pub explanation: &'static str,
}

/// The words of groups, plans de charge, review and discussion, in the lexicon's order.
pub const WORK_TERMS: &[Term] = &[
    Term {
        name: "Groupe de travail",
        explanation: "Des offices qui travaillent ensemble sur un projet commun : ils se donnent un nom, une ligne éditoriale, des thèmes et se partagent le travail.",
    },
    Term {
        name: "Ligne éditoriale",
        explanation: "Ce que le groupe veut dire et montrer, et sur quel ton : le texte sur lequel les offices se sont mis d'accord.",
    },
    Term {
        name: "Cible / publics visés",
        explanation: "Les personnes à qui le groupe s'adresse : élus, particuliers, scolaires… (la liste des publics, ou les mots du groupe).",
    },
    Term {
        name: "Thème du groupe",
        explanation: "Un sujet dit avec les mots du groupe (« Construire avec la terre »), expliqué en une phrase et relié aux axes, thèmes et filières : les fiches qui les portent s'y rangent d'elles-mêmes.",
    },
    Term {
        name: "Plan de charge",
        explanation: "Le partage du travail du groupe : chaque tâche, l'office qui s'en charge, son échéance et où elle en est (à faire, en cours, à relire, fait).",
    },
    Term {
        name: "Relecture",
        explanation: "Un autre office lit une fiche avant sa publication : on la lui demande, il l'approuve ou la renvoie avec un commentaire.",
    },
    Term {
        name: "Approbation",
        explanation: "L'accord de l'office relecteur : la fiche est publiée. Un groupe peut exiger l'approbation d'un autre office avant toute publication.",
    },
    Term {
        name: "Pour vous",
        explanation: "Ce qui attend votre office : les relectures qu'on lui demande, les commentaires qui le mentionnent (« @caue-15 ») et ses tâches en cours.",
    },
    Term {
        name: "Quoi de neuf",
        explanation: "Ce que les autres offices ont changé depuis votre dernière visite : fiches, commentaires, tâches, relectures, groupes. « Marquer comme lu » ne vaut que pour cet ordinateur.",
    },
];

/// The label and one-line help of a field of the working-together forms, by its input name
/// (core's `WorkError::field`).
pub fn work_field(name: &str) -> (&'static str, &'static str) {
    match name {
        "name" => ("Nom du groupe", "Court et parlant : on le lit dans les listes et en tête des pages."),
        "slogan" => ("Slogan", "Une phrase qui dit l'esprit du groupe, pour les publics visés."),
        "action" => ("Nom de l'action", "Le nom sous lequel le groupe fait connaître son travail (« Habiter le Massif central »)."),
        "line" => ("Ligne éditoriale", "Ce que le groupe veut dire et montrer, et sur quel ton. Séparez les paragraphes par une ligne vide."),
        "members" => ("Bureaux membres", "Les offices qui font partie du groupe : eux seuls peuvent le modifier. Écrivez caue-XX, XX le numéro du département, séparés par des virgules."),
        "publics" => ("Publics visés", "À qui le groupe s'adresse : cochez dans la liste des publics, ou écrivez vos propres mots."),
        "publics_own" => ("Autres publics (vos mots)", "Séparés par des virgules, par exemple : artisans du bâti ancien, bailleurs sociaux."),
        "approval_required" => ("Approbation exigée", "Une fiche du groupe n'est publiée qu'après l'approbation d'un autre office."),
        "theme_label" => ("Thème", "Le thème dit avec les mots du groupe, par exemple « Construire avec la terre »."),
        "theme_explanation" => ("Explication du thème", "Une phrase qui dit ce que le thème couvre."),
        "theme_values" => ("Valeurs du vocabulaire", "Une fiche qui porte l'une des valeurs cochées se range sous ce thème."),
        "title" => ("Intitulé", "Ce qu'il y a à faire, en quelques mots."),
        "office" => ("Bureau responsable", "L'office du groupe qui s'en charge (vide : personne pour l'instant)."),
        "person" => ("Personne", "Facultatif : le nom de la personne qui s'en occupe."),
        "due" => ("Échéance", "La date attendue : 2027-03-31 ou 31/03/2027. Laissez vide s'il n'y en a pas."),
        "status" => ("État", "Où en est la tâche : à faire, en cours, à relire, fait."),
        "resources" => ("Fiches liées", "Les fiches du groupe sur lesquelles porte la tâche."),
        "resource_ref" => ("Autre fiche liée", "Facultatif : la référence ou l'adresse d'une fiche (ev-1, automerge:…)."),
        "author" => ("Votre nom", "Affiché avec le nom de votre office ; gardé sur cet ordinateur pour la prochaine fois."),
        "text" => ("Commentaire", "Pour signaler un office, écrivez @caue-XX (par exemple @caue-15) : il le verra dans « Pour vous »."),
        "to" => ("Bureau relecteur", "L'office à qui demander la relecture : caue-XX, un autre que le vôtre."),
        "comment" => ("Commentaire", "Facultatif pour une approbation ; pour un renvoi, dites ce qui est à reprendre."),
        "group" => ("Groupe", "Le groupe de travail où ranger cette fiche (seuls ceux dont votre office est membre)."),
        _ => ("", ""),
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
