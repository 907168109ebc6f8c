//! Reading `-f` inputs: files, directories (recursively), and `-` for standard input, each split
//! into documents. A document that does not parse is kept as an error with its file and line, so
//! one bad document never hides the rest of the input.

use std::{
    io::Read,
    path::{Path, PathBuf},
};

use serde_json::Value;

use crate::Error;

/// File endings `multusctl` reads when walking a directory.
pub const EXTENSIONS: &[&str] = &["yaml", "yml", "json", "conf", "conflist"];

/// A directory holding this file is skipped when reached by walking a parent directory (it holds
/// files that are broken on purpose, like `examples/invalid/`); naming it directly checks it.
pub const IGNORE_MARKER: &str = ".multusctlignore";

/// One document of the input.
#[derive(Debug, Clone)]
pub struct Document {
    /// The file as the user named it (`-` for standard input).
    pub file: String,
    /// 1-based position of the document within its file.
    pub index: usize,
    /// 1-based line where the document starts.
    pub line: usize,
    /// The file's ending, lower-case (`yaml`, `conflist`, …); empty for stdin.
    pub extension: String,
    pub content: Result<Value, ParseError>,
}

/// A document that is not valid YAML/JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// 1-based line in the file.
    pub line: usize,
    pub message: String,
}

/// Read every input path into documents, in a stable order (directories sorted by name).
pub fn load(paths: &[PathBuf]) -> Result<Vec<Document>, Error> {
    let mut docs = Vec::new();
    for path in paths {
        if path.as_os_str() == "-" {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .map_err(Error::ReadStdin)?;
            docs.extend(split("-", "", &text));
            continue;
        }
        if !path.exists() {
            return Err(Error::InputNotFound { path: path.clone() });
        }
        let mut files = Vec::new();
        collect_files(path, true, &mut files)?;
        for file in files {
            let text = std::fs::read_to_string(&file).map_err(|source| Error::ReadInput {
                path: file.clone(),
                source,
            })?;
            let ext = extension(&file);
            docs.extend(split(&file.display().to_string(), &ext, &text));
        }
    }
    Ok(docs)
}

fn extension(path: &Path) -> String {
    path.extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .unwrap_or_default()
}

fn collect_files(path: &Path, named: bool, out: &mut Vec<PathBuf>) -> Result<(), Error> {
    let read_err = |source| Error::ReadInput {
        path: path.to_path_buf(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(read_err)?;
    if meta.is_dir() {
        if !named && path.join(IGNORE_MARKER).exists() {
            return Ok(());
        }
        let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(read_err)?
            .map(|e| e.map(|e| e.path()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(read_err)?;
        entries.sort();
        for entry in entries {
            collect_files(&entry, false, out)?;
        }
    } else if named || EXTENSIONS.contains(&extension(path).as_str()) {
        // A file named on the command line is read whatever its ending.
        out.push(path.to_path_buf());
    }
    Ok(())
}

/// Split a file into documents and parse each. JSON-looking files (`.json`, `.conf`,
/// `.conflist`, or text starting with `{`/`[`) are one JSON document, parsed with serde_json for
/// its precise error positions; everything else is a YAML stream split at `---` lines.
pub fn split(file: &str, ext: &str, text: &str) -> Vec<Document> {
    let trimmed = text.trim_start();
    let json_like = matches!(ext, "json" | "conf" | "conflist")
        || trimmed.starts_with('{')
        || trimmed.starts_with('[');
    if json_like {
        let content = serde_json::from_str::<Value>(text).map_err(|e| ParseError {
            line: e.line().max(1),
            message: e.to_string(),
        });
        // A JSON file that is not valid JSON may still be YAML (YAML is a superset) — but a
        // `.json` file that fails JSON is reported as JSON, which is what its author meant.
        return vec![Document {
            file: file.to_owned(),
            index: 1,
            line: 1,
            extension: ext.to_owned(),
            content,
        }];
    }
    yaml_documents(text)
        .into_iter()
        .enumerate()
        .map(|(i, (line, body))| Document {
            file: file.to_owned(),
            index: i + 1,
            line,
            extension: ext.to_owned(),
            content: parse_yaml(body, line),
        })
        .filter(|d| !matches!(d.content, Ok(Value::Null)))
        .collect()
}

/// The documents of a YAML stream with the 1-based line each body starts on. A line that is
/// exactly `---` (optionally followed by a space or comment) starts a new document; `...` ends one.
fn yaml_documents(text: &str) -> Vec<(usize, &str)> {
    let mut docs = Vec::new();
    let mut start = 0usize;
    let mut start_line = 1usize;
    let mut offset = 0usize;
    for (n, line) in text.split_inclusive('\n').enumerate() {
        let bare = line.trim_end_matches(['\n', '\r']);
        let is_start = bare == "---" || bare.starts_with("--- ") || bare.starts_with("---\t");
        let is_end = bare == "...";
        if is_start || is_end {
            docs.push((start_line, &text[start..offset]));
            start = offset + line.len();
            start_line = n + 2;
        }
        offset += line.len();
    }
    docs.push((start_line, &text[start..]));
    docs.retain(|(_, body)| {
        body.lines()
            .any(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
    });
    docs
}

fn parse_yaml(body: &str, first_line: usize) -> Result<Value, ParseError> {
    serde_saphyr::from_str::<Value>(body).map_err(|e| {
        let line = e
            .location()
            .map(|l| usize::try_from(l.line()).unwrap_or(0))
            .filter(|l| *l > 0)
            .map_or(first_line, |l| first_line + l - 1);
        let message = e.to_string();
        // serde-saphyr renders a source snippet across several lines and prefixes its own
        // document-relative position; one line with the file's line number is enough here.
        let first = message.lines().next().unwrap_or("invalid YAML");
        let first = first.strip_prefix("error: ").unwrap_or(first);
        let message = match first.split_once(": ") {
            Some((position, rest)) if position.starts_with("line ") => rest.to_owned(),
            _ => first.to_owned(),
        };
        ParseError { line, message }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_streams_split_with_line_numbers() {
        let text = "# header\napiVersion: v1\nkind: Pod\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: b}\n---\n";
        let docs = split("f.yaml", "yaml", text);
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[0].line, 1);
        assert_eq!(docs[1].line, 5);
        assert_eq!(docs[1].index, 2);
        assert_eq!(docs[1].content.as_ref().unwrap()["metadata"]["name"], "b");
    }

    #[test]
    fn a_broken_document_is_reported_with_its_line_and_the_rest_still_parse() {
        let text =
            "kind: Pod\n---\nkind: [unclosed\nmore: x\n---\nkind: Pod\nmetadata: {name: c}\n";
        let docs = split("f.yaml", "yaml", text);
        assert_eq!(docs.len(), 3);
        let err = docs[1].content.as_ref().unwrap_err();
        assert!(err.line >= 3, "line {}", err.line);
        assert_eq!(docs[2].content.as_ref().unwrap()["metadata"]["name"], "c");
    }

    #[test]
    fn marked_directories_are_skipped_unless_named() {
        let dir = tempfile::tempdir().unwrap();
        let skipped = dir.path().join("broken");
        std::fs::create_dir(&skipped).unwrap();
        std::fs::write(skipped.join(IGNORE_MARKER), "").unwrap();
        std::fs::write(skipped.join("a.yaml"), "kind: Pod\n").unwrap();
        std::fs::write(dir.path().join("b.yaml"), "kind: Pod\n").unwrap();
        let walked = load(&[dir.path().to_path_buf()]).unwrap();
        assert_eq!(walked.len(), 1);
        assert!(walked[0].file.ends_with("b.yaml"));
        let named = load(std::slice::from_ref(&skipped)).unwrap();
        assert_eq!(named.len(), 1);
        assert!(named[0].file.ends_with("a.yaml"));
    }

    #[test]
    fn json_files_are_one_document() {
        let docs = split("x.conflist", "conflist", "{\n \"name\": \"a\",\n}");
        assert_eq!(docs.len(), 1);
        assert_eq!(docs[0].content.as_ref().unwrap_err().line, 3);
    }
}
