//! An app's environment variables, stored as a base shared between apps plus the app's own
//! differences.
//!
//! Every app carries the whole environment of the shell that started it (PM2 does the same),
//! and the daemon keeps two copies per process: the spec's and the child's. Measured with
//! heaptrack, 1,000 `sleep` apps started from one file held 11 KB of environment maps each,
//! over a quarter of the daemon's heap. Apps started together, or from the same shell, differ in
//! a few variables (`PORT`, `pm_id`, `name`, ...): [`Env::from`] compares a new map with the
//! last base made and keeps only the differences when there are few of them, so the shell's
//! variables exist once. To everything else an [`Env`] is a sorted map of strings, serialized
//! exactly as one.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::cmp::Ordering;
use std::collections::{btree_map, BTreeMap};
use std::iter::Peekable;
use std::sync::{Arc, Mutex, Weak};

type Map = BTreeMap<String, String>;

/// The shared part of an [`Env`].
pub type Base = Map;

/// The base the next map is compared with: the last one made (held only by the apps using it).
static LATEST: Mutex<Weak<Map>> = Mutex::new(Weak::new());

#[derive(Clone)]
pub struct Env {
    base: Arc<Map>,
    /// What differs from `base`: a value set, or `None` for a variable of `base` removed.
    own: BTreeMap<String, Option<String>>,
}

/// The base of every empty [`Env`]: making one allocates nothing (the `jlist` snapshot takes
/// each instance's environment out and puts it back, a thousand times per call).
static EMPTY: std::sync::LazyLock<Arc<Map>> = std::sync::LazyLock::new(Arc::default);

impl Default for Env {
    fn default() -> Env {
        Env {
            base: EMPTY.clone(),
            own: BTreeMap::new(),
        }
    }
}

impl Env {
    pub fn new() -> Env {
        Env::default()
    }

    #[inline]
    pub fn get(&self, key: &str) -> Option<&String> {
        match self.own.get(key) {
            Some(v) => v.as_ref(),
            None => self.base.get(key),
        }
    }

    pub fn contains_key(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    pub fn insert(&mut self, key: String, value: String) {
        if self.base.get(&key) == Some(&value) {
            self.own.remove(&key);
        } else {
            self.own.insert(key, Some(value));
        }
    }

    pub fn remove(&mut self, key: &str) {
        if self.base.contains_key(key) {
            self.own.insert(key.to_string(), None);
        } else {
            self.own.remove(key);
        }
    }

    pub fn clear(&mut self) {
        *self = Env::default();
    }

    pub fn len(&self) -> usize {
        self.iter().count()
    }

    pub fn is_empty(&self) -> bool {
        self.iter().next().is_none()
    }

    /// Variables in key order, as a `BTreeMap` gives them.
    #[inline]
    pub fn iter(&self) -> Iter<'_> {
        Iter {
            base: self.base.iter().peekable(),
            own: self.own.iter().peekable(),
            taken: 0,
        }
    }

    /// The shared part, which renderers may cache work for (see [`Iter::next_sourced`]).
    #[inline]
    pub fn base(&self) -> &Arc<Base> {
        &self.base
    }

    pub fn keys(&self) -> impl Iterator<Item = &String> {
        self.iter().map(|(k, _)| k)
    }

    pub fn to_map(&self) -> Map {
        self.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }
}

/// The differences of `map` from `base`, if there are at most `limit`.
fn diff(base: &Map, map: &Map, limit: usize) -> Option<BTreeMap<String, Option<String>>> {
    let mut own = BTreeMap::new();
    let (mut b, mut m) = (base.iter().peekable(), map.iter().peekable());
    loop {
        let order = match (b.peek(), m.peek()) {
            (None, None) => return Some(own),
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (Some((bk, _)), Some((mk, _))) => bk.cmp(mk),
        };
        match order {
            Ordering::Less => {
                let (k, _) = b.next()?;
                own.insert(k.clone(), None);
            }
            Ordering::Greater => {
                let (k, v) = m.next()?;
                own.insert(k.clone(), Some(v.clone()));
            }
            Ordering::Equal => {
                let ((_, bv), (k, v)) = (b.next()?, m.next()?);
                if bv != v {
                    own.insert(k.clone(), Some(v.clone()));
                }
            }
        }
        if own.len() > limit {
            return None;
        }
    }
}

impl From<Map> for Env {
    /// Shares the last base made when `map` differs from it in at most a quarter of its
    /// variables; otherwise `map` becomes the base of the next ones.
    fn from(map: Map) -> Env {
        Env::shared(map, &LATEST)
    }
}

impl Env {
    fn shared(map: Map, latest: &Mutex<Weak<Map>>) -> Env {
        let mut latest = latest.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(base) = latest.upgrade() {
            if let Some(own) = diff(&base, &map, map.len() / 4) {
                return Env { base, own };
            }
        }
        let base = Arc::new(map);
        *latest = Arc::downgrade(&base);
        Env {
            base,
            own: BTreeMap::new(),
        }
    }
}

impl FromIterator<(String, String)> for Env {
    fn from_iter<I: IntoIterator<Item = (String, String)>>(iter: I) -> Env {
        Env::from(iter.into_iter().collect::<Map>())
    }
}

impl Extend<(String, String)> for Env {
    fn extend<I: IntoIterator<Item = (String, String)>>(&mut self, iter: I) {
        for (k, v) in iter {
            self.insert(k, v);
        }
    }
}

impl std::ops::Index<&str> for Env {
    type Output = String;
    fn index(&self, key: &str) -> &String {
        self.get(key)
            .unwrap_or_else(|| panic!("no variable {key} in the environment"))
    }
}

impl PartialEq for Env {
    fn eq(&self, other: &Env) -> bool {
        self.iter().eq(other.iter())
    }
}

impl std::fmt::Debug for Env {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl Serialize for Env {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.iter())
    }
}

impl<'de> Deserialize<'de> for Env {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Env, D::Error> {
        Map::deserialize(d).map(Env::from)
    }
}

/// The merge of the base and the app's differences, in key order.
pub struct Iter<'a> {
    base: Peekable<btree_map::Iter<'a, String, String>>,
    own: Peekable<btree_map::Iter<'a, String, Option<String>>>,
    /// How many entries of `base` were passed.
    taken: usize,
}

impl<'a> Iter<'a> {
    /// The next variable, with its position in [`Env::base`] when the value is the base's.
    #[inline]
    pub fn next_sourced(&mut self) -> Option<(&'a String, &'a String, Option<usize>)> {
        loop {
            let order = match (self.base.peek(), self.own.peek()) {
                (None, None) => return None,
                (Some(_), None) => Ordering::Less,
                (None, Some(_)) => Ordering::Greater,
                (Some((bk, _)), Some((ok, _))) => bk.cmp(ok),
            };
            if order == Ordering::Less {
                self.taken += 1;
                return self.base.next().map(|(k, v)| (k, v, Some(self.taken - 1)));
            }
            if order == Ordering::Equal {
                self.taken += 1;
                self.base.next();
            }
            if let (k, Some(v)) = self.own.next()? {
                return Some((k, v, None));
            }
        }
    }
}

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a String, &'a String);

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        self.next_sourced().map(|(k, v, _)| (k, v))
    }
}

impl<'a> IntoIterator for &'a Env {
    type Item = (&'a String, &'a String);
    type IntoIter = Iter<'a>;
    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> Map {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn shell(extra: &[(&str, &str)]) -> Map {
        let mut m: Map = (0..40)
            .map(|i| (format!("VAR_{i:02}"), format!("value {i}")))
            .collect();
        m.extend(map(extra));
        m
    }

    #[test]
    fn apps_from_one_shell_share_its_variables_and_read_as_their_own_map() {
        let latest = Mutex::new(Weak::new());
        let a = Env::shared(shell(&[("PORT", "3000")]), &latest);
        let mut gone = shell(&[("PORT", "3001"), ("ZZ", "z")]);
        gone.remove("VAR_07");
        let b = Env::shared(gone.clone(), &latest);
        assert!(Arc::ptr_eq(&a.base, &b.base), "the shell's variables once");
        assert_eq!(b.own.len(), 3, "{:?}", b.own);
        assert_eq!(b.to_map(), gone);
        assert_eq!(b.len(), gone.len());
        assert!(b.iter().eq(gone.iter()), "same order as the map");
        assert_eq!(b.get("VAR_07"), None);
        assert_eq!(b["PORT"], "3001");
        assert_eq!(a["PORT"], "3000");
        assert_eq!(
            serde_json::to_string(&b).unwrap(),
            serde_json::to_string(&gone).unwrap()
        );
        let back: Map = serde_json::from_str(&serde_json::to_string(&b).unwrap()).unwrap();
        let back = Env::shared(back, &latest);
        assert_eq!(back, b);
        assert!(Arc::ptr_eq(&back.base, &b.base));
        let parsed: Env = serde_json::from_str(&serde_json::to_string(&b).unwrap()).unwrap();
        assert_eq!(parsed, b);
    }

    #[test]
    fn sourced_entries_point_into_the_base_unless_changed() {
        let latest = Mutex::new(Weak::new());
        let _a = Env::shared(shell(&[("PORT", "3000")]), &latest);
        let mut m = shell(&[("PORT", "3001"), ("AA", "new")]);
        m.remove("VAR_03");
        let b = Env::shared(m, &latest);
        let base: Vec<(&String, &String)> = b.base().iter().collect();
        let mut it = b.iter();
        let mut seen = Vec::new();
        while let Some((k, v, src)) = it.next_sourced() {
            match src {
                Some(i) => assert_eq!(base[i], (k, v), "{k}"),
                None => assert!(b.base().get(k) != Some(v), "{k} is the base's"),
            }
            seen.push((k.clone(), v.clone(), src.is_some()));
        }
        let own: Vec<&str> = seen.iter().filter(|e| !e.2).map(|e| e.0.as_str()).collect();
        assert_eq!(own, ["AA", "PORT"]);
        assert!(!seen.iter().any(|e| e.0 == "VAR_03"));
        assert_eq!(seen.len(), b.len());
    }

    #[test]
    fn a_different_map_is_a_new_base() {
        let latest = Mutex::new(Weak::new());
        let _a = Env::shared(shell(&[]), &latest);
        let small = Env::shared(map(&[("A", "1")]), &latest);
        assert!(small.own.is_empty());
        assert_eq!(small.to_map(), map(&[("A", "1")]));
    }

    #[test]
    fn changes_keep_the_map_semantics() {
        let mut e = Env::shared(shell(&[("A", "1")]), &Mutex::new(Weak::new()));
        e.insert("A".into(), "2".into());
        e.insert("B".into(), "3".into());
        e.remove("VAR_00");
        e.remove("NOT_THERE");
        e.insert("VAR_01".into(), "value 1".into()); // the base's own value: no difference
        let mut want = shell(&[("A", "2"), ("B", "3")]);
        want.remove("VAR_00");
        assert_eq!(e.to_map(), want);
        assert_eq!(e.own.len(), 3, "{:?}", e.own);
        e.insert("VAR_00".into(), "back".into());
        assert_eq!(e["VAR_00"], "back");
        e.extend([("C".to_string(), "4".to_string())]);
        assert!(e.contains_key("C"));
        e.clear();
        assert!(e.is_empty());
        assert_eq!(format!("{e:?}"), "{}");
    }
}
