//! Facet counts: a collector reading the keyword and year columns of every matching document.
//!
//! Years are counted by decade, under keys such as `"2010-2019"`.

use std::collections::BTreeMap;

use tantivy::collector::{Collector, SegmentCollector};
use tantivy::columnar::{Column, StrColumn};
use tantivy::{DocId, Score, SegmentOrdinal, SegmentReader};

use super::fields::{Facet, YEAR};

/// Facet name → value → number of matching documents.
pub type FacetCounts = BTreeMap<String, BTreeMap<String, u64>>;

/// Key of the year facet in [`FacetCounts`].
pub const YEAR_FACET: &str = "year";

/// Counts the values of some facets (and optionally the year) over the matching documents.
pub struct FacetCollector {
    pub facets: Vec<Facet>,
    pub year: bool,
}

impl FacetCollector {
    /// Counts every facet and the year.
    pub fn all() -> FacetCollector {
        FacetCollector {
            facets: Facet::ALL.to_vec(),
            year: true,
        }
    }
}

/// Per-segment state: counts by term ordinal, turned into strings at harvest.
pub struct FacetSegmentCollector {
    columns: Vec<(Facet, StrColumn, Vec<u64>)>,
    year: Option<(Column<i64>, BTreeMap<i64, u64>)>,
    /// Buffers of `collect_block`, kept between blocks.
    docs: Vec<DocId>,
    rows: Vec<u32>,
    ords: Vec<u64>,
}

impl Collector for FacetCollector {
    type Fruit = FacetCounts;
    type Child = FacetSegmentCollector;

    fn for_segment(
        &self,
        _segment_local_id: SegmentOrdinal,
        segment: &SegmentReader,
    ) -> tantivy::Result<FacetSegmentCollector> {
        let fast = segment.fast_fields();
        let mut columns = Vec::new();
        for &facet in &self.facets {
            // A segment where no document has a value for the facet has no column.
            if let Some(column) = fast.str(facet.name())? {
                let counts = vec![0; column.num_terms()];
                columns.push((facet, column, counts));
            }
        }
        let year = if self.year {
            fast.column_opt::<i64>(YEAR)?
                .map(|column| (column, BTreeMap::new()))
        } else {
            None
        };
        Ok(FacetSegmentCollector {
            columns,
            year,
            docs: Vec::new(),
            rows: Vec::new(),
            ords: Vec::new(),
        })
    }

    fn requires_scoring(&self) -> bool {
        false
    }

    fn merge_fruits(&self, fruits: Vec<FacetCounts>) -> tantivy::Result<FacetCounts> {
        let mut merged = FacetCounts::new();
        for f in &self.facets {
            merged.insert(f.name().to_string(), BTreeMap::new());
        }
        if self.year {
            merged.insert(YEAR_FACET.to_string(), BTreeMap::new());
        }
        for fruit in fruits {
            for (facet, values) in fruit {
                let into = merged.entry(facet).or_default();
                for (value, count) in values {
                    *into.entry(value).or_default() += count;
                }
            }
        }
        Ok(merged)
    }
}

impl SegmentCollector for FacetSegmentCollector {
    type Fruit = FacetCounts;

    fn collect(&mut self, doc: DocId, _score: Score) {
        for (_, column, counts) in &mut self.columns {
            for ord in column.term_ords(doc) {
                counts[ord as usize] += 1;
            }
        }
        if let Some((column, counts)) = &mut self.year {
            if let Some(year) = column.first(doc) {
                *counts.entry(year.div_euclid(10) * 10).or_default() += 1;
            }
        }
    }

    /// Blocks of documents (when nothing is scored and nothing deleted): the columns are read
    /// in batches rather than one document at a time.
    fn collect_block(&mut self, docs: &[DocId]) {
        for (_, column, counts) in &mut self.columns {
            let ords = column.ords();
            self.docs.clear();
            self.rows.clear();
            ords.row_ids_for_docs(docs, &mut self.docs, &mut self.rows);
            self.ords.clear();
            self.ords.resize(self.rows.len(), 0);
            ords.values.get_vals(&self.rows, &mut self.ords);
            for &ord in &self.ords {
                counts[ord as usize] += 1;
            }
        }
        if let Some((column, counts)) = &mut self.year {
            for &doc in docs {
                if let Some(year) = column.first(doc) {
                    *counts.entry(year.div_euclid(10) * 10).or_default() += 1;
                }
            }
        }
    }

    fn harvest(self) -> FacetCounts {
        let mut out = FacetCounts::new();
        for (facet, column, counts) in self.columns {
            let values = out.entry(facet.name().to_string()).or_default();
            let ords: Vec<u64> = (0..counts.len() as u64)
                .filter(|&ord| counts[ord as usize] > 0)
                .collect();
            // One pass over the dictionary for all values (each lookup on its own would
            // decompress a dictionary block again).
            let mut found = ords.iter();
            let _ = column.dictionary().sorted_ords_to_term_cb(&ords, |bytes| {
                if let Some(&ord) = found.next() {
                    let value = String::from_utf8_lossy(bytes).into_owned();
                    *values.entry(value).or_default() += counts[ord as usize];
                }
            });
        }
        if let Some((_, counts)) = self.year {
            let values = out.entry(YEAR_FACET.to_string()).or_default();
            for (decade, count) in counts {
                values.insert(decade_key(decade), count);
            }
        }
        out
    }
}

/// `2010` → `"2010-2019"`.
pub fn decade_key(decade: i64) -> String {
    format!("{}-{}", decade, decade + 9)
}
