//! The JavaScript half of the embedded ecosystem-file evaluator: a small CommonJS module system
//! and the Node built-ins that ecosystem files use (`path`, `os`, `fs`, `url`, `process`,
//! `console`). It is evaluated once per load as an expression and called with the native helpers
//! (`N`, see `js.rs`) and a JSON string of static facts (`S`: environment, cwd, argv, OS facts).
//! It returns the API that `js.rs` drives (`runMain`, `runExpr`, `builtin`, `toJSON`, ...).

/// File name the prelude is compiled under; frames from it are skipped when locating errors.
pub(super) const PRELUDE_NAME: &str = "pmr:prelude";

/// Header of the CommonJS wrapper, on a line of its own before the file's source: line numbers
/// are shifted by one (corrected in `js.rs`), columns are the file's.
pub(super) const CJS_HEADER: &str = "(function (exports, require, module, __filename, __dirname) {";

pub(super) const PRELUDE: &str = r##"(function (N, staticJson) {
'use strict';
const S = JSON.parse(staticJson);
const hasOwn = (o, k) => Object.prototype.hasOwnProperty.call(o, k);

// ---------------------------------------------------------------- path (POSIX, as Node's)
function assertPath(p, name) {
  if (typeof p !== 'string') {
    throw new TypeError('The "' + (name || 'path') + '" argument must be of type string. Received ' +
      (p === null ? 'null' : typeof p));
  }
}
function normalizeString(p, allowAboveRoot) {
  let res = '', lastSegmentLength = 0, lastSlash = -1, dots = 0, code;
  for (let i = 0; i <= p.length; ++i) {
    if (i < p.length) code = p[i];
    else if (code === '/') break;
    else code = '/';
    if (code === '/') {
      if (lastSlash === i - 1 || dots === 1) {
        // nothing
      } else if (dots === 2) {
        if (res.length < 2 || lastSegmentLength !== 2 || !res.endsWith('..')) {
          if (res.length > 2) {
            const idx = res.lastIndexOf('/');
            if (idx === -1) { res = ''; lastSegmentLength = 0; }
            else { res = res.slice(0, idx); lastSegmentLength = res.length - 1 - res.lastIndexOf('/'); }
            lastSlash = i; dots = 0; continue;
          } else if (res.length !== 0) {
            res = ''; lastSegmentLength = 0; lastSlash = i; dots = 0; continue;
          }
        }
        if (allowAboveRoot) { res += res.length > 0 ? '/..' : '..'; lastSegmentLength = 2; }
      } else {
        if (res.length > 0) res += '/' + p.slice(lastSlash + 1, i);
        else res = p.slice(lastSlash + 1, i);
        lastSegmentLength = i - lastSlash - 1;
      }
      lastSlash = i; dots = 0;
    } else if (code === '.' && dots !== -1) {
      ++dots;
    } else {
      dots = -1;
    }
  }
  return res;
}
const path = {
  sep: '/',
  delimiter: ':',
  resolve(...args) {
    let resolved = '', absolute = false;
    for (let i = args.length - 1; i >= -1 && !absolute; i--) {
      const p = i >= 0 ? args[i] : S.cwd;
      assertPath(p, 'paths[' + i + ']');
      if (p.length === 0) continue;
      resolved = p + '/' + resolved;
      absolute = p[0] === '/';
    }
    resolved = normalizeString(resolved, !absolute);
    if (absolute) return '/' + resolved;
    return resolved.length > 0 ? resolved : '.';
  },
  normalize(p) {
    assertPath(p);
    if (p.length === 0) return '.';
    const absolute = p[0] === '/';
    const trailing = p[p.length - 1] === '/';
    p = normalizeString(p, !absolute);
    if (p.length === 0) return absolute ? '/' : (trailing ? './' : '.');
    if (trailing) p += '/';
    return absolute ? '/' + p : p;
  },
  isAbsolute(p) { assertPath(p); return p.length > 0 && p[0] === '/'; },
  join(...args) {
    let joined;
    for (const a of args) {
      assertPath(a);
      if (a.length > 0) joined = joined === undefined ? a : joined + '/' + a;
    }
    return joined === undefined ? '.' : path.normalize(joined);
  },
  relative(from, to) {
    assertPath(from, 'from'); assertPath(to, 'to');
    from = path.resolve(from); to = path.resolve(to);
    if (from === to) return '';
    const f = from.split('/').filter(Boolean), t = to.split('/').filter(Boolean);
    let i = 0;
    while (i < f.length && i < t.length && f[i] === t[i]) i++;
    return f.slice(i).map(() => '..').concat(t.slice(i)).join('/');
  },
  dirname(p) {
    assertPath(p);
    if (p.length === 0) return '.';
    const hasRoot = p[0] === '/';
    let end = -1, matchedSlash = true;
    for (let i = p.length - 1; i >= 1; --i) {
      if (p[i] === '/') { if (!matchedSlash) { end = i; break; } }
      else matchedSlash = false;
    }
    if (end === -1) return hasRoot ? '/' : '.';
    if (hasRoot && end === 1) return '//';
    return p.slice(0, end);
  },
  basename(p, suffix) {
    assertPath(p);
    let end = p.length;
    while (end > 1 && p[end - 1] === '/') end--;
    p = p.slice(0, end);
    let base = p.slice(p.lastIndexOf('/') + 1);
    if (typeof suffix === 'string' && base !== suffix && base.endsWith(suffix)) {
      base = base.slice(0, base.length - suffix.length);
    }
    return base;
  },
  extname(p) {
    assertPath(p);
    const base = path.basename(p);
    const i = base.lastIndexOf('.');
    if (i <= 0 || base === '..') return '';
    return base.slice(i);
  },
  parse(p) {
    assertPath(p);
    const root = p[0] === '/' ? '/' : '';
    const base = path.basename(p), ext = path.extname(p);
    let dir = p.includes('/') ? path.dirname(p) : '';
    return { root, dir, base, ext, name: ext ? base.slice(0, base.length - ext.length) : base };
  },
  format(o) {
    const dir = o.dir || o.root;
    const base = o.base || ((o.name || '') + (o.ext || ''));
    if (!dir) return base;
    return dir === o.root ? dir + base : dir + '/' + base;
  },
  toNamespacedPath(p) { return p; },
};
path.posix = path;

// ---------------------------------------------------------------- url
function fileURLToPath(u) {
  const s = typeof u === 'string' ? u : (u && u.href);
  if (typeof s !== 'string' || !s.startsWith('file://')) throw new TypeError('The URL must be of scheme file');
  return decodeURIComponent(s.slice(7).replace(/^[^/]*/, ''));
}
function pathToFileURL(p) {
  const abs = path.resolve(p);
  const pathname = encodeURI(abs).replace(/[?#]/g, encodeURIComponent);
  const href = 'file://' + pathname;
  return { href, protocol: 'file:', host: '', pathname, toString() { return href; }, toJSON() { return href; } };
}
const url = { fileURLToPath, pathToFileURL };

// ---------------------------------------------------------------- fs (synchronous subset)
function fsError(r, syscall, p) {
  const e = new Error(r[1] + ': ' + r[2] + ', ' + syscall + " '" + p + "'");
  e.code = r[1]; e.syscall = syscall; e.path = p;
  return e;
}
function toPath(p) {
  if (p && typeof p === 'object' && typeof p.href === 'string') p = fileURLToPath(p);
  assertPath(p);
  return path.resolve(p);
}
function encodingOf(o) { return typeof o === 'string' ? o : (o && o.encoding) || null; }
function fakeBuffer(text) {
  // No Buffer here: an object that turns into the text wherever a string is expected
  // (JSON.parse(fs.readFileSync(f)), String(buf), buf.toString('utf8'), '' + buf).
  return {
    length: text.length,
    toString() { return text; },
    toJSON() { return text; },
    [Symbol.toPrimitive]() { return text; },
  };
}
function makeStat(r) {
  const kind = r[1], size = Number(r[2]), mtimeMs = Number(r[3]);
  return {
    size, mtimeMs, mtime: new Date(mtimeMs),
    isFile: () => kind === 'file',
    isDirectory: () => kind === 'dir',
    isSymbolicLink: () => false,
  };
}
const fs = {
  constants: { F_OK: 0, R_OK: 4, W_OK: 2, X_OK: 1 },
  readFileSync(p, o) {
    const r = N.readFile(toPath(p));
    if (r[0] !== 'ok') throw fsError(r, 'open', p);
    return encodingOf(o) ? r[1] : fakeBuffer(r[1]);
  },
  existsSync(p) {
    try { return N.exists(toPath(p)); } catch (_) { return false; }
  },
  readdirSync(p, o) {
    const dir = toPath(p);
    const r = N.readdir(dir);
    if (r[0] !== 'ok') throw fsError(r, 'scandir', p);
    const names = r.slice(1);
    if (o && o.withFileTypes) {
      return names.map((name) => {
        const s = N.stat(path.join(dir, name));
        const st = s[0] === 'ok' ? makeStat(s) : null;
        return { name, isFile: () => !!st && st.isFile(), isDirectory: () => !!st && st.isDirectory(),
          isSymbolicLink: () => false };
      });
    }
    return names;
  },
  statSync(p, o) {
    const r = N.stat(toPath(p));
    if (r[0] !== 'ok') {
      if (o && o.throwIfNoEntry === false && r[1] === 'ENOENT') return undefined;
      throw fsError(r, 'stat', p);
    }
    return makeStat(r);
  },
  accessSync(p) {
    if (!fs.existsSync(p)) throw fsError(['err', 'ENOENT', 'no such file or directory'], 'access', p);
  },
};
fs.lstatSync = fs.statSync;

// ---------------------------------------------------------------- os
const os = {
  EOL: '\n',
  devNull: '/dev/null',
  cpus: () => Array.from({ length: S.os.cpus }, () => ({
    model: S.os.cpuModel, speed: 0, times: { user: 0, nice: 0, sys: 0, idle: 0, irq: 0 },
  })),
  availableParallelism: () => S.os.cpus,
  hostname: () => S.os.hostname,
  homedir: () => S.os.homedir,
  tmpdir: () => S.os.tmpdir,
  platform: () => S.platform,
  arch: () => S.arch,
  type: () => S.os.type,
  release: () => S.os.release,
  totalmem: () => S.os.totalmem,
  freemem: () => S.os.freemem,
  uptime: () => S.os.uptime,
  loadavg: () => S.os.loadavg.slice(),
  endianness: () => 'LE',
  networkInterfaces: () => ({}),
  userInfo: () => Object.assign({}, S.os.user),
};

// ---------------------------------------------------------------- console (to stderr)
function show(v) {
  if (typeof v === 'string') return v;
  if (typeof v === 'function') return '[Function: ' + (v.name || '(anonymous)') + ']';
  if (v instanceof Error) return v.stack ? v.name + ': ' + v.message + '\n' + v.stack : String(v);
  if (v && typeof v === 'object') {
    try { return JSON.stringify(v, null, 2); } catch (_) { return String(v); }
  }
  return String(v);
}
function logger() { return (...args) => N.log(args.map(show).join(' ') + '\n'); }
const console = {
  log: logger(), info: logger(), debug: logger(), warn: logger(), error: logger(), trace: logger(),
  dir: logger(), table: logger(), time() {}, timeEnd() {}, group() {}, groupEnd() {}, assert() {},
};

// ---------------------------------------------------------------- process
const stream = { write(s) { N.log(String(s)); return true; }, isTTY: false, columns: 80 };
const process = {
  env: S.env,
  argv: S.argv,
  argv0: 'node',
  execArgv: [],
  execPath: S.argv[0],
  platform: S.platform,
  arch: S.arch,
  pid: S.pid,
  ppid: S.ppid,
  title: 'pmr',
  version: 'v20.0.0',
  versions: { node: '20.0.0', pmr: S.pmrVersion },
  release: { name: 'node' },
  exitCode: undefined,
  stdout: stream,
  stderr: Object.assign({}, stream),
  cwd: () => S.cwd,
  chdir() { throw new Error('process.chdir() is not supported in ecosystem files'); },
  exit(code) {
    throw new Error('the config called process.exit(' + (code === undefined ? '' : code) + ')');
  },
  nextTick(fn, ...args) { Promise.resolve().then(() => fn(...args)); },
  on() { return process; },
  once() { return process; },
  off() { return process; },
  removeListener() { return process; },
  emit() { return false; },
  emitWarning(w) { N.log('Warning: ' + show(w) + '\n'); },
  uptime: () => 0,
  umask: () => 0o22,
  getuid: () => S.os.user.uid,
  getgid: () => S.os.user.gid,
  geteuid: () => S.os.user.uid,
  getegid: () => S.os.user.gid,
  memoryUsage: () => ({ rss: 0, heapTotal: 0, heapUsed: 0, external: 0, arrayBuffers: 0 }),
  hrtime: Object.assign(() => [0, 0], { bigint: () => 0n }),
};

// ---------------------------------------------------------------- modules (CommonJS)
const BUILTINS = { path, os, fs, url, process, 'path/posix': path };
const cache = Object.create(null);
const missing = [];
let mainModule = null;
let initialExports = null;

function builtin(name) {
  const n = name.startsWith('node:') ? name.slice(5) : name;
  return hasOwn(BUILTINS, n) ? BUILTINS[n] : undefined;
}
function isRelative(spec) {
  return spec === '.' || spec === '..' || spec.startsWith('./') || spec.startsWith('../') || spec.startsWith('/');
}
function isFile(f) { const r = N.stat(f); return r[0] === 'ok' && r[1] === 'file'; }
function resolveFile(abs) {
  for (const f of [abs, abs + '.js', abs + '.json', abs + '.cjs', abs + '/index.js', abs + '/index.json']) {
    if (isFile(f)) return f;
  }
  return null;
}
function notFound(spec) {
  const e = new Error("Cannot find module '" + spec + "'");
  e.code = 'MODULE_NOT_FOUND';
  return e;
}
function missingModule(spec) {
  missing.push(spec);
  const e = new Error("Cannot find module '" + spec + "'");
  e.code = 'MODULE_NOT_FOUND';
  return e;
}
function resolveSpec(spec, mod) {
  if (typeof spec !== 'string') throw new TypeError('The "id" argument must be of type string');
  if (builtin(spec) !== undefined) return { builtin: builtin(spec) };
  if (spec.startsWith('file://')) spec = fileURLToPath(spec);
  if (isRelative(spec)) {
    const f = resolveFile(path.resolve(mod.path, spec));
    if (!f) throw notFound(spec);
    return { file: f };
  }
  throw missingModule(spec);
}
function makeRequire(mod) {
  function require(spec) {
    const r = resolveSpec(spec, mod);
    return r.file === undefined ? r.builtin : loadModule(r.file, mod).exports;
  }
  require.resolve = (spec) => {
    const r = resolveSpec(spec, mod);
    return r.file === undefined ? spec : r.file;
  };
  require.cache = cache;
  require.main = mainModule;
  return require;
}
function newModule(filename, parent) {
  const mod = {
    id: parent ? filename : '.', filename, path: path.dirname(filename), exports: {},
    loaded: false, parent: parent || null, children: [], paths: [],
  };
  mod.require = makeRequire(mod);
  cache[filename] = mod;
  if (parent) parent.children.push(mod);
  return mod;
}
function runCjs(mod, source) {
  const fn = N.compile(source, mod.filename);
  fn.call(mod.exports, mod.exports, mod.require, mod, mod.filename, mod.path);
  mod.loaded = true;
}
function loadModule(filename, parent) {
  if (cache[filename]) return cache[filename];
  const mod = newModule(filename, parent);
  try {
    const r = N.readFile(filename);
    if (r[0] !== 'ok') throw fsError(r, 'open', filename);
    if (filename.endsWith('.json')) {
      try { mod.exports = JSON.parse(r[1]); }
      catch (e) { e.message = filename + ': ' + e.message; throw e; }
      mod.loaded = true;
    } else if (filename.endsWith('.mjs')) {
      const e = new Error('require() of ES Module ' + filename + ' is not supported');
      e.code = 'ERR_REQUIRE_ESM';
      throw e;
    } else {
      runCjs(mod, r[1]);
    }
  } catch (e) {
    delete cache[filename];
    throw e;
  }
  return mod;
}

// ---------------------------------------------------------------- API for js.rs
function toJSON(v) {
  if (v === undefined || typeof v === 'function' || typeof v === 'symbol') return 'null';
  let s;
  try {
    s = JSON.stringify(v, (k, x) => (typeof x === 'bigint'
      ? (Number.isSafeInteger(Number(x)) ? Number(x) : String(x)) : x));
  } catch (e) {
    throw new TypeError('the exported value cannot be converted to JSON: ' + e.message);
  }
  return s === undefined ? 'null' : s;
}

globalThis.global = globalThis;
globalThis.process = process;
globalThis.console = console;

return {
  missing,
  builtin(name) { return builtin(name); },
  builtinKeys(name) { return Object.keys(builtin(name)); },
  requireAbs(filename) { return loadModule(filename, null).exports; },
  toJSON,
  runMain(source, filename) {
    const mod = newModule(filename, null);
    mainModule = mod;
    mod.require.main = mod;
    runCjs(mod, source);
    return toJSON(mod.exports);
  },
  setupModuleGlobals(filename) {
    // Not Node behaviour for ES modules, but harmless and handy: a `.js` config written with
    // `export default` but still using `__dirname` or `require` works as its author expects.
    const mod = newModule(filename, null);
    mainModule = mod;
    mod.require.main = mod;
    globalThis.__filename = filename;
    globalThis.__dirname = mod.path;
    globalThis.require = mod.require;
    globalThis.module = mod;
    initialExports = mod.exports;
  },
  // For a `.js` file taken as an ES module that still set `module.exports` and has no default.
  mainExports() {
    const e = mainModule && mainModule.exports;
    if (e !== initialExports || (e && Object.keys(e).length > 0)) return e;
    return undefined;
  },
};
})"##;
