use super::*;
use std::io::Read;

/// root/ {index.html, a.css, README, sub/index.html, empty/, link.txt -> ../secret.txt,
/// inlink.css -> a.css}, and secret.txt beside root.
fn site(name: &str, spa: bool, ftp: bool) -> Site {
    let base = std::env::temp_dir().join(format!("pmr-serve-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    let root = base.join("root");
    std::fs::create_dir_all(root.join("sub")).unwrap();
    std::fs::create_dir_all(root.join("empty")).unwrap();
    std::fs::write(root.join("index.html"), "home").unwrap();
    std::fs::write(root.join("a.css"), "css").unwrap();
    std::fs::write(root.join("README"), "readme").unwrap();
    std::fs::write(root.join("sub/index.html"), "sub").unwrap();
    std::fs::write(base.join("secret.txt"), "secret").unwrap();
    std::os::unix::fs::symlink("../secret.txt", root.join("link.txt")).unwrap();
    std::os::unix::fs::symlink("a.css", root.join("inlink.css")).unwrap();
    Site {
        root: root.canonicalize().unwrap(),
        spa,
        ftp,
        homepage: "/index.html".into(),
    }
}

fn body(r: Reply) -> (String, String) {
    match r {
        Reply::File {
            mut file,
            content_type,
            ..
        } => {
            let mut s = String::new();
            file.read_to_string(&mut s).unwrap();
            (content_type.to_string(), s)
        }
        other => panic!("expected a file, got {other:?}"),
    }
}

#[test]
fn url_paths_as_node_parses_them() {
    assert_eq!(url_path("/a/b").unwrap(), "/a/b");
    assert_eq!(url_path("/../x").unwrap(), "/x");
    assert_eq!(url_path("/%2e%2e/x").unwrap(), "/x");
    assert_eq!(url_path("/a/%2E./x").unwrap(), "/x");
    assert_eq!(url_path("/a/./b/.").unwrap(), "/a/b/");
    assert_eq!(url_path("/a/..").unwrap(), "/");
    assert_eq!(url_path("/a\\..\\b").unwrap(), "/b");
    // Encoded slashes are not segments for the URL parser: only decoding reveals them.
    assert_eq!(url_path("/..%2fx").unwrap(), "/../x");
    assert_eq!(url_path("/a%20b").unwrap(), "/a b");
    assert!(url_path("/%E0%A4%A").is_none());
    assert!(url_path("/%zz").is_none());
    assert!(url_path("/%ff").is_none());
    assert!(url_path("/a%00b").is_none());
    assert!(url_path("*").is_none());
}

#[test]
fn files_home_and_content_types() {
    let s = site("files", false, false);
    assert_eq!(body(resolve(&s, "/")), ("text/html".into(), "home".into()));
    assert_eq!(
        body(resolve(&s, "/a.css")),
        ("text/css".into(), "css".into())
    );
    assert_eq!(
        body(resolve(&s, "/README")),
        ("text/plain".into(), "readme".into())
    );
    assert_eq!(body(resolve(&s, "/inlink.css")).1, "css");
    assert_eq!(body(resolve(&s, "/sub/")).1, "sub");
    assert!(matches!(resolve(&s, "/sub"), Reply::AddSlash));
    assert!(matches!(resolve(&s, "/empty/"), Reply::NotFound(None)));
    assert!(matches!(resolve(&s, "/nope"), Reply::NotFound(None)));
    assert!(matches!(resolve(&s, "/a.css/x"), Reply::NotFound(None)));
    std::fs::write(s.root.join("404.html"), "custom").unwrap();
    match resolve(&s, "/nope") {
        Reply::NotFound(Some((mut f, len))) => {
            let mut t = String::new();
            f.read_to_string(&mut t).unwrap();
            assert_eq!((t.as_str(), len), ("custom", 6));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn nothing_outside_the_root() {
    let s = site("traversal", false, false);
    // Dot segments are clamped at `/` (URL rules): the file outside is never reached.
    assert!(matches!(resolve(&s, "/../secret.txt"), Reply::NotFound(_)));
    assert!(matches!(
        resolve(&s, "/%2e%2e/secret.txt"),
        Reply::NotFound(_)
    ));
    // Decoded slashes climbing out: refused.
    assert!(matches!(resolve(&s, "/..%2fsecret.txt"), Reply::Forbidden));
    assert!(matches!(
        resolve(&s, "/sub/..%2f..%2fsecret.txt"),
        Reply::Forbidden
    ));
    assert!(matches!(
        resolve(&s, "/%2e%2e%2fsecret.txt"),
        Reply::Forbidden
    ));
    // A symlink out of the root, and a directory symlink out of it.
    assert!(matches!(resolve(&s, "/link.txt"), Reply::Forbidden));
    std::os::unix::fs::symlink("..", s.root.join("up")).unwrap();
    assert!(matches!(resolve(&s, "/up/secret.txt"), Reply::Forbidden));
    assert!(matches!(resolve(&s, "/up/"), Reply::Forbidden));
    assert!(matches!(resolve(&s, "/bad%zz"), Reply::BadRequest));
}

#[test]
fn spa_falls_back_as_pm2() {
    let s = site("spa", true, false);
    assert_eq!(
        body(resolve(&s, "/deep/route")),
        ("text/html".into(), "home".into())
    );
    // `/<basename>` first: assets of nested routes are found at the root.
    assert_eq!(
        body(resolve(&s, "/deep/a.css")),
        ("text/css".into(), "css".into())
    );
    assert_eq!(body(resolve(&s, "/nope.js")).1, "home");
    assert!(matches!(resolve(&s, "/link.txt"), Reply::Forbidden));
    std::fs::remove_file(s.root.join("index.html")).unwrap();
    assert!(matches!(resolve(&s, "/deep/route"), Reply::NotFound(_)));
    assert!(matches!(resolve(&s, "/"), Reply::NotFound(_)));
}

#[test]
fn ftp_lists_directories_without_index() {
    let s = site("ftp", false, true);
    std::fs::write(s.root.join("empty/f<1>.txt"), "x").unwrap();
    std::fs::write(s.root.join("empty/.hidden"), "x").unwrap();
    std::fs::create_dir(s.root.join("empty/d")).unwrap();
    match resolve(&s, "/empty/") {
        Reply::Listing(html) => {
            assert!(html.contains("<title>Index of /empty/</title>"), "{html}");
            assert!(
                html.contains("<a href=\"f%3C1%3E.txt\">f&lt;1&gt;.txt</a>"),
                "{html}"
            );
            assert!(html.contains("<a href=\"../\">../</a>"));
            assert!(!html.contains("hidden"));
            assert!(html.find("d/</a>").unwrap() < html.find("f&lt;1").unwrap());
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(body(resolve(&s, "/sub/")).1, "sub");
    assert_eq!(body(resolve(&s, "/")).1, "home");
}
