//! The logs stage: where the app's output goes and how it is written.

use super::paths::abs;
use crate::loose::LogFile;
use crate::raw_app::LogOpts;
use pmr_core::spec::LogRotate;
use std::path::Path;

pub(super) struct Logs {
    pub out_file: Option<String>,
    pub error_file: Option<String>,
    /// `""`: the default file.
    pub log_file: Option<String>,
    pub pid_file: Option<String>,
    pub merge_logs: bool,
    pub log_date_format: Option<String>,
    pub disable_logs: bool,
    pub log_type: Option<String>,
    pub log_rotate: Option<LogRotate>,
    /// `time` was set (PM2 keeps it beside the date format it stands for).
    pub time: bool,
}

/// Paths relative to `cwd`; `merge_default`: whether the instances share log files unless
/// told (a lone fork app, as PM2).
pub(super) fn resolve(opts: LogOpts, cwd: &Path, merge_default: bool) -> Logs {
    let path = |p: Option<String>| {
        p.map(|p| {
            if pmr_core::paths::is_null_device(&p) {
                p
            } else {
                abs(cwd, &p).to_string_lossy().into_owned()
            }
        })
    };
    let time = opts.time.unwrap_or(false);
    Logs {
        out_file: path(opts.out_file),
        error_file: path(opts.error_file),
        log_file: opts.log_file.map(|f| match f {
            LogFile::Default => String::new(),
            LogFile::Path(p) => abs(cwd, &p).to_string_lossy().into_owned(),
        }),
        pid_file: path(opts.pid_file),
        merge_logs: opts.merge_logs.unwrap_or(merge_default),
        log_date_format: if time {
            Some("YYYY-MM-DDTHH:mm:ss".into())
        } else {
            opts.log_date_format
        },
        disable_logs: opts.disable_logs.unwrap_or(false),
        log_type: opts.log_type,
        log_rotate: opts.log_rotate,
        time,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_against_cwd_and_the_defaults() {
        let cwd = Path::new("/srv/app");
        let l = resolve(LogOpts::default(), cwd, true);
        assert_eq!(
            (l.out_file, l.log_file, l.merge_logs, l.disable_logs, l.time),
            (None, None, true, false, false)
        );
        let opts = LogOpts {
            out_file: Some("logs/../out.log".into()),
            error_file: Some("/dev/null".into()),
            log_file: Some(LogFile::Default),
            pid_file: Some("/run/app.pid".into()),
            time: Some(true),
            log_date_format: Some("HH:mm".into()),
            ..LogOpts::default()
        };
        let l = resolve(opts, cwd, false);
        assert_eq!(l.out_file.as_deref(), Some("/srv/app/out.log"));
        assert_eq!(l.error_file.as_deref(), Some("/dev/null"));
        assert_eq!(l.log_file.as_deref(), Some(""));
        assert_eq!(l.pid_file.as_deref(), Some("/run/app.pid"));
        assert!(!l.merge_logs);
        // `time` wins over a date format, as in PM2.
        assert_eq!(l.log_date_format.as_deref(), Some("YYYY-MM-DDTHH:mm:ss"));
    }
}
