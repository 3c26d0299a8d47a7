//! Facet counts: a collector counting the keyword facets and the year (by decade) of the
//! matching documents, from per-segment tables read once from tantivy's columns.
//!
//! Years are counted by decade, under keys such as `"2010-2019"`.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use tantivy::collector::{Collector, SegmentCollector};
use tantivy::columnar::{Cardinality, Column, StrColumn};
use tantivy::index::SegmentId;
use tantivy::{DocId, Score, Searcher, SegmentOrdinal, SegmentReader};

use super::fields::{Facet, YEAR};

/// Facet name → value → number of matching documents.
pub type FacetCounts = BTreeMap<String, BTreeMap<String, u64>>;

/// Key of the year facet in [`FacetCounts`].
pub const YEAR_FACET: &str = "year";

/// The facet values of one segment's documents in plain arrays, read once from tantivy's
/// columns. Counting a hit is then one array read per facet instead of a column lookup (rank in
/// the optional index, then the bit-packed value), which was a fifth of the search time at
/// 100,000 resources. A segment's columns never change (a delete only hides documents, and the
/// scorers skip them), so a table is right for as long as its segment lives.
pub struct SegmentFacets {
    id: SegmentId,
    /// Facet name (or [`YEAR_FACET`]) and its table; a facet no document of the segment has
    /// is absent.
    tables: Vec<(&'static str, FacetTable)>,
}

/// One facet of one segment.
struct FacetTable {
    /// The value of each ordinal.
    values: Vec<String>,
    /// Each document's ordinals; `values.len()` stands for "no value".
    ords: Ords,
}

enum Ords {
    /// At most one value per document.
    Single(Vec<u32>),
    /// Document `d` has `ords[starts[d]..starts[d + 1]]`.
    Multi { starts: Vec<u32>, ords: Vec<u32> },
}

impl SegmentFacets {
    /// Reads every facet column and the year column of a segment.
    pub fn read(segment: &SegmentReader) -> tantivy::Result<SegmentFacets> {
        let fast = segment.fast_fields();
        let max_doc = segment.max_doc();
        let mut tables = Vec::new();
        for facet in Facet::ALL {
            // A segment where no document has a value for the facet has no column.
            if let Some(column) = fast.str(facet.name())? {
                tables.push((facet.name(), FacetTable::of_str(&column, max_doc)?));
            }
        }
        if let Some(column) = fast.column_opt::<i64>(YEAR)? {
            tables.push((YEAR_FACET, FacetTable::of_decades(&column, max_doc)));
        }
        Ok(SegmentFacets {
            id: segment.segment_id(),
            tables,
        })
    }

    fn position(&self, name: &str) -> Option<usize> {
        self.tables.iter().position(|(n, _)| *n == name)
    }
}

impl FacetTable {
    fn of_str(column: &StrColumn, max_doc: DocId) -> tantivy::Result<FacetTable> {
        let all: Vec<u64> = (0..column.num_terms() as u64).collect();
        let mut values = Vec::with_capacity(all.len());
        column.dictionary().sorted_ords_to_term_cb(&all, |bytes| {
            values.push(String::from_utf8_lossy(bytes).into_owned());
        })?;
        if values.len() != all.len() {
            return Err(tantivy::TantivyError::InternalError(format!(
                "facet dictionary holds {} of its {} values",
                values.len(),
                all.len()
            )));
        }
        let none = values.len() as u32;
        let column = column.ords();
        let ords = if column.get_cardinality() == Cardinality::Multivalued {
            let mut starts = Vec::with_capacity(max_doc as usize + 1);
            let mut ords = Vec::new();
            starts.push(0);
            for doc in 0..max_doc {
                ords.extend(column.values_for_doc(doc).map(|ord| ord as u32));
                starts.push(ords.len() as u32);
            }
            Ords::Multi { starts, ords }
        } else {
            Ords::Single(
                (0..max_doc)
                    .map(|doc| column.first(doc).map_or(none, |ord| ord as u32))
                    .collect(),
            )
        };
        Ok(FacetTable { values, ords })
    }

    fn of_decades(column: &Column<i64>, max_doc: DocId) -> FacetTable {
        let mut decades: HashMap<i64, u32> = HashMap::new();
        let mut values = Vec::new();
        let doc_decades: Vec<Option<u32>> = (0..max_doc)
            .map(|doc| {
                column.first(doc).map(|year| {
                    let decade = year.div_euclid(10) * 10;
                    *decades.entry(decade).or_insert_with(|| {
                        values.push(decade_key(decade));
                        values.len() as u32 - 1
                    })
                })
            })
            .collect();
        let none = values.len() as u32;
        let ords = doc_decades.into_iter().map(|d| d.unwrap_or(none)).collect();
        FacetTable {
            values,
            ords: Ords::Single(ords),
        }
    }

    /// Adds one document to `counts` (one slot per value, and a last one for "no value").
    #[inline]
    fn count(&self, doc: DocId, counts: &mut [u32]) {
        match &self.ords {
            Ords::Single(ords) => counts[ords[doc as usize] as usize] += 1,
            Ords::Multi { starts, ords } => {
                let (from, to) = (starts[doc as usize], starts[doc as usize + 1]);
                for &ord in &ords[from as usize..to as usize] {
                    counts[ord as usize] += 1;
                }
            }
        }
    }

    /// Adds a block of documents to `counts`.
    fn count_block(&self, docs: &[DocId], counts: &mut [u32]) {
        match &self.ords {
            Ords::Single(ords) => {
                for &doc in docs {
                    counts[ords[doc as usize] as usize] += 1;
                }
            }
            Ords::Multi { .. } => {
                for &doc in docs {
                    self.count(doc, counts);
                }
            }
        }
    }
}

/// The facet tables of the segments last searched, by segment id, shared by the searches of
/// one index. A new segment (a commit, a merge) gets its table at the first search that sees it
/// (or at open); tables of segments no longer searched are dropped.
#[derive(Default)]
pub struct FacetTables {
    cache: Mutex<HashMap<SegmentId, Arc<SegmentFacets>>>,
}

/// The tables of a searcher's segments, in segment order.
pub type SearcherFacets = Arc<[Arc<SegmentFacets>]>;

impl FacetTables {
    /// The tables of every segment of `searcher`, in its segment order; reads the missing ones.
    pub fn of(&self, searcher: &Searcher) -> tantivy::Result<SearcherFacets> {
        let segments = searcher.segment_readers();
        let known: Vec<Option<Arc<SegmentFacets>>> = {
            let cache = crate::mutex::lock(&self.cache);
            segments
                .iter()
                .map(|s| cache.get(&s.segment_id()).cloned())
                .collect()
        };
        if known.iter().all(Option::is_some) {
            return Ok(known.into_iter().flatten().collect());
        }
        // Read outside the lock: another search may read the same segment meanwhile, which
        // costs time, not correctness.
        let tables = segments
            .iter()
            .zip(known)
            .map(|(segment, known)| match known {
                Some(table) => Ok(table),
                None => SegmentFacets::read(segment).map(Arc::new),
            })
            .collect::<tantivy::Result<Vec<_>>>()?;
        let mut cache = crate::mutex::lock(&self.cache);
        cache.clear();
        cache.extend(tables.iter().map(|t| (t.id, Arc::clone(t))));
        Ok(tables.into())
    }
}

/// Counts the values of some facets (and optionally the year) over the matching documents.
pub struct FacetCollector {
    tables: SearcherFacets,
    /// Facet names, and [`YEAR_FACET`] for the year.
    names: Vec<&'static str>,
}

impl FacetCollector {
    /// Counts every facet and the year.
    pub fn all(tables: &SearcherFacets) -> FacetCollector {
        let mut names: Vec<&'static str> = Facet::ALL.iter().map(|f| f.name()).collect();
        names.push(YEAR_FACET);
        FacetCollector {
            tables: Arc::clone(tables),
            names,
        }
    }

    /// Counts one facet.
    pub fn facet(tables: &SearcherFacets, facet: Facet) -> FacetCollector {
        FacetCollector {
            tables: Arc::clone(tables),
            names: vec![facet.name()],
        }
    }

    /// Counts the year only.
    pub fn year(tables: &SearcherFacets) -> FacetCollector {
        FacetCollector {
            tables: Arc::clone(tables),
            names: vec![YEAR_FACET],
        }
    }
}

/// Per-segment state: counts by ordinal of the segment's table, turned into strings when the
/// segments are merged.
pub struct FacetSegmentCollector {
    table: Arc<SegmentFacets>,
    /// Index in `table.tables`, counts by ordinal (the last slot: no value).
    counts: Vec<(usize, Vec<u32>)>,
    /// Documents collected one at a time (while scoring), counted by blocks.
    pending: Vec<DocId>,
}

/// Documents gathered before counting them a facet at a time: each facet's loop then stays in
/// its own table instead of visiting every table for each document.
const PENDING_DOCS: usize = 1_024;

impl Collector for FacetCollector {
    type Fruit = FacetCounts;
    type Child = FacetSegmentCollector;

    fn for_segment(
        &self,
        segment_local_id: SegmentOrdinal,
        segment: &SegmentReader,
    ) -> tantivy::Result<FacetSegmentCollector> {
        let table = match self.tables.get(segment_local_id as usize) {
            Some(t) if t.id == segment.segment_id() => Arc::clone(t),
            // Tables of another searcher: read this segment's (correct, only slower).
            _ => Arc::new(SegmentFacets::read(segment)?),
        };
        let counts = self
            .names
            .iter()
            .filter_map(|name| table.position(name))
            .map(|i| (i, vec![0; table.tables[i].1.values.len() + 1]))
            .collect();
        Ok(FacetSegmentCollector {
            table,
            counts,
            pending: Vec::new(),
        })
    }

    fn requires_scoring(&self) -> bool {
        false
    }

    fn merge_fruits(&self, fruits: Vec<SegmentCounts>) -> tantivy::Result<FacetCounts> {
        let mut merged: FacetCounts = self
            .names
            .iter()
            .map(|name| (name.to_string(), BTreeMap::new()))
            .collect();
        for fruit in fruits {
            for (i, counts) in &fruit.counts {
                let (name, table) = &fruit.table.tables[*i];
                let Some(into) = merged.get_mut(*name) else {
                    continue;
                };
                for (value, &count) in table.values.iter().zip(counts) {
                    if count == 0 {
                        continue;
                    }
                    match into.get_mut(value.as_str()) {
                        Some(total) => *total += u64::from(count),
                        None => {
                            into.insert(value.clone(), u64::from(count));
                        }
                    }
                }
            }
        }
        Ok(merged)
    }
}

/// What one segment counted.
pub struct SegmentCounts {
    table: Arc<SegmentFacets>,
    counts: Vec<(usize, Vec<u32>)>,
}

impl SegmentCollector for FacetSegmentCollector {
    type Fruit = SegmentCounts;

    fn collect(&mut self, doc: DocId, _score: Score) {
        self.pending.push(doc);
        if self.pending.len() == PENDING_DOCS {
            let pending = std::mem::take(&mut self.pending);
            self.collect_block(&pending);
            self.pending = pending;
            self.pending.clear();
        }
    }

    /// Blocks of documents (when nothing is scored and nothing deleted): one facet at a time
    /// over the block.
    fn collect_block(&mut self, docs: &[DocId]) {
        for (i, counts) in &mut self.counts {
            self.table.tables[*i].1.count_block(docs, counts);
        }
    }

    fn harvest(mut self) -> SegmentCounts {
        let pending = std::mem::take(&mut self.pending);
        self.collect_block(&pending);
        SegmentCounts {
            table: self.table,
            counts: self.counts,
        }
    }
}

/// `2010` → `"2010-2019"`.
pub fn decade_key(decade: i64) -> String {
    format!("{}-{}", decade, decade + 9)
}
