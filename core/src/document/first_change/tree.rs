//! The value a `Reconcile` type writes into an empty document, caught as a plain tree (texts as
//! strings) rather than in an Automerge document or an `automerge::hydrate` value, whose texts
//! are built character by character.
//!
//! It follows `autosurgeon`'s own reconciler into a hydrate value (what `autosurgeon::reconcile`
//! batch-creates an empty document from), so that the tree holds exactly what that would.

use std::borrow::Cow;
use std::collections::BTreeMap;

use automerge as am;
use autosurgeon::reconcile::{
    CounterReconciler, LoadKey, MapReconciler, Reconciler, SeqReconciler, StaleHeads,
    TextReconciler,
};
use autosurgeon::Reconcile;

/// A document's value. Map keys are kept sorted, in the order Automerge creates them.
#[derive(Debug, Clone, PartialEq)]
pub enum Tree {
    Scalar(am::ScalarValue),
    Map(BTreeMap<String, Tree>),
    List(Vec<Tree>),
    Text(String),
}

impl Tree {
    /// What `value` writes, if anything.
    pub fn of<R: Reconcile>(value: R) -> Result<Option<Tree>, StaleHeads> {
        let mut tree = None;
        value.reconcile(TreeReconciler { value: &mut tree })?;
        Ok(tree)
    }

    fn value_ref(&self) -> am::ValueRef<'_> {
        match self {
            Tree::Scalar(s) => am::ValueRef::from(s.clone()),
            Tree::Map(_) => am::ValueRef::Object(am::ObjType::Map),
            Tree::List(_) => am::ValueRef::Object(am::ObjType::List),
            Tree::Text(_) => am::ValueRef::Object(am::ObjType::Text),
        }
    }

    fn value(&self) -> am::Value<'_> {
        match self {
            Tree::Scalar(s) => am::Value::Scalar(Cow::Borrowed(s)),
            Tree::Map(_) => am::Value::Object(am::ObjType::Map),
            Tree::List(_) => am::Value::Object(am::ObjType::List),
            Tree::Text(_) => am::Value::Object(am::ObjType::Text),
        }
    }
}

struct TreeReconciler<'a> {
    value: &'a mut Option<Tree>,
}

impl TreeReconciler<'_> {
    fn scalar(&mut self, value: am::ScalarValue) -> Result<(), StaleHeads> {
        *self.value = Some(Tree::Scalar(value));
        Ok(())
    }
}

impl Reconciler for TreeReconciler<'_> {
    type Error = StaleHeads;
    type Map<'m>
        = MapTree<'m>
    where
        Self: 'm;
    type Seq<'s>
        = SeqTree<'s>
    where
        Self: 's;
    type Text<'t>
        = TextTree<'t>
    where
        Self: 't;
    type Counter<'c>
        = CounterTree<'c>
    where
        Self: 'c;

    fn none(&mut self) -> Result<(), StaleHeads> {
        self.scalar(am::ScalarValue::Null)
    }
    fn bytes<B: AsRef<[u8]>>(&mut self, value: B) -> Result<(), StaleHeads> {
        self.scalar(am::ScalarValue::Bytes(value.as_ref().to_vec()))
    }
    fn timestamp(&mut self, value: i64) -> Result<(), StaleHeads> {
        self.scalar(am::ScalarValue::Timestamp(value))
    }
    fn boolean(&mut self, value: bool) -> Result<(), StaleHeads> {
        self.scalar(am::ScalarValue::Boolean(value))
    }
    fn str<S: AsRef<str>>(&mut self, value: S) -> Result<(), StaleHeads> {
        self.scalar(am::ScalarValue::Str(value.as_ref().into()))
    }
    fn u64(&mut self, value: u64) -> Result<(), StaleHeads> {
        self.scalar(am::ScalarValue::Uint(value))
    }
    fn i64(&mut self, value: i64) -> Result<(), StaleHeads> {
        self.scalar(am::ScalarValue::Int(value))
    }
    fn f64(&mut self, value: f64) -> Result<(), StaleHeads> {
        self.scalar(am::ScalarValue::F64(value))
    }
    fn map(&mut self) -> Result<MapTree<'_>, StaleHeads> {
        let map = self.value.insert(Tree::Map(BTreeMap::new()));
        match map {
            Tree::Map(map) => Ok(MapTree { map }),
            _ => unreachable!("just inserted a map"),
        }
    }
    fn seq(&mut self) -> Result<SeqTree<'_>, StaleHeads> {
        Ok(SeqTree {
            items: Vec::new(),
            target: self.value,
        })
    }
    fn text(&mut self) -> Result<TextTree<'_>, StaleHeads> {
        Ok(TextTree {
            text: String::new(),
            target: self.value,
        })
    }
    fn counter(&mut self) -> Result<CounterTree<'_>, StaleHeads> {
        Ok(CounterTree {
            value: 0,
            target: self.value,
        })
    }
    fn heads(&self) -> &[am::ChangeHash] {
        &[]
    }
}

struct MapTree<'a> {
    map: &'a mut BTreeMap<String, Tree>,
}

impl MapReconciler for MapTree<'_> {
    type Error = StaleHeads;
    type EntriesIter<'e>
        = std::vec::IntoIter<(Cow<'e, str>, am::ValueRef<'e>)>
    where
        Self: 'e;

    fn entries(&self) -> Self::EntriesIter<'_> {
        let entries: Vec<_> = self
            .map
            .iter()
            .map(|(k, v)| (Cow::Borrowed(k.as_str()), v.value_ref()))
            .collect();
        entries.into_iter()
    }
    fn entry<P: AsRef<str>>(&self, prop: P) -> Option<am::Value<'_>> {
        self.map.get(prop.as_ref()).map(Tree::value)
    }
    fn put<R: Reconcile, P: AsRef<str>>(&mut self, prop: P, value: R) -> Result<(), StaleHeads> {
        if let Some(tree) = Tree::of(value)? {
            self.map.insert(prop.as_ref().to_string(), tree);
        }
        Ok(())
    }
    fn delete<P: AsRef<str>>(&mut self, prop: P) -> Result<(), StaleHeads> {
        self.map.remove(prop.as_ref());
        Ok(())
    }
    fn hydrate_entry_key<'k, R: Reconcile, P: AsRef<str>>(
        &self,
        _: P,
    ) -> Result<LoadKey<R::Key<'k>>, StaleHeads> {
        Ok(LoadKey::KeyNotFound)
    }
}

/// Items gather here and become the list when the reconciler is dropped, as autosurgeon's own.
struct SeqTree<'a> {
    items: Vec<Tree>,
    target: &'a mut Option<Tree>,
}

impl Drop for SeqTree<'_> {
    fn drop(&mut self) {
        *self.target = Some(Tree::List(std::mem::take(&mut self.items)));
    }
}

impl SeqReconciler for SeqTree<'_> {
    type Error = StaleHeads;
    type ItemIter<'i>
        = std::iter::Map<std::slice::Iter<'i, Tree>, fn(&'i Tree) -> am::ValueRef<'i>>
    where
        Self: 'i;

    fn items(&self) -> Self::ItemIter<'_> {
        self.items.iter().map(Tree::value_ref)
    }
    fn get(&self, index: usize) -> Result<Option<am::Value<'_>>, StaleHeads> {
        Ok(self.items.get(index).map(Tree::value))
    }
    fn hydrate_item_key<'k, R: Reconcile>(
        &self,
        _: usize,
    ) -> Result<LoadKey<R::Key<'k>>, StaleHeads> {
        Ok(LoadKey::KeyNotFound)
    }
    fn insert<R: Reconcile>(&mut self, index: usize, value: R) -> Result<(), StaleHeads> {
        if let Some(tree) = Tree::of(value)? {
            self.items.insert(index.min(self.items.len()), tree);
        }
        Ok(())
    }
    fn set<R: Reconcile>(&mut self, index: usize, value: R) -> Result<(), StaleHeads> {
        if let (Some(tree), Some(item)) = (Tree::of(value)?, self.items.get_mut(index)) {
            *item = tree;
        }
        Ok(())
    }
    fn delete(&mut self, index: usize) -> Result<(), StaleHeads> {
        if index < self.items.len() {
            self.items.remove(index);
        }
        Ok(())
    }
    fn len(&self) -> Result<usize, StaleHeads> {
        Ok(self.items.len())
    }
}

struct TextTree<'a> {
    text: String,
    target: &'a mut Option<Tree>,
}

impl Drop for TextTree<'_> {
    fn drop(&mut self) {
        *self.target = Some(Tree::Text(std::mem::take(&mut self.text)));
    }
}

impl TextReconciler for TextTree<'_> {
    type Error = StaleHeads;

    /// `pos` and `delete` count characters, as in autosurgeon's reconciler into a value.
    fn splice<S: AsRef<str>>(
        &mut self,
        pos: usize,
        delete: isize,
        insert: S,
    ) -> Result<(), StaleHeads> {
        let byte = |chars: usize| {
            self.text
                .char_indices()
                .nth(chars)
                .map_or(self.text.len(), |(at, _)| at)
        };
        let (start, end) = (byte(pos), byte(pos + delete.max(0) as usize));
        self.text.replace_range(start..end, insert.as_ref());
        Ok(())
    }
    fn heads(&self) -> &[am::ChangeHash] {
        &[]
    }
    fn update<S: AsRef<str>>(&mut self, new_text: S) -> Result<(), StaleHeads> {
        self.text = new_text.as_ref().to_string();
        Ok(())
    }
}

struct CounterTree<'a> {
    value: i64,
    target: &'a mut Option<Tree>,
}

impl Drop for CounterTree<'_> {
    fn drop(&mut self) {
        *self.target = Some(Tree::Scalar(am::ScalarValue::counter(self.value)));
    }
}

impl CounterReconciler for CounterTree<'_> {
    type Error = StaleHeads;

    fn increment(&mut self, by: i64) -> Result<(), StaleHeads> {
        self.value = self.value.saturating_add(by);
        Ok(())
    }
    fn set(&mut self, value: i64) -> Result<(), StaleHeads> {
        self.value = value;
        Ok(())
    }
}
