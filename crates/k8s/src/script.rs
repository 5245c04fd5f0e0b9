//! The step script: the step's environment as escaped exports, `PATH` prepend, `cd` to the
//! working directory, then `exec` of the runner's entrypoint and arguments.
//!
//! Every value is single-quoted, so a shell never interprets it: `$VAR`, `${VAR}`, `$(cmd)`
//! and backticks arrive in the step literally.

use hooklib::RunScriptStepArgs;
use std::fmt::Write;

/// The step's input cannot be written as a POSIX shell script.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScriptError {
    /// An environment variable name a POSIX shell cannot export.
    #[error(
        "environment variable name {0:?} is invalid: names must be letters, digits and _, not starting with a digit"
    )]
    EnvName(String),
    /// A value holding a NUL byte (no process environment can carry it).
    #[error("{0} contains a NUL byte")]
    Nul(String),
    /// The step has no entrypoint.
    #[error("run_script_step has no entryPoint")]
    NoEntryPoint,
}

/// Whether `name` can be exported by a POSIX shell.
pub fn is_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn quote(what: impl FnOnce() -> String, value: &str) -> Result<String, ScriptError> {
    shlex::try_quote(value)
        .map(|q| q.into_owned())
        .map_err(|_| ScriptError::Nul(what()))
}

/// Writes the script that runs a script step in the job container.
pub fn step_script(args: &RunScriptStepArgs) -> Result<String, ScriptError> {
    if args.entry_point.is_empty() {
        return Err(ScriptError::NoEntryPoint);
    }
    let mut s = String::from("#!/bin/sh\n# written by k8s-hook for one run_script_step\n");
    for (name, value) in &args.environment_variables {
        if !is_env_name(name) {
            return Err(ScriptError::EnvName(name.clone()));
        }
        let v = quote(|| format!("environment variable {name}"), value)?;
        let _ = writeln!(s, "export {name}={v}");
    }
    let prepend: Vec<&str> = args
        .prepend_path
        .iter()
        .map(String::as_str)
        .filter(|p| !p.is_empty())
        .collect();
    if !prepend.is_empty() {
        let p = quote(|| "prependPath".into(), &prepend.join(":"))?;
        let _ = writeln!(s, "export PATH={p}${{PATH:+:$PATH}}");
    }
    if !args.working_directory.is_empty() {
        let d = quote(|| "workingDirectory".into(), &args.working_directory)?;
        let _ = writeln!(s, "cd {d} || exit 1");
    }
    let mut line = format!("exec {}", quote(|| "entryPoint".into(), &args.entry_point)?);
    for a in &args.entry_point_args {
        line.push(' ');
        line.push_str(&quote(|| "entryPointArgs".into(), a)?);
    }
    s.push_str(&line);
    s.push('\n');
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::process::Command;

    fn args(env: &[(&str, &str)]) -> RunScriptStepArgs {
        RunScriptStepArgs {
            entry_point: "sh".into(),
            entry_point_args: vec![
                "-c".into(),
                "printf '%s|' \"$A\" \"$B\" \"$PATH\"; pwd".into(),
            ],
            environment_variables: env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect::<BTreeMap<_, _>>(),
            prepend_path: vec!["/opt/a".into(), "/opt/b".into()],
            working_directory: "/".into(),
        }
    }

    #[test]
    fn values_arrive_literally_through_a_real_shell() {
        let tricky = "$HOME ${HOME} $(echo no) `echo no` 'single' \"double\" \\ \n newline";
        let script = step_script(&args(&[("A", tricky), ("B", "")])).unwrap();
        let out = Command::new("/bin/sh")
            .arg("-c")
            .arg(&script)
            .env("PATH", "/usr/bin:/bin")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8(out.stdout).unwrap();
        assert_eq!(text, format!("{tricky}||/opt/a:/opt/b:/usr/bin:/bin|/\n"));
    }

    #[test]
    fn snapshot_of_a_script() {
        let mut a = args(&[("GITHUB_ENV", "/__w/_temp/_runner_file_commands/set_env_1")]);
        a.entry_point = "bash".into();
        a.entry_point_args = [
            "--noprofile",
            "--norc",
            "-e",
            "-o",
            "pipefail",
            "/__w/_temp/1.sh",
        ]
        .map(String::from)
        .to_vec();
        a.working_directory = "/__w/my repo/my repo".into();
        insta::assert_snapshot!(step_script(&a).unwrap());
    }

    #[test]
    fn invalid_input() {
        assert_eq!(
            step_script(&args(&[("MY-VAR", "x")])).unwrap_err(),
            ScriptError::EnvName("MY-VAR".into())
        );
        assert!(step_script(&args(&[("1X", "x")])).is_err());
        assert!(matches!(
            step_script(&args(&[("X", "a\0b")])),
            Err(ScriptError::Nul(_))
        ));
        let mut a = args(&[]);
        a.entry_point.clear();
        assert_eq!(step_script(&a).unwrap_err(), ScriptError::NoEntryPoint);
    }
}
