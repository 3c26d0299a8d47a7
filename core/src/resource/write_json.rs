//! A resource's FORMAT.md JSON written straight to bytes, exactly as `to_json` then
//! `serde_json` write it, without building the `Value` (an import hashes every resource).

use serde::ser::{Serialize, SerializeMap, Serializer};

use super::{Dates, Link, Location, Resource, KNOWN_FIELDS};

impl Resource {
    /// The bytes of `serde_json::to_vec(&self.to_json())`, written without the `Value`. The
    /// property test below holds the two to the same bytes: content hashes stored in replicas
    /// and sent in cards depend on them.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        // `to_json` lets an unknown field named like a known one replace it in place; never
        // seen from a parsed file, so such a resource takes the slow path.
        let json = match self
            .extra
            .keys()
            .any(|k| KNOWN_FIELDS.contains(&k.as_str()))
        {
            true => serde_json::to_writer(&mut *out, &self.to_json()),
            false => serde_json::to_writer(&mut *out, &Json(self)),
        };
        // Serializing strings, numbers and `Value`s into a Vec cannot fail.
        debug_assert!(json.is_ok());
    }
}

/// `Resource::to_json`'s object as a `Serialize`: top-level strings and lists are left out
/// when empty, absent options and numbers `serde_json` writes as null are left out, objects
/// (location, dates) are kept even when empty.
struct Json<'a>(&'a Resource);

impl Serialize for Json<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let r = self.0;
        let mut m = s.serialize_map(None)?;
        text(&mut m, "ref", r.ref_.as_deref())?;
        text(&mut m, "kind", Some(&r.kind))?;
        text(&mut m, "title", Some(&r.title))?;
        text(&mut m, "summary", Some(&r.summary))?;
        text(&mut m, "description", Some(&r.description))?;
        text(&mut m, "office", Some(&r.office))?;
        text(&mut m, "status", Some(&r.status))?;
        list(&mut m, "axes", &r.axes)?;
        list(&mut m, "themes", &r.themes)?;
        list(&mut m, "sectors", &r.sectors)?;
        list(&mut m, "materials", &r.materials)?;
        list(&mut m, "audiences", &r.audiences)?;
        list(&mut m, "keywords", &r.keywords)?;
        if let Some(l) = &r.location {
            m.serialize_entry("location", &LocationJson(l))?;
        }
        if let Some(year) = r.year {
            m.serialize_entry("year", &year)?;
        }
        text(&mut m, "client", r.client.as_deref())?;
        list(&mut m, "designers", &r.designers)?;
        text(&mut m, "intervention", r.intervention.as_deref())?;
        text(&mut m, "building_type", r.building_type.as_deref())?;
        number(&mut m, "cost_eur_ht", r.cost_eur_ht)?;
        number(&mut m, "floor_area_m2", r.floor_area_m2)?;
        text(&mut m, "tool_type", r.tool_type.as_deref())?;
        text(&mut m, "action_type", r.action_type.as_deref())?;
        if let Some(d) = &r.dates {
            m.serialize_entry("dates", &DatesJson(d))?;
        }
        let links: Vec<LinkJson> = r.links.iter().map(LinkJson).collect();
        list(&mut m, "links", &links)?;
        list(&mut m, "media", &r.media)?;
        for (k, v) in &r.extra {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

fn text<M: SerializeMap>(m: &mut M, key: &str, value: Option<&str>) -> Result<(), M::Error> {
    match value {
        Some(v) if !v.is_empty() => m.serialize_entry(key, v),
        _ => Ok(()),
    }
}

fn list<M: SerializeMap, T: Serialize>(m: &mut M, key: &str, items: &[T]) -> Result<(), M::Error> {
    match items.is_empty() {
        true => Ok(()),
        false => m.serialize_entry(key, items),
    }
}

/// As `resource::number`: whole numbers without a fraction; what JSON cannot hold (NaN,
/// infinities) is null there, so left out here.
fn number<M: SerializeMap>(m: &mut M, key: &str, x: Option<f64>) -> Result<(), M::Error> {
    match x {
        Some(x) if x.fract() == 0.0 && x.abs() < 9.0e15 => m.serialize_entry(key, &(x as i64)),
        Some(x) if x.is_finite() => m.serialize_entry(key, &x),
        _ => Ok(()),
    }
}

struct LocationJson<'a>(&'a Location);

impl Serialize for LocationJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let l = self.0;
        let mut m = s.serialize_map(None)?;
        // Inside the location, empty strings are kept: only nulls are left out.
        for (key, value) in [
            ("commune", &l.commune),
            ("insee", &l.insee),
            ("departement", &l.departement),
        ] {
            if let Some(v) = value {
                m.serialize_entry(key, v)?;
            }
        }
        number(&mut m, "lat", l.lat)?;
        number(&mut m, "lon", l.lon)?;
        m.end()
    }
}

struct DatesJson<'a>(&'a Dates);

impl Serialize for DatesJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        if let Some(start) = &self.0.start {
            m.serialize_entry("start", start)?;
        }
        if let Some(end) = &self.0.end {
            m.serialize_entry("end", end)?;
        }
        m.end()
    }
}

struct LinkJson<'a>(&'a Link);

impl Serialize for LinkJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("url", &self.0.url)?;
        if let Some(label) = &self.0.label {
            m.serialize_entry("label", label)?;
        }
        m.end()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;
    use serde_json::{json, Value};

    use super::*;
    use crate::media::Media;
    use crate::resource::Designer;

    fn slow(r: &Resource) -> Vec<u8> {
        serde_json::to_vec(&r.to_json()).unwrap()
    }

    fn fast(r: &Resource) -> Vec<u8> {
        let mut out = Vec::new();
        r.write_json(&mut out);
        out
    }

    fn text() -> impl Strategy<Value = String> {
        prop_oneof![
            Just(String::new()),
            "\\PC{0,12}",
            "[\"\\\\\u{0}-\u{1f}]{1,3}"
        ]
    }

    fn opt_text() -> impl Strategy<Value = Option<String>> {
        proptest::option::of(text())
    }

    fn float() -> impl Strategy<Value = Option<f64>> {
        let special = prop_oneof![
            Just(f64::NAN),
            Just(f64::INFINITY),
            Just(-0.0),
            Just(2.6e6),
            Just(9.5e15),
            Just(8.5e15),
            -1e7..1e7f64
        ];
        proptest::option::of(prop_oneof![any::<f64>(), special])
    }

    fn media() -> Media {
        serde_json::from_value(json!({
            "hash": "ab".repeat(32), "kind": "photo", "name": "façade.jpg", "mime": "image/jpeg",
            "bytes": 123_456, "width": 4000, "credit": "© CAUE 63", "alt": "La façade",
            "lat": 45.77, "added_at": 1_700_000_000_000_i64
        }))
        .unwrap()
    }

    fn extra_value() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            Just(json!("")),
            Just(json!([])),
            Just(json!({"a": [1, "b"]})),
            any::<i64>().prop_map(Value::from),
            text().prop_map(Value::from),
        ]
    }

    fn resource() -> impl Strategy<Value = Resource> {
        let texts = (opt_text(), text(), text(), text(), text(), text(), text());
        let lists = proptest::collection::vec(proptest::collection::vec(text(), 0..3), 6);
        let location = proptest::option::of((opt_text(), opt_text(), opt_text(), float(), float()));
        let facts = (
            proptest::option::of(any::<i64>()),
            opt_text(),
            proptest::collection::vec((text(), text()), 0..3),
            (opt_text(), opt_text(), opt_text(), opt_text()),
            (float(), float()),
        );
        let rest = (
            proptest::option::of((opt_text(), opt_text())),
            proptest::collection::vec(("\\PC{0,10}", opt_text()), 0..3),
            any::<bool>(),
            proptest::collection::btree_map("x_[a-z]{1,4}", extra_value(), 0..3),
        );
        (texts, lists, location, facts, rest).prop_map(|(t, l, loc, f, rest)| {
            let (ref_, kind, title, summary, description, office, status) = t;
            let (year, client, designers, (intervention, building_type, tool, action), costs) = f;
            let (dates, links, with_media, extra) = rest;
            Resource {
                ref_,
                kind,
                title,
                summary,
                description,
                office,
                status,
                axes: l[0].clone(),
                themes: l[1].clone(),
                sectors: l[2].clone(),
                materials: l[3].clone(),
                audiences: l[4].clone(),
                keywords: l[5].clone(),
                location: loc.map(|(commune, insee, departement, lat, lon)| Location {
                    commune,
                    insee,
                    departement,
                    lat,
                    lon,
                }),
                year,
                client,
                designers: designers
                    .into_iter()
                    .map(|(role, name)| Designer { role, name })
                    .collect(),
                intervention,
                building_type,
                cost_eur_ht: costs.0,
                floor_area_m2: costs.1,
                tool_type: tool,
                action_type: action,
                dates: dates.map(|(start, end)| Dates { start, end }),
                links: links
                    .into_iter()
                    .map(|(url, label)| Link { url, label })
                    .collect(),
                media: if with_media {
                    vec![media()]
                } else {
                    Vec::new()
                },
                extra: extra.into_iter().collect::<BTreeMap<_, _>>(),
            }
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn any_resource_is_written_as_to_json_writes_it(r in resource()) {
            prop_assert_eq!(String::from_utf8(fast(&r)).unwrap(), String::from_utf8(slow(&r)).unwrap());
        }
    }

    #[test]
    fn an_unknown_field_named_like_a_known_one_is_written_as_to_json_writes_it() {
        let mut r = Resource {
            title: "Maison".into(),
            ..Resource::default()
        };
        r.extra.insert("title".into(), json!("autre"));
        r.extra.insert("year".into(), json!(2019));
        assert_eq!(fast(&r), slow(&r));
        assert_eq!(fast(&r), br#"{"title":"autre","year":2019}"#);
    }

    #[test]
    fn every_key_to_json_writes_is_a_known_field() {
        let r = Resource {
            ref_: Some("r".into()),
            kind: "k".into(),
            title: "t".into(),
            summary: "s".into(),
            description: "d".into(),
            office: "o".into(),
            status: "s".into(),
            axes: vec!["a".into()],
            themes: vec!["t".into()],
            sectors: vec!["s".into()],
            materials: vec!["m".into()],
            audiences: vec!["a".into()],
            keywords: vec!["k".into()],
            location: Some(Location::default()),
            year: Some(2019),
            client: Some("c".into()),
            designers: vec![Designer {
                role: "r".into(),
                name: "n".into(),
            }],
            intervention: Some("i".into()),
            building_type: Some("b".into()),
            cost_eur_ht: Some(1.0),
            floor_area_m2: Some(1.0),
            tool_type: Some("t".into()),
            action_type: Some("a".into()),
            dates: Some(Dates::default()),
            links: vec![Link {
                url: "u".into(),
                label: None,
            }],
            media: vec![media()],
            extra: BTreeMap::new(),
        };
        let Value::Object(o) = r.to_json() else {
            panic!("not an object")
        };
        // The fast path is taken only when no unknown field is named like one of these.
        let keys: Vec<&str> = o.keys().map(String::as_str).collect();
        assert_eq!(keys, *KNOWN_FIELDS);
    }
}
