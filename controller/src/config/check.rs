//! Loading a config file and reporting problems with line, column and hint.

use super::Config;
use super::model::RawConfig;
use std::fmt;
use std::path::Path;

/// The embedded lab default, used by `serve` without `--config`.
pub const DEFAULT_CONFIG: &str = include_str!("default.yaml");

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Error,
    Warning,
}

/// One thing wrong (or suspicious) in a config file. Line and column start
/// at 1; 0 means the problem is about the file as a whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub severity: Severity,
    pub line: u64,
    pub column: u64,
    pub message: String,
    pub hint: String,
}

impl Problem {
    /// `FILE:LINE:COL: error: MESSAGE` then `  hint: HINT`.
    pub fn render(&self, file: &str) -> String {
        let sev = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        let mut s = if self.line == 0 {
            format!("{file}: {sev}: {}", self.message)
        } else {
            format!(
                "{file}:{}:{}: {sev}: {}",
                self.line, self.column, self.message
            )
        };
        if !self.hint.is_empty() {
            s.push_str("\n  hint: ");
            s.push_str(&self.hint);
        }
        s
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.render("config"))
    }
}

/// A hint for a YAML-level error from its message.
fn parse_hint(msg: &str) -> &'static str {
    if msg.contains("unknown field") {
        "check the spelling; `subcast-controller check-config` lists the keys each section accepts in controller/examples/controller.yaml"
    } else if msg.contains("missing field") {
        "add the field; see controller/examples/controller.yaml"
    } else if msg.contains("invalid type") || msg.contains("invalid value") {
        "check the value's type (numbers unquoted, addresses and names as strings)"
    } else {
        "fix the YAML syntax (indentation uses spaces; lists start with `- `)"
    }
}

/// Parses and checks a config text. `base` is where relative paths start.
/// On success, returns the config and any warnings.
pub fn load_str(text: &str, base: &Path) -> Result<(Config, Vec<Problem>), Vec<Problem>> {
    let raw: RawConfig = match serde_saphyr::from_str(text) {
        Ok(r) => r,
        Err(e) => {
            // Serde stops at the first unknown key: list them all.
            if e.to_string().contains("unknown field") {
                let all = super::unknown::unknown_keys(text);
                if !all.is_empty() {
                    return Err(all);
                }
            }
            let (line, column) = e.location().map_or((0, 0), |l| (l.line(), l.column()));
            let full = e.to_string();
            // The crate's message may carry a source snippet after the
            // first line; the location is reported separately.
            let mut message = full.lines().next().unwrap_or("invalid YAML");
            message = message.strip_prefix("error: ").unwrap_or(message);
            if message.starts_with("line ")
                && let Some((_, rest)) = message.split_once(": ")
            {
                message = rest;
            }
            let message = message.to_owned();
            return Err(vec![Problem {
                severity: super::Severity::Error,
                line,
                column,
                hint: parse_hint(&full).to_owned(),
                message,
            }]);
        }
    };
    super::validate::validate(&raw, base)
}

/// Reads, parses and checks a config file.
pub fn load_file(path: &Path) -> Result<(Config, Vec<Problem>), Vec<Problem>> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        vec![Problem {
            severity: Severity::Error,
            line: 0,
            column: 0,
            message: format!("cannot read {}: {e}", path.display()),
            hint: "check the path and permissions".into(),
        }]
    })?;
    let base = path.parent().unwrap_or(Path::new("."));
    let base = if base.as_os_str().is_empty() {
        Path::new(".")
    } else {
        base
    };
    load_str(&text, base).map(|(mut c, w)| {
        c.source = Some(path.to_owned());
        (c, w)
    })
}

/// The embedded lab default (its database lives in the current directory).
pub fn load_default() -> Result<(Config, Vec<Problem>), Vec<Problem>> {
    load_str(DEFAULT_CONFIG, Path::new("."))
}
