//! Rooms of one listener: named sets of sessions that a flow publishes to.
//! Membership lives here, beside the sessions, so a publish to a room reaches
//! its members without crossing into JS once per member, and a session that ends
//! leaves its rooms without the flow having to track it.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// Rooms and their members; `H` is what a publish sends through (a session's
/// handle), kept here so a publish needs no look-up in the session table.
pub struct Rooms<H> {
    members: HashMap<Arc<str>, HashMap<u32, H>>,
    /// The rooms of each session that is in any, so that its end is cheap.
    of: HashMap<u32, Vec<Arc<str>>>,
}

impl<H> Default for Rooms<H> {
    fn default() -> Self {
        Rooms { members: HashMap::new(), of: HashMap::new() }
    }
}

impl<H: Clone> Rooms<H> {
    /// Puts session `id` in `room` (nothing if it is there already).
    pub fn join(&mut self, id: u32, handle: &H, room: &str) {
        let name = match self.members.get_key_value(room) {
            Some((name, _)) => name.clone(),
            None => Arc::from(room),
        };
        let room = self.members.entry(name.clone()).or_default();
        if room.insert(id, handle.clone()).is_none() {
            self.of.entry(id).or_default().push(name);
        }
    }

    /// Takes session `id` out of `room`; a room left empty is forgotten.
    pub fn leave(&mut self, id: u32, room: &str) {
        let Some(members) = self.members.get_mut(room) else { return };
        if members.remove(&id).is_none() {
            return;
        }
        if members.is_empty() {
            self.members.remove(room);
        }
        if let Some(rooms) = self.of.get_mut(&id) {
            rooms.retain(|r| &**r != room);
            if rooms.is_empty() {
                self.of.remove(&id);
            }
        }
    }

    /// Session `id` ended: it leaves every room it was in.
    pub fn ended(&mut self, id: u32) {
        for room in self.of.remove(&id).unwrap_or_default() {
            if let Some(members) = self.members.get_mut(&room) {
                members.remove(&id);
                if members.is_empty() {
                    self.members.remove(&room);
                }
            }
        }
    }

    /// Calls `each` once for every member of any of `rooms` (once, however many
    /// of them it is in); returns how many.
    pub fn for_members(&self, rooms: &[Arc<str>], mut each: impl FnMut(u32, &H)) -> usize {
        if let [room] = rooms {
            let members = self.members.get(room);
            members.into_iter().flatten().for_each(|(&id, h)| each(id, h));
            return members.map_or(0, HashMap::len);
        }
        let mut seen = HashSet::new();
        for members in rooms.iter().filter_map(|r| self.members.get(r)) {
            for (&id, h) in members {
                if seen.insert(id) {
                    each(id, h);
                }
            }
        }
        seen.len()
    }

    /// The rooms session `id` is in, in the order it joined them.
    pub fn rooms_of(&self, id: u32) -> &[Arc<str>] {
        self.of.get(&id).map_or(&[], Vec::as_slice)
    }

    /// How many rooms have members.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Members of `room`.
    pub fn count(&self, room: &str) -> usize {
        self.members.get(room).map_or(0, HashMap::len)
    }

    /// Every room with its number of members.
    pub fn sizes(&self) -> impl Iterator<Item = (&str, usize)> {
        self.members.iter().map(|(name, m)| (&**name, m.len()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<Arc<str>> {
        list.iter().map(|&r| Arc::from(r)).collect()
    }

    fn members(rooms: &Rooms<u32>, of: &[&str]) -> Vec<u32> {
        let mut out = Vec::new();
        rooms.for_members(&names(of), |id, _| out.push(id));
        out.sort_unstable();
        out
    }

    #[test]
    fn a_publish_reaches_each_member_of_its_rooms_once() {
        let mut rooms = Rooms::default();
        rooms.join(1, &1, "a");
        rooms.join(2, &2, "a");
        rooms.join(2, &2, "b");
        rooms.join(3, &3, "b");
        rooms.join(2, &2, "a"); // twice: still once
        assert_eq!(members(&rooms, &["a"]), [1, 2]);
        assert_eq!(members(&rooms, &["a", "b"]), [1, 2, 3]);
        assert_eq!(members(&rooms, &["nobody"]), Vec::<u32>::new());
        assert_eq!(rooms.rooms_of(2).iter().map(|r| &**r).collect::<Vec<_>>(), ["a", "b"]);
    }

    #[test]
    fn rooms_empty_themselves_as_members_leave_or_end() {
        let mut rooms = Rooms::default();
        for id in 0..1000 {
            rooms.join(id, &id, &format!("room{}", id % 10));
            rooms.join(id, &id, "all");
        }
        assert_eq!((rooms.len(), rooms.count("room3"), rooms.count("all")), (11, 100, 1000));
        rooms.leave(3, "room3");
        rooms.leave(3, "room4"); // not a member: nothing changes
        assert_eq!((rooms.count("room3"), rooms.count("room4"), rooms.rooms_of(3).len()), (99, 100, 1));
        for id in 0..1000 {
            rooms.ended(id);
        }
        assert!(rooms.is_empty(), "{} rooms left", rooms.len());
        assert!(rooms.of.is_empty(), "memberships of {} sessions left", rooms.of.len());
    }
}
