//! `pm2_env.env` of a `jlist` element written as bytes: the text `env_object` serialises to,
//! each variable's `"key":value` kept apart so the element can copy them to its top level too.
//!
//! Most variables of most apps are the shell's, shared between apps as one base (`env_map`).
//! Their text is made once per base and copied for each app: a thousand apps hold some 40
//! variables each, and escaping them again for every app on every `jlist` was a third of
//! its time. A base's text lives as long as an app holds the base (one per shell that started
//! apps), at most [`MAX_TEXTS`] of them.

use super::jlist::reserved;
use pmr_core::env_map::Base;
use pmr_core::protocol::ProcInfo;
use pmr_core::spec::env_string;
use serde::Serialize;
use serde_json::Value;
use std::ops::Range;
use std::sync::{Arc, Mutex, Weak};

/// The `"key":value` text of every variable of one base, in its order.
struct BaseText {
    bytes: Vec<u8>,
    /// Where each variable's text ends (it starts where the previous one ends).
    ends: Vec<usize>,
    /// Whether its key is one `jlist` writes itself.
    reserved: Vec<bool>,
}

impl BaseText {
    fn new(base: &Base) -> BaseText {
        let mut t = BaseText {
            bytes: Vec::new(),
            ends: Vec::with_capacity(base.len()),
            reserved: Vec::with_capacity(base.len()),
        };
        for (k, v) in base {
            member(&mut t.bytes, k, v);
            t.ends.push(t.bytes.len());
            t.reserved.push(reserved(k));
        }
        t
    }

    fn range(&self, i: usize) -> Range<usize> {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        start..self.ends[i]
    }
}

const MAX_TEXTS: usize = 16;

/// The texts of the bases in use, found by the base's address while an app holds it.
static TEXTS: Mutex<Vec<(Weak<Base>, Arc<BaseText>)>> = Mutex::new(Vec::new());

fn base_text(base: &Arc<Base>) -> Arc<BaseText> {
    let mut texts = TEXTS.lock().unwrap_or_else(|e| e.into_inner());
    texts.retain(|(w, _)| w.strong_count() > 0);
    if let Some((_, t)) = texts
        .iter()
        .find(|(w, _)| std::ptr::eq(w.as_ptr(), Arc::as_ptr(base)))
    {
        return t.clone();
    }
    let t = Arc::new(BaseText::new(base));
    if texts.len() >= MAX_TEXTS {
        texts.remove(0);
    }
    texts.push((Arc::downgrade(base), t.clone()));
    t
}

/// The last base looked up while writing one list (apps started together share it), so most
/// elements need no lock; and the buffers of the last element's [`EnvText`], for the next one
/// (two allocations and their growth per element, thousands per list).
#[derive(Default)]
pub(super) struct Bases<'a> {
    last: Option<(Arc<Base>, Arc<BaseText>)>,
    spare: Option<(Vec<Var<'a>>, Vec<u8>)>,
}

impl<'a> Bases<'a> {
    /// Takes back the buffers of an element written.
    pub fn recycle(&mut self, env: EnvText<'a>) {
        self.spare = Some((env.vars, env.own));
    }

    fn get(&mut self, base: &Arc<Base>) -> Arc<BaseText> {
        match &self.last {
            Some((b, t)) if Arc::ptr_eq(b, base) => t.clone(),
            _ => {
                let t = base_text(base);
                self.last = Some((base.clone(), t.clone()));
                t
            }
        }
    }
}

enum Piece {
    Base(usize),
    Own(Range<usize>),
}

struct Var<'a> {
    key: &'a str,
    piece: Piece,
    object: bool,
    reserved: bool,
}

enum Val<'a> {
    Str(&'a str),
    Json(&'a Value),
    Int(i64),
    /// The base's value, whose text is the base's.
    Base(usize),
}

/// One app's `pm2_env.env`.
pub(super) struct EnvText<'a> {
    base: Option<Arc<BaseText>>,
    own: Vec<u8>,
    vars: Vec<Var<'a>>,
    /// The string under the app's name (its module settings), which `axm_options` reads.
    pub settings: Option<&'a str>,
}

impl<'a> EnvText<'a> {
    /// As `env_object(p, home)`: the spec's variables with the JSON types the config gave,
    /// its object-valued ones, the `increment_var` value the child got as a number, and the
    /// home variable (each of the last two in place when the variable exists).
    pub fn new(p: &'a ProcInfo, home: &'a str, bases: &mut Bases<'a>) -> EnvText<'a> {
        let s = &p.spec;
        let home_var = (!home.is_empty()).then(|| pmr_core::personality::current().home_var());
        let incr = s.increment_var.as_deref().and_then(|var| {
            let n = p.env.get(var)?.parse::<i64>().ok()?;
            Some((var, n))
        });
        let base = (!s.env.base().is_empty()).then(|| bases.get(s.env.base()));
        let (mut vars, mut own) = bases.spare.take().unwrap_or_default();
        vars.clear();
        own.clear();
        vars.reserve(s.env.base().len() + 4);
        let mut t = EnvText {
            base,
            own,
            vars,
            settings: None,
        };
        let (mut home_seen, mut incr_seen) = (false, false);
        let mut over = |k: &str| -> Option<Val<'a>> {
            if home_var == Some(k) {
                home_seen = true;
                return Some(Val::Str(home));
            }
            match incr {
                Some((var, n)) if var == k => {
                    incr_seen = true;
                    Some(Val::Int(n))
                }
                _ => None,
            }
        };
        let mut vars = s.env.iter();
        while let Some((k, v, src)) = vars.next_sourced() {
            let val = over(k).unwrap_or_else(|| match s.env_json.get(k) {
                Some(typed) if env_string(typed).as_deref() == Some(v) => Val::Json(typed),
                _ => src.map_or(Val::Str(v), Val::Base),
            });
            if *k == s.name {
                t.settings = match &val {
                    Val::Str(x) => Some(*x),
                    Val::Json(j) => j.as_str(),
                    Val::Int(_) => None,
                    Val::Base(_) => Some(v.as_str()),
                };
            }
            t.push(k, val);
        }
        for (k, v) in &s.env_json {
            if v.is_object() && !s.env.contains_key(k) {
                let val = over(k).unwrap_or(Val::Json(v));
                if *k == s.name {
                    t.settings = match &val {
                        Val::Str(x) => Some(*x),
                        _ => None,
                    };
                }
                t.push(k, val);
            }
        }
        if let Some((var, n)) = incr {
            if !incr_seen && home_var != Some(var) {
                t.push(var, Val::Int(n));
            }
        }
        if let Some(var) = home_var {
            if !home_seen {
                t.push(var, Val::Str(home));
            }
        }
        t
    }

    fn push(&mut self, key: &'a str, val: Val<'a>) {
        let (piece, object, reserved_key) = match val {
            Val::Base(i) => {
                let r = self.base.as_ref().is_some_and(|b| b.reserved[i]);
                (Piece::Base(i), false, r)
            }
            Val::Str(x) => (self.own_member(key, x), false, reserved(key)),
            Val::Int(n) => (self.own_member(key, &n), false, reserved(key)),
            Val::Json(j) => (self.own_member(key, j), j.is_object(), reserved(key)),
        };
        self.vars.push(Var {
            key,
            piece,
            object,
            reserved: reserved_key,
        });
    }

    fn own_member<T: Serialize + ?Sized>(&mut self, key: &str, v: &T) -> Piece {
        let start = self.own.len();
        member(&mut self.own, key, v);
        Piece::Own(start..self.own.len())
    }

    fn text(&self, v: &Var) -> &[u8] {
        match &v.piece {
            Piece::Base(i) => match &self.base {
                Some(b) => &b.bytes[b.range(*i)],
                None => &[],
            },
            Piece::Own(r) => &self.own[r.clone()],
        }
    }

    /// Whether a variable is named like a key `jlist` writes itself.
    pub fn any_reserved(&self) -> bool {
        self.vars.iter().any(|v| v.reserved)
    }

    /// The object, as `{"key":value,...}`.
    pub fn write_object(&self, out: &mut Vec<u8>) {
        out.push(b'{');
        for (i, v) in self.vars.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(self.text(v));
        }
        out.push(b'}');
    }

    /// Each variable's key, its `"key":value` text, and whether its value is an object.
    pub fn members(&self) -> impl Iterator<Item = (&str, &[u8], bool)> + '_ {
        self.vars.iter().map(|v| (v.key, self.text(v), v.object))
    }
}

/// `"key":value` as `serde_json` writes a member.
fn member<T: Serialize + ?Sized>(out: &mut Vec<u8>, key: &str, v: &T) {
    // Writing into a Vec cannot fail, and every type here serialises.
    let _ = serde_json::to_writer(&mut *out, key);
    out.push(b':');
    let _ = serde_json::to_writer(&mut *out, v);
}
