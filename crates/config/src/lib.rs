//! Ecosystem files and app options: loading (`load`), the option table and its checks
//! (`options`, with PM2's loose value forms in `loose`), the typed options (`raw_app`) and the
//! final [`pmr_core::spec::AppSpec`] built from them in stages (`app`). Runs in the CLI, except
//! `specs` on JSON bodies of the HTTP API's `POST /api/apps` and `module` on the `package.json`
//! of the installed PM2 modules (no JS is ever evaluated in the daemon).

pub mod app;
pub mod load;
pub mod loose;
pub mod module;
pub mod node_detect;
pub mod options;
pub mod pkg_script;
pub mod raw_app;
pub mod shell_lite;
pub mod specs;
pub mod watch_ignore;
