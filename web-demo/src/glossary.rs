//! Plain French words for every kind and field: labels, one-line explanations, and the French
//! label of any vocabulary code. The staff's report said they were lost in words like « action
//! de médiation »: every page takes its wording from here, so it is said once and the same way.

use atelier_core::vocab;

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

/// A field, said plainly.
#[derive(Debug, Clone, Copy)]
pub struct FieldHelp {
    /// FORMAT.md name (dotted for nested fields), as in `FieldError::field`.
    pub field: &'static str,
    pub label: &'static str,
    /// One plain line shown under the field in forms; empty when the label says it all.
    pub help: &'static str,
}

const fn f(field: &'static str, label: &'static str, help: &'static str) -> FieldHelp {
    FieldHelp { field, label, help }
}

/// Every field of FORMAT.md, with nested ones.
pub const FIELDS: &[FieldHelp] = &[
    f("kind", "Type de fiche", "Ce que décrit la fiche : une réalisation, un outil, une action…"),
    f("title", "Titre", "Le nom sous lequel on retrouvera la fiche, par exemple « École en pisé de Montbrison »."),
    f("summary", "Résumé", "Deux ou trois phrases affichées dans la liste (300 caractères au plus)."),
    f("description", "Description", "Le texte complet. Plusieurs personnes peuvent l'écrire en même temps, depuis plusieurs offices."),
    f("office", "Office", "Le CAUE qui s'occupe de cette fiche."),
    f("status", "État de la fiche", "Brouillon tant qu'elle n'est pas prête, « À relire » pour demander une relecture, « Publié » quand elle peut être montrée."),
    f("axes", "Axes du programme", "Le ou les grands axes du programme auxquels la fiche se rattache."),
    f("themes", "Thèmes", "Les sujets traités ; cochez tous ceux qui conviennent."),
    f("sectors", "Filières de construction", "Les matériaux « filières » mis en avant (bois, terre crue, pierre…)."),
    f("materials", "Matériaux", "Librement, séparés par des virgules : pisé, lauze, botte de paille…"),
    f("audiences", "Publics", "À qui s'adresse la fiche ou l'action."),
    f("keywords", "Mots-clés", "Librement, séparés par des virgules ; ils aident à retrouver la fiche."),
    f("location", "Lieu", "Où se trouve la réalisation ou où a lieu l'action."),
    f("location.commune", "Commune", ""),
    f("location.insee", "Code commune INSEE", "5 caractères, par exemple 63113 pour Clermont-Ferrand (facultatif)."),
    f("location.departement", "Département", ""),
    f("location.lat", "Latitude", "En degrés décimaux, par exemple 45.78 (facultatif : sert à placer le point sur la carte)."),
    f("location.lon", "Longitude", "En degrés décimaux, par exemple 3.08."),
    f("year", "Année", "Année de livraison (réalisation), d'édition (outil) ou de l'action."),
    f("client", "Maître d'ouvrage", "Celui qui a commandé et financé les travaux (commune, particulier, bailleur…)."),
    f("designers", "Concepteurs (maîtrise d'œuvre)", "Les architectes, paysagistes, bureaux d'études… avec leur rôle."),
    f("designers.name", "Nom du concepteur", ""),
    f("designers.role", "Rôle du concepteur", ""),
    f("intervention", "Nature des travaux", "Construction neuve, réhabilitation, extension…"),
    f("building_type", "Type de bâtiment ou d'espace", "À quoi sert le lieu : logement, école, mairie, espace public…"),
    f("cost_eur_ht", "Coût des travaux (€ HT)", "Montant hors taxes, en euros, sans espaces ni symbole : 2600000."),
    f("floor_area_m2", "Surface de plancher (m²)", "En mètres carrés."),
    f("tool_type", "Type d'outil", ""),
    f("action_type", "Type d'action", ""),
    f("dates", "Dates", "Quand l'action a eu lieu."),
    f("dates.start", "Date de début", ""),
    f("dates.end", "Date de fin", "Laissez vide pour une action d'un seul jour."),
    f("links", "Liens", "Pages web utiles (adresse commençant par https://) avec un intitulé."),
    f("links.url", "Adresse du lien", ""),
    f("links.label", "Intitulé du lien", ""),
    f("ref", "Référence externe", "Un code stable venant d'un autre fichier ou d'un tableur (facultatif)."),
];

/// The help of a field (dotted names accepted); `None` for a field FORMAT.md does not define.
pub fn field(name: &str) -> Option<&'static FieldHelp> {
    FIELDS.iter().find(|h| h.field == name)
}

/// The French label of a field name, for history lines and messages. Names the history uses for
/// whole-document events are said as such.
pub fn field_label(name: &str) -> String {
    match name {
        "(création)" => "création de la fiche".into(),
        "(suppression)" => "suppression".into(),
        "(restauration)" => "restauration".into(),
        _ => field(name)
            .map(|h| h.label.to_string())
            .unwrap_or_else(|| name.to_string()),
    }
}

/// The French label of a vocabulary code; an unknown code is shown as is.
pub fn code_label<'a>(vocabulary: &str, code: &'a str) -> &'a str {
    match vocab::label(vocabulary, code) {
        Some(label) => label,
        None => code,
    }
}

/// « CAUE du Puy-de-Dôme » for `caue-63`; the id itself if the département is unknown.
pub fn office_name(office: &str) -> String {
    office
        .strip_prefix("caue-")
        .and_then(vocab::departement)
        .map(|d| format!("CAUE {}", with_article(&d.name)))
        .unwrap_or_else(|| office.to_string())
}

/// « Puy-de-Dôme (63) ».
pub fn departement_name(code: &str) -> String {
    vocab::departement(code)
        .map(|d| format!("{} ({})", d.name, d.code))
        .unwrap_or_else(|| code.to_string())
}

/// French contracted article before a département name: « du Cantal », « de l'Ain », « de la
/// Loire », « des Vosges ». The rule follows the name's first word, which covers the 101 names.
fn with_article(name: &str) -> String {
    const FEMININE: &[&str] = &[
        "Loire",
        "Haute-Loire",
        "Lozère",
        "Corrèze",
        "Creuse",
        "Haute-Vienne",
        "Vienne",
        "Charente",
        "Charente-Maritime",
        "Dordogne",
        "Gironde",
        "Haute-Garonne",
        "Haute-Marne",
        "Marne",
        "Haute-Saône",
        "Saône-et-Loire",
        "Haute-Savoie",
        "Savoie",
        "Somme",
        "Meuse",
        "Moselle",
        "Manche",
        "Mayenne",
        "Sarthe",
        "Nièvre",
        "Drôme",
        "Haute-Corse",
        "Corse-du-Sud",
        "Guadeloupe",
        "Martinique",
        "Guyane",
        "Réunion",
        "Seine-Maritime",
        "Seine-Saint-Denis",
        "Seine-et-Marne",
        "Vendée",
        "Haute-Vienne",
        "Haute-Saône",
        "Côte-d'Or",
        "Haute-Marne",
        "Meurthe-et-Moselle",
        "Loire-Atlantique",
        "Orne",
        "Aube",
        "Ardèche",
        "Aude",
        "Eure",
        "Eure-et-Loir",
        "Essonne",
        "Indre",
        "Indre-et-Loire",
        "Isère",
        "Oise",
        "Allier",
    ];
    const PLURAL_PREFIXES: &[&str] = &[
        "Alpes",
        "Ardennes",
        "Bouches",
        "Côtes",
        "Deux",
        "Hautes",
        "Hauts",
        "Landes",
        "Pyrénées",
        "Vosges",
        "Yvelines",
    ];
    let first = name.split(['-', ' ']).next().unwrap_or(name);
    // « Haut » has an aspirated h: du Haut-Rhin, de la Haute-Loire.
    let vowel = name.starts_with(['A', 'E', 'I', 'O', 'U', 'Y', 'É', 'Î', 'H'])
        && !name.starts_with("Haut");
    if name.starts_with("La ") || name.starts_with("Le ") {
        format!("de {name}")
    } else if PLURAL_PREFIXES.contains(&first) {
        format!("des {name}")
    } else if vowel {
        format!("de l'{name}")
    } else if FEMININE.contains(&name) || name == "Mayotte" {
        if name == "Mayotte" {
            "de Mayotte".into()
        } else {
            format!("de la {name}")
        }
    } else if name == "Paris" {
        "de Paris".into()
    } else {
        format!("du {name}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_format_field_and_kind_is_explained() {
        for name in atelier_core::resource::KNOWN_FIELDS.iter() {
            assert!(field(name).is_some(), "no French label for {name}");
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
        assert_eq!(code_label(vocab::SECTORS, "terre"), "Terre crue");
        assert_eq!(field_label("location.commune"), "Commune");
    }
}
