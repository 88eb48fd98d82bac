//! The shape of the code, checked on every run: no import cycle among the files of `src/`, every
//! import between top-level modules points down the layer order written in docs/ARCHITECTURE.md,
//! no source file over 500 lines and no function over 120.
//!
//! A file depends on another when it names it: in a `use` or in a path (`crate::db::Pool`,
//! `super::state::State`, `fast::recommend`). A `mod` declaration is containment, not a dependency.
//! Test modules (`#[cfg(test)]`) are left out: tests may reach anywhere. The parsing is textual
//! (comments and string literals removed first); `cargo modules` would do it with the compiler's
//! view, but it is not a dependency worth a CI install for a check this small.

mod parse;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use parse::{
    inline_paths, long_functions, module_of, resolve, rust_files, strip, use_paths, without_tests,
};

const MAX_FILE_LINES: usize = 500;
pub const MAX_FN_LINES: usize = 120;

/// A module as its path below `crate` (`["engine", "state"]`); the crate root is empty.
pub type Module = Vec<String>;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

struct Crate {
    deps: BTreeMap<Module, BTreeSet<Module>>,
}

fn read_crate() -> Crate {
    let src = root().join("src");
    let mut sources = BTreeMap::new();
    for file in rust_files(&src) {
        let module = module_of(&src, &file);
        if module.is_empty() {
            continue; // lib.rs and main.rs: declarations only
        }
        let text = std::fs::read_to_string(&file).unwrap();
        sources.insert(module, without_tests(&strip(&text)));
    }
    let modules: BTreeSet<Module> = sources.keys().cloned().collect();
    let deps = sources
        .iter()
        .map(|(m, text)| {
            let named = use_paths(text).into_iter().chain(inline_paths(text));
            let to: BTreeSet<Module> = named
                .filter_map(|p| resolve(&modules, m, &p))
                .filter(|d| d != m && !d.is_empty())
                .collect();
            (m.clone(), to)
        })
        .collect();
    Crate { deps }
}

fn name(m: &Module) -> String {
    m.join("::")
}

/// One cycle through the graph, if there is any.
fn find_cycle(deps: &BTreeMap<Module, BTreeSet<Module>>) -> Option<Vec<Module>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Open,
        Done,
    }
    fn visit(
        m: &Module,
        deps: &BTreeMap<Module, BTreeSet<Module>>,
        marks: &mut BTreeMap<Module, Mark>,
        stack: &mut Vec<Module>,
    ) -> Option<Vec<Module>> {
        marks.insert(m.clone(), Mark::Open);
        stack.push(m.clone());
        for d in deps.get(m).into_iter().flatten() {
            match marks.get(d).copied().unwrap_or(Mark::New) {
                Mark::Open => {
                    let from = stack.iter().position(|s| s == d).unwrap();
                    let mut cycle = stack[from..].to_vec();
                    cycle.push(d.clone());
                    return Some(cycle);
                }
                Mark::New => {
                    if let Some(c) = visit(d, deps, marks, stack) {
                        return Some(c);
                    }
                }
                Mark::Done => {}
            }
        }
        stack.pop();
        marks.insert(m.clone(), Mark::Done);
        None
    }
    let mut marks = BTreeMap::new();
    for m in deps.keys() {
        if marks.get(m).copied().unwrap_or(Mark::New) == Mark::New
            && let Some(c) = visit(m, deps, &mut marks, &mut Vec::new())
        {
            return Some(c);
        }
    }
    None
}

/// The layer of each top-level module, from the numbered list under "## Layers" in
/// docs/ARCHITECTURE.md (1 = bottom): each item's backticked names before its first colon.
fn layers() -> BTreeMap<String, usize> {
    let doc = std::fs::read_to_string(root().join("docs/ARCHITECTURE.md")).unwrap();
    let section = doc
        .split("\n## Layers")
        .nth(1)
        .expect("docs/ARCHITECTURE.md has a \"## Layers\" section");
    let section = section.split("\n## ").next().unwrap();
    let mut out = BTreeMap::new();
    for line in section.lines() {
        let Some((number, rest)) = line.split_once(". ") else {
            continue;
        };
        let Ok(layer) = number.trim().parse::<usize>() else {
            continue;
        };
        let names = rest.split(':').next().unwrap();
        for name in names.split('`').skip(1).step_by(2) {
            out.insert(name.to_string(), layer);
        }
    }
    out
}

#[test]
fn no_import_cycle_among_the_files_of_src() {
    let krate = read_crate();
    assert!(
        krate.deps.len() > 50,
        "the parser found only {} modules",
        krate.deps.len()
    );
    if let Some(cycle) = find_cycle(&krate.deps) {
        let shown: Vec<String> = cycle.iter().map(name).collect();
        panic!("import cycle: {}", shown.join(" -> "));
    }
}

#[test]
fn every_import_points_down_the_layers_of_the_architecture() {
    let krate = read_crate();
    let layers = layers();
    let mut wrong = Vec::new();
    for (from, to) in &krate.deps {
        let top = &from[0];
        let Some(&mine) = layers.get(top) else {
            panic!("module `{top}` is missing from the layers in docs/ARCHITECTURE.md");
        };
        for d in to.iter().filter(|d| d[0] != *top) {
            let theirs = layers[&d[0]];
            if theirs >= mine {
                wrong.push(format!(
                    "{} (layer {mine}) imports {} (layer {theirs})",
                    name(from),
                    name(d)
                ));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "imports against the layer order:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn no_file_over_500_lines_and_no_function_over_120() {
    let mut wrong = Vec::new();
    for dir in ["src", "tests", "benches"] {
        for file in rust_files(&root().join(dir)) {
            let text = std::fs::read_to_string(&file).unwrap();
            let shown = file.strip_prefix(root()).unwrap().display().to_string();
            let lines = text.lines().count();
            if lines > MAX_FILE_LINES {
                wrong.push(format!("{shown}: {lines} lines"));
            }
            for (f, line, n) in long_functions(&strip(&text)) {
                wrong.push(format!("{shown}:{line}: fn {f} has {n} lines"));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "over {MAX_FILE_LINES} lines per file or {MAX_FN_LINES} per function:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn the_parser_sees_what_the_compiler_sees() {
    let text = strip(
        "use crate::a::{b, c::{D, E as F}};\n// use crate::z;\nlet s = \"crate::y::X\"; \
         let c = '\"'; fn f<'a>(x: &'a str) { super::w::g() }",
    );
    let mut uses = use_paths(&text);
    uses.sort();
    assert_eq!(uses, ["crate::a::b", "crate::a::c::D", "crate::a::c::E"]);
    assert!(!text.contains("crate::z") && !text.contains("crate::y"));
    assert!(inline_paths(&text).contains(&"super::w::g".to_string()));
    let modules: BTreeSet<Module> = [vec!["a".into()], vec!["a".into(), "c".into()]].into();
    let here: Module = vec!["a".into(), "b".into()];
    assert_eq!(
        resolve(&modules, &here, "crate::a::c::D"),
        Some(vec!["a".to_string(), "c".to_string()])
    );
    assert_eq!(
        resolve(&modules, &here, "super::Thing"),
        Some(vec!["a".to_string()])
    );
    assert_eq!(resolve(&modules, &here, "std::sync::Arc"), None);
    let code = format!("fn long() {{\n{}}}\nfn short() {{}}\n", "x;\n".repeat(130));
    assert_eq!(long_functions(&code), [("long".to_string(), 1, 132)]);
}

/// Handlers write only through the catalogue: no call to the engine's mutators or the store's
/// writes anywhere in `src/api/` (whitespace removed, so a call chain split over lines is seen).
#[test]
fn handlers_write_only_through_the_catalogue() {
    let writes = [
        ".engine.upsert_items(",
        ".engine.delete_item(",
        ".engine.ensure_users(",
        ".engine.delete_user(",
        ".engine.add_feedback(",
        ".engine.remove_feedback(",
        ".store.upsert_items(",
        ".store.patch_item(",
        ".store.delete_item(",
        ".store.upsert_users(",
        ".store.patch_user(",
        ".store.delete_user(",
        ".store.insert_feedback(",
        ".store.delete_feedback(",
    ];
    let mut found = Vec::new();
    for file in rust_files(&root().join("src/api")) {
        let text = strip(&std::fs::read_to_string(&file).unwrap());
        let dense: String = text.split_whitespace().collect();
        for w in writes.iter().filter(|w| dense.contains(*w)) {
            found.push(format!("{}: {w}", file.display()));
        }
    }
    assert!(
        found.is_empty(),
        "writes around the catalogue:\n{}",
        found.join("\n")
    );
    let catalogue = strip(&std::fs::read_to_string(root().join("src/catalogue/mod.rs")).unwrap());
    assert!(catalogue.contains("fn upsert_items") && catalogue.contains("fn insert_feedback"));
}
