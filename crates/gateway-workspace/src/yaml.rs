//! YAML documents as JSON values, markdown frontmatter, and finding the line of a key path.
//!
//! Files are parsed into `serde_json::Value` first (syntax errors carry their line), then turned
//! into typed structs by [`crate::lenient`]. Typed errors only know the key path
//! (`server.port`), so [`locate`] maps a path back to a line by reading the block structure of
//! the text — good enough for the block-style YAML people write by hand; flow-style values
//! resolve to the line of their nearest enclosing key.

use serde_json::Value;

/// A YAML syntax error with the 1-based line it was found on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct YamlError {
    pub line: Option<usize>,
    pub message: String,
}

/// Parses one YAML document. An empty document is `Value::Null`.
pub fn parse(text: &str) -> Result<Value, YamlError> {
    if text.trim().is_empty() {
        return Ok(Value::Null);
    }
    serde_saphyr::from_str_with_options::<Value>(text, options()).map_err(|err| YamlError {
        line: err
            .location()
            .and_then(|loc| usize::try_from(loc.line()).ok())
            .filter(|line| *line > 0),
        message: first_line(&err.to_string()),
    })
}

/// Scalars are read as PyYAML (which 0.2.13 uses) reads what matters here: `y`/`n` stay
/// strings (`required: [n]` names a property), only `true`/`false` are booleans in untyped
/// positions (typed booleans still accept `yes`/`on`, see `lenient`), and `.inf`/`.nan`
/// stay text since JSON has no such numbers.
fn options() -> serde_saphyr::Options {
    let mut options = serde_saphyr::Options::default();
    options.strict_booleans = true;
    options.non_finite_float_policy = serde_saphyr::NonFiniteFloatPolicy::AsString;
    options
}

fn first_line(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("invalid YAML")
        .to_string()
}

/// A markdown file split into its YAML frontmatter and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Markdown<'a> {
    /// The frontmatter text (without the `---` fences), if the file has one.
    pub frontmatter: Option<&'a str>,
    /// 1-based line of the file where the frontmatter text starts (the line after `---`).
    pub frontmatter_line: usize,
    pub body: &'a str,
}

/// Splits `---`-fenced frontmatter from the body. A file that opens a fence but never closes it
/// has no frontmatter (the whole file is body), which callers report as an error.
pub fn split_frontmatter(text: &str) -> Result<Markdown<'_>, YamlError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut lines = text.split_inclusive('\n');
    let Some(first) = lines.next() else {
        return Ok(Markdown {
            frontmatter: None,
            frontmatter_line: 1,
            body: text,
        });
    };
    if first.trim_end() != "---" {
        return Ok(Markdown {
            frontmatter: None,
            frontmatter_line: 1,
            body: text,
        });
    }
    let start = first.len();
    let mut offset = start;
    for line in lines {
        let trimmed = line.trim_end();
        if trimmed == "---" || trimmed == "..." {
            let frontmatter = &text[start..offset];
            let body = &text[offset + line.len()..];
            return Ok(Markdown {
                frontmatter: Some(frontmatter),
                frontmatter_line: 2,
                body,
            });
        }
        offset += line.len();
    }
    Err(YamlError {
        line: Some(1),
        message: "frontmatter opened with '---' is never closed".to_string(),
    })
}

/// One step of a key path: a mapping key or a sequence index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathSegment {
    Key(String),
    Index(usize),
}

/// Parses a dotted path as printed by `serde_path_to_error` / `serde_ignored`
/// (`auth.api_keys[0].name`, `schedules.1.cron`) into segments.
pub fn parse_path(path: &str) -> Vec<PathSegment> {
    let mut segments = Vec::new();
    for part in path.split('.') {
        if part.is_empty() || part == "?" {
            continue;
        }
        let mut rest = part;
        if let Some(bracket) = rest.find('[') {
            let key = &rest[..bracket];
            if !key.is_empty() {
                segments.push(PathSegment::Key(key.to_string()));
            }
            rest = &rest[bracket..];
            while let Some(inner) = rest.strip_prefix('[') {
                let Some(close) = inner.find(']') else { break };
                if let Ok(index) = inner[..close].parse() {
                    segments.push(PathSegment::Index(index));
                }
                rest = &inner[close + 1..];
            }
        } else if let Ok(index) = rest.parse::<usize>() {
            segments.push(PathSegment::Index(index));
        } else {
            segments.push(PathSegment::Key(rest.to_string()));
        }
    }
    segments
}

struct Line<'a> {
    number: usize,
    indent: usize,
    content: &'a str,
}

impl Line<'_> {
    fn is_item(&self) -> bool {
        self.content == "-" || self.content.starts_with("- ")
    }

    /// Column where this line's mapping key starts (after a leading `- ` for item lines).
    fn key_column(&self) -> usize {
        if self.is_item() {
            let rest = self.content[1..].trim_start();
            self.indent + (self.content.len() - rest.len())
        } else {
            self.indent
        }
    }

    fn key_text(&self) -> &str {
        if self.is_item() {
            self.content[1..].trim_start()
        } else {
            self.content
        }
    }
}

fn significant_lines(text: &str) -> Vec<Line<'_>> {
    text.lines()
        .enumerate()
        .filter_map(|(i, raw)| {
            let content = raw.trim_start();
            if content.is_empty() || content.starts_with('#') || content == "---" {
                return None;
            }
            Some(Line {
                number: i + 1,
                indent: raw.len() - content.len(),
                content,
            })
        })
        .collect()
}

/// Whether `text` (a line from its key column) starts a mapping entry for `key`.
fn starts_key(text: &str, key: &str) -> bool {
    ["", "\"", "'"].iter().any(|quote| {
        text.strip_prefix(quote)
            .and_then(|rest| rest.strip_prefix(key))
            .and_then(|rest| rest.strip_prefix(quote))
            .is_some_and(|rest| rest.starts_with(':'))
    })
}

/// The 1-based line (counted from the start of `text`) where the value at `path` is written,
/// or the line of the deepest ancestor that could be found.
pub fn locate(text: &str, path: &[PathSegment]) -> Option<usize> {
    let lines = significant_lines(text);
    let (mut start, mut end) = (0usize, lines.len());
    let mut found = None;
    for segment in path {
        let block = &lines[start..end];
        let hit = match segment {
            PathSegment::Key(key) => {
                let Some(column) = block.first().map(Line::key_column) else {
                    break;
                };
                block
                    .iter()
                    .position(|l| l.key_column() == column && starts_key(l.key_text(), key))
            }
            PathSegment::Index(index) => {
                let Some(dash_indent) =
                    block.iter().filter(|l| l.is_item()).map(|l| l.indent).min()
                else {
                    break;
                };
                block
                    .iter()
                    .enumerate()
                    .filter(|(_, l)| l.is_item() && l.indent == dash_indent)
                    .map(|(i, _)| i)
                    .nth(*index)
            }
        };
        let Some(offset) = hit else { break };
        let i = start + offset;
        let line = &lines[i];
        found = Some(line.number);
        match segment {
            PathSegment::Key(_) => {
                let column = line.key_column();
                // Children sit deeper; `- item` lines may sit at the key's own column.
                end = (i + 1..end)
                    .find(|&j| {
                        lines[j].indent < column
                            || (lines[j].indent == column && !lines[j].is_item())
                    })
                    .unwrap_or(end);
                start = i + 1;
            }
            PathSegment::Index(_) => {
                // The item's first key is on its own line, after the dash.
                end = (i + 1..end)
                    .find(|&j| lines[j].indent <= line.indent)
                    .unwrap_or(end);
                start = i;
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "\
# comment
server:
  host: 0.0.0.0
  port: 8000

auth:
  api_keys:
    - name: a
      key: k1
    - name: b
      key: k2
      scopes: [x]
model:
  default: x
";

    fn at(path: &str) -> Option<usize> {
        locate(DOC, &parse_path(path))
    }

    #[test]
    fn locates_nested_keys_and_items() {
        assert_eq!(at("server"), Some(2));
        assert_eq!(at("server.port"), Some(4));
        assert_eq!(at("auth.api_keys"), Some(7));
        assert_eq!(at("auth.api_keys[0]"), Some(8));
        assert_eq!(at("auth.api_keys[1].key"), Some(11));
        assert_eq!(at("auth.api_keys[1].name"), Some(10));
        assert_eq!(at("auth.api_keys.1.scopes"), Some(12));
        assert_eq!(at("model.default"), Some(14));
    }

    #[test]
    fn missing_key_falls_back_to_deepest_ancestor() {
        assert_eq!(at("server.nope"), Some(2));
        assert_eq!(at("nope"), None);
        // `port` under `model` must not match `server.port`.
        assert_eq!(at("model.port"), Some(13));
    }

    #[test]
    fn splits_frontmatter() {
        let md = split_frontmatter("---\na: 1\nb: 2\n---\nHello\n").unwrap();
        assert_eq!(md.frontmatter, Some("a: 1\nb: 2\n"));
        assert_eq!(md.body, "Hello\n");
        assert_eq!(md.frontmatter_line, 2);
        let plain = split_frontmatter("Hello\n---\n").unwrap();
        assert_eq!(plain.frontmatter, None);
        assert!(split_frontmatter("---\na: 1\n").is_err());
    }

    #[test]
    fn parse_reports_the_line_of_a_syntax_error() {
        let err = parse("a: 1\nb: [1, 2\nc: 3\n").unwrap_err();
        assert!(err.line.is_some(), "{err:?}");
        assert_eq!(parse("").unwrap(), Value::Null);
        assert_eq!(parse("a: 1").unwrap(), serde_json::json!({"a": 1}));
    }

    #[test]
    fn scalars_read_like_pyyaml() {
        let v = parse("a: [n, y, yes, true, False, ~, 1_000, .inf]").unwrap();
        assert_eq!(
            v["a"],
            serde_json::json!(["n", "y", "yes", true, false, null, 1000, ".inf"])
        );
    }

    #[test]
    fn parses_paths() {
        assert_eq!(
            parse_path("a.b[2].c"),
            vec![
                PathSegment::Key("a".into()),
                PathSegment::Key("b".into()),
                PathSegment::Index(2),
                PathSegment::Key("c".into())
            ]
        );
        assert_eq!(
            parse_path("a.3"),
            vec![PathSegment::Key("a".into()), PathSegment::Index(3)]
        );
    }
}
