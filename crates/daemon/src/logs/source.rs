//! One stream (stdout or stderr) of one instance: the files and live subscribers its lines go
//! to, and how they look there.

use super::format::{JsonMeta, LineFormat};
use super::hub::{Block, Hub, Stream};
use super::sinks::{Sink, Sinks};
use super::spare;
use pmr_core::spec::AppSpec;
use std::path::Path;
use std::sync::Arc;

/// One stream (stdout or stderr) of one instance: where its lines go and how they look.
pub struct Source {
    /// Unique for the daemon's life: which stream an open line in a shared file belongs to.
    pub owner: u32,
    pub id: u32,
    pub name: Arc<str>,
    pub stream: Stream,
    pub format: LineFormat,
    pub sinks: Vec<Arc<Sink>>,
    /// `None` with `disable_logs`: no live stream either (as PM2).
    pub hub: Option<Arc<Hub>>,
    /// Counts the pump reading it while it does (the daemon's).
    pub pumps: Arc<super::sinks::Pumps>,
}

impl Source {
    /// Hand on whole lines, or (last) a partial line written out early: raw files get it as
    /// it is; a date prefix or JSON makes it a line of its own.
    pub(super) async fn send(&self, lines: Vec<u8>) {
        let live = self.hub.as_ref().filter(|h| h.active());
        if self.sinks.is_empty() && live.is_none() {
            return;
        }
        let raw = Arc::new(lines);
        let time = if live.is_some() || !self.format.is_raw() {
            chrono::Utc::now().timestamp_millis()
        } else {
            0
        };
        if let Some(hub) = live {
            hub.publish(Block {
                id: Some(self.id),
                name: self.name.clone(),
                stream: self.stream,
                time,
                lines: raw.clone(),
            });
        }
        if self.sinks.is_empty() {
            return;
        }
        let data = if self.format.is_raw() {
            raw
        } else {
            let formatted = Arc::new(self.format.apply(&raw, time));
            if let Ok(v) = Arc::try_unwrap(raw) {
                spare::give_back(v);
            }
            formatted
        };
        // The last sink gets our reference: its writer, once done, is then the block's only
        // holder and can give the buffer back for reuse ([`spare`]).
        let (last, others) = self.sinks.split_last().expect("not empty");
        for s in others {
            s.write(self.owner, data.clone()).await;
        }
        last.write(self.owner, data).await;
    }

    pub(super) async fn end(&self) {
        for s in &self.sinks {
            s.end_line(self.owner).await;
        }
    }
}

impl Sinks {
    /// Open the sinks of one instance and describe its two streams, ready for [`pump`].
    /// Blocking: call from `spawn_blocking`. The error names the file that cannot be opened.
    pub fn open_app(
        &self,
        spec: &AppSpec,
        id: u32,
        out: &str,
        err: &str,
        combined: Option<&str>,
    ) -> Result<(Source, Source), String> {
        let rotate = spec.log_rotate.as_ref();
        let open = |p: &str| -> Result<Option<Arc<Sink>>, String> {
            if spec.disable_logs || pmr_core::paths::is_null_device(p) {
                return Ok(None);
            }
            self.get(Path::new(p), rotate)
                .map(Some)
                .map_err(|e| e.to_string())
        };
        let mut out_sinks: Vec<_> = open(out)?.into_iter().collect();
        let mut err_sinks: Vec<_> = open(err)?.into_iter().collect();
        if let Some(c) = combined {
            if let Some(s) = open(c)? {
                out_sinks.push(s.clone());
                err_sinks.push(s);
            }
        }
        let name: Arc<str> = spec.name.as_str().into();
        let source = |stream: Stream, sinks| Source {
            owner: self.next_owner(),
            id,
            name: name.clone(),
            stream,
            format: LineFormat {
                date_format: spec.log_date_format.clone(),
                json: (spec.log_type.as_deref() == Some("json")).then(|| JsonMeta {
                    id,
                    app_name: spec.name.clone(),
                    stream: stream.as_str(),
                }),
            },
            sinks,
            hub: (!spec.disable_logs).then(|| self.hub.clone()),
            pumps: self.pumps.clone(),
        };
        Ok((
            source(Stream::Out, out_sinks),
            source(Stream::Err, err_sinks),
        ))
    }
}
