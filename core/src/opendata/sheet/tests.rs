//! Tests of spreadsheet and GeoJSON reading: the messy sheet fixture, mappings, round trips.

use super::*;
use crate::opendata::{Format, Separator, Writer};

const MESSY: &[u8] = include_bytes!("../../../../tests/fixtures/tableur-caue.csv");
const FIXED: &[u8] = include_bytes!("../../../../tests/fixtures/tableur-caue-corrige.csv");

fn options() -> Options {
    Options {
        office: Some("caue-15".into()),
        mapping: Mapping::default(),
    }
}

fn sample() -> Vec<Resource> {
    include_str!("../../../../tests/fixtures/sample.jsonl")
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| Resource::from_json(&serde_json::from_str(l).unwrap()).unwrap())
        .collect()
}

#[test]
fn the_messy_sheet_is_read_and_its_problems_placed_by_line_and_column() {
    let sheet = read_csv(MESSY).unwrap();
    assert_eq!(sheet.source, Source::Csv { delimiter: b';' });
    assert_eq!(sheet.header_line, 3);
    assert_eq!(sheet.skipped, [1]);
    // The quoted remark over lines 6 and 7 is one row; the next row starts on line 8.
    let lines: Vec<usize> = sheet.rows.iter().map(|r| r.line).collect();
    assert_eq!(lines, [4, 5, 6, 8, 9, 10]);
    let plan = plan(&sheet, &options());
    let targets: Vec<String> = plan.columns.iter().map(|c| c.target.name()).collect();
    assert_eq!(
        targets,
        [
            "ref",
            "titre",
            "commune",
            "departement",
            "maitre_ouvrage",
            "concepteurs:architecte",
            "annee",
            "nature_travaux",
            "cout_eur_ht",
            "themes",
            "themes",
            "ignorer"
        ]
    );
    assert_eq!(plan.columns[10].origin, Origin::Inherited);
    assert_eq!(plan.columns[11].origin, Origin::Unknown);
    let problems: Vec<String> = plan.problems.iter().map(ToString::to_string).collect();
    assert_eq!(
        problems,
        [
            "ligne 5, colonne H « Type de travaux » : « Rehabilitaton » n'est pas une valeur de « Nature des travaux » ; voulez-vous dire « Réhabilitation » (rehabilitation) ?",
            "ligne 8, colonne C « Commune » : aucune commune « Aurillac » dans le département 63 ; il y en a : Aurillac (15)",
        ]
    );
    assert_eq!(
        plan.problems[0].suggestion.as_deref(),
        Some("rehabilitation")
    );
    assert_eq!(
        (plan.problems[1].line, plan.problems[1].column),
        (Some(8), Some(2))
    );
    assert!(
        plan.resources().is_none(),
        "a sheet with problems gives nothing to import"
    );
    let notes: Vec<String> = plan.notes.iter().map(ToString::to_string).collect();
    for expected in [
        "ligne 1 : au-dessus de la ligne d'en-tête : ignorée",
        "ligne 4, colonne C « Commune » : « Chastel-sur-Murat » fait aujourd'hui partie de Murat (15) (15138) : la fiche y est rattachée",
    ] {
        assert!(notes.iter().any(|n| n == expected), "{expected} not in {notes:#?}");
    }
    assert!(
        notes
            .iter()
            .any(|n| n.starts_with("colonne L « Remarques » : aucun champ")),
        "{notes:#?}"
    );
    assert!(
        notes
            .iter()
            .any(|n| n
                .starts_with("colonne K : colonne sans titre à droite d'une colonne « Thèmes »")),
        "{notes:#?}"
    );
}

#[test]
fn the_fixed_sheet_reads_messy_values_into_fields() {
    let plan = plan(&read_csv(FIXED).unwrap(), &options());
    assert!(plan.problems.is_empty(), "{:#?}", plan.problems);
    let rs = plan.resources().unwrap();
    assert_eq!(rs.len(), 6);
    let gite = &rs[0];
    assert_eq!(gite.ref_.as_deref(), Some("CAUE15-001"));
    assert_eq!(gite.kind, "realisation");
    assert_eq!(gite.office, "caue-15");
    assert_eq!(gite.year, Some(2019));
    assert_eq!(gite.cost_eur_ht, Some(1_200_000.0));
    assert_eq!(gite.intervention.as_deref(), Some("rehabilitation"));
    assert_eq!(gite.themes, ["patrimoine", "habitat"]);
    assert_eq!(gite.designers[0].role, "architecte");
    let loc = gite.location.as_ref().unwrap();
    assert_eq!(
        (
            loc.commune.as_deref(),
            loc.insee.as_deref(),
            loc.departement.as_deref()
        ),
        (Some("Murat"), Some("15138"), Some("15"))
    );
    assert_eq!(rs[1].cost_eur_ht, Some(350_000.0));
    assert_eq!(rs[2].cost_eur_ht, Some(350_000.0));
    assert_eq!(rs[2].themes, ["equipements_publics", "energie_renovation"]);
    assert_eq!(
        rs[3].location.as_ref().unwrap().insee.as_deref(),
        Some("15014")
    );
    assert_eq!(rs[4].cost_eur_ht, Some(480_000.0));
    // « Murat » alone is two communes; the office's département tells which.
    assert_eq!(
        rs[4].location.as_ref().unwrap().insee.as_deref(),
        Some("15138")
    );
    // « St-Flour » is Saint-Flour, named officially.
    assert_eq!(rs[5].commune(), Some("Saint-Flour"));
    assert_eq!(
        rs[5].intervention.as_deref(),
        Some("amenagement_espace_public")
    );
}

#[test]
fn a_mapping_names_columns_sets_values_and_reads_codes() {
    let csv = "Nom;Client;Genre;Divers;;Travaux\nÉcole;Commune de Thiers;outil;x;y;Réno lourde\n";
    let mapping = Mapping::from_toml(
        "[colonnes]\n\"Client\" = \"client\"\n\"Divers\" = \"ignorer\"\n\"colonne E\" = \"mots_cles\"\n\"Genre\" = \"ignorer\"\n\
         [valeurs]\ntype = \"outil\"\nstatut = \"a_relire\"\n\
         [correspondances.nature_travaux]\n\"Réno lourde\" = \"rehabilitation\"\n",
    )
    .unwrap();
    let plan = plan(
        &read_csv(csv.as_bytes()).unwrap(),
        &Options {
            office: Some("caue-63".into()),
            mapping,
        },
    );
    assert!(plan.problems.is_empty(), "{:#?}", plan.problems);
    let r = &plan.resources().unwrap()[0];
    assert_eq!(r.client.as_deref(), Some("Commune de Thiers"));
    assert_eq!((r.kind.as_str(), r.status.as_str()), ("outil", "a_relire"));
    assert_eq!(r.keywords, ["y"]);
    assert_eq!(r.intervention.as_deref(), Some("rehabilitation"));
    assert_eq!(
        Mapping::from_toml("[colonnes]\n\"A\" = \"maitre\"\n").unwrap_err(),
        MappingError::UnknownField {
            section: "colonnes".into(),
            name: "maitre".into()
        }
    );
    assert!(Mapping::from_toml("[colonnes\n").is_err());
}

#[test]
fn sheet_wide_problems_and_commas_and_windows_1252() {
    // No title column: said once, not on every line; two columns into one field.
    let plan1 = plan(
        &read_csv(b"Commune,Ville\nThiers,Thiers\n").unwrap(),
        &options(),
    );
    let problems: Vec<String> = plan1.problems.iter().map(ToString::to_string).collect();
    assert_eq!(problems.len(), 2, "{problems:#?}");
    assert!(problems[0].contains("vont toutes deux dans « Commune »"));
    assert!(problems[1].starts_with("aucune colonne ne donne le titre"));
    // Excel's « CSV (séparateur : point-virgule) » is Windows-1252.
    let sheet = read_csv(b"Titre;Ann\xe9e\n\xc9cole;2019\n").unwrap();
    assert_eq!(sheet.headers, ["Titre", "Année"]);
    let r = &plan(&sheet, &options()).resources().unwrap()[0];
    assert_eq!((r.title.as_str(), r.year), ("École", Some(2019)));
    assert!(matches!(read_csv(b"  \n"), Err(SheetError::Empty)));
    // A duplicated ref is refused on its second line.
    let plan2 = plan(&read_csv(b"ref,titre\na,Un\na,Deux\n").unwrap(), &options());
    assert_eq!(
        plan2.problems[0].to_string(),
        "ligne 3, colonne A « ref » : la référence « a » est déjà celle de la ligne 2"
    );
}

/// Exports `resources` as `format`, reads the file back and plans its import.
fn round_trip(format: Format, sep: Separator, resources: &[Resource]) -> Vec<Resource> {
    let mut w = Writer::new(format, sep, Vec::new()).unwrap();
    for r in resources {
        w.write(r).unwrap();
    }
    let bytes = w.finish().unwrap();
    let sheet = match format {
        Format::GeoJson => read_geojson(&bytes).unwrap(),
        _ => read_csv(&bytes).unwrap(),
    };
    let plan = plan(&sheet, &Options::default());
    assert!(plan.problems.is_empty(), "{:#?}", plan.problems);
    plan.resources().unwrap()
}

#[test]
fn csv_and_geojson_exports_read_back_to_the_same_resources() {
    let mut expected = sample();
    for r in &mut expected {
        // Fields FORMAT.md does not define are only in JSON Lines.
        r.extra.clear();
    }
    // The one commune without its INSEE code gets it on the way back.
    let eymoutiers = expected
        .iter_mut()
        .find(|r| r.ref_.as_deref() == Some("fx-004"))
        .unwrap();
    eymoutiers.location.as_mut().unwrap().insee = Some("87064".into());
    for (format, sep) in [
        (Format::Csv, Separator::Comma),
        (Format::Csv, Separator::Semicolon),
        (Format::GeoJson, Separator::Comma),
    ] {
        let back = round_trip(format, sep, &sample());
        assert_eq!(back.len(), expected.len());
        for (b, e) in back.iter().zip(&expected) {
            assert_eq!(b, e, "{format:?} {sep:?}: {:?}", e.ref_);
        }
    }
}

#[test]
fn targets_read_back_their_names() {
    for t in Target::all() {
        assert_eq!(Target::parse(&t.name()), Some(t), "{t:?}");
        assert!(!t.label().is_empty());
    }
    assert_eq!(Target::parse("client"), Some(Target::Field("client")));
    assert_eq!(guess("Maître d’ouvrage"), Some(Target::Field("client")));
    assert_eq!(guess("MAITRE D'OUVRAGE"), Some(Target::Field("client")));
    assert_eq!(guess("Année de livraison"), Some(Target::Field("year")));
    assert_eq!(
        guess("Coût des travaux (€ HT)"),
        Some(Target::Field("cost_eur_ht"))
    );
    assert_eq!(guess("Intitulé"), Some(Target::Field("title")));
    assert_eq!(guess("Paysagiste"), Some(Target::Designer("paysagiste")));
    assert_eq!(guess("Remarques"), None);
    assert_eq!(column_letter(0), "colonne A");
    assert_eq!(column_letter(27), "colonne AB");
}

proptest::proptest! {
    /// Any bytes given as a spreadsheet or GeoJSON are read or refused, never a panic.
    #[test]
    fn any_bytes_plan_or_fail_without_panicking(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..400)) {
        if let Ok(sheet) = read_csv(&bytes) {
            let _ = plan(&sheet, &options());
        }
        if let Ok(sheet) = read_geojson(&bytes) {
            let _ = plan(&sheet, &options());
        }
    }
}
