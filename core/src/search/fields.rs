//! The index schema: one exact-folded and one stemmed field per text group, facet and sort fields.

use tantivy::schema::{
    Field, IndexRecordOption, NumericOptions, Schema, TextFieldIndexing, TextOptions, FAST, STORED,
    STRING,
};
use tantivy::TantivyDocument;

use super::analysis::{self, EXACT, STEM};
use super::SearchDoc;

/// Bumped whenever the schema or the analysis changes in a way that needs a reindex: an index
/// written with another version is recreated empty and reported by `needs_rebuild`.
pub const SCHEMA_VERSION: u32 = 1;

/// A group of text that is searched as one unit, with its weight in the score.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextGroup {
    Title,
    Summary,
    /// Materials and keywords: short, chosen tags.
    Tags,
    /// Commune.
    Place,
    Description,
    /// Client and designers.
    People,
    /// French labels of the vocabulary codes, and the names of the département and région:
    /// broad words shared by many resources.
    Labels,
}

impl TextGroup {
    pub const ALL: [TextGroup; 7] = [
        TextGroup::Title,
        TextGroup::Summary,
        TextGroup::Tags,
        TextGroup::Place,
        TextGroup::Description,
        TextGroup::People,
        TextGroup::Labels,
    ];

    /// The groups that hold the resource's own words: all but the labels, which come last in
    /// [`TextGroup::ALL`] (the pattern makes that a compile-time check).
    pub const OWN_TEXT: &'static [TextGroup] = match &Self::ALL {
        [own @ .., TextGroup::Labels] => own,
        _ => panic!("the labels must be the last text group"),
    };

    /// Weight of a match in this group. The title says what the resource is; summary and tags
    /// are chosen words; the description is long and mentions many things in passing; labels
    /// come from the vocabularies and are shared by many resources, so they weigh least (the
    /// corpus README: a word found only in a label is a weak match).
    pub fn weight(self) -> f32 {
        match self {
            TextGroup::Title => 3.0,
            TextGroup::Summary => 2.0,
            TextGroup::Tags => 2.0,
            TextGroup::Place => 1.5,
            TextGroup::Description => 1.0,
            TextGroup::People => 1.0,
            TextGroup::Labels => 0.3,
        }
    }

    fn name(self) -> &'static str {
        match self {
            TextGroup::Title => "title",
            TextGroup::Summary => "summary",
            TextGroup::Tags => "tags",
            TextGroup::Place => "place",
            TextGroup::Description => "description",
            TextGroup::People => "people",
            TextGroup::Labels => "labels",
        }
    }

    /// Groups whose original text is stored, for hits and snippets.
    fn stored(self) -> bool {
        matches!(
            self,
            TextGroup::Title | TextGroup::Summary | TextGroup::Description
        )
    }
}

/// A facet: a keyword field counted in results and usable as a filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Facet {
    Kind,
    Office,
    Departement,
    Region,
    Axe,
    Theme,
    Sector,
    Audience,
    Status,
}

impl Facet {
    pub const ALL: [Facet; 9] = [
        Facet::Kind,
        Facet::Office,
        Facet::Departement,
        Facet::Region,
        Facet::Axe,
        Facet::Theme,
        Facet::Sector,
        Facet::Audience,
        Facet::Status,
    ];

    /// Field name, also the key in `SearchResults::facets`.
    pub fn name(self) -> &'static str {
        match self {
            Facet::Kind => "kind",
            Facet::Office => "office",
            Facet::Departement => "departement",
            Facet::Region => "region",
            Facet::Axe => "axe",
            Facet::Theme => "theme",
            Facet::Sector => "sector",
            Facet::Audience => "audience",
            Facet::Status => "status",
        }
    }

    fn values(self, doc: &SearchDoc) -> Vec<String> {
        let mut values = match self {
            Facet::Kind => vec![doc.kind.clone()],
            Facet::Office => vec![doc.office.clone()],
            Facet::Departement => doc.departement.iter().cloned().collect(),
            Facet::Region => region(doc).into_iter().collect(),
            Facet::Axe => doc.axes.clone(),
            Facet::Theme => doc.themes.clone(),
            Facet::Sector => doc.sectors.clone(),
            Facet::Audience => doc.audiences.clone(),
            Facet::Status => vec![doc.status.clone()],
        };
        values.retain(|v| !v.trim().is_empty());
        values
    }
}

/// Name of the year field (fast, for the range filter, the decade facet and the date sort).
pub const YEAR: &str = "year";
/// Name of the folded title used to sort by title.
pub const TITLE_SORT: &str = "title_sort";

/// Handles on every field of the schema.
#[derive(Debug, Clone)]
pub struct Fields {
    pub schema: Schema,
    pub id: Field,
    pub ref_: Field,
    exact: [Field; 7],
    stem: [Field; 7],
    /// All text in one exact field, without positions: used only to look up indexed words
    /// (plural variants, completions, typo corrections) in one term dictionary.
    pub all_exact: Field,
    facets: [Field; 9],
    pub year: Field,
    pub lat: Field,
    pub lon: Field,
    pub title_sort: Field,
}

impl Fields {
    pub fn new() -> Fields {
        let mut b = Schema::builder();
        let id = b.add_text_field("id", STRING | STORED);
        let ref_ = b.add_text_field("ref", STRING | STORED);
        let exact = TextGroup::ALL.map(|g| {
            b.add_text_field(
                &format!("{}_exact", g.name()),
                text_options(EXACT, IndexRecordOption::WithFreqsAndPositions, g.stored()),
            )
        });
        let stem = TextGroup::ALL.map(|g| {
            b.add_text_field(
                &format!("{}_stem", g.name()),
                text_options(STEM, IndexRecordOption::WithFreqsAndPositions, false),
            )
        });
        let all_exact = b.add_text_field(
            "all_exact",
            text_options(EXACT, IndexRecordOption::Basic, false),
        );
        let facets = Facet::ALL.map(|f| {
            let stored = matches!(f, Facet::Kind | Facet::Office);
            let opts = if stored {
                STRING | FAST | STORED
            } else {
                STRING | FAST
            };
            b.add_text_field(f.name(), opts)
        });
        let year = b.add_i64_field(YEAR, NumericOptions::default().set_indexed().set_fast());
        let lat = b.add_f64_field("lat", NumericOptions::default().set_indexed().set_fast());
        let lon = b.add_f64_field("lon", NumericOptions::default().set_indexed().set_fast());
        let title_sort = b.add_text_field(TITLE_SORT, TextOptions::default().set_fast("raw"));
        Fields {
            schema: b.build(),
            id,
            ref_,
            exact,
            stem,
            all_exact,
            facets,
            year,
            lat,
            lon,
            title_sort,
        }
    }

    /// The exact-folded field of a group.
    pub fn exact(&self, g: TextGroup) -> Field {
        self.exact[g as usize]
    }

    /// The stemmed field of a group.
    pub fn stem(&self, g: TextGroup) -> Field {
        self.stem[g as usize]
    }

    /// The keyword field of a facet.
    pub fn facet(&self, f: Facet) -> Field {
        self.facets[f as usize]
    }

    /// Maps a resource to the document indexed for it.
    pub fn document(&self, d: &SearchDoc) -> TantivyDocument {
        let mut doc = TantivyDocument::default();
        doc.add_text(self.id, &d.id);
        if let Some(r) = &d.ref_ {
            doc.add_text(self.ref_, r);
        }
        for g in TextGroup::ALL {
            for text in texts(d, g) {
                doc.add_text(self.exact(g), &text);
                doc.add_text(self.stem(g), &text);
                doc.add_text(self.all_exact, &text);
            }
        }
        for f in Facet::ALL {
            for v in f.values(d) {
                doc.add_text(self.facet(f), &v);
            }
        }
        if let Some(y) = d.year {
            doc.add_i64(self.year, y);
        }
        if let (Some(lat), Some(lon)) = (d.lat, d.lon) {
            doc.add_f64(self.lat, lat);
            doc.add_f64(self.lon, lon);
        }
        doc.add_text(self.title_sort, analysis::fold(d.title.trim()));
        doc
    }
}

impl Default for Fields {
    fn default() -> Self {
        Fields::new()
    }
}

fn text_options(tokenizer: &str, record: IndexRecordOption, stored: bool) -> TextOptions {
    let indexing = TextFieldIndexing::default()
        .set_tokenizer(tokenizer)
        .set_index_option(record);
    let options = TextOptions::default().set_indexing_options(indexing);
    if stored {
        options.set_stored()
    } else {
        options
    }
}

/// The texts of a resource that go into one group. Each list item is a separate value, so a
/// phrase never runs from one material into the next.
fn texts(d: &SearchDoc, g: TextGroup) -> Vec<String> {
    let non_empty = |s: &str| !s.trim().is_empty();
    let mut out: Vec<String> = match g {
        TextGroup::Title => vec![d.title.clone()],
        TextGroup::Summary => vec![d.summary.clone()],
        TextGroup::Description => vec![d.description.clone()],
        TextGroup::Tags => d.materials.iter().chain(&d.keywords).cloned().collect(),
        TextGroup::Place => d.commune.iter().cloned().collect(),
        TextGroup::People => d.client.iter().chain(&d.designers).cloned().collect(),
        TextGroup::Labels => {
            let dep = d.departement.as_deref().and_then(crate::vocab::departement);
            d.labels
                .iter()
                .cloned()
                .chain(dep.map(|dep| dep.name.clone()))
                .chain(region(d))
                .collect()
        }
    };
    out.retain(|s| non_empty(s));
    out
}

/// The région of a resource: the caller's, else the one of its département.
fn region(d: &SearchDoc) -> Option<String> {
    d.region
        .clone()
        .filter(|r| !r.trim().is_empty())
        .or_else(|| {
            d.departement
                .as_deref()
                .and_then(crate::vocab::departement)
                .map(|dep| dep.region.clone())
        })
}
