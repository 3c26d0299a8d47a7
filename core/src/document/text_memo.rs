//! The texts of a loaded document as last read, so that deriving its card again after a change
//! that touched none of them does not rebuild them out of Automerge.
//!
//! Automerge builds a `Text`'s string character by character: for a resource with a long
//! description, that was over a quarter of what a device spent applying someone's title change
//! (the fan-out benchmark's slowest edits). The store keeps a memo beside each document it keeps
//! loaded (in `card::CardMemo`, see `store::doc_cache`); before deriving a card it forgets the
//! texts that the changes just applied touch, read from those changes' operations, so a
//! remembered text is always the text's current value.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::ops::RangeBounds;

use automerge::legacy::ObjectId;
use automerge::{AutoCommit, AutomergeError, ChangeHash, ObjId, Value};

/// Changes decoded at most to learn which texts they touch; past this (a sync bringing a long
/// history) the memo is simply emptied.
pub const MAX_DECODED_CHANGES: usize = 64;

/// Texts by object id, each the current value of that `Text` object.
#[derive(Default)]
pub struct TextMemo {
    texts: HashMap<ObjId, String>,
}

impl TextMemo {
    /// Forgets every text that the changes applied to `doc` since `before` touch.
    pub fn forget_touched(&mut self, doc: &mut AutoCommit, before: &[ChangeHash]) {
        if self.texts.is_empty() {
            return;
        }
        let changes = doc.get_changes(before);
        if changes.len() > MAX_DECODED_CHANGES {
            self.texts.clear();
            return;
        }
        let mut touched = HashSet::new();
        for change in changes {
            for op in change.decode().operations {
                if let ObjectId::Id(id) = op.obj {
                    touched.insert((id.0, id.1));
                }
            }
        }
        self.texts.retain(|obj, _| match obj {
            ObjId::Root => true,
            ObjId::Id(counter, actor, _) => !touched.contains(&(*counter, actor.clone())),
        });
    }

    /// Bytes of text remembered.
    pub fn bytes(&self) -> usize {
        self.texts.values().map(String::len).sum()
    }
}

/// `doc` as autosurgeon reads it, its texts taken from (and added to) `memo`.
pub(crate) struct Memoized<'a> {
    pub doc: &'a AutoCommit,
    pub memo: RefCell<&'a mut TextMemo>,
}

impl autosurgeon::ReadDoc for Memoized<'_> {
    type Parents<'b>
        = automerge::Parents<'b>
    where
        Self: 'b;

    fn get_heads(&self) -> Vec<ChangeHash> {
        autosurgeon::ReadDoc::get_heads(self.doc)
    }

    fn get<P: Into<automerge::Prop>>(
        &self,
        obj: &ObjId,
        prop: P,
    ) -> Result<Option<(Value<'_>, ObjId)>, AutomergeError> {
        autosurgeon::ReadDoc::get(self.doc, obj, prop)
    }

    fn object_type<O: AsRef<ObjId>>(&self, obj: O) -> Option<automerge::ObjType> {
        autosurgeon::ReadDoc::object_type(self.doc, obj)
    }

    fn map_range<'b, O, R>(&'b self, obj: O, range: R) -> automerge::iter::MapRange<'b>
    where
        R: RangeBounds<String> + 'b,
        O: AsRef<ObjId>,
        R: RangeBounds<String>,
    {
        autosurgeon::ReadDoc::map_range(self.doc, obj, range)
    }

    fn list_range<O: AsRef<ObjId>, R: RangeBounds<usize>>(
        &self,
        obj: O,
        range: R,
    ) -> automerge::iter::ListRange<'_> {
        autosurgeon::ReadDoc::list_range(self.doc, obj, range)
    }

    fn length<O: AsRef<ObjId>>(&self, obj: O) -> usize {
        autosurgeon::ReadDoc::length(self.doc, obj)
    }

    fn text<O: AsRef<ObjId>>(&self, obj: O) -> Result<String, AutomergeError> {
        let obj = obj.as_ref();
        let mut memo = self.memo.borrow_mut();
        if let Some(text) = memo.texts.get(obj) {
            return Ok(text.clone());
        }
        let text = autosurgeon::ReadDoc::text(self.doc, obj)?;
        memo.texts.insert(obj.clone(), text.clone());
        Ok(text)
    }

    fn parents<O: AsRef<ObjId>>(&self, obj: O) -> Result<Self::Parents<'_>, AutomergeError> {
        autosurgeon::ReadDoc::parents(self.doc, obj)
    }

    fn is_empty(&self) -> bool {
        autosurgeon::ReadDoc::is_empty(self.doc)
    }
}
