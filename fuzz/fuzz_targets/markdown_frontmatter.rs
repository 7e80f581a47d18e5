//! Markdown frontmatter and YAML as every workspace file is read: the `---` split, the YAML
//! parse into JSON values, and finding the line of each key path (what every typed error
//! does to point at its line).
#![no_main]

use gateway_workspace::yaml;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

/// Key paths of `value` as `serde_path_to_error` prints them (`a.b[2].c`), at most `limit`.
fn key_paths(value: &Value, prefix: &str, out: &mut Vec<String>, limit: usize) {
    if out.len() >= limit {
        return;
    }
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                let path = if prefix.is_empty() {
                    key.clone()
                } else {
                    format!("{prefix}.{key}")
                };
                out.push(path.clone());
                key_paths(child, &path, out, limit);
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                let path = format!("{prefix}[{i}]");
                out.push(path.clone());
                key_paths(child, &path, out, limit);
            }
        }
        _ => {}
    }
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    // A path written in the text itself, malformed or not.
    let first_line = text.lines().next().unwrap_or_default();
    let _ = yaml::locate(&text, &yaml::parse_path(first_line));
    let Ok(markdown) = yaml::split_frontmatter(&text) else {
        return;
    };
    let frontmatter = markdown.frontmatter.unwrap_or(&text);
    let Ok(value) = yaml::parse(frontmatter) else {
        return;
    };
    let mut paths = Vec::new();
    key_paths(&value, "", &mut paths, 64);
    for path in paths {
        let _ = yaml::locate(frontmatter, &yaml::parse_path(&path));
    }
});
