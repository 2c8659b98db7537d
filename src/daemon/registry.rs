//! The process table: ids, names, selectors. Only in-memory work happens under its lock.

use super::instance::{CtlSender, Shared};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

pub struct Entry {
    pub shared: Arc<Mutex<Shared>>,
    pub ctl: CtlSender,
}

#[derive(Default)]
pub struct Registry {
    pub entries: BTreeMap<u32, Entry>,
    next_id: u32,
}

impl Registry {
    pub fn next_id(&mut self) -> u32 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    pub fn insert(&mut self, id: u32, entry: Entry) {
        self.entries.insert(id, entry);
    }

    /// As PM2: ids start again from 0 once the table is empty.
    pub fn remove(&mut self, id: u32) {
        self.entries.remove(&id);
        if self.entries.is_empty() {
            self.next_id = 0;
        }
    }

    fn snapshot_of(e: &Entry) -> Shared {
        e.shared.lock().unwrap().clone()
    }

    pub fn snapshot(&self) -> Vec<(u32, Shared)> {
        self.entries
            .iter()
            .map(|(&id, e)| (id, Self::snapshot_of(e)))
            .collect()
    }

    /// The lowest instance number not used by another process of this name (PM2's rule).
    pub fn free_instance_number(&self, name: &str, taken_now: &[u32]) -> u32 {
        let used: Vec<u32> = self
            .entries
            .values()
            .filter_map(|e| {
                let s = e.shared.lock().unwrap();
                (s.spec.name == name).then_some(s.instance)
            })
            .chain(taken_now.iter().copied())
            .collect();
        (0..).find(|n| !used.contains(n)).unwrap()
    }

    /// Selectors as PM2 reads them: `all`, a name, a namespace, an id, or `/regex/`.
    /// Name is tried before namespace before id, so an app named `3` shadows id 3.
    pub fn resolve(&self, selectors: &[String]) -> Result<Vec<u32>, String> {
        let mut ids = Vec::new();
        let snap: Vec<(u32, String, String)> = self
            .entries
            .iter()
            .map(|(&id, e)| {
                let s = e.shared.lock().unwrap();
                (id, s.spec.name.clone(), s.spec.namespace.clone())
            })
            .collect();
        for sel in selectors {
            let found: Vec<u32> = if sel == "all" {
                snap.iter().map(|x| x.0).collect()
            } else if let Some(pat) = sel
                .strip_prefix('/')
                .and_then(|s| s.strip_suffix('/'))
                .filter(|s| !s.is_empty())
            {
                let re = regex::Regex::new(pat).map_err(|e| format!("invalid regex {sel}: {e}"))?;
                snap.iter()
                    .filter(|x| re.is_match(&x.1))
                    .map(|x| x.0)
                    .collect()
            } else {
                let by_name: Vec<u32> = snap.iter().filter(|x| &x.1 == sel).map(|x| x.0).collect();
                if !by_name.is_empty() {
                    by_name
                } else {
                    let by_ns: Vec<u32> =
                        snap.iter().filter(|x| &x.2 == sel).map(|x| x.0).collect();
                    if !by_ns.is_empty() {
                        by_ns
                    } else {
                        sel.parse::<u32>()
                            .ok()
                            .filter(|id| self.entries.contains_key(id))
                            .into_iter()
                            .collect()
                    }
                }
            };
            if found.is_empty() && sel != "all" {
                return Err(format!("process or namespace {sel} not found"));
            }
            ids.extend(found);
        }
        ids.sort_unstable();
        ids.dedup();
        Ok(ids)
    }
}
