//! Listings as a table, JSON or CSV.

use anyhow::anyhow;
use comfy_table::presets::ASCII_MARKDOWN;
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Table,
    Json,
    Csv,
}

impl Format {
    pub fn parse(text: &str, allow_csv: bool) -> anyhow::Result<Self> {
        match text {
            "table" => Ok(Self::Table),
            "json" => Ok(Self::Json),
            "csv" if allow_csv => Ok(Self::Csv),
            other => Err(anyhow!(
                "unknown format '{other}': use {}",
                if allow_csv {
                    "table, json or csv"
                } else {
                    "table or json"
                }
            )),
        }
    }
}

/// Rows of JSON values under fixed column names.
pub struct Table {
    columns: Vec<String>,
    rows: Vec<Vec<Value>>,
    empty_message: String,
}

impl Table {
    pub fn new(columns: &[&str], empty_message: &str) -> Self {
        Self {
            columns: columns.iter().map(|c| c.to_string()).collect(),
            rows: Vec::new(),
            empty_message: empty_message.to_string(),
        }
    }

    pub fn row(&mut self, values: Vec<Value>) {
        self.rows.push(values);
    }

    fn cell(value: &Value) -> String {
        match value {
            Value::String(s) => s.clone(),
            Value::Null => String::new(),
            other => other.to_string(),
        }
    }

    pub fn render(&self, format: Format) -> anyhow::Result<String> {
        Ok(match format {
            Format::Json => {
                let objects: Vec<Value> = self
                    .rows
                    .iter()
                    .map(|row| {
                        Value::Object(
                            self.columns
                                .iter()
                                .cloned()
                                .zip(row.iter().cloned())
                                .collect(),
                        )
                    })
                    .collect();
                serde_json::to_string_pretty(&objects)?
            }
            Format::Csv => {
                let mut out = csv_line(self.columns.iter().map(String::as_str));
                for row in &self.rows {
                    let cells: Vec<String> = row.iter().map(Self::cell).collect();
                    out.push_str(&csv_line(cells.iter().map(String::as_str)));
                }
                out.trim_end().to_string()
            }
            Format::Table if self.rows.is_empty() => self.empty_message.clone(),
            Format::Table => {
                let mut table = comfy_table::Table::new();
                table.load_style(ASCII_MARKDOWN);
                table.set_header(self.columns.clone());
                for row in &self.rows {
                    table.add_row(row.iter().map(Self::cell).collect::<Vec<_>>());
                }
                table.to_string()
            }
        })
    }

    pub fn print(&self, format: Format) -> anyhow::Result<()> {
        println!("{}", self.render(format)?);
        Ok(())
    }
}

fn csv_line<'a>(cells: impl Iterator<Item = &'a str>) -> String {
    let quoted: Vec<String> = cells
        .map(|c| {
            if c.contains([',', '"', '\n']) {
                format!("\"{}\"", c.replace('"', "\"\""))
            } else {
                c.to_string()
            }
        })
        .collect();
    format!("{}\n", quoted.join(","))
}

/// Writes the warnings and errors of `diagnostics` (sorted, `file:line: message`) as `check`
/// shows them, each list under its heading when it has any; returns (warnings, errors).
pub fn write_diagnostics(
    out: &mut dyn std::io::Write,
    diagnostics: &agent_gateway::workspace::Diagnostics,
) -> (usize, usize) {
    use agent_gateway::workspace::Severity;
    let sorted = agent_gateway::workspace::workspace::sorted(diagnostics);
    let mut counts = (0, 0);
    for (severity, heading, mark) in [
        (Severity::Warning, "Warnings:", "[!]"),
        (Severity::Error, "Errors:", "[x]"),
    ] {
        let listed: Vec<_> = sorted.iter().filter(|d| d.severity == severity).collect();
        if listed.is_empty() {
            continue;
        }
        // A closed stdout or stderr leaves nothing to report the failure on.
        let _ = writeln!(out, "\n{heading}");
        for diagnostic in &listed {
            let _ = writeln!(out, "  {mark} {diagnostic}");
        }
        match severity {
            Severity::Warning => counts.0 = listed.len(),
            Severity::Error => counts.1 = listed.len(),
        }
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn renders_all_formats() {
        let mut t = Table::new(&["id", "n"], "none");
        t.row(vec![json!("a,b"), json!(2)]);
        assert_eq!(t.render(Format::Csv).unwrap(), "id,n\n\"a,b\",2");
        assert_eq!(
            serde_json::from_str::<Value>(&t.render(Format::Json).unwrap()).unwrap(),
            json!([{"id": "a,b", "n": 2}])
        );
        assert!(t.render(Format::Table).unwrap().contains("a,b"));
        assert_eq!(
            Table::new(&["x"], "none").render(Format::Table).unwrap(),
            "none"
        );
        assert!(Format::parse("csv", false).is_err());
    }
}
