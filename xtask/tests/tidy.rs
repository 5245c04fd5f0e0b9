//! Tidy checks, as ordinary tests: the architecture invariants that a grep can keep true.

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            if !path.ends_with("target") && !path.ends_with("snapshots") {
                rust_files(&path, out);
            }
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn files_under(dirs: &[&str]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for d in dirs {
        rust_files(&root().join(d), &mut out);
    }
    assert!(!out.is_empty(), "no sources under {dirs:?}");
    out
}

/// The hooks' library code: everything below the binaries.
const LIBRARIES: [&str; 4] = [
    "crates/hooklib/src",
    "crates/buildctx/src",
    "crates/docker/src",
    "crates/k8s/src",
];

/// The invariants "no environment reads below the binaries" and "stdout belongs to the step"
/// are enforced by clippy (`clippy.toml`'s disallowed methods, `print_stdout`), denied in each
/// hook library's crate root; this keeps the attribute from being dropped.
#[test]
fn hook_libraries_deny_environment_reads_and_stdout() {
    for lib in LIBRARIES {
        let root = root().join(lib).join("lib.rs");
        let text = std::fs::read_to_string(&root).unwrap();
        assert!(
            text.contains("#![deny(clippy::disallowed_methods, clippy::print_stdout)]"),
            "{} must deny clippy::disallowed_methods and clippy::print_stdout",
            root.display()
        );
    }
    let config = std::fs::read_to_string(root().join("clippy.toml")).unwrap();
    for method in [
        "std::env::var",
        "std::env::vars",
        "std::env::var_os",
        "std::env::set_var",
    ] {
        assert!(
            config.contains(&format!("\"{method}\"")),
            "clippy.toml must disallow {method}"
        );
    }
}

#[test]
fn no_source_file_is_much_over_600_lines() {
    let mut long = Vec::new();
    for file in files_under(&["crates", "bins", "xtask"]) {
        let lines = std::fs::read_to_string(&file).unwrap().lines().count();
        if lines > 650 {
            long.push(format!("{} ({lines} lines)", file.display()));
        }
    }
    assert!(
        long.is_empty(),
        "split these by responsibility:\n{}",
        long.join("\n")
    );
}

#[test]
fn every_crate_uses_the_workspace_lints() {
    let manifest = std::fs::read_to_string(root().join("Cargo.toml")).unwrap();
    let members: Vec<&str> = manifest
        .lines()
        .skip_while(|l| !l.starts_with("members"))
        .skip(1)
        .take_while(|l| !l.starts_with(']'))
        .map(|l| l.trim().trim_matches(|c| c == '"' || c == ','))
        .filter(|l| !l.is_empty())
        .collect();
    assert!(members.len() >= 8, "{members:?}");
    for member in members {
        let text = std::fs::read_to_string(root().join(member).join("Cargo.toml")).unwrap();
        assert!(
            text.contains("[lints]\nworkspace = true"),
            "{member}/Cargo.toml must opt into [workspace.lints]"
        );
        assert!(
            text.contains("edition.workspace = true"),
            "{member}: edition 2024 from the workspace"
        );
    }
}
