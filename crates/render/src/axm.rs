//! `pm2_env.axm_options` as PM2 7 shows it for a Node app: the configuration its bundled agent
//! (`pm2-io-bpm`, `Configuration.init`) reports when the app starts. pmr runs no agent; the
//! object is rebuilt from the same inputs so tools that read it find what they expect. Apps that
//! are not Node (no agent under PM2 either) show `{}`.

use super::json_number;
use pmr_core::spec::AppSpec;
use serde_json::{json, Map, Value};

/// The version of the agent PM2 7.0.4 bundles (`apm.version`).
const APM_VERSION: &str = "8.0.0";

/// `axm_options` of an app whose `pm2_env.env` holds `settings` (a string) under its name.
pub fn axm_options(s: &AppSpec, settings: Option<&str>) -> Value {
    if !s.is_node() {
        return json!({});
    }
    // The app's module settings reach the agent as JSON under its name; an object there (a
    // command-line start without settings) is not in the child's environment at all.
    let settings: Map<String, Value> = settings
        .and_then(|t| serde_json::from_str::<Map<String, Value>>(t).ok())
        .map(|m| autocast_map(&m))
        .unwrap_or_default();
    let mut module_conf = settings.clone();
    for key in ["password", "passwd"] {
        if module_conf
            .get(key)
            .and_then(Value::as_str)
            .is_some_and(|p| !p.is_empty())
        {
            module_conf.insert(key.into(), json!("Password hidden"));
        }
    }
    let mut o = json!({
        "error": true,
        "heapdump": true,
        "feature.profiler.heapsnapshot": false,
        "feature.profiler.heapsampling": true,
        "feature.profiler.cpu_js": true,
        "latency": true,
        "catchExceptions": true,
        "profiling": true,
        "metrics": {"v8": true, "network": false, "eventLoop": true, "runtime": true, "http": true},
        "standalone": false,
        "tracing": {"enabled": false, "outbound": false},
        "module_conf": module_conf,
        "apm": {"type": "node", "version": APM_VERSION},
        "module_name": s.name,
        // PM2 shows its own version here (the agent finds PM2's package.json above its
        // container script); pmr shows its own.
        "module_version": pmr_core::protocol::VERSION,
    });
    if let Value::Object(m) = &mut o {
        // `Object.assign(conf, castedConf)`: settings also land at the top level.
        for (k, v) in settings {
            m.insert(k, v);
        }
    }
    o
}

fn autocast_map(m: &Map<String, Value>) -> Map<String, Value> {
    m.iter()
        .filter_map(|(k, v)| autocast(v).map(|v| (k.clone(), v)))
        .collect()
}

/// The agent's `Autocast`: numeric strings become numbers, `"true"`/`"false"`/`"null"` their
/// values, `"undefined"` disappears; nested objects are cast too.
fn autocast(v: &Value) -> Option<Value> {
    let Value::String(s) = v else {
        return Some(match v {
            Value::Object(m) => Value::Object(autocast_map(m)),
            other => other.clone(),
        });
    };
    let t = s.trim();
    let numeric = t
        .chars()
        .all(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '+' | '-'));
    if numeric {
        // JavaScript's `Number("")` is 0.
        if t.is_empty() {
            return Some(json!(0));
        }
        if let Ok(x) = t.parse::<f64>() {
            return Some(json_number(x));
        }
    }
    Some(match s.as_str() {
        "true" => json!(true),
        "false" => json!(false),
        "null" | "NaN" => Value::Null,
        "undefined" => return None,
        _ => v.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::spec;

    #[test]
    fn node_apps_show_the_agent_configuration() {
        let s = spec("api");
        let v = axm_options(&s, None);
        assert_eq!(v["module_name"], "api");
        assert_eq!(v["module_conf"], json!({}));
        assert_eq!(v["apm"], json!({"type": "node", "version": "8.0.0"}));
        assert_eq!(v["metrics"]["network"], false);
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys.first(), Some(&"error"));
        assert_eq!(keys.last(), Some(&"module_version"));

        let mut bin = spec("bin");
        bin.interpreter = None;
        assert_eq!(axm_options(&bin, None), json!({}));
    }

    #[test]
    fn module_settings_are_cast_and_merged() {
        let s = spec("api");
        let conf = r#"{"k":"5","on":"true","name":"x","password":"s3","gone":"undefined"}"#;
        let v = axm_options(&s, Some(conf));
        assert_eq!(
            v["module_conf"],
            json!({"k": 5, "on": true, "name": "x", "password": "Password hidden"})
        );
        assert_eq!(v["k"], 5);
        assert_eq!(v["password"], "s3");
        assert!(v.get("gone").is_none());
        // Not an object of settings: none.
        assert_eq!(axm_options(&s, Some("[1]"))["module_conf"], json!({}));
    }
}
