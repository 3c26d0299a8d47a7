//! Full-text search over resources: French analysis, facets, filters, sorts and snippets, on tantivy.
//!
//! The index is a cache of the resource documents: the replica feeds it [`SearchDoc`]s and can
//! rebuild it at any time, so a missing, damaged or outdated index is recreated empty and
//! reported by [`SearchIndex::needs_rebuild`] instead of failing.
//!
//! How a text query is read (see `query` for the details):
//! - words are folded (case, accents, ligatures, elisions, hyphens) and stemmed, and every word
//!   must be found (AND); stop words are optional; if no resource has every word, resources with
//!   some of them are returned instead and [`SearchResults::relaxed`] is set;
//! - `"…"` (or `« … »`) is an exact phrase; a bare département number (`63`, `2A`) selects
//!   resources located there; sigles and abbreviations go through a built-in glossary;
//! - words of 5 letters or more tolerate one typo, 9 or more two; the last word, while typed
//!   (no trailing space), also matches its completions;
//! - an empty text matches every resource.
//!
//! Facets (`SearchResults::facets`): `kind`, `office`, `departement`, `region`, `axe`, `theme`,
//! `sector`, `audience`, `status`, and `year` by decade (`"2010-2019"`). Each facet is counted
//! over the resources matching the text and every filter *except its own*, so the other values
//! of a facet being filtered on stay visible with their counts (for `year`, the own filter is
//! `year_from`/`year_to`).

pub mod analysis;
mod bonus;
pub mod eval;
mod facets;
mod fields;
mod indexed;
mod query;
mod snippet;
mod synonyms;

use std::collections::BTreeMap;
use std::ops::Bound;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tantivy::collector::sort_key::{SortByStaticFastValue, SortByString};
use tantivy::collector::{Collector, Count, TopDocs};
use tantivy::query::{
    AllQuery, BooleanQuery, ConstScoreQuery, Occur, Query, QueryParser, RangeQuery, TermQuery,
};
use tantivy::schema::{IndexRecordOption, Value};
use tantivy::tokenizer::TextAnalyzer;
use tantivy::{
    DocAddress, Index, IndexReader, IndexWriter, Order, ReloadPolicy, Searcher, TantivyDocument,
    TantivyError, Term,
};

use self::facets::{FacetCollector, FacetCounts, FacetTables, SearcherFacets};
use self::fields::{Facet, Fields, TextGroup, SCHEMA_VERSION, TITLE_SORT, YEAR};
pub use self::indexed::{search_doc, IndexedDuring, IndexedSearch, IndexedSearchError, SEARCH_DIR};
use self::query::Highlight;
pub use self::snippet::{MARK_CLOSE, MARK_OPEN, SNIPPET_CHARS};

/// Most hits returned by one search: a page of results, not an export.
pub const MAX_LIMIT: usize = 1_000;
/// Deepest hit a page can start at: the collector keeps `offset + limit` hits in memory, and
/// nobody pages through ten thousand results. Beyond it, a page is empty (the total and the
/// facets are still counted).
pub const MAX_OFFSET: usize = 10_000;
/// Indexing memory shared by the writer threads. Tantivy needs at least 15 MB per thread;
/// 64 MB lets four threads index a 100,000-resource import in few, large segments.
const WRITER_MEMORY_BYTES: usize = 64 * 1024 * 1024;
/// Most indexing threads: more gives little on imports and costs memory.
const MAX_WRITER_THREADS: usize = 4;
/// File beside the index holding [`SCHEMA_VERSION`].
const VERSION_FILE: &str = "atelier-search-version";

/// Present while a recreated index waits for its caller to record what to reindex
/// ([`SearchIndex::rebuild_marked`]): an open that finds it reports `needs_rebuild` again.
const REBUILD_MARKER: &str = "atelier-search-rebuild";

/// Errors of the search index.
#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    /// The index directory could not be created, read or cleaned.
    #[error("search index directory {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Another process has the index open for writing.
    #[error("search index at {0} is in use by another process")]
    Locked(PathBuf),
    /// The search engine failed.
    #[error("search engine: {0}")]
    Engine(#[from] TantivyError),
    /// A line of an evaluation query file is not a valid query.
    #[error("evaluation query on line {line}: {message}")]
    EvalQuery { line: usize, message: String },
}

/// What the search index needs of one resource; the replica builds it from the resource document.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SearchDoc {
    /// Document id, e.g. `"automerge:2j9…"` (unique key).
    pub id: String,
    /// External ref (FORMAT.md `ref`).
    #[serde(rename = "ref")]
    pub ref_: Option<String>,
    /// Kind code: `realisation`, `outil`, `action`, `publication`, `acteur`.
    pub kind: String,
    /// Owner office, e.g. `caue-63`.
    pub office: String,
    pub title: String,
    pub summary: String,
    /// Markdown.
    pub description: String,
    pub materials: Vec<String>,
    pub keywords: Vec<String>,
    pub commune: Option<String>,
    /// Département code: `"63"`, `"2A"`, `"974"`.
    pub departement: Option<String>,
    /// Région name; when `None`, the région of the département is used.
    pub region: Option<String>,
    pub axes: Vec<String>,
    pub themes: Vec<String>,
    pub sectors: Vec<String>,
    pub audiences: Vec<String>,
    pub status: String,
    pub year: Option<i64>,
    pub lat: Option<f64>,
    pub lon: Option<f64>,
    pub client: Option<String>,
    /// Designer names.
    pub designers: Vec<String>,
    /// Extra searchable text: French labels of the vocabulary codes, action/tool type labels, etc.
    /// Weighs little: a word found only in a label is a weak match.
    pub labels: Vec<String>,
}

/// A search: text, filters, order and page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SearchQuery {
    /// As typed; empty means every resource.
    pub text: String,
    pub filters: Filters,
    pub sort: Sort,
    /// Hits per page, at most [`MAX_LIMIT`]; 0 returns only the total and the facets.
    pub limit: usize,
    /// Hits skipped; a page starting past [`MAX_OFFSET`] is empty.
    pub offset: usize,
}

impl Default for SearchQuery {
    fn default() -> Self {
        SearchQuery {
            text: String::new(),
            filters: Filters::default(),
            sort: Sort::Relevance,
            limit: 20,
            offset: 0,
        }
    }
}

impl SearchQuery {
    /// A query for `text` with no filters, by relevance, first 20 hits.
    pub fn text(text: impl Into<String>) -> SearchQuery {
        SearchQuery {
            text: text.into(),
            ..SearchQuery::default()
        }
    }
}

/// Order of the hits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Sort {
    /// Best match first; by title when the text is empty.
    #[default]
    Relevance,
    /// Most recent year first, resources without a year last, then by title.
    Date,
    /// Alphabetical, ignoring case and accents.
    Title,
}

/// Filters: a resource must have one of the listed values of each facet (OR within a facet,
/// AND across facets). Empty lists and `None` do not filter.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Filters {
    pub kind: Vec<String>,
    pub office: Vec<String>,
    pub departement: Vec<String>,
    pub region: Vec<String>,
    pub axe: Vec<String>,
    pub theme: Vec<String>,
    pub sector: Vec<String>,
    pub audience: Vec<String>,
    pub status: Vec<String>,
    /// First year included.
    pub year_from: Option<i64>,
    /// Last year included.
    pub year_to: Option<i64>,
    /// Resources located in this box (resources without coordinates do not match).
    pub bbox: Option<BBox>,
}

impl Filters {
    fn values(&self, facet: Facet) -> &[String] {
        match facet {
            Facet::Kind => &self.kind,
            Facet::Office => &self.office,
            Facet::Departement => &self.departement,
            Facet::Region => &self.region,
            Facet::Axe => &self.axe,
            Facet::Theme => &self.theme,
            Facet::Sector => &self.sector,
            Facet::Audience => &self.audience,
            Facet::Status => &self.status,
        }
    }
}

/// A latitude/longitude box in WGS84 degrees. `min_lon > max_lon` crosses the antimeridian.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BBox {
    pub min_lat: f64,
    pub min_lon: f64,
    pub max_lat: f64,
    pub max_lon: f64,
}

/// One page of results.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SearchResults {
    /// Resources matching, all pages.
    pub total: usize,
    pub hits: Vec<Hit>,
    /// Facet name → value → count (see the module documentation).
    pub facets: BTreeMap<String, BTreeMap<String, u64>>,
    /// No resource had every word: these hits have only some of them.
    pub relaxed: bool,
}

/// One result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Hit {
    pub id: String,
    #[serde(rename = "ref")]
    pub ref_: Option<String>,
    pub title: String,
    pub kind: String,
    pub office: String,
    /// Relevance; 0 when sorted by date or title.
    pub score: f32,
    /// Plain text, matches wrapped in [`MARK_OPEN`] `⟦` … [`MARK_CLOSE`] `⟧`.
    pub snippet: String,
    /// The same passage HTML-escaped, matches in `<mark>…</mark>`.
    pub snippet_html: String,
}

/// How text is analyzed: Atelier's French analysis, or tantivy's defaults (for comparison in
/// evaluations only).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Analysis {
    #[default]
    French,
    /// Tantivy's default tokenizer (split, lowercase) and query parser (AND of the words,
    /// `"…"` phrases), on the same fields with the same weights.
    Baseline,
}

/// The search index, on disk or in memory.
pub struct SearchIndex {
    index: Index,
    fields: Fields,
    writer: IndexWriter,
    reader: IndexReader,
    analysis: Analysis,
    needs_rebuild: bool,
    /// Per-segment facet tables, shared by the searches.
    facet_tables: FacetTables,
    /// Where a recreated index writes its version file once its rebuild is marked.
    dir: Option<std::path::PathBuf>,
}

impl SearchIndex {
    /// Opens the index in `dir` (created if needed). If the index is missing, unreadable or of
    /// another schema version, it is recreated empty and [`needs_rebuild`](Self::needs_rebuild)
    /// returns true so the caller reindexes every resource. The directory belongs to the index.
    pub fn open_or_create(dir: &Path) -> Result<Self, SearchError> {
        let io = |source| SearchError::Io {
            path: dir.to_path_buf(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(io)?;
        // Tantivy panics on some damaged files (a slice past the end of a truncated file)
        // instead of returning an error; the index is a cache, so either way it is rebuilt.
        let opened = std::panic::catch_unwind(AssertUnwindSafe(|| Self::open_existing(dir)));
        match opened {
            Ok(Ok(Some(index))) => return Ok(index),
            Ok(Ok(None)) => {}
            Ok(Err(SearchError::Engine(TantivyError::LockFailure(..)))) => {
                return Err(SearchError::Locked(dir.to_path_buf()))
            }
            Ok(Err(e)) => {
                tracing::warn!(dir = %dir.display(), error = %e, "search index unreadable, recreating it")
            }
            Err(_) => {
                tracing::warn!(dir = %dir.display(), "search index damaged, recreating it")
            }
        }
        remove_index_files(dir).map_err(io)?;
        let fields = Fields::new();
        let index =
            Index::create_in_dir(dir, fields.schema.clone()).map_err(|e| lock_error(dir, e))?;
        let mut search =
            Self::with_index(index, fields, Analysis::French).map_err(|e| lock_error(dir, e))?;
        // The rebuild marker first, then the version: until `rebuild_marked` removes the
        // marker, every open reports the index as needing a rebuild, so a crash before the
        // caller recorded what to reindex cannot leave an index that looks whole.
        crate::fs::write_atomic(&dir.join(REBUILD_MARKER), b"", None).map_err(io)?;
        std::fs::write(dir.join(VERSION_FILE), SCHEMA_VERSION.to_string()).map_err(io)?;
        search.dir = Some(dir.to_path_buf());
        search.needs_rebuild = true;
        Ok(search)
    }

    /// Records that the caller durably noted every resource to reindex (its pending list):
    /// removes the rebuild marker, so the next open keeps this index as it is. Until then
    /// every open reports it in [`needs_rebuild`](Self::needs_rebuild).
    pub fn rebuild_marked(&mut self) -> Result<(), SearchError> {
        if let Some(dir) = &self.dir {
            let io = |source| SearchError::Io {
                path: dir.clone(),
                source,
            };
            match std::fs::remove_file(dir.join(REBUILD_MARKER)) {
                Ok(()) => crate::fs::sync_dir(dir).map_err(io)?,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io(e)),
            }
        }
        self.needs_rebuild = false;
        Ok(())
    }

    /// A new, empty index in memory.
    pub fn in_memory() -> Result<Self, SearchError> {
        Self::in_memory_with(Analysis::French)
    }

    /// A new, empty index in memory with the given analysis.
    pub fn in_memory_with(analysis: Analysis) -> Result<Self, SearchError> {
        let fields = Fields::new();
        let index = Index::create_in_ram(fields.schema.clone());
        Ok(Self::with_index(index, fields, analysis)?)
    }

    /// True when the index was recreated empty on open: reindex every resource.
    pub fn needs_rebuild(&self) -> bool {
        self.needs_rebuild
    }

    /// Adds or replaces (by `id`) resources; searchable when this returns. Batch many documents
    /// per call for imports: each call commits.
    pub fn upsert(&mut self, docs: &[SearchDoc]) -> Result<(), SearchError> {
        // A commit costs an fsync on disk: none for nothing.
        if docs.is_empty() {
            return Ok(());
        }
        for d in docs {
            self.writer
                .delete_term(Term::from_field_text(self.fields.id, &d.id));
            self.writer.add_document(self.fields.document(d))?;
        }
        self.commit()
    }

    /// Removes resources by id; unknown ids are ignored.
    pub fn delete(&mut self, ids: &[String]) -> Result<(), SearchError> {
        if ids.is_empty() {
            return Ok(());
        }
        for id in ids {
            self.writer
                .delete_term(Term::from_field_text(self.fields.id, id));
        }
        self.commit()
    }

    /// Removes every resource.
    pub fn clear(&mut self) -> Result<(), SearchError> {
        self.writer.delete_all_documents()?;
        self.commit()
    }

    /// Number of resources indexed.
    pub fn len(&self) -> u64 {
        self.reader.searcher().num_docs()
    }

    /// True when no resource is indexed.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Runs a search.
    pub fn search(&self, q: &SearchQuery) -> Result<SearchResults, SearchError> {
        let searcher = self.reader.searcher();
        let tables = self.facet_tables.of(&searcher)?;
        let text = self.text_query(&q.text, &searcher)?;
        let filters = filter_queries(&self.fields, &q.filters);
        let mut relaxed = false;
        let mut text_query = text.strict;
        let by_score = text_query.is_some() && q.sort == Sort::Relevance;
        let mut page = self.collect(
            &searcher,
            &combine(text_query.as_deref(), &filters, None),
            q,
            by_score,
            &tables,
        )?;
        if page.0 == 0 {
            if let Some(or_query) = text.relaxed {
                let or_page = self.collect(
                    &searcher,
                    &combine(Some(&*or_query), &filters, None),
                    q,
                    by_score,
                    &tables,
                )?;
                if or_page.0 > 0 {
                    page = or_page;
                    relaxed = true;
                    text_query = Some(or_query);
                }
            }
        }
        let (total, top, mut facet_counts) = page;
        // A facet being filtered on is counted without its own filter.
        for (key, _) in &filters {
            let collector = match key {
                FilterKey::Facet(f) => FacetCollector::facet(&tables, *f),
                FilterKey::Year => FacetCollector::year(&tables),
                FilterKey::BBox => continue,
            };
            let query = combine(text_query.as_deref(), &filters, Some(*key));
            facet_counts.extend(searcher.search(&query, &collector)?);
        }
        let mut hits = Vec::with_capacity(top.len());
        for (score, address) in top {
            hits.push(self.hit(&searcher, address, score, &text.highlight)?);
        }
        Ok(SearchResults {
            total,
            hits,
            facets: facet_counts,
            relaxed,
        })
    }

    fn with_index(index: Index, fields: Fields, analysis: Analysis) -> tantivy::Result<Self> {
        match analysis {
            Analysis::French => {
                index
                    .tokenizers()
                    .register(analysis::EXACT, analysis::exact_analyzer());
                index
                    .tokenizers()
                    .register(analysis::STEM, analysis::stem_analyzer());
            }
            Analysis::Baseline => {
                let default = || -> TextAnalyzer {
                    index
                        .tokenizers()
                        .get("default")
                        .expect("tantivy registers `default`")
                };
                index.tokenizers().register(analysis::EXACT, default());
                index.tokenizers().register(analysis::STEM, default());
            }
        }
        let threads = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .clamp(1, MAX_WRITER_THREADS);
        let writer = index.writer_with_num_threads(threads, WRITER_MEMORY_BYTES)?;
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()?;
        Ok(SearchIndex {
            index,
            fields,
            writer,
            reader,
            analysis,
            needs_rebuild: false,
            facet_tables: FacetTables::default(),
            dir: None,
        })
    }

    /// The index in `dir` if it is there, of this version and readable; `None` if absent or
    /// of another version.
    fn open_existing(dir: &Path) -> Result<Option<Self>, SearchError> {
        let version = std::fs::read_to_string(dir.join(VERSION_FILE)).ok();
        if version.as_deref().map(str::trim) != Some(SCHEMA_VERSION.to_string().as_str()) {
            return Ok(None);
        }
        let fields = Fields::new();
        let index = Index::open_in_dir(dir)?;
        if index.schema() != fields.schema {
            return Ok(None);
        }
        let mut search = Self::with_index(index, fields, Analysis::French)?;
        if dir.join(REBUILD_MARKER).exists() {
            search.dir = Some(dir.to_path_buf());
            search.needs_rebuild = true;
        }
        // Opening reads the segment metadata only: touch every segment's postings, columns
        // and store so that damaged files show up now rather than in the first search.
        let searcher = search.reader.searcher();
        // Reading the facet tables reads every facet column whole (and keeps the tables for
        // the first search).
        let tables = search.facet_tables.of(&searcher)?;
        searcher.search(&AllQuery, &(Count, FacetCollector::all(&tables)))?;
        for (ord, segment) in searcher.segment_readers().iter().enumerate() {
            for g in TextGroup::ALL {
                segment.inverted_index(search.fields.exact(g))?;
                segment.inverted_index(search.fields.stem(g))?;
            }
            if segment.max_doc() > 0 {
                searcher.doc::<TantivyDocument>(DocAddress::new(ord as u32, 0))?;
            }
        }
        Ok(Some(search))
    }

    fn commit(&mut self) -> Result<(), SearchError> {
        self.writer.commit()?;
        self.reader.reload()?;
        Ok(())
    }

    fn text_query(&self, text: &str, searcher: &Searcher) -> Result<TextQuery, SearchError> {
        match self.analysis {
            Analysis::French => {
                let parsed = query::parse(text);
                Ok(match query::build(&parsed, &self.fields, searcher)? {
                    Some(built) => TextQuery {
                        strict: Some(built.strict),
                        relaxed: built.relaxed,
                        highlight: built.highlight,
                    },
                    None => TextQuery::default(),
                })
            }
            Analysis::Baseline => {
                if text.trim().is_empty() {
                    return Ok(TextQuery::default());
                }
                let groups: Vec<_> = TextGroup::ALL
                    .iter()
                    .map(|&g| self.fields.exact(g))
                    .collect();
                let mut parser = QueryParser::for_index(&self.index, groups);
                parser.set_conjunction_by_default();
                for g in TextGroup::ALL {
                    parser.set_field_boost(self.fields.exact(g), g.weight());
                }
                let (q, _errors) = parser.parse_query_lenient(text);
                Ok(TextQuery {
                    strict: Some(q),
                    ..TextQuery::default()
                })
            }
        }
    }

    /// Total, page of (score, address) and facet counts for one query.
    fn collect(
        &self,
        searcher: &Searcher,
        query: &dyn Query,
        q: &SearchQuery,
        by_score: bool,
        tables: &SearcherFacets,
    ) -> Result<Page, SearchError> {
        let limit = if q.offset > MAX_OFFSET {
            0
        } else {
            q.limit.min(MAX_LIMIT)
        };
        if limit == 0 {
            let facets = FacetCollector::all(tables);
            let (total, facets) = searcher.search(query, &(Count, facets))?;
            return Ok((total, Vec::new(), facets));
        }
        let top = TopDocs::with_limit(limit).and_offset(q.offset);
        if by_score {
            return run(searcher, query, top.order_by_score(), tables, |s| s);
        }
        match q.sort {
            Sort::Date => run(
                searcher,
                query,
                top.order_by((
                    (SortByStaticFastValue::<i64>::for_field(YEAR), Order::Desc),
                    (SortByString::for_field(TITLE_SORT), Order::Asc),
                )),
                tables,
                |_| 0.0,
            ),
            Sort::Relevance | Sort::Title => run(
                searcher,
                query,
                top.order_by_string_fast_field(TITLE_SORT, Order::Asc),
                tables,
                |_| 0.0,
            ),
        }
    }

    fn hit(
        &self,
        searcher: &Searcher,
        address: DocAddress,
        score: f32,
        highlight: &Highlight,
    ) -> Result<Hit, SearchError> {
        let doc: TantivyDocument = searcher.doc(address)?;
        let text = |field| {
            doc.get_first(field)
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default()
        };
        let f = &self.fields;
        let snippet = snippet::snippet(
            &text(f.exact(TextGroup::Summary)),
            &text(f.exact(TextGroup::Description)),
            highlight,
        );
        Ok(Hit {
            id: text(f.id),
            ref_: Some(text(f.ref_)).filter(|r| !r.is_empty()),
            title: text(f.exact(TextGroup::Title)),
            kind: text(f.facet(Facet::Kind)),
            office: text(f.facet(Facet::Office)),
            score,
            snippet: snippet.text,
            snippet_html: snippet.html,
        })
    }
}

/// The text part of a search.
#[derive(Default)]
struct TextQuery {
    strict: Option<Box<dyn Query>>,
    relaxed: Option<Box<dyn Query>>,
    highlight: Highlight,
}

/// Which filter a clause comes from, to leave it out when counting its own facet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FilterKey {
    Facet(Facet),
    Year,
    BBox,
}

fn filter_queries(fields: &Fields, f: &Filters) -> Vec<(FilterKey, Box<dyn Query>)> {
    let mut out: Vec<(FilterKey, Box<dyn Query>)> = Vec::new();
    for facet in Facet::ALL {
        let values = f.values(facet);
        if values.is_empty() {
            continue;
        }
        let any = values
            .iter()
            .map(|v| {
                let term = Term::from_field_text(fields.facet(facet), v.trim());
                let q: Box<dyn Query> = Box::new(TermQuery::new(term, IndexRecordOption::Basic));
                (Occur::Should, q)
            })
            .collect();
        out.push((FilterKey::Facet(facet), Box::new(BooleanQuery::new(any))));
    }
    if f.year_from.is_some() || f.year_to.is_some() {
        let bound = |y: Option<i64>| match y {
            Some(y) => Bound::Included(Term::from_field_i64(fields.year, y)),
            None => Bound::Unbounded,
        };
        out.push((
            FilterKey::Year,
            Box::new(RangeQuery::new(bound(f.year_from), bound(f.year_to))),
        ));
    }
    if let Some(b) = f.bbox {
        let range = |field, lo: f64, hi: f64| -> Box<dyn Query> {
            Box::new(RangeQuery::new(
                Bound::Included(Term::from_field_f64(field, lo)),
                Bound::Included(Term::from_field_f64(field, hi)),
            ))
        };
        let lon: Box<dyn Query> = if b.min_lon <= b.max_lon {
            range(fields.lon, b.min_lon, b.max_lon)
        } else {
            Box::new(BooleanQuery::new(vec![
                (Occur::Should, range(fields.lon, b.min_lon, 180.0)),
                (Occur::Should, range(fields.lon, -180.0, b.max_lon)),
            ]))
        };
        let both = BooleanQuery::new(vec![
            (Occur::Must, range(fields.lat, b.min_lat, b.max_lat)),
            (Occur::Must, lon),
        ]);
        out.push((FilterKey::BBox, Box::new(both)));
    }
    out
}

/// Text AND filters (all but `except`); filters do not change scores.
fn combine(
    text: Option<&dyn Query>,
    filters: &[(FilterKey, Box<dyn Query>)],
    except: Option<FilterKey>,
) -> BooleanQuery {
    let mut clauses: Vec<(Occur, Box<dyn Query>)> = vec![(
        Occur::Must,
        match text {
            Some(q) => q.box_clone(),
            None => Box::new(AllQuery),
        },
    )];
    for (key, q) in filters {
        if Some(*key) != except {
            clauses.push((
                Occur::Must,
                Box::new(ConstScoreQuery::new(q.box_clone(), 0.0)),
            ));
        }
    }
    BooleanQuery::new(clauses)
}

type Page = (usize, Vec<(f32, DocAddress)>, FacetCounts);

fn run<K, C>(
    searcher: &Searcher,
    query: &dyn Query,
    top: C,
    tables: &SearcherFacets,
    score: impl Fn(K) -> f32,
) -> Result<Page, SearchError>
where
    C: Collector<Fruit = Vec<(K, DocAddress)>>,
    K: 'static,
{
    let facets = FacetCollector::all(tables);
    let (total, top, facets) = searcher.search(query, &(Count, top, facets))?;
    let top = top.into_iter().map(|(k, a)| (score(k), a)).collect();
    Ok((total, top, facets))
}

fn lock_error(dir: &Path, e: TantivyError) -> SearchError {
    match e {
        TantivyError::LockFailure(..) => SearchError::Locked(dir.to_path_buf()),
        e => SearchError::Engine(e),
    }
}

/// Removes the files of a tantivy index (and our version file) from `dir`, leaving anything
/// else alone: segment files are named after a 32-hex-digit segment id.
fn remove_index_files(dir: &Path) -> std::io::Result<()> {
    const NAMED: [&str; 5] = [
        "meta.json",
        ".managed.json",
        ".tantivy-meta.lock",
        ".tantivy-writer.lock",
        VERSION_FILE,
    ];
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let stem = name.split('.').next().unwrap_or("");
        let segment_file = stem.len() == 32 && stem.bytes().all(|b| b.is_ascii_hexdigit());
        if (NAMED.contains(&name.as_ref()) || segment_file) && entry.file_type()?.is_file() {
            std::fs::remove_file(entry.path())?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(id: &str, title: &str) -> SearchDoc {
        SearchDoc {
            id: id.to_string(),
            ref_: Some(format!("ref-{id}")),
            kind: "realisation".to_string(),
            office: "caue-63".to_string(),
            title: title.to_string(),
            status: "publie".to_string(),
            ..SearchDoc::default()
        }
    }

    fn index(docs: &[SearchDoc]) -> SearchIndex {
        let mut index = SearchIndex::in_memory().unwrap();
        index.upsert(docs).unwrap();
        index
    }

    fn ids(index: &SearchIndex, q: &SearchQuery) -> Vec<String> {
        index
            .search(q)
            .unwrap()
            .hits
            .into_iter()
            .map(|h| h.id)
            .collect()
    }

    fn find(index: &SearchIndex, text: &str) -> Vec<String> {
        ids(index, &SearchQuery::text(text))
    }

    fn filtered(text: &str, filters: Filters) -> SearchQuery {
        SearchQuery {
            filters,
            ..SearchQuery::text(text)
        }
    }

    /// A small corpus where each resource exercises one normalisation.
    fn corpus() -> Vec<SearchDoc> {
        let mut v = vec![
            doc("pise", "École en pisé"),
            doc("eglise", "Réfection de la toiture de l'église"),
            doc("oeuvre", "Choisir son maître d’œuvre"),
            doc("batiments", "Deux bâtiments agricoles"),
            doc("lauze", "Couverture en lauze"),
            doc("flour", "Halle de Saint-Flour"),
            doc("moa", "Guide du maître d'ouvrage"),
            doc("ossature", "Crèche en ossature bois"),
            doc("coeur", "Requalification du cœur de bourg"),
            doc("apart", "Un bourg dont le cœur bat"),
        ];
        v[0].departement = Some("63".into());
        v[4].departement = Some("15".into());
        v.push(SearchDoc {
            kind: "action".into(),
            ..doc("visite", "Balade commentée des toits")
        });
        v
    }

    #[test]
    fn french_normalisations_end_to_end() {
        let index = index(&corpus());
        assert_eq!(find(&index, "pise"), ["pise"]);
        assert_eq!(find(&index, "PISÉ"), ["pise"]);
        assert_eq!(find(&index, "eglise"), ["eglise"]);
        assert_eq!(find(&index, "maitre d'oeuvre"), ["oeuvre"]);
        assert_eq!(find(&index, "batiment agricole"), ["batiments"]);
        assert_eq!(find(&index, "lauzze"), ["lauze"]);
        assert_eq!(find(&index, "st flour"), ["flour"]);
        assert_eq!(find(&index, "MOA"), ["moa"]);
        assert_eq!(find(&index, "creche ossat"), ["ossature"]);
        assert_eq!(find(&index, "15 lauze"), ["lauze"]);
        // Nothing in the Puy-de-Dôme: the relaxed results say so.
        assert!(
            index
                .search(&SearchQuery::text("63 lauze"))
                .unwrap()
                .relaxed
        );
        assert_eq!(find(&index, "animation toits"), ["visite"]);
    }

    #[test]
    fn departement_numbers_with_or_without_leading_zero() {
        let mut docs = vec![
            doc("tournon", "École de Tournon"),
            doc("thiers", "École de Thiers"),
        ];
        docs[0].departement = Some("07".into());
        docs[1].departement = Some("63".into());
        let index = index(&docs);
        assert_eq!(find(&index, "7"), ["tournon"]);
        assert_eq!(find(&index, "07"), ["tournon"]);
        assert_eq!(find(&index, "ecole 7"), ["tournon"]);
        assert_eq!(find(&index, "ardeche"), ["tournon"]);
        assert_eq!(find(&index, "63 ecole"), ["thiers"]);
    }

    #[test]
    fn phrase_and_proximity() {
        let index = index(&corpus());
        assert_eq!(find(&index, "\"coeur de bourg\""), ["coeur"]);
        // Both match the words; the expression ranks first.
        assert_eq!(find(&index, "coeur de bourg"), ["coeur", "apart"]);
    }

    #[test]
    fn exact_ranks_above_plural_above_stem_above_typo() {
        let index = index(&[
            doc("derived", "Maison à restaurer"),
            doc("plural", "Maison et restaurations"),
            doc("exact", "Maison et restauration"),
            doc("other", "Maison et restaurant"),
            doc("lauze", "Toit en lauze"),
            doc("lauzes", "Toit en lauzes"),
        ]);
        // With a trailing space: not a word being typed, no completions.
        // Snowball also joins « restaurant » to « restauration »: a stem-only match, last.
        let hits = find(&index, "restauration ");
        assert_eq!(hits[..2], ["exact", "plural"]);
        assert_eq!(hits.len(), 4);
        // A typo finds the word, then its plural.
        assert_eq!(find(&index, "lauzze "), ["lauze", "lauzes"]);
        // While typing, completions count too.
        assert_eq!(find(&index, "restaura").len(), 4);
    }

    #[test]
    fn a_question_finds_and_ranks_what_its_keywords_do() {
        let index = index(&[
            doc("renovee", "Maison de pierre rénovée à Thiers"),
            doc("renover", "Rénover une maison en pierre"),
            doc("comment", "Comment construire en bois"),
            doc("exemples", "Exemples de maisons en pierre"),
            doc("grange", "Grange en pierre"),
        ]);
        let keywords = find(&index, "rénover maison pierre ");
        assert!(!keywords.is_empty());
        assert_eq!(
            find(&index, "comment rénover une maison en pierre ?"),
            keywords
        );
        assert_eq!(
            find(&index, "Pourquoi rénover sa maison en pierre"),
            keywords
        );
        // « exemples » neither requires nor ranks: the resource titled with it is not first.
        let examples = find(&index, "exemples de granges en pierre");
        assert_eq!(examples, find(&index, "granges pierre "));
        assert_eq!(examples[0], "grange");
    }

    #[test]
    fn relaxed_when_no_resource_has_every_word() {
        let index = index(&corpus());
        let r = index.search(&SearchQuery::text("lauze zzzzzz")).unwrap();
        assert!(r.relaxed);
        assert_eq!(r.hits[0].id, "lauze");
        let r = index.search(&SearchQuery::text("lauze")).unwrap();
        assert!(!r.relaxed);
    }

    #[test]
    fn upsert_replaces_and_delete_removes() {
        let mut index = index(&[doc("a", "Grange en pierre"), doc("b", "Halle en bois")]);
        assert_eq!(index.len(), 2);
        index.upsert(&[doc("a", "Grange en terre")]).unwrap();
        assert_eq!(index.len(), 2);
        assert!(find(&index, "pierre").is_empty());
        assert_eq!(find(&index, "terre"), ["a"]);
        // The last version of an id in one batch wins.
        index
            .upsert(&[doc("c", "Moulin"), doc("c", "Lavoir")])
            .unwrap();
        assert_eq!(find(&index, "lavoir"), ["c"]);
        assert!(find(&index, "moulin").is_empty());
        index
            .delete(&["a".to_string(), "unknown".to_string()])
            .unwrap();
        assert!(find(&index, "terre").is_empty());
        assert_eq!(index.len(), 2);
        index.clear().unwrap();
        assert!(index.is_empty());
    }

    fn faceted() -> SearchIndex {
        let mut docs = vec![
            doc("r63", "Grange A"),
            doc("r15", "Grange B"),
            doc("o63", "Grange C"),
            doc("a15", "Grange D"),
        ];
        docs[0].departement = Some("63".into());
        docs[0].year = Some(2015);
        docs[0].sectors = vec!["bois".into(), "terre".into()];
        docs[0].lat = Some(45.77);
        docs[0].lon = Some(3.08);
        docs[1].departement = Some("15".into());
        docs[1].year = Some(2021);
        docs[1].sectors = vec!["pierre".into()];
        docs[1].lat = Some(45.03);
        docs[1].lon = Some(3.09);
        docs[2].kind = "outil".into();
        docs[2].departement = Some("63".into());
        docs[2].year = Some(2008);
        docs[3].kind = "action".into();
        docs[3].departement = Some("15".into());
        docs[3].region = Some("Auvergne".into());
        index(&docs)
    }

    #[test]
    fn facet_counts() {
        let index = faceted();
        let r = index.search(&SearchQuery::text("grange")).unwrap();
        assert_eq!(r.total, 4);
        let kind = &r.facets["kind"];
        assert_eq!(kind["realisation"], 2);
        assert_eq!(kind["outil"], 1);
        assert_eq!(kind["action"], 1);
        assert_eq!(r.facets["sector"]["bois"], 1);
        assert_eq!(r.facets["sector"]["terre"], 1);
        assert_eq!(r.facets["departement"]["63"], 2);
        // The région comes from the département unless given.
        assert_eq!(r.facets["region"]["Auvergne-Rhône-Alpes"], 3);
        assert_eq!(r.facets["region"]["Auvergne"], 1);
        assert_eq!(r.facets["year"]["2010-2019"], 1);
        assert_eq!(r.facets["year"]["2000-2009"], 1);
        assert_eq!(r.facets["year"]["2020-2029"], 1);

        // A facet being filtered keeps counting its other values; the others follow the filter.
        let f = Filters {
            kind: vec!["realisation".into()],
            ..Filters::default()
        };
        let r = index.search(&filtered("grange", f)).unwrap();
        assert_eq!(r.total, 2);
        assert_eq!(r.facets["kind"]["outil"], 1);
        assert_eq!(r.facets["kind"]["realisation"], 2);
        assert_eq!(r.facets["departement"]["63"], 1);
        assert_eq!(r.facets["departement"]["15"], 1);
        assert!(!r.facets["kind"].contains_key("zzz"));
    }

    #[test]
    fn facet_counts_follow_writes() {
        // The facet tables are kept per segment between searches: every write must show.
        let mut index = faceted();
        let count = |index: &SearchIndex, facet: &str, value: &str| {
            let r = index.search(&SearchQuery::default()).unwrap();
            r.facets[facet].get(value).copied().unwrap_or(0)
        };
        assert_eq!(count(&index, "kind", "realisation"), 2);
        assert_eq!(count(&index, "sector", "bois"), 1);
        assert_eq!(count(&index, "year", "2020-2029"), 1);
        // An update moves the resource from one value to another.
        let mut changed = doc("r63", "Grange A");
        changed.kind = "outil".into();
        changed.sectors = vec!["pierre".into()];
        changed.year = Some(2024);
        changed.departement = Some("63".into());
        index.upsert(&[changed]).unwrap();
        assert_eq!(count(&index, "kind", "realisation"), 1);
        assert_eq!(count(&index, "kind", "outil"), 2);
        assert_eq!(count(&index, "sector", "bois"), 0);
        assert_eq!(count(&index, "sector", "pierre"), 2);
        assert_eq!(count(&index, "year", "2020-2029"), 2);
        // A delete, and counts under a filter (its own facet counted without it).
        index.delete(&["r15".to_string()]).unwrap();
        assert_eq!(count(&index, "sector", "pierre"), 1);
        let f = Filters {
            kind: vec!["outil".into()],
            ..Filters::default()
        };
        let r = index.search(&filtered("", f)).unwrap();
        assert_eq!(r.total, 2);
        assert_eq!(r.facets["kind"]["action"], 1);
        assert_eq!(r.facets["departement"]["63"], 2);
        assert!(!r.facets["departement"].contains_key("15"));
        index.clear().unwrap();
        let r = index.search(&SearchQuery::default()).unwrap();
        assert!(r.facets["kind"].is_empty());
    }

    #[test]
    fn filters_or_within_and_across() {
        let index = faceted();
        let sorted = |q: &SearchQuery| {
            let mut v = ids(&index, q);
            v.sort();
            v
        };
        let or_within = Filters {
            kind: vec!["outil".into(), "action".into()],
            ..Filters::default()
        };
        assert_eq!(sorted(&filtered("", or_within)), ["a15", "o63"]);
        let and_across = Filters {
            kind: vec!["outil".into(), "action".into()],
            departement: vec!["63".into()],
            ..Filters::default()
        };
        assert_eq!(sorted(&filtered("grange", and_across)), ["o63"]);
        let years = Filters {
            year_from: Some(2010),
            year_to: Some(2021),
            ..Filters::default()
        };
        assert_eq!(sorted(&filtered("", years)), ["r15", "r63"]);
        let from = Filters {
            year_from: Some(2016),
            ..Filters::default()
        };
        assert_eq!(sorted(&filtered("", from)), ["r15"]);
        let bbox = Filters {
            bbox: Some(BBox {
                min_lat: 45.5,
                min_lon: 3.0,
                max_lat: 46.0,
                max_lon: 3.2,
            }),
            ..Filters::default()
        };
        assert_eq!(sorted(&filtered("", bbox)), ["r63"]);
        let antimeridian = Filters {
            bbox: Some(BBox {
                min_lat: 40.0,
                min_lon: 170.0,
                max_lat: 50.0,
                max_lon: 3.085,
            }),
            ..Filters::default()
        };
        assert_eq!(sorted(&filtered("", antimeridian)), ["r63"]);
    }

    #[test]
    fn sorts_and_empty_query() {
        let index = faceted();
        let by = |sort| SearchQuery {
            sort,
            ..SearchQuery::default()
        };
        // Empty text: every resource, by title.
        assert_eq!(
            ids(&index, &by(Sort::Relevance)),
            ["r63", "r15", "o63", "a15"]
        );
        assert_eq!(ids(&index, &by(Sort::Title)), ["r63", "r15", "o63", "a15"]);
        // By date: most recent first, no year last.
        assert_eq!(ids(&index, &by(Sort::Date)), ["r15", "r63", "o63", "a15"]);
        let page = SearchQuery {
            limit: 2,
            offset: 1,
            ..by(Sort::Date)
        };
        let r = index.search(&page).unwrap();
        assert_eq!(r.total, 4);
        assert_eq!(
            r.hits.iter().map(|h| h.id.as_str()).collect::<Vec<_>>(),
            ["r63", "o63"]
        );
        let too_deep = SearchQuery {
            offset: MAX_OFFSET + 1,
            ..by(Sort::Date)
        };
        let r = index.search(&too_deep).unwrap();
        assert!(r.hits.is_empty());
        assert_eq!(r.total, 4);
        let counts_only = SearchQuery {
            limit: 0,
            ..by(Sort::Date)
        };
        // Nothing scored: facets are counted by blocks of documents.
        let r = index.search(&counts_only).unwrap();
        assert!(r.hits.is_empty());
        assert_eq!(r.total, 4);
        assert_eq!(r.facets["kind"]["realisation"], 2);
        assert_eq!(r.facets["sector"]["bois"], 1);
        assert_eq!(r.facets["sector"]["terre"], 1);
        assert_eq!(r.facets["sector"]["pierre"], 1);
        assert_eq!(r.facets["departement"]["15"], 2);
        assert_eq!(r.facets["year"]["2020-2029"], 1);
        assert_eq!(r.facets["status"]["publie"], 4);
    }

    #[test]
    fn hits_carry_snippets() {
        let index = index(&[SearchDoc {
            summary: "Une halle <en> bois & pisé.".into(),
            description: "## Chantier\n\nLa **halle** du marché.".into(),
            ..doc("h", "Halle de marché")
        }]);
        let r = index.search(&SearchQuery::text("pise")).unwrap();
        let hit = &r.hits[0];
        assert_eq!(hit.ref_.as_deref(), Some("ref-h"));
        assert_eq!(hit.title, "Halle de marché");
        assert_eq!(hit.kind, "realisation");
        assert_eq!(hit.office, "caue-63");
        assert!(hit.score > 0.0);
        assert_eq!(hit.snippet, "Une halle bois & ⟦pisé⟧.");
        assert_eq!(hit.snippet_html, "Une halle bois &amp; <mark>pisé</mark>.");
        let r = index.search(&SearchQuery::text("halles")).unwrap();
        assert_eq!(r.hits[0].snippet, "Une ⟦halle⟧ bois & pisé.");
    }

    #[test]
    fn on_disk_index_persists_and_recovers() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut index = SearchIndex::open_or_create(dir.path()).unwrap();
            assert!(index.needs_rebuild(), "a new index must be filled");
            index.upsert(&[doc("a", "Grange en pierre")]).unwrap();
        }
        {
            // The rebuild was never marked (a crash before the caller noted what to reindex):
            // it is still to do.
            let mut index = SearchIndex::open_or_create(dir.path()).unwrap();
            assert!(index.needs_rebuild());
            assert_eq!(find(&index, "grange"), ["a"]);
            index.rebuild_marked().unwrap();
            assert!(!index.needs_rebuild());
        }
        {
            let index = SearchIndex::open_or_create(dir.path()).unwrap();
            assert!(!index.needs_rebuild());
            assert_eq!(find(&index, "grange"), ["a"]);
        }
        // Another schema version: recreated empty.
        std::fs::write(dir.path().join(VERSION_FILE), "0").unwrap();
        {
            let mut index = SearchIndex::open_or_create(dir.path()).unwrap();
            assert!(index.needs_rebuild());
            assert!(index.is_empty());
            index.upsert(&[doc("b", "Halle")]).unwrap();
        }
        // Damaged metadata.
        std::fs::write(dir.path().join("meta.json"), "{ not json").unwrap();
        {
            let mut index = SearchIndex::open_or_create(dir.path()).unwrap();
            assert!(index.needs_rebuild());
            assert!(index.is_empty());
            index.upsert(&[doc("c", "Lavoir")]).unwrap();
        }
        // Damaged segment files; a file that is not the index's is left alone.
        std::fs::write(dir.path().join("notes.txt"), "keep").unwrap();
        for entry in std::fs::read_dir(dir.path()).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().to_string();
            if name.len() > 32 && !name.starts_with('.') && name != "notes.txt" {
                std::fs::write(&path, b"garbage").unwrap();
            }
        }
        let index = SearchIndex::open_or_create(dir.path()).unwrap();
        assert!(index.needs_rebuild());
        assert!(index.is_empty());
        assert_eq!(
            std::fs::read_to_string(dir.path().join("notes.txt")).unwrap(),
            "keep"
        );
    }

    #[test]
    fn a_second_writer_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let _first = SearchIndex::open_or_create(dir.path()).unwrap();
        let second = SearchIndex::open_or_create(dir.path());
        assert!(
            matches!(second, Err(SearchError::Locked(_))),
            "{:?}",
            second.err()
        );
    }

    #[test]
    fn index_is_shareable_between_threads() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<SearchIndex>();
    }

    #[test]
    fn overlong_queries_are_cut() {
        let index = index(&corpus());
        let long = "pisé ".repeat(10_000);
        assert_eq!(find(&index, &long), ["pise"]);
    }

    #[test]
    fn baseline_has_no_french_analysis() {
        let mut index = SearchIndex::in_memory_with(Analysis::Baseline).unwrap();
        index.upsert(&[doc("p", "École en pisé")]).unwrap();
        assert_eq!(find(&index, "pisé"), ["p"]);
        assert!(find(&index, "pise").is_empty());
    }
}
