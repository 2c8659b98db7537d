//! The process table: ids, instance numbers (with reservations for instances being built),
//! selectors. Only in-memory work happens under its lock.

use crate::instances::events::Events;
use crate::instances::instance::{CtlSender, Shared};
use crate::instances::limits::Limits;
use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex};

/// A reserved id and instance number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot {
    pub id: u32,
    pub instance: u32,
}

pub struct Entry {
    pub shared: Arc<Mutex<Shared>>,
    pub ctl: CtlSender,
}

#[derive(Default)]
pub struct Registry {
    pub entries: BTreeMap<u32, Entry>,
    next_id: u32,
    /// Ids handed out by `reserve` whose entries are still being built outside the lock, with
    /// their app name and instance number: nobody else may take them meanwhile.
    pending: BTreeMap<u32, (String, u32)>,
    /// Told of every instance listed with a memory limit (the instances' context's).
    limits: Arc<Limits>,
    /// Told of every instance that leaves (the instances' context's).
    events: Arc<Events>,
}

impl Registry {
    pub fn new(limits: Arc<Limits>, events: Arc<Events>) -> Registry {
        Registry {
            limits,
            events,
            ..Default::default()
        }
    }

    /// Reserve ids and the lowest free instance numbers of `name` for `count` new instances,
    /// refusing to go past `max` instances of that name (counting reservations not yet filled).
    /// Fill each with `insert`, or give them back with `release`.
    pub fn reserve(&mut self, name: &str, count: u32, max: u32) -> Result<Vec<Slot>, String> {
        let used: Vec<u32> = self
            .entries
            .values()
            .filter_map(|e| {
                let s = e.shared.lock().unwrap();
                (s.spec.name == name).then_some(s.instance)
            })
            .chain(
                self.pending
                    .values()
                    .filter(|(n, _)| n == name)
                    .map(|&(_, i)| i),
            )
            .collect();
        let total = used.len() as u64 + u64::from(count);
        if total > u64::from(max) {
            return Err(pmr_core::protocol::too_many_instances(name, total, max));
        }
        let end = self
            .next_id
            .checked_add(count)
            .ok_or("no process ids left: delete every app to start again from 0")?;
        let slots: Vec<Slot> = (self.next_id..end)
            .zip(free_instance_numbers(&used, count as usize))
            .map(|(id, instance)| Slot { id, instance })
            .collect();
        self.next_id = end;
        for s in &slots {
            self.pending.insert(s.id, (name.to_string(), s.instance));
        }
        Ok(slots)
    }

    /// Reserve exactly `slot` for an instance of `name` (a dump's id and instance number), if
    /// neither is taken; `false` otherwise (the caller then takes any free slot).
    pub fn reserve_at(&mut self, name: &str, slot: Slot) -> bool {
        let id_taken = self.entries.contains_key(&slot.id) || self.pending.contains_key(&slot.id);
        let instance_taken = self.entries.values().any(|e| {
            let s = e.shared.lock().unwrap();
            s.spec.name == name && s.instance == slot.instance
        }) || self
            .pending
            .values()
            .any(|(n, i)| n == name && *i == slot.instance);
        if id_taken || instance_taken || slot.id == u32::MAX {
            return false;
        }
        self.next_id = self.next_id.max(slot.id + 1);
        self.pending
            .insert(slot.id, (name.to_string(), slot.instance));
        true
    }

    /// Give back reserved slots that will not be filled.
    pub fn release(&mut self, slots: &[Slot]) {
        for s in slots {
            self.pending.remove(&s.id);
        }
        self.reset_ids_if_empty();
    }

    /// Fill a slot from `reserve`.
    pub fn insert(&mut self, id: u32, entry: Entry) {
        self.pending.remove(&id);
        self.note_limit(&entry);
        self.entries.insert(id, entry);
    }

    /// Wakes the memory guard for an instance with a limit. Under the table's lock, which the
    /// guard's look takes after reading the count: a look that read the new count finds the
    /// instance (noted from `Shared::new`, before it was listed here, a look could read the
    /// new count, find nothing and go idle for good).
    fn note_limit(&self, entry: &Entry) {
        self.limits.note_spec(&entry.shared.lock().unwrap().spec);
    }

    /// Put back an instance of the table a dead daemon left, under its old id; new ids come
    /// after the highest one.
    pub fn restore(&mut self, id: u32, entry: Entry) {
        self.note_limit(&entry);
        self.entries.insert(id, entry);
        self.next_id = self.next_id.max(id.saturating_add(1));
    }

    /// As PM2: ids start again from 0 once the table is empty.
    pub fn remove(&mut self, id: u32) {
        if let Some(e) = self.entries.remove(&id) {
            if self.events.wanted() {
                let s = e.shared.lock().unwrap();
                self.events.deleted(id, &s.spec.name, s.restart_time);
            }
        }
        self.reset_ids_if_empty();
    }

    fn reset_ids_if_empty(&mut self) {
        if self.entries.is_empty() && self.pending.is_empty() {
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

    /// As `snapshot`, but each child environment holds only the `increment_var` variable:
    /// all that `jlist` and `ls` read of it, and most of what a thousand copies would cost.
    pub fn snapshot_lean(&self) -> Vec<(u32, Shared)> {
        self.entries
            .iter()
            .map(|(&id, e)| (id, Self::lean_of(e)))
            .collect()
    }

    /// [`Registry::snapshot_lean`] of these ids (those that exist).
    pub fn snapshot_lean_of(&self, ids: &[u32]) -> Vec<(u32, Shared)> {
        ids.iter()
            .filter_map(|id| self.entries.get(id).map(|e| (*id, Self::lean_of(e))))
            .collect()
    }

    fn lean_of(e: &Entry) -> Shared {
        let mut s = e.shared.lock().unwrap();
        // Taken out for the copy and put back under the same lock: nobody sees it gone.
        let env = std::mem::take(&mut s.env);
        let mut copy = s.clone();
        if let Some((k, v)) = copy
            .spec
            .increment_var
            .as_ref()
            .and_then(|var| env.get(var).map(|v| (var, v)))
        {
            copy.env.insert(k.clone(), v.clone());
        }
        s.env = env;
        copy
    }

    /// Selectors as PM2 reads them: `all` (every app but the PM2 modules), a name or a script path, a namespace, an id, or
    /// `/regex/`. Name (or path) is tried before namespace before id, so an app named `3`
    /// shadows id 3. A path is resolved against `cwd` (the CLI's) and matches the apps whose
    /// script is that file (PM2's `name == x || pm_exec_path == path.resolve(x)`).
    pub fn resolve(&self, selectors: &[String], cwd: Option<&Path>) -> Result<Vec<u32>, String> {
        let mut ids = Vec::new();
        let snap: Vec<(u32, String, String, String, bool)> = self
            .entries
            .iter()
            .map(|(&id, e)| {
                let s = e.shared.lock().unwrap();
                (
                    id,
                    s.spec.name.clone(),
                    s.spec.namespace.clone(),
                    s.spec.script.clone(),
                    s.spec.pmx_module,
                )
            })
            .collect();
        for sel in selectors {
            let found: Vec<u32> = if sel == "all" {
                // As PM2's `_operate`: `all` leaves the modules alone (named, they are acted on).
                snap.iter().filter(|x| !x.4).map(|x| x.0).collect()
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
                let path = script_path(sel, cwd);
                let by_name: Vec<u32> = snap
                    .iter()
                    .filter(|x| &x.1 == sel || path.as_deref() == Some(x.3.as_str()))
                    .map(|x| x.0)
                    .collect();
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

/// `sel` as the absolute path an app's script would have: joined to `cwd` and cleaned of `.`
/// and `..` without touching the file system, as Node's `path.resolve` (and pmr's spec
/// builder) do. `None` when there is nothing to resolve against.
fn script_path(sel: &str, cwd: Option<&Path>) -> Option<String> {
    let p = Path::new(sel);
    let joined = if p.is_absolute() {
        p.to_path_buf()
    } else {
        cwd?.join(p)
    };
    let mut out = PathBuf::new();
    for c in joined.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    Some(out.to_string_lossy().into_owned())
}

/// The `count` lowest numbers not in `used` (PM2 gives each new instance the lowest free
/// instance number). One pass over `used` and one over the result: no quadratic search.
fn free_instance_numbers(used: &[u32], count: usize) -> Vec<u32> {
    // Among the first `used.len() + count` numbers at least `count` are free.
    let span = used.len() + count;
    let mut taken = vec![false; span];
    for &u in used {
        if let Some(t) = taken.get_mut(u as usize) {
            *t = true;
        }
    }
    taken
        .iter()
        .enumerate()
        .filter(|(_, &t)| !t)
        .map(|(n, _)| n as u32)
        .take(count)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::{free_instance_numbers, script_path, Registry, Slot};
    use std::path::Path;

    #[test]
    fn a_dump_slot_is_reserved_exactly_once_and_later_ids_follow_it() {
        let mut reg = Registry::default();
        let s = Slot { id: 5, instance: 1 };
        assert!(reg.reserve_at("web", s));
        assert!(!reg.reserve_at("api", s), "id taken");
        assert!(
            !reg.reserve_at("web", Slot { id: 6, instance: 1 }),
            "instance taken"
        );
        assert!(reg.reserve_at("web", Slot { id: 2, instance: 0 }));
        let next = reg.reserve("api", 1, 10).unwrap();
        assert_eq!(next, vec![Slot { id: 6, instance: 0 }]);
    }

    #[test]
    fn script_paths_resolve_as_nodes_path_resolve() {
        let cwd = Some(Path::new("/srv/app/sub"));
        assert_eq!(script_path("../app.js", cwd).unwrap(), "/srv/app/app.js");
        assert_eq!(
            script_path("./a/./b.js", cwd).unwrap(),
            "/srv/app/sub/a/b.js"
        );
        assert_eq!(script_path("/x/../y.js", None).unwrap(), "/y.js");
        assert_eq!(script_path("web", cwd).unwrap(), "/srv/app/sub/web");
        assert_eq!(script_path("web", None), None);
    }

    fn numbers(slots: &[Slot]) -> Vec<u32> {
        slots.iter().map(|s| s.instance).collect()
    }

    #[test]
    fn reservations_are_not_handed_out_twice_and_count_towards_the_maximum() {
        let mut reg = Registry::default();
        // Two registrations of one name while neither is inserted yet: disjoint numbers and ids.
        let a = reg.reserve("web", 2, 5).unwrap();
        let b = reg.reserve("web", 2, 5).unwrap();
        assert_eq!(numbers(&a), [0, 1]);
        assert_eq!(numbers(&b), [2, 3]);
        assert_eq!(
            a.iter().chain(&b).map(|s| s.id).collect::<Vec<_>>(),
            [0, 1, 2, 3]
        );
        // Another name has its own numbers.
        assert_eq!(numbers(&reg.reserve("api", 1, 5).unwrap()), [0]);
        // 4 reserved + 2 > 5: refused, nothing taken.
        let e = reg.reserve("web", 2, 5).unwrap_err();
        assert!(
            e.contains("6 instances") && e.contains("maximum of 5"),
            "{e}"
        );
        assert_eq!(numbers(&reg.reserve("web", 1, 5).unwrap()), [4]);
        // Released numbers are free again, lowest first.
        reg.release(&a);
        assert_eq!(numbers(&reg.reserve("web", 1, 5).unwrap()), [0]);
    }

    #[test]
    fn ids_start_again_from_zero_only_when_nothing_is_pending() {
        let mut reg = Registry::default();
        let a = reg.reserve("web", 1, 5).unwrap();
        let b = reg.reserve("web", 1, 5).unwrap();
        reg.release(&a);
        // `b` is still being built: its id must not be handed out again.
        assert_eq!(reg.reserve("web", 1, 5).unwrap()[0].id, 2);
        reg.release(&b);
    }

    #[test]
    fn absurd_counts_are_refused() {
        let mut reg = Registry::default();
        assert!(reg.reserve("web", u32::MAX, 1024).is_err());
        assert!(reg.reserve("web", 1024, 1024).is_ok());
    }

    #[test]
    fn lowest_free_numbers_fill_the_holes_first() {
        assert_eq!(free_instance_numbers(&[], 3), [0, 1, 2]);
        assert_eq!(free_instance_numbers(&[0, 2, 5], 4), [1, 3, 4, 6]);
        assert_eq!(free_instance_numbers(&[3, 1], 2), [0, 2]);
        assert_eq!(free_instance_numbers(&[0, 1, 2], 0), Vec::<u32>::new());
        // Numbers far above the span (and duplicates) do not matter.
        assert_eq!(free_instance_numbers(&[u32::MAX, 0, 0], 2), [1, 2]);
    }

    #[test]
    fn allocation_is_linear() {
        // 200,000 used numbers with every other one free: a quadratic search would take
        // minutes here, a linear one milliseconds.
        let used: Vec<u32> = (0..400_000).filter(|n| n % 2 == 0).collect();
        let t = std::time::Instant::now();
        let got = free_instance_numbers(&used, 200_000);
        assert_eq!(got.len(), 200_000);
        assert_eq!(&got[..3], [1, 3, 5]);
        assert_eq!(got[199_999], 399_999);
        assert!(
            t.elapsed() < std::time::Duration::from_secs(5),
            "{:?}",
            t.elapsed()
        );
    }

    #[test]
    fn a_lean_snapshot_keeps_only_the_increment_var_and_leaves_the_entry_whole() {
        use crate::instances::instance::{Paths, Shared};
        let mut spec = crate::instances::policy::tests::spec();
        spec.increment_var = Some("PORT".into());
        let env: pmr_core::env_map::Env = [("PORT", "3001"), ("HOME", "/h")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<std::collections::BTreeMap<String, String>>()
            .into();
        let paths = Paths {
            out: "o".into(),
            err: "e".into(),
            combined: None,
            pid: "p".into(),
        };
        let shared = Shared::new(
            std::sync::Arc::new(spec),
            0,
            pmr_core::protocol::Status::Online,
            env.clone(),
            paths,
        );
        let shared = std::sync::Arc::new(std::sync::Mutex::new(shared));
        let (ctl, _rx) = crate::instances::instance::channel();
        let mut reg = Registry::default();
        reg.restore(
            7,
            crate::instances::registry::Entry {
                shared: shared.clone(),
                ctl,
            },
        );
        let lean = reg.snapshot_lean();
        assert_eq!(lean.len(), 1);
        assert_eq!(lean[0].0, 7);
        assert_eq!(
            lean[0].1.env.iter().collect::<Vec<_>>(),
            [(&"PORT".to_string(), &"3001".to_string())]
        );
        assert_eq!(shared.lock().unwrap().env, env);
        assert_eq!(reg.snapshot()[0].1.env, env);
    }
}
