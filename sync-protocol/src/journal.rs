//! The event journal: a grow-only set of events keyed by id.
//!
//! Inserting an event whose id is already there is a no-op when the
//! content matches (a retry) and a reported conflict when it does not (a
//! client reusing an id, or a forgery); the first copy is kept either way.
//! Merging two journals is set union, so re-sending events is always safe.

use std::collections::BTreeMap;

use crate::event::Event;
use crate::ids::EventId;

/// What inserting one event did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inserted {
    /// A new event.
    New,
    /// The same event was already there.
    Duplicate,
    /// Another event with this id was already there; it is kept.
    Conflict,
}

/// The grow-only event set. See the module docs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Journal {
    events: BTreeMap<EventId, Event>,
}

impl Journal {
    /// An empty journal.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `event` unless its id is taken.
    pub fn insert(&mut self, event: Event) -> Inserted {
        match self.events.get(&event.id) {
            Some(existing) if *existing == event => Inserted::Duplicate,
            Some(_) => Inserted::Conflict,
            None => {
                self.events.insert(event.id, event);
                Inserted::New
            }
        }
    }

    /// The event with `id`.
    pub fn get(&self, id: &EventId) -> Option<&Event> {
        self.events.get(id)
    }

    /// Whether an event with `id` is there.
    pub fn contains(&self, id: &EventId) -> bool {
        self.events.contains_key(id)
    }

    /// Union with `other`; returns how many events were new.
    pub fn merge(&mut self, other: &Journal) -> usize {
        other
            .events
            .values()
            .filter(|e| self.insert((*e).clone()) == Inserted::New)
            .count()
    }

    /// Every event, in id order (UUIDv7: roughly time order).
    pub fn iter(&self) -> impl Iterator<Item = &Event> {
        self.events.values()
    }

    /// Number of events.
    pub fn len(&self) -> usize {
        self.events.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }
}
