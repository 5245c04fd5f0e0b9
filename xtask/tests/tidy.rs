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

#[test]
fn no_environment_reads_below_the_binaries() {
    let mut offenders = Vec::new();
    for file in files_under(&LIBRARIES) {
        let text = std::fs::read_to_string(&file).unwrap();
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or_default();
            if [
                "std::env::var",
                "env::var(",
                "env::vars(",
                "set_var(",
                "var_os(",
            ]
            .iter()
            .any(|p| code.contains(p))
            {
                offenders.push(format!("{}:{}: {}", file.display(), n + 1, line.trim()));
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "libraries never read the environment; read it into a settings struct at the binary edge:\n{}",
        offenders.join("\n")
    );
}

#[test]
fn stdout_belongs_to_the_step() {
    let mut offenders = Vec::new();
    for file in files_under(&LIBRARIES) {
        let text = std::fs::read_to_string(&file).unwrap();
        for (n, line) in text.lines().enumerate() {
            let code = line.trim_start();
            if code.starts_with("//") {
                continue;
            }
            if code.contains("println!(") && !code.contains("eprintln!(")
                || code.contains("print!(") && !code.contains("eprint!(")
            {
                offenders.push(format!("{}:{}: {}", file.display(), n + 1, line.trim()));
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "the hooks' own output goes to stderr (tracing / eprintln); stdout carries only the step's output:\n{}",
        offenders.join("\n")
    );
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
