//! Options given with `restart`/`reload`/`start` of existing apps (a [`SpecPatch`]): the new
//! spec of every selected instance, computed under one registry lock before anything restarts,
//! so that a bad value changes nothing.

use crate::instances::registry::Registry;
use pmr_core::protocol::SpecPatch;
use pmr_core::spec::AppSpec;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// The patched spec of each of `ids` (ids no longer in the table are left out), or why the
/// patch cannot be applied to all of them.
pub fn patched(
    reg: &Registry,
    ids: &[u32],
    patch: &SpecPatch,
) -> Result<BTreeMap<u32, Arc<AppSpec>>, String> {
    let mut out = BTreeMap::new();
    let mut old_names = BTreeSet::new();
    for &id in ids {
        let Some(e) = reg.entries.get(&id) else {
            continue;
        };
        let spec = e.shared.lock().unwrap().spec.clone();
        let new = patch
            .apply(&spec)
            .map_err(|e| format!("[{}]({id}) {e}", spec.name))?;
        old_names.insert(spec.name.clone());
        out.insert(id, Arc::new(new));
    }
    if let Some(name) = patch.fields.name.as_deref() {
        // pmr decision: instance numbers are counted per name, so two apps may not share one,
        // and one new name for several apps would merge them.
        if old_names.len() > 1 {
            return Err(format!(
                "--name renames one app; the selection has {}",
                old_names.into_iter().collect::<Vec<_>>().join(", ")
            ));
        }
        let taken = reg
            .entries
            .iter()
            .any(|(id, e)| !out.contains_key(id) && e.shared.lock().unwrap().spec.name == name);
        if taken && !old_names.contains(name) {
            return Err(format!(
                "cannot rename to \"{name}\": another app has that name"
            ));
        }
    }
    Ok(out)
}
