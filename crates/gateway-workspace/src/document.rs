//! A markdown file with YAML frontmatter, read once and turned into typed values with every
//! problem reported at its line.

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::diagnostics::Diagnostics;
use crate::lenient;
use crate::yaml::{self, PathSegment};

/// A parsed markdown file: frontmatter as a JSON mapping plus the body.
#[derive(Debug, Clone)]
pub(crate) struct Document {
    pub path: PathBuf,
    frontmatter_text: String,
    /// 1-based file line of the first frontmatter line.
    frontmatter_line: usize,
    pub frontmatter: Map<String, Value>,
    pub body: String,
}

impl Document {
    /// Reads and splits `path`. Problems are reported and `None` returned when the file cannot
    /// be used at all (unreadable, unclosed or invalid frontmatter).
    pub fn read(path: &Path, diagnostics: &mut Diagnostics) -> Option<Self> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(err) => {
                diagnostics.error(path, None, format!("cannot read file: {err}"));
                return None;
            }
        };
        Self::parse(path, &text, diagnostics)
    }

    pub fn parse(path: &Path, text: &str, diagnostics: &mut Diagnostics) -> Option<Self> {
        let markdown = match yaml::split_frontmatter(text) {
            Ok(markdown) => markdown,
            Err(err) => {
                diagnostics.error(path, err.line, err.message);
                return None;
            }
        };
        let frontmatter_text = markdown.frontmatter.unwrap_or("").to_string();
        let frontmatter = match yaml::parse(&frontmatter_text) {
            Ok(Value::Object(map)) => map,
            Ok(Value::Null) => Map::new(),
            Ok(_) => {
                diagnostics.error(
                    path,
                    Some(markdown.frontmatter_line),
                    "frontmatter must be a mapping of keys",
                );
                return None;
            }
            Err(err) => {
                let line = err.line.map(|l| l + markdown.frontmatter_line - 1);
                diagnostics.error(
                    path,
                    line,
                    format!("invalid frontmatter YAML: {}", err.message),
                );
                return None;
            }
        };
        Some(Self {
            path: path.to_path_buf(),
            frontmatter_text,
            frontmatter_line: markdown.frontmatter_line,
            frontmatter,
            body: markdown.body.to_string(),
        })
    }

    /// The file line of a frontmatter key path such as `schedules[1].cron`.
    pub fn line_of(&self, path: &str) -> Option<usize> {
        self.line_of_segments(&yaml::parse_path(path))
    }

    pub fn line_of_segments(&self, segments: &[PathSegment]) -> Option<usize> {
        yaml::locate(&self.frontmatter_text, segments).map(|l| l + self.frontmatter_line - 1)
    }

    /// Deserializes the whole frontmatter into `T`. A key with a wrong type is reported and
    /// dropped (its default applies) so that every bad key is reported in one pass; unknown
    /// keys are warnings.
    pub fn typed<T: DeserializeOwned>(&self, diagnostics: &mut Diagnostics) -> Option<T> {
        let mut value = Value::Object(self.frontmatter.clone());
        self.typed_value(&mut value, "", diagnostics)
    }

    /// Deserializes `value`, found at key path `base` of the frontmatter, the same way.
    pub fn typed_value<T: DeserializeOwned>(
        &self,
        value: &mut Value,
        base: &str,
        diagnostics: &mut Diagnostics,
    ) -> Option<T> {
        let join = |path: &str| match (base.is_empty(), path.is_empty()) {
            (true, _) => path.to_string(),
            (false, true) => base.to_string(),
            (false, false) => format!("{base}.{path}"),
        };
        // Each round removes one offending key; a mapping cannot need more rounds than keys.
        let max_rounds = value.as_object().map_or(1, Map::len) + 1;
        for _ in 0..max_rounds {
            match lenient::from_value::<T>(value) {
                Ok((typed, unknown)) => {
                    for key in unknown {
                        let full = join(&key);
                        diagnostics.warning(
                            &self.path,
                            self.line_of(&full),
                            format!("unknown key '{full}' (ignored)"),
                        );
                    }
                    return Some(typed);
                }
                Err(err) => {
                    let full = join(&err.path);
                    diagnostics.error(
                        &self.path,
                        self.line_of(&full),
                        format!("'{full}': {}", err.message),
                    );
                    let top = yaml::parse_path(&err.path).into_iter().next();
                    let removed = match (top, value.as_object_mut()) {
                        (Some(PathSegment::Key(key)), Some(map)) => map.remove(&key).is_some(),
                        _ => false,
                    };
                    if !removed {
                        return None;
                    }
                }
            }
        }
        None
    }
}
