//! What reading each object gave, kept between compiles. Reading (YAML into the spanned tree,
//! the schema walk, the typed model) and admission are per object and most of a compile's
//! time, while a change to the world is usually one object: the reader keeps each object's
//! source under a fixed file id with the objects and diagnostics it gave, and reads again only
//! the objects whose text changed. The graph and everything after it are built whole every
//! time, from the same parts a full read gives, so the outcome is the one `aigw check` would
//! give for the same objects (a test compares the two).
//!
//! A removed object's file id is reused by the next new one (its file emptied meanwhile); when
//! the empty files outnumber the objects, the reader starts over and reads everything.

use super::world::{Key, Snapshot};
use aigw_diag::{FileId, SourceMap};
use aigw_syntax::Loaded;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// The sources of the world as last read, and what each object gave.
#[derive(Debug, Default)]
pub struct Reader {
    sources: SourceMap,
    slots: HashMap<Key, Slot>,
    free: Vec<FileId>,
}

#[derive(Debug)]
struct Slot {
    file: FileId,
    text: Arc<str>,
    loaded: Loaded,
}

/// What one [`Reader::read`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Reads {
    /// Objects read (new or changed).
    pub read: usize,
    /// Objects whose earlier reading was reused.
    pub reused: usize,
}

impl Reader {
    /// Brings the sources up to `world`, reading and admitting each object that is new or
    /// changed, and returns them with what loading and admitting them all gives.
    pub fn read(&mut self, world: &Snapshot) -> (SourceMap, Loaded, Reads) {
        if self.free.len() > self.slots.len().max(64) {
            *self = Reader::default();
        }
        let live: HashSet<&Key> = world.objects.iter().map(|(k, _)| k).collect();
        let gone: Vec<Key> = self
            .slots
            .keys()
            .filter(|k| !live.contains(k))
            .cloned()
            .collect();
        for key in gone {
            if let Some(slot) = self.slots.remove(&key) {
                self.sources.replace(slot.file, "", "");
                self.free.push(slot.file);
            }
        }
        let mut changed: Vec<(FileId, &Key)> = Vec::new();
        for (key, text) in &world.objects {
            let file = match self.slots.get(key) {
                Some(slot) if Arc::ptr_eq(&slot.text, text) || slot.text == *text => continue,
                Some(slot) => {
                    self.sources
                        .replace(slot.file, key.source_name(), text.clone());
                    slot.file
                }
                None => match self.free.pop() {
                    Some(file) => {
                        self.sources.replace(file, key.source_name(), text.clone());
                        file
                    }
                    None => self.sources.add(key.source_name(), text.clone()),
                },
            };
            self.slots.insert(
                key.clone(),
                Slot {
                    file,
                    text: text.clone(),
                    loaded: Loaded::default(),
                },
            );
            changed.push((file, key));
        }
        let files: Vec<FileId> = changed.iter().map(|(f, _)| *f).collect();
        let reads = Reads {
            read: changed.len(),
            reused: world.objects.len() - changed.len(),
        };
        for ((_, mut loaded), (_, key)) in aigw_syntax::load_each(&self.sources, &files)
            .into_iter()
            .zip(&changed)
        {
            crate::admit(&mut loaded);
            if let Some(slot) = self.slots.get_mut(*key) {
                slot.loaded = loaded;
            }
        }
        let parts = world
            .objects
            .iter()
            .filter_map(|(key, _)| self.slots.get(key).map(|s| s.loaded.clone()));
        let loaded = aigw_syntax::assemble(&self.sources, parts);
        (self.sources.clone(), loaded, reads)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{CheckOptions, check, check_loaded};

    fn key(name: &str) -> Key {
        Key {
            kind: super::super::kinds::WATCHED
                .iter()
                .position(|w| w.kind == "AIServiceBackend")
                .unwrap_or(0),
            namespace: "default".into(),
            name: name.into(),
        }
    }

    fn backend(name: &str, schema: &str) -> Arc<str> {
        format!(
            "apiVersion: aigateway.envoyproxy.io/v1alpha1\nkind: AIServiceBackend\nmetadata:\n  name: {name}\n  namespace: default\nspec:\n  schema:\n    name: {schema}\n  backendRef:\n    name: {name}\n    kind: Backend\n    group: gateway.envoyproxy.io\n"
        )
        .into()
    }

    /// An object's name and text.
    type Named<'a> = (&'a str, &'a Arc<str>);

    fn world(objects: &[Named<'_>]) -> Snapshot {
        Snapshot {
            revision: 0,
            objects: objects
                .iter()
                .map(|(n, t)| (key(n), Arc::clone(t)))
                .collect(),
        }
    }

    /// What `aigw check` says of the same objects, as text.
    fn full(world: &Snapshot) -> String {
        let mut sources = SourceMap::new();
        for (k, text) in &world.objects {
            sources.add(k.source_name(), text.clone());
        }
        render(&check(sources, CheckOptions::default()))
    }

    fn render(checked: &crate::Checked) -> String {
        aigw_diag::render_json(&checked.diagnostics, &checked.sources)
    }

    #[test]
    fn only_changed_objects_are_read_again_and_the_outcome_is_aigw_checks() {
        let (a, b, bad, c) = (
            backend("a", "OpenAI"),
            backend("b", "OpenAI"),
            backend("b", "NoSuchSchema"),
            backend("c", "OpenAI"),
        );
        let mut reader = Reader::default();
        let steps: [(&[Named<'_>], Reads); 4] = [
            (&[("a", &a), ("b", &b)], Reads { read: 2, reused: 0 }),
            (&[("a", &a), ("b", &bad)], Reads { read: 1, reused: 1 }),
            (&[("a", &a)], Reads { read: 0, reused: 1 }),
            (&[("a", &a), ("c", &c)], Reads { read: 1, reused: 1 }),
        ];
        for (i, (objects, want)) in steps.into_iter().enumerate() {
            let world = world(objects);
            let (sources, loaded, reads) = reader.read(&world);
            assert_eq!(reads, want, "step {i}");
            let checked = check_loaded(sources, loaded, CheckOptions::default());
            assert_eq!(render(&checked), full(&world), "step {i}");
            if i == 1 {
                assert!(
                    render(&checked).contains("NoSuchSchema"),
                    "step 1 is refused"
                );
            }
        }
        // `c` took the file id `b` left.
        assert_eq!(reader.sources.files().count(), 2);
    }
}
