//! `--ftp`: a directory without `index.html` is answered with a listing, PM2's page: dotfiles
//! hidden, directories first, then files by name, sizes as `1.5K`, UTC modification times.

use std::path::Path;

/// Listings stop here: a directory of a million files must not make a page of a hundred MB.
const MAX_ENTRIES: usize = 10_000;

struct Item {
    name: String,
    is_dir: bool,
    size: u64,
    mtime: Option<std::time::SystemTime>,
}

pub fn render(dir: &Path, url_path: &str) -> std::io::Result<String> {
    let mut items = Vec::new();
    let mut more = 0usize;
    for entry in std::fs::read_dir(dir)? {
        let Ok(entry) = entry else { continue };
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        if items.len() >= MAX_ENTRIES {
            more += 1;
            continue;
        }
        // Like PM2's `fs.stat`: symlinks followed, entries that cannot be read left out.
        let Ok(m) = std::fs::metadata(entry.path()) else {
            continue;
        };
        items.push(Item {
            name,
            is_dir: m.is_dir(),
            size: m.len(),
            mtime: m.modified().ok(),
        });
    }
    items.sort_by(|a, b| {
        b.is_dir
            .cmp(&a.is_dir)
            .then_with(|| a.name.to_lowercase().cmp(&b.name.to_lowercase()))
            .then_with(|| a.name.cmp(&b.name))
    });

    let url_path = if url_path.ends_with('/') {
        url_path.to_string()
    } else {
        format!("{url_path}/")
    };
    let mut rows = String::new();
    if url_path != "/" {
        rows.push_str("<tr><td class=\"name\"><a href=\"../\">../</a></td><td class=\"size\">-</td><td class=\"mtime\">-</td></tr>\n");
    }
    for it in &items {
        let display = if it.is_dir {
            format!("{}/", it.name)
        } else {
            it.name.clone()
        };
        let href = format!(
            "{}{}",
            encode_component(&it.name),
            if it.is_dir { "/" } else { "" }
        );
        let size = if it.is_dir {
            "-".to_string()
        } else {
            format_size(it.size)
        };
        let mtime = it.mtime.map_or("-".to_string(), |t| {
            chrono::DateTime::<chrono::Utc>::from(t)
                .format("%Y-%m-%d %H:%M:%S")
                .to_string()
        });
        rows.push_str(&format!(
            "<tr><td class=\"name\"><a href=\"{}\">{}</a></td><td class=\"size\">{size}</td><td class=\"mtime\">{mtime}</td></tr>\n",
            esc(&href),
            esc(&display)
        ));
    }
    if more > 0 {
        rows.push_str(&format!(
            "<tr><td class=\"name\">({more} more entries not listed)</td><td class=\"size\">-</td><td class=\"mtime\">-</td></tr>\n"
        ));
    }
    let title = esc(&url_path);
    Ok(format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\">\
<title>Index of {title}</title><style>\
body{{font-family:monospace;margin:20px;background:#1e1e1e;color:#ccc}}\
h1{{font-size:1.2em;border-bottom:1px solid #444;padding-bottom:8px}}\
table{{border-collapse:collapse;width:100%}}\
th,td{{text-align:left;padding:4px 12px}}\
th{{border-bottom:2px solid #444;font-size:0.9em;color:#888}}\
tr:hover{{background:#2a2a2a}}\
.size,.mtime{{white-space:nowrap}}\
.size{{text-align:right}}\
a{{color:#58a6ff;text-decoration:none}}\
a:hover{{text-decoration:underline}}\
</style></head><body><h1>Index of {title}</h1>\
<table><thead><tr><th>Name</th><th class=\"size\">Size</th><th>Last Modified</th></tr></thead>\
<tbody>{rows}</tbody></table></body></html>"
    ))
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// JavaScript's `encodeURIComponent`.
fn encode_component(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.!~*'()".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// PM2's `formatFileSize`: `512B`, `1.5K`, `2.0M`, `1.0G`.
fn format_size(bytes: u64) -> String {
    const K: f64 = 1024.0;
    let b = bytes as f64;
    if b < K {
        format!("{bytes}B")
    } else if b < K * K {
        format!("{:.1}K", b / K)
    } else if b < K * K * K {
        format!("{:.1}M", b / (K * K))
    } else {
        format!("{:.1}G", b / (K * K * K))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_names_as_pm2() {
        assert_eq!(format_size(512), "512B");
        assert_eq!(format_size(1536), "1.5K");
        assert_eq!(format_size(3 * 1024 * 1024), "3.0M");
        assert_eq!(encode_component("a b&c/é"), "a%20b%26c%2F%C3%A9");
        assert_eq!(esc("<a href=\"x\">&"), "&lt;a href=&quot;x&quot;&gt;&amp;");
    }
}
