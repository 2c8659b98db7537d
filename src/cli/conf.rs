//! `pmr set|unset|get`: module settings in `$PMR_HOME/conf.json` (PM2's `module_conf.json`),
//! `section:key` → `{"section": {"key": "value"}}`. pmr itself reads the `pmr-logrotate`
//! section (`pm2-logrotate` is an alias): the global log rotation settings.

use super::conf_file::{apply, read, write};
use anyhow::{bail, Result};
use pmr_core::conf::{RotateConf, CONF_SECTION, KEYS, PM2_SECTION};
use pmr_core::paths::Home;
use serde_json::{Map, Value};

/// `section:key` or `section.key`; pm2-logrotate's keys are stored under pmr-logrotate, unless
/// the real pm2-logrotate module is installed: they are its settings then.
fn split_key(home: &Home, key: &str) -> Result<(String, String)> {
    let Some((section, k)) = key.split_once(':').or_else(|| key.split_once('.')) else {
        bail!("a setting is named module:key (e.g. {CONF_SECTION}:max_size); got {key:?}");
    };
    if section.is_empty() || k.is_empty() {
        bail!("a setting is named module:key (e.g. {CONF_SECTION}:max_size); got {key:?}");
    }
    let module =
        section == PM2_SECTION && read(home).is_ok_and(|c| pmr_core::conf::module_rotates(&c));
    let section = if section == PM2_SECTION && !module {
        CONF_SECTION
    } else {
        section
    };
    // pm2-logrotate spells some keys in camelCase.
    let k = match (section, k) {
        (CONF_SECTION, "maxSize") => "max_size",
        (CONF_SECTION, "rotateInterval") => "cron",
        _ => k,
    };
    Ok((section.to_string(), k.to_string()))
}

pub fn set(home: &Home, out: &super::Out, key: &str, value: &str) -> Result<i32> {
    let (section, k) = split_key(home, key)?;
    if section == pmr_daemon::http::CONF_SECTION && k == pmr_daemon::http::CONF_KEY {
        return super::web::set(home, out, value);
    }
    if section == CONF_SECTION {
        if !KEYS.contains(&k.as_str()) {
            bail!("unknown setting {section}:{k} (known: {})", KEYS.join(", "));
        }
        RotateConf::default()
            .set(&k, &Value::String(value.to_string()))
            .map_err(anyhow::Error::msg)?;
    }
    let mut conf = read(home)?;
    let entry = conf
        .entry(section.clone())
        .or_insert_with(|| Value::Object(Map::new()));
    if !entry.is_object() {
        *entry = Value::Object(Map::new());
    }
    entry
        .as_object_mut()
        .unwrap()
        .insert(k.clone(), Value::String(value.to_string()));
    write(home, &conf)?;
    out.info(format!("Module {section} configured: {k} = {value}"));
    apply(home)?;
    super::modules::restart_if_module(home, out, &section)?;
    Ok(0)
}

pub fn unset(home: &Home, out: &super::Out, key: &str) -> Result<i32> {
    let (section, k) = split_key(home, key)?;
    if section == pmr_daemon::http::CONF_SECTION && k == pmr_daemon::http::CONF_KEY {
        super::web::unset_running(home, out)?;
    }
    let mut conf = read(home)?;
    let removed = conf
        .get_mut(&section)
        .and_then(Value::as_object_mut)
        .and_then(|m| m.remove(&k))
        .is_some();
    if !removed {
        bail!("{section}:{k} is not set");
    }
    if conf
        .get(&section)
        .and_then(Value::as_object)
        .is_some_and(Map::is_empty)
    {
        conf.remove(&section);
    }
    write(home, &conf)?;
    out.info(format!("Module {section}: {k} unset"));
    apply(home)?;
    Ok(0)
}

pub fn get(home: &Home, key: Option<&str>) -> Result<i32> {
    let conf = read(home)?;
    match key {
        None => println!("{}", serde_json::to_string_pretty(&conf)?),
        Some(key) => {
            let (section, k) = split_key(home, key)?;
            match conf.get(&section).and_then(|s| s.get(&k)) {
                Some(Value::String(s)) => println!("{s}"),
                Some(v) => println!("{v}"),
                None => bail!("{section}:{k} is not set"),
            }
        }
    }
    Ok(0)
}
