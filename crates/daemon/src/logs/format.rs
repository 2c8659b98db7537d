//! Line formatting: the `"<date>: "` prefix of `log_date_format`/`time` (day.js tokens, see
//! [`pmr_core::dayjs`]), and `log_type: 'json'` lines.

use chrono::TimeZone;
use pmr_core::dayjs::dayjs;

/// How an app's lines are written to its files.
#[derive(Debug, Clone, Default)]
pub struct LineFormat {
    /// `log_date_format` (or `time`): each line gets `"<date>: "` in front.
    pub date_format: Option<String>,
    /// `log_type: 'json'`: each line becomes
    /// `{"message","timestamp","type","process_id","app_name"}` (PM2's keys).
    pub json: Option<JsonMeta>,
}

#[derive(Debug, Clone)]
pub struct JsonMeta {
    pub id: u32,
    pub app_name: String,
    /// `out` or `err`.
    pub stream: &'static str,
}

impl LineFormat {
    pub fn is_raw(&self) -> bool {
        self.date_format.is_none() && self.json.is_none()
    }

    /// Rewrite a block of lines read at `ms`. A last line without its newline (a partial line
    /// written out early) becomes a line of its own: a prefix or a JSON record cannot be left
    /// open, and PM2 does the same with each piece it reads.
    pub fn apply(&self, lines: &[u8], ms: i64) -> Vec<u8> {
        let date = match &self.date_format {
            Some(f) => dayjs(f, ms),
            None if self.json.is_some() => chrono::Utc
                .timestamp_millis_opt(ms)
                .single()
                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
                .unwrap_or_default(),
            None => String::new(),
        };
        let mut out = Vec::with_capacity(lines.len() + lines.len() / 4 + 64);
        for line in lines.split_inclusive(|&b| b == b'\n') {
            let body = line.strip_suffix(b"\n").unwrap_or(line);
            match &self.json {
                Some(j) => {
                    let msg = String::from_utf8_lossy(body);
                    let v = serde_json::json!({
                        "message": msg,
                        "timestamp": date,
                        "type": j.stream,
                        "process_id": j.id,
                        "app_name": j.app_name,
                    });
                    // Serializing a json! value cannot fail.
                    serde_json::to_writer(&mut out, &v).unwrap();
                }
                None => {
                    out.extend_from_slice(date.as_bytes());
                    out.extend_from_slice(b": ");
                    out.extend_from_slice(body);
                }
            }
            out.push(b'\n');
        }
        out
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn date_prefix_and_json_lines() {
        let f = LineFormat {
            date_format: Some("[T]".into()),
            json: None,
        };
        assert_eq!(f.apply(b"a\nb\n", 0), b"T: a\nT: b\n");
        let j = LineFormat {
            date_format: None,
            json: Some(JsonMeta {
                id: 3,
                app_name: "api".into(),
                stream: "err",
            }),
        };
        let out = String::from_utf8(j.apply(b"he said \"hi\"\n", 1000)).unwrap();
        let v: serde_json::Value = serde_json::from_str(out.trim_end()).unwrap();
        assert_eq!(v["message"], "he said \"hi\"");
        assert_eq!(v["timestamp"], "1970-01-01T00:00:01.000Z");
        assert_eq!(v["type"], "err");
        assert_eq!(v["process_id"], 3);
        assert_eq!(v["app_name"], "api");
        assert!(out.ends_with("}\n") && out.lines().count() == 1);
    }
}
