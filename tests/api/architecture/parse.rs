//! The textual parse behind the architecture checks: Rust source with comments and literals
//! blanked out, the paths it imports, and the functions it defines.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use super::{MAX_FN_LINES, Module};

pub fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    out.sort();
    out
}

pub fn module_of(src: &Path, file: &Path) -> Module {
    let rel = file.strip_prefix(src).unwrap().with_extension("");
    let mut parts: Module = rel
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    if parts == ["lib"] || parts == ["main"] {
        return Vec::new();
    }
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    parts
}

/// The text with comments, string and character literals blanked out (newlines kept, so line
/// numbers still hold).
pub fn strip(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let blank = |out: &mut String, s: &[u8]| {
        for &c in s {
            out.push(if c == b'\n' { '\n' } else { ' ' });
        }
    };
    let mut i = 0;
    while i < b.len() {
        let rest = &b[i..];
        let ident = |k: usize| b[k].is_ascii_alphanumeric() || b[k] == b'_';
        // A literal may follow its byte prefix (`b'x'`, `br"x"`), not another identifier.
        let byte_prefix = i > 0 && b[i - 1] == b'b' && (i < 2 || !ident(i - 2));
        let prev_ident = i > 0 && ident(i - 1) && !byte_prefix;
        let end = if rest.starts_with(b"//") {
            i + rest.iter().position(|&c| c == b'\n').unwrap_or(rest.len())
        } else if rest.starts_with(b"/*") {
            let mut depth = 0;
            let mut j = i;
            while j < b.len() {
                if b[j..].starts_with(b"/*") {
                    depth += 1;
                    j += 2;
                } else if b[j..].starts_with(b"*/") {
                    depth -= 1;
                    j += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    j += 1;
                }
            }
            j
        } else if !prev_ident && (rest.starts_with(b"r#") || rest.starts_with(b"r\"")) {
            let hashes = rest[1..].iter().take_while(|&&c| c == b'#').count();
            if rest.get(1 + hashes) != Some(&b'"') {
                out.push(b[i] as char);
                i += 1;
                continue;
            }
            let close: Vec<u8> = std::iter::once(b'"')
                .chain(std::iter::repeat_n(b'#', hashes))
                .collect();
            let body = i + 2 + hashes;
            body + b[body..]
                .windows(close.len())
                .position(|w| w == close.as_slice())
                .unwrap()
                + close.len()
        } else if b[i] == b'"' {
            let mut j = i + 1;
            while b[j] != b'"' {
                j += if b[j] == b'\\' { 2 } else { 1 };
            }
            j + 1
        } else if b[i] == b'\'' && !prev_ident {
            // A character literal ('a', '\n', '\u{1F600}'), not a lifetime ('a).
            let j = if rest.get(1) == Some(&b'\\') {
                i + 2 + rest[2..].iter().position(|&c| c == b'\'').unwrap_or(0)
            } else {
                let width = text[i + 1..].chars().next().map_or(1, char::len_utf8);
                i + 1 + width
            };
            if b.get(j) == Some(&b'\'') {
                j + 1
            } else {
                out.push('\'');
                i += 1;
                continue;
            }
        } else {
            let width = text[i..].chars().next().map_or(1, char::len_utf8);
            out.push_str(&text[i..i + width]);
            i += width;
            continue;
        };
        blank(&mut out, &b[i..end]);
        i = end;
    }
    out
}

/// The index of the brace closing the one at `open`.
pub fn closing_brace(text: &[u8], open: usize) -> usize {
    let mut depth = 0;
    for (j, &c) in text.iter().enumerate().skip(open) {
        match c {
            b'{' => depth += 1,
            b'}' => {
                depth -= 1;
                if depth == 0 {
                    return j;
                }
            }
            _ => {}
        }
    }
    text.len() - 1
}

/// `stripped` without its `#[cfg(test)]` modules.
pub fn without_tests(stripped: &str) -> String {
    let mut text = stripped.to_string();
    while let Some(at) = text.find("#[cfg(test)]") {
        let after = at + "#[cfg(test)]".len();
        let end = match text[after..].find(['{', ';']) {
            Some(k) if text.as_bytes()[after + k] == b'{' => {
                closing_brace(text.as_bytes(), after + k) + 1
            }
            Some(k) => after + k + 1,
            None => text.len(),
        };
        text.replace_range(at..end, "");
    }
    text
}

/// Every path a `use` declaration names, braces expanded (`a::{b, c::d}` → `a::b`, `a::c::d`).
pub fn use_paths(text: &str) -> Vec<String> {
    fn expand(prefix: &str, tree: &str, out: &mut Vec<String>) {
        let Some(open) = tree.find('{') else {
            out.push(format!("{prefix}{tree}"));
            return;
        };
        let head = format!("{prefix}{}", &tree[..open]);
        let body = &tree[open + 1..tree.rfind('}').unwrap()];
        let (mut depth, mut start) = (0, 0);
        for (k, c) in body.char_indices() {
            match c {
                '{' => depth += 1,
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    expand(&head, &body[start..k], out);
                    start = k + 1;
                }
                _ => {}
            }
        }
        expand(&head, &body[start..], out);
    }
    let mut out = Vec::new();
    let words: Vec<(usize, &str)> = text.match_indices("use ").collect();
    for (at, _) in words {
        let before = text[..at].chars().next_back();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        let Some(end) = text[at..].find(';') else {
            continue;
        };
        // `E as F` → `E`; then without whitespace.
        let mut tree = String::new();
        let mut tokens = text[at + 4..at + end].split_whitespace();
        while let Some(token) = tokens.next() {
            if token == "as" {
                let alias = tokens.next().unwrap_or("");
                tree.push_str(alias.trim_start_matches(|c: char| c.is_alphanumeric() || c == '_'));
            } else {
                tree.push_str(token);
            }
        }
        expand("", &tree, &mut out);
    }
    out
}

/// Every `a::b::c` path in the text.
pub fn inline_paths(text: &str) -> Vec<String> {
    let b = text.as_bytes();
    let ident = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if !ident(b[i]) || (i > 0 && (ident(b[i - 1]) || b[i - 1] == b':')) {
            i += 1;
            continue;
        }
        let start = i;
        let mut end = i;
        loop {
            while end < b.len() && ident(b[end]) {
                end += 1;
            }
            if b[end..].starts_with(b"::") && b.get(end + 2).is_some_and(|&c| ident(c)) {
                end += 2;
            } else {
                break;
            }
        }
        if text[start..end].contains("::") {
            out.push(text[start..end].to_string());
        }
        i = end.max(i + 1);
    }
    out
}

/// The module file a path from `current` names, if it names one of the crate's.
pub fn resolve(modules: &BTreeSet<Module>, current: &Module, path: &str) -> Option<Module> {
    let segments: Vec<&str> = path.split("::").filter(|s| !s.is_empty()).collect();
    let (mut base, rest): (Module, &[&str]) = match segments.first()? {
        &"crate" => (Vec::new(), &segments[1..]),
        &"super" => {
            let supers = segments.iter().take_while(|s| **s == "super").count();
            let keep = current.len().checked_sub(supers)?;
            (current[..keep].to_vec(), &segments[supers..])
        }
        &"self" => (current.clone(), &segments[1..]),
        first => {
            let mut child = current.clone();
            child.push(first.to_string());
            if !modules.contains(&child) {
                return None;
            }
            (current.clone(), &segments[..])
        }
    };
    for s in rest {
        base.push(s.to_string());
        if !modules.contains(&base) {
            base.pop();
            break;
        }
    }
    Some(base)
}

/// Each module of `src/` and the modules it imports.
/// Functions longer than `MAX_FN_LINES` in stripped `text`: (name, first line, lines).
pub fn long_functions(text: &str) -> Vec<(String, usize, usize)> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    for (at, _) in text.match_indices("fn ") {
        if at > 0 && (b[at - 1].is_ascii_alphanumeric() || b[at - 1] == b'_') {
            continue;
        }
        let name: String = text[at + 3..]
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        if name.is_empty() {
            continue; // a function pointer type
        }
        let Some(k) = text[at..].find(['{', ';']) else {
            continue;
        };
        if b[at + k] == b';' {
            continue; // a declaration without a body
        }
        let end = closing_brace(b, at + k);
        let first = text[..at].matches('\n').count() + 1;
        let lines = text[at..=end].matches('\n').count() + 1;
        if lines > MAX_FN_LINES {
            out.push((name, first, lines));
        }
    }
    out
}
