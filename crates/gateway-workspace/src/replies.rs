//! `replies/<name>.yaml`: the scripts the workspace's `scripted/<name>` models answer from
//! (the format `mock-llm --script` reads too: a list of replies, or `{replies, default}`).

use std::collections::BTreeMap;
use std::path::Path;

use model_script::{Reply, Script};
use serde_json::Value;

use crate::diagnostics::Diagnostics;
use crate::{lenient, yaml};

/// The folder of scripts, under the workspace root.
pub const FOLDER: &str = "replies";

/// Reads every `replies/*.yaml` (`.yml`, `.json`) by file stem. A file with problems is
/// reported (file and line) and left out.
pub fn load(root: &Path, diagnostics: &mut Diagnostics) -> BTreeMap<String, Script> {
    let mut scripts = BTreeMap::new();
    let Ok(entries) = std::fs::read_dir(root.join(FOLDER)) else {
        return scripts;
    };
    let mut paths: Vec<_> = entries
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| {
            path.extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| matches!(e, "yaml" | "yml" | "json"))
        })
        .collect();
    paths.sort();
    for path in paths {
        let Some(name) = path.file_stem().and_then(|s| s.to_str()).map(String::from) else {
            continue;
        };
        if scripts.contains_key(&name) {
            diagnostics.error(
                &path,
                None,
                format!("a second script for scripted/{name} (one file per name)"),
            );
            continue;
        }
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(err) => {
                diagnostics.error(&path, None, format!("cannot read file: {err}"));
                continue;
            }
        };
        if let Some(script) = parse(&path, &text, diagnostics) {
            scripts.insert(name, script);
        }
    }
    scripts
}

/// One script file's text: a list of replies, `{replies: [...], default: {...}}`, or one
/// reply. Every problem is an error at its line (a misspelt key would change what the model
/// answers, so unknown keys are errors too).
pub fn parse(path: &Path, text: &str, diagnostics: &mut Diagnostics) -> Option<Script> {
    let value = match yaml::parse(text) {
        Ok(value) => value,
        Err(err) => {
            diagnostics.error(path, err.line, format!("invalid YAML: {}", err.message));
            return None;
        }
    };
    let before = diagnostics.errors().count();
    let script = match &value {
        Value::Array(_) => {
            typed::<Vec<Reply>>(&value, path, text, diagnostics).map(|replies| Script {
                replies,
                default: None,
            })
        }
        Value::Object(fields) if fields.contains_key("replies") => {
            typed::<Script>(&value, path, text, diagnostics)
        }
        Value::Object(_) => typed::<Reply>(&value, path, text, diagnostics).map(|reply| Script {
            replies: vec![reply],
            default: None,
        }),
        _ => {
            diagnostics.error(
                path,
                Some(1),
                "a script is a list of replies, or a mapping with 'replies' (and 'default')",
            );
            None
        }
    };
    (diagnostics.errors().count() == before)
        .then_some(script)
        .flatten()
}

fn typed<T: serde::de::DeserializeOwned>(
    value: &Value,
    path: &Path,
    text: &str,
    diagnostics: &mut Diagnostics,
) -> Option<T> {
    let line_of = |key: &str| yaml::locate(text, &yaml::parse_path(key));
    match lenient::from_value::<T>(value) {
        Ok((typed, unknown)) => {
            for key in unknown {
                diagnostics.error(path, line_of(&key), format!("unknown key '{key}'"));
            }
            Some(typed)
        }
        Err(err) => {
            diagnostics.error(
                path,
                line_of(&err.path),
                format!("'{}': {}", err.path, err.message),
            );
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_text(text: &str) -> (Option<Script>, Diagnostics) {
        let mut diagnostics = Diagnostics::new();
        let script = parse(Path::new("replies/demo.yaml"), text, &mut diagnostics);
        (script, diagnostics)
    }

    #[test]
    fn reads_a_list_a_mapping_and_one_reply() {
        let (script, _) =
            parse_text("- text: hi\n- tool_calls:\n    - name: add\n      arguments: {a: 1}\n");
        let script = script.unwrap();
        assert_eq!(script.replies.len(), 2);
        assert_eq!(script.replies[1].tool_calls[0].name, "add");
        let (script, _) = parse_text(
            "replies:\n  - output: {city: Paris}\n    times: 3\ndefault:\n  text: bye\n",
        );
        let script = script.unwrap();
        assert_eq!(script.replies[0].times, Some(3));
        assert_eq!(script.default.unwrap().text.as_deref(), Some("bye"));
        let (script, _) = parse_text("text: only\nmatch:\n  contains: hello\n");
        assert_eq!(script.unwrap().replies[0].text.as_deref(), Some("only"));
    }

    #[test]
    fn problems_are_errors_at_their_line() {
        let (script, diagnostics) = parse_text("- text: hi\n- text: there\n  tool_call: []\n");
        assert!(script.is_none());
        let error = diagnostics.errors().next().unwrap();
        assert_eq!(error.line, Some(3), "{error:?}");
        assert!(error.message.contains("tool_call"), "{error:?}");

        let (script, diagnostics) = parse_text("- text: hi\n- delay_ms: soon\n");
        assert!(script.is_none());
        let error = diagnostics.errors().next().unwrap();
        assert_eq!(error.line, Some(2), "{error:?}");

        let (_, diagnostics) = parse_text("- text: [unclosed\n");
        assert!(diagnostics.has_errors());
        let (_, diagnostics) = parse_text("just text\n");
        assert_eq!(diagnostics.errors().next().unwrap().line, Some(1));
    }
}
