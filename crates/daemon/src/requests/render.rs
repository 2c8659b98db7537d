//! `render`: `jlist` and `ls` as the CLI prints them. With a thousand apps the list is
//! megabytes of `ProcInfo` that the CLI would parse only to print it again; rendered here, the
//! CLI copies the text to its stdout. Same renderers as the CLI's (`render/`), so the text is
//! the same byte for byte; they run on a blocking thread, with the reading of the list (they
//! read `package.json` files and take milliseconds of CPU).

use crate::daemon::Daemon;
use crate::requests::list;
use pmr_core::protocol::{self, RenderRequest, Response, View};
use std::sync::Arc;

/// The reply frame and the text to write after it, in parts (written apart from the frame:
/// the text is megabytes; in parts: two threads render a long `jlist`).
pub async fn render(d: &Arc<Daemon>, req: RenderRequest) -> (Vec<u8>, Vec<Vec<u8>>) {
    let RenderRequest { view } = req;
    let d = d.clone();
    let text = tokio::task::spawn_blocking(move || {
        let procs = list::procs_now(&d, true);
        pmr_render::forget_versions();
        match view {
            View::Jlist { home } => {
                let mut t = pmr_render::jlist_write::jlist_parts(&procs, &home);
                if let Some(last) = t.last_mut() {
                    last.push(b'\n');
                }
                t
            }
            View::Table { width, color } => {
                vec![pmr_render::table::ls(&procs, width, color).into_bytes()]
            }
        }
    })
    .await
    .map_err(|e| protocol::FrameError::Io(std::io::Error::other(e.to_string())));
    let len = |t: &[Vec<u8>]| t.iter().map(Vec::len).sum::<usize>();
    match text.and_then(|t| Ok((protocol::encode_rendered(len(&t))?, t))) {
        Ok(reply) => reply,
        Err(e) => (
            protocol::encode(&Response::Error {
                message: e.to_string(),
            })
            .unwrap_or_default(),
            Vec::new(),
        ),
    }
}
