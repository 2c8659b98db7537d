//! Ecosystem files and app options: loading (`load`), validation (`options`) and the
//! final normalized [`pmr_core::spec::AppSpec`] (`app`). Runs in the CLI, except `specs` on JSON
//! bodies of the HTTP API's `POST /api/apps` (no JS is ever evaluated in the daemon).

pub mod app;
pub mod app_env;
pub mod load;
pub mod loose;
pub mod node_detect;
pub mod options;
pub mod pkg_script;
pub mod shell_lite;
pub mod specs;
pub mod watch_ignore;
