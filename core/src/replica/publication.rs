//! A replica's publications numériques: creating one (with its resource of kind `publication`,
//! so lists, search and facets show it), editing it, assembling everything it shows from the
//! corpus (`assemble`, what the web app's renderer draws), recording an export's snapshot, and
//! « what changed since the last export » (`since_export`).

use std::collections::{BTreeMap, BTreeSet};

use rand::RngCore;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{ListFilter, ListingEntry, Replica, ReplicaError};
use crate::document::{ChangeNote, Edit, Stored};
use crate::ids::DocumentId;
use crate::media::Media;
use crate::resource::Resource;
use crate::store::keys;
use crate::work::group::Theme;
use crate::work::publication::{
    self, Export, MapFilter, NewPublication, Publication, PublicationEdit, SectionContent,
};
use crate::work::{new_key, WorkCard, WorkError};

/// Resources a map or theme section shows at most: beyond a few hundred, a printed page is a
/// cloud of dots and a list nobody reads; the section says how many more matched.
pub const MAX_SECTION_RESOURCES: usize = 300;

/// The extra field of a publication's resource that names its publication document.
pub const PUBLICATION_FIELD: &str = "publication";

/// A publication as lists show it, from the work index.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PublicationSummary {
    pub id: DocumentId,
    pub title: String,
    pub resource: Option<DocumentId>,
    pub sections: usize,
    pub updated_at: i64,
}

/// Everything a publication shows, read from the corpus at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct Assembled {
    pub id: DocumentId,
    pub publication: Publication,
    /// The cover's media entry (its alt text and renditions), if it is still in its resource.
    pub cover: Option<Media>,
    pub sections: Vec<AssembledSection>,
    /// Every document read, the publication's own included → its heads (hex, sorted).
    pub heads: BTreeMap<DocumentId, Vec<String>>,
    /// The resources read → their titles (for « what changed »).
    pub titles: BTreeMap<DocumentId, String>,
}

/// One section with what it shows.
#[derive(Debug, Clone, PartialEq)]
pub struct AssembledSection {
    pub id: String,
    pub body: Body,
}

/// What a section shows, read from the corpus.
#[derive(Debug, Clone, PartialEq)]
pub enum Body {
    Resource(Box<(DocumentId, Stored)>),
    /// A resource section whose resource is deleted or not on this replica (yet).
    Missing(DocumentId),
    Text {
        title: String,
        text: String,
    },
    Map {
        title: String,
        filter: String,
        points: Vec<MapPoint>,
        /// How many resources matched (more than `points` past [`MAX_SECTION_RESOURCES`]).
        matched: usize,
    },
    Theme {
        group: String,
        theme: Option<Theme>,
        resources: Vec<ListingEntry>,
        matched: usize,
    },
}

/// A resource of a map section, with its coordinates when it has some.
#[derive(Debug, Clone, PartialEq)]
pub struct MapPoint {
    pub entry: ListingEntry,
    pub lat: Option<f64>,
    pub lon: Option<f64>,
}

/// What changed since the last export.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SinceExport {
    /// The export compared with (`None`: never exported; everything is new).
    pub export: Option<Export>,
    /// What changed in the publication itself (`publication:title`, `section:<id>`, …).
    pub publication: Vec<String>,
    /// Resources shown then and now whose content changed, by title.
    pub changed: Vec<Source>,
    /// Resources shown now and not then.
    pub added: Vec<Source>,
    /// Resources shown then and not now (removed from a section, deleted, or no longer
    /// matching a map's filter).
    pub removed: Vec<Source>,
}

impl SinceExport {
    pub fn is_empty(&self) -> bool {
        self.publication.is_empty()
            && self.changed.is_empty()
            && self.added.is_empty()
            && self.removed.is_empty()
    }
}

/// A document a publication is made from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Source {
    pub id: DocumentId,
    pub title: String,
}

impl Replica {
    /// Every publication, by title.
    pub fn publications(&self) -> Result<Vec<PublicationSummary>, ReplicaError> {
        let mut out = Vec::new();
        self.kv.for_each_prefix(&[keys::WORK], &mut |key, v| {
            if let (
                Some(id),
                Ok(WorkCard::Publication {
                    title,
                    resource,
                    sections,
                    updated_at,
                }),
            ) = (
                keys::document_of(key),
                serde_json::from_slice::<WorkCard>(v),
            ) {
                out.push(PublicationSummary {
                    id,
                    title,
                    resource,
                    sections,
                    updated_at,
                });
            }
            true
        })?;
        out.sort_by_cached_key(|p| (crate::fr::sort_key(&p.title), p.id));
        Ok(out)
    }

    /// One publication.
    pub fn publication(&self, id: &DocumentId) -> Result<Publication, ReplicaError> {
        Ok(publication::read(&self.load(id)?)?)
    }

    /// The publication a user named: its id or URL, its resource's id, URL or ref, its title
    /// (accents and case ignored), or the start of exactly one title.
    pub fn resolve_publication(&self, text: &str) -> Result<DocumentId, ReplicaError> {
        let all = self.publications()?;
        let text = text.trim();
        if let Ok(id) = text.parse::<DocumentId>() {
            if let Some(p) = all.iter().find(|p| p.id == id || p.resource == Some(id)) {
                return Ok(p.id);
            }
        }
        if let Ok(res) = self.resolve(text) {
            if let Some(p) = all.iter().find(|p| p.resource == Some(res)) {
                return Ok(p.id);
            }
        }
        let wanted = crate::fr::fold(text);
        if let Some(p) = all.iter().find(|p| crate::fr::fold(&p.title) == wanted) {
            return Ok(p.id);
        }
        let starting: Vec<_> = all
            .iter()
            .filter(|p| !wanted.is_empty() && crate::fr::fold(&p.title).starts_with(&wanted))
            .collect();
        match starting[..] {
            [p] => Ok(p.id),
            _ => Err(WorkError::NotFound(format!("publication « {text} »")).into()),
        }
    }

    /// Creates a publication and its resource of kind `publication` (ref
    /// `publication-<id>`, the same on every replica), which names it in its
    /// [`PUBLICATION_FIELD`]: the publication is listed, searched and filtered like any
    /// resource.
    pub fn create_publication(
        &self,
        new: &NewPublication,
        rng: &mut impl RngCore,
        now_ms: i64,
    ) -> Result<DocumentId, ReplicaError> {
        let id = DocumentId::random(rng);
        let office = self.office.to_string();
        // Checked before anything is written: the resource must not exist without its document.
        let mut probe = automerge::AutoCommit::new();
        publication::create(&mut probe, new, &id, &office, now_ms)?;
        let resource = Resource::from_json(&json!({
            "ref": format!("publication-{}", id.to_base58()),
            "kind": "publication",
            "title": new.title.trim(),
            "summary": new.subtitle.trim(),
            "office": office,
            PUBLICATION_FIELD: id.url(),
        }))
        .map_err(|e| WorkError::invalid("title", "Titre", e.to_string()))?;
        let resource_id = super::ref_id(resource.ref_.as_deref().unwrap_or_default());
        self.store.update(&id, |doc, _| {
            publication::create(doc, new, &resource_id, &office, now_ms).map_err(ReplicaError::from)
        })?;
        self.create(&resource, rng, now_ms)?;
        Ok(id)
    }

    /// Edits a publication, all or nothing (sections naming a resource, group or theme that
    /// is not here are refused); its resource follows its title and subtitle.
    pub fn edit_publication(
        &self,
        id: &DocumentId,
        edits: &[PublicationEdit],
        now_ms: i64,
    ) -> Result<Vec<String>, ReplicaError> {
        self.publication(id)?;
        for edit in edits {
            self.check_publication_edit(edit)?;
        }
        let office = self.office.to_string();
        let ((fields, after), _) = self.store.update(id, |doc, _| {
            let fields = publication::apply(doc, edits, &office, now_ms)?;
            Ok::<_, ReplicaError>((fields, publication::read(doc)?))
        })?;
        let follows = |f: &str| fields.iter().any(|x| x == f);
        if let Some(resource) = after
            .resource
            .filter(|_| follows("publication:title") || follows("publication:subtitle"))
        {
            if self.store.contains(&resource)? {
                let set = |field: &str, value: &str| Edit::Set {
                    field: field.into(),
                    value: json!(value),
                };
                self.edit(
                    &resource,
                    &[set("title", &after.title), set("summary", &after.subtitle)],
                    now_ms,
                )?;
            }
        }
        self.store.flush()?;
        Ok(fields)
    }

    fn check_publication_edit(&self, edit: &PublicationEdit) -> Result<(), ReplicaError> {
        let section = match edit {
            PublicationEdit::AddSection { section, .. }
            | PublicationEdit::SetSection { section, .. } => section,
            PublicationEdit::Cover(Some(cover)) => {
                let has = self
                    .listing(&cover.resource)?
                    .is_some_and(|e| e.media.iter().any(|b| b.hash == cover.hash));
                if !has {
                    return Err(WorkError::invalid(
                        "cover",
                        "Photo de couverture",
                        "cette photo n'est pas dans la médiathèque de la fiche choisie",
                    )
                    .into());
                }
                return Ok(());
            }
            _ => return Ok(()),
        };
        match section {
            SectionContent::Resource { resource } => {
                if self.listing(resource)?.is_none_or(|e| e.deleted) {
                    return Err(WorkError::invalid(
                        "resource",
                        "Fiche",
                        format!("aucune fiche « {resource} » sur ce poste"),
                    )
                    .into());
                }
            }
            SectionContent::Theme { group, theme } => {
                let g = self.group(group)?;
                if !g.themes.iter().any(|t| &t.id == theme) {
                    return Err(WorkError::invalid(
                        "theme",
                        "Thème",
                        format!("le groupe « {} » n'a pas de thème « {theme} »", g.name),
                    )
                    .into());
                }
            }
            SectionContent::Text { .. } | SectionContent::Map { .. } => {}
        }
        Ok(())
    }

    /// Reads everything the publication shows, with the heads of every document read.
    pub fn assemble(&self, id: &DocumentId) -> Result<Assembled, ReplicaError> {
        let mut doc = self.load(id)?;
        let p = publication::read(&doc)?;
        let mut heads = BTreeMap::from([(*id, heads_of(&mut doc))]);
        let mut titles = BTreeMap::new();
        let mut read = |rid: &DocumentId| -> Result<Option<Stored>, ReplicaError> {
            let Some(mut doc) = self.store.load(rid)? else {
                return Ok(None);
            };
            let Ok(stored) = crate::document::read(&doc) else {
                return Ok(None);
            };
            if stored.deleted {
                return Ok(None);
            }
            heads.insert(*rid, heads_of(&mut doc));
            titles.insert(*rid, stored.resource.title.clone());
            Ok(Some(stored))
        };
        let cover = match &p.cover {
            Some(c) => read(&c.resource)?
                .and_then(|s| s.resource.media.into_iter().find(|m| m.hash == c.hash)),
            None => None,
        };
        let mut listing: Option<Vec<ListingEntry>> = None;
        let mut group_heads = Vec::new();
        let mut sections = Vec::new();
        for s in &p.sections {
            let body = match &s.content {
                SectionContent::Resource { resource } => match read(resource)? {
                    Some(stored) => Body::Resource(Box::new((*resource, stored))),
                    None => Body::Missing(*resource),
                },
                SectionContent::Text { title, text } => Body::Text {
                    title: title.clone(),
                    text: text.clone(),
                },
                SectionContent::Map { title, filter } => {
                    let f = MapFilter::parse(filter).unwrap_or_default();
                    let all = match &listing {
                        Some(l) => l,
                        None => listing.insert(self.list(&ListFilter::default())?),
                    };
                    let matching: Vec<&ListingEntry> =
                        all.iter().filter(|e| f.matches(e)).collect();
                    let mut points = Vec::new();
                    for e in matching.iter().take(MAX_SECTION_RESOURCES) {
                        if let Some(stored) = read(&e.id)? {
                            let loc = stored.resource.location.as_ref();
                            points.push(MapPoint {
                                entry: (*e).clone(),
                                lat: loc.and_then(|l| l.lat),
                                lon: loc.and_then(|l| l.lon),
                            });
                        }
                    }
                    Body::Map {
                        title: title.clone(),
                        filter: filter.clone(),
                        points,
                        matched: matching.len(),
                    }
                }
                SectionContent::Theme { group, theme } => {
                    let (name, theme, resources, matched) = match self.store.load(group)? {
                        Some(mut gdoc) => {
                            group_heads.push((*group, heads_of(&mut gdoc)));
                            let g = crate::work::group::read(&gdoc)?;
                            let t = g.themes.iter().find(|t| &t.id == theme).cloned();
                            let all: Vec<ListingEntry> = match &t {
                                Some(t) => self
                                    .group_resources(&g)?
                                    .into_iter()
                                    .filter(|e| crate::work::group::Group::theme_matches(t, e))
                                    .collect(),
                                None => Vec::new(),
                            };
                            let matched = all.len();
                            let mut shown = Vec::new();
                            for e in all.into_iter().take(MAX_SECTION_RESOURCES) {
                                if read(&e.id)?.is_some() {
                                    shown.push(e);
                                }
                            }
                            (g.name, t, shown, matched)
                        }
                        None => (String::new(), None, Vec::new(), 0),
                    };
                    Body::Theme {
                        group: name,
                        theme,
                        resources,
                        matched,
                    }
                }
            };
            sections.push(AssembledSection {
                id: s.id.clone(),
                body,
            });
        }
        heads.extend(group_heads);
        Ok(Assembled {
            id: *id,
            publication: p,
            cover,
            sections,
            heads,
            titles,
        })
    }

    /// Records that `assembled` was exported: its heads become the snapshot « Régénérer »
    /// compares with.
    pub fn record_export(
        &self,
        assembled: &Assembled,
        rng: &mut impl RngCore,
        now_ms: i64,
    ) -> Result<Export, ReplicaError> {
        let export = Export {
            id: new_key(rng),
            at: now_ms,
            by: self.office.to_string(),
            heads: assembled.heads.clone(),
        };
        let office = self.office.to_string();
        self.store.update(&assembled.id, |doc, _| {
            publication::record_export(doc, &export, &office, now_ms).map_err(ReplicaError::from)
        })?;
        self.store.flush()?;
        Ok(export)
    }

    /// What changed since the last export: in the publication itself (its changes after the
    /// snapshot's heads, export records aside), and which resources changed, appeared or left.
    pub fn since_export(&self, id: &DocumentId) -> Result<SinceExport, ReplicaError> {
        let now = self.assemble(id)?;
        let Some(export) = now.publication.last_export().cloned() else {
            return Ok(SinceExport {
                added: sources(&now.titles, now.titles.keys()),
                ..SinceExport::default()
            });
        };
        let mut doc = self.load(id)?;
        let then: Vec<automerge::ChangeHash> = export
            .heads
            .get(id)
            .map(|hs| hs.iter().filter_map(|h| h.parse().ok()).collect())
            .unwrap_or_default();
        let mut fields: BTreeSet<String> = BTreeSet::new();
        for change in doc.get_changes(&then) {
            let note = change
                .message()
                .and_then(|m| serde_json::from_str::<ChangeNote>(m).ok());
            for f in note.map(|n| n.fields).unwrap_or_default() {
                if !f.starts_with("export:") {
                    fields.insert(f);
                }
            }
        }
        let was: BTreeSet<&DocumentId> = export.heads.keys().filter(|d| *d != id).collect();
        let is: BTreeSet<&DocumentId> = now.titles.keys().collect();
        let changed = is
            .intersection(&was)
            .filter(|d| export.heads.get(d) != now.heads.get(d))
            .copied();
        let mut removed = Vec::new();
        for d in was.difference(&is) {
            // A theme's group is read too; only resources are listed.
            if let Some(e) = self.listing(d)? {
                removed.push(Source {
                    id: **d,
                    title: e.title,
                });
            }
        }
        removed.sort_by_cached_key(|s| crate::fr::sort_key(&s.title));
        Ok(SinceExport {
            publication: fields.into_iter().collect(),
            changed: sources(&now.titles, changed),
            added: sources(&now.titles, is.difference(&was).copied()),
            removed,
            export: Some(export),
        })
    }
}

fn heads_of(doc: &mut automerge::AutoCommit) -> Vec<String> {
    let mut hs: Vec<String> = doc.get_heads().iter().map(|h| h.to_string()).collect();
    hs.sort();
    hs
}

fn sources<'a>(
    titles: &BTreeMap<DocumentId, String>,
    ids: impl Iterator<Item = &'a DocumentId>,
) -> Vec<Source> {
    let mut out: Vec<Source> = ids
        .map(|id| Source {
            id: *id,
            title: titles.get(id).cloned().unwrap_or_default(),
        })
        .collect();
    out.sort_by_cached_key(|s| crate::fr::sort_key(&s.title));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::OfficeId;
    use rand::{rngs::StdRng, SeedableRng};

    const NOW: i64 = 1_780_000_000_000;

    fn replica(office: &str) -> Replica {
        Replica::in_memory(office.parse::<OfficeId>().unwrap())
    }

    fn resource(r: &Replica, rng: &mut StdRng, title: &str, dept: &str) -> DocumentId {
        let res = Resource::from_json(&json!({
            "kind": "realisation", "title": title, "office": r.office().to_string(),
            "summary": "Résumé.", "sectors": ["terre"],
            "location": {"commune": "Thiers", "departement": dept, "lat": 45.85, "lon": 3.55}
        }))
        .unwrap();
        r.create(&res, rng, NOW).unwrap()
    }

    /// Copies every document of `from` into `to`, as a sync would.
    fn sync(from: &Replica, to: &Replica) {
        let mut ids = Vec::new();
        from.store()
            .for_each_heads(&mut |id, _| {
                ids.push(id);
                true
            })
            .unwrap();
        for id in ids {
            let bytes = from.store().saved(&id).unwrap().unwrap();
            to.store().apply_bytes(&id, &bytes).unwrap();
        }
    }

    fn add(r: &Replica, p: &DocumentId, key: &str, section: SectionContent) {
        let edit = PublicationEdit::AddSection {
            id: key.into(),
            section,
            index: None,
        };
        r.edit_publication(p, &[edit], NOW).unwrap();
    }

    #[test]
    fn a_publication_is_listed_as_a_resource_of_kind_publication() {
        let mut rng = StdRng::seed_from_u64(1);
        let a = replica("caue-63");
        let new = NewPublication {
            title: "Bâtir en terre".into(),
            subtitle: "Le Massif central".into(),
            introduction: "Intro.".into(),
        };
        let p = a.create_publication(&new, &mut rng, NOW).unwrap();
        let pub_ = a.publication(&p).unwrap();
        let res = pub_.resource.unwrap();
        let entry = a.listing(&res).unwrap().unwrap();
        assert_eq!(
            (entry.kind.as_str(), entry.title.as_str()),
            ("publication", "Bâtir en terre")
        );
        assert_eq!(
            a.get(&res).unwrap().resource.extra[PUBLICATION_FIELD],
            json!(p.url())
        );
        assert_eq!(a.resolve_publication("batir").unwrap(), p);
        assert_eq!(a.resolve_publication(&res.url()).unwrap(), p);
        let edit = PublicationEdit::Set {
            field: "title".into(),
            value: "Bâtir en terre crue".into(),
        };
        a.edit_publication(&p, &[edit], NOW + 1000).unwrap();
        assert_eq!(
            a.listing(&res).unwrap().unwrap().title,
            "Bâtir en terre crue"
        );
        assert_eq!(a.publications().unwrap()[0].title, "Bâtir en terre crue");
        let bad = PublicationEdit::AddSection {
            id: "s1".into(),
            section: SectionContent::Resource {
                resource: DocumentId::derived("absent"),
            },
            index: None,
        };
        assert!(a.edit_publication(&p, &[bad], NOW).is_err());
    }

    #[test]
    fn two_offices_converge_and_regenerate_says_what_changed() {
        let mut rng = StdRng::seed_from_u64(2);
        let (a, b) = (replica("caue-63"), replica("caue-15"));
        let r1 = resource(&a, &mut rng, "Maison en pisé", "63");
        let r2 = resource(&a, &mut rng, "Halle en bois", "15");
        let p = a
            .create_publication(
                &NewPublication {
                    title: "Bâtir en terre".into(),
                    ..NewPublication::default()
                },
                &mut rng,
                NOW,
            )
            .unwrap();
        add(&a, &p, "s1", SectionContent::Resource { resource: r1 });
        add(
            &a,
            &p,
            "s2",
            SectionContent::Map {
                title: "Où voir".into(),
                filter: "kind=realisation&departement=63".into(),
            },
        );
        sync(&a, &b);
        // A reorders while B writes the introduction and adds a text.
        let mv = PublicationEdit::MoveSection {
            id: "s2".into(),
            index: 0,
        };
        a.edit_publication(&p, &[mv], NOW + 1000).unwrap();
        let intro = PublicationEdit::Set {
            field: "introduction".into(),
            value: "Des savoir-faire.".into(),
        };
        b.edit_publication(&p, &[intro], NOW + 1000).unwrap();
        add(
            &b,
            &p,
            "s3",
            SectionContent::Text {
                title: "Pour finir".into(),
                text: "Merci.".into(),
            },
        );
        sync(&a, &b);
        sync(&b, &a);
        let (xa, xb) = (a.assemble(&p).unwrap(), b.assemble(&p).unwrap());
        assert_eq!(xa, xb, "both replicas assemble the same publication");
        let order: Vec<&str> = xa.sections.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(order, ["s2", "s1", "s3"]);
        let Body::Map {
            points, matched, ..
        } = &xa.sections[0].body
        else {
            panic!("a map")
        };
        assert_eq!((*matched, points[0].lat), (1, Some(45.85)));

        // Export on A, then change the corpus: r1 edited, r2 enters the map, s1 removed.
        let never = a.since_export(&p).unwrap();
        assert!(never.export.is_none());
        a.record_export(&xa, &mut rng, NOW + 2000).unwrap();
        let since = a.since_export(&p).unwrap();
        assert!(since.is_empty(), "{since:?}");
        let edit = Edit::Set {
            field: "summary".into(),
            value: json!("Nouveau résumé."),
        };
        a.edit(&r1, &[edit], NOW + 3000).unwrap();
        let edit = Edit::Set {
            field: "location.departement".into(),
            value: json!("63"),
        };
        a.edit(&r2, &[edit], NOW + 3000).unwrap();
        a.edit_publication(
            &p,
            &[PublicationEdit::RemoveSection("s3".into())],
            NOW + 3000,
        )
        .unwrap();
        let since = a.since_export(&p).unwrap();
        let titles = |v: &[Source]| v.iter().map(|s| s.title.clone()).collect::<Vec<_>>();
        assert_eq!(titles(&since.changed), ["Maison en pisé"]);
        assert_eq!(titles(&since.added), ["Halle en bois"]);
        assert!(since.removed.is_empty());
        assert_eq!(since.publication, ["section:s3:removed"]);
        a.delete(&r1, NOW + 4000).unwrap();
        let since = a.since_export(&p).unwrap();
        assert_eq!(titles(&since.removed), ["Maison en pisé"]);
    }
}
