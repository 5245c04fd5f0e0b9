//! The threat model of copy mode, attack by attack, through the real binary on kubesim: a job
//! (its image and every step in it) is hostile; the runner holds credentials. Whatever a step
//! leaves in its file-command folder, and whatever it does to the job container's `tar`, the
//! runner's `_temp` receives only regular files and folders, nothing lands outside it, the
//! step's own exit code stands, and the next step still runs.
//!
//! Crafted archives that the trusted archiver makes impossible to deliver from the job side
//! (`..`, a file through a folder link, hard links, a sparse 10 GiB entry) are tested against
//! the admission policy itself in `crates/k8s/src/admit_tests.rs`.
#![cfg(feature = "e2e")]

mod support;

use serde_json::{Value, json};
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use support::{Runner, StepRun, container, testenv};
use testenv::Image;

const SECRET: &str = "runner secret: must never be published\n";

/// A runner with files the job must never reach: `<dir>/runner-secret` and
/// `<dir>/secret-dir/inside`, outside `_work`.
struct Target {
    runner: Runner,
    state: Value,
}

impl Target {
    fn new(test: &str) -> Self {
        let runner = Runner::new(test);
        std::fs::write(runner.root().join("runner-secret"), SECRET).unwrap();
        std::fs::create_dir_all(runner.root().join("secret-dir")).unwrap();
        std::fs::write(runner.root().join("secret-dir/inside"), SECRET).unwrap();
        let mut job = container(&testenv().image(Image::Busybox));
        job["workingDirectory"] = json!("/__w/repo/repo");
        job["environmentVariables"] = json!({"HOME": "/github/home"});
        let (run, state) = runner.prepare(Some(job), vec![]);
        run.ok();
        Self { runner, state }
    }

    fn secret(&self) -> PathBuf {
        self.runner.root().join("runner-secret")
    }

    fn secret_dir(&self) -> PathBuf {
        self.runner.root().join("secret-dir")
    }

    fn step(&self, script: &str) -> StepRun {
        let secret = self.secret().display().to_string();
        let dir = self.secret_dir().display().to_string();
        self.runner.script(
            &self.state,
            script,
            &[("RUNNER_SECRET", &secret), ("RUNNER_SECRET_DIR", &dir)],
        )
    }

    /// The runner's `_temp` holds only files and folders, none with runner content, and the
    /// runner's files outside it are as they were.
    #[track_caller]
    fn assert_contained(&self) {
        fn walk(dir: &Path) {
            for e in std::fs::read_dir(dir).unwrap() {
                let path = e.unwrap().path();
                let t = std::fs::symlink_metadata(&path).unwrap().file_type();
                assert!(
                    !t.is_symlink() && !t.is_fifo() && !t.is_socket() && !t.is_char_device(),
                    "{} is a link or special file on the runner",
                    path.display()
                );
                if t.is_dir() {
                    walk(&path);
                } else {
                    let text = std::fs::read(&path).unwrap();
                    assert!(
                        !String::from_utf8_lossy(&text).contains("runner secret"),
                        "{} holds runner content",
                        path.display()
                    );
                }
            }
        }
        walk(&self.runner.temp());
        assert_eq!(std::fs::read_to_string(self.secret()).unwrap(), SECRET);
        let inside: Vec<_> = std::fs::read_dir(self.secret_dir())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(inside, ["inside"], "something was written outside _temp");
        assert_eq!(
            std::fs::read_to_string(self.secret_dir().join("inside")).unwrap(),
            SECRET
        );
    }

    /// A plain step afterwards: it runs and its output comes back (links planted in the pod
    /// stay there, and are refused again, with their warnings).
    #[track_caller]
    fn assert_next_step_runs(&self) {
        let next = self.step("echo 'after=ok' >> \"$GITHUB_OUTPUT\"\necho next ran\n");
        assert_eq!(next.run.code, 0, "{:#?}", next.run);
        assert_eq!(next.run.stdout, "next ran\n");
        assert_eq!(next.output, "after=ok\n");
    }
}

#[test]
fn links_and_fifos_planted_in_the_file_command_folder_never_reach_the_runner() {
    let t = Target::new("atk-links");
    let step = t.step(
        "ln -sf \"$RUNNER_SECRET\" \"$GITHUB_STEP_SUMMARY\"\n\
         ln -sfn \"$RUNNER_SECRET_DIR\" \"$GITHUB_ENV\"\n\
         ln -sf /var/run/secrets/kubernetes.io/serviceaccount/token \"$GITHUB_OUTPUT\"\n\
         rm -f \"$GITHUB_PATH\" && mkfifo \"$GITHUB_PATH\"\n\
         ln -s \"$RUNNER_SECRET_DIR\" /__w/_temp/_runner_file_commands/dir-link\n\
         ln -s ../../../runner-secret /__w/_temp/_runner_file_commands/relative-link\n\
         exit 3\n",
    );
    // The step's own exit code stands: refusals are warnings, not a hook failure.
    assert_eq!(step.run.code, 3, "{:#?}", step.run);
    assert!(step.run.errors().is_empty(), "{:#?}", step.run);
    // The runner's own (empty) files are what it reads: nothing was published.
    assert_eq!(
        (
            step.summary.as_str(),
            step.env.as_str(),
            step.output.as_str(),
            step.path.as_str()
        ),
        ("", "", "", "")
    );
    let warnings = step.run.warnings();
    for (name, kind) in [
        ("step_summary_", "a symbolic link"),
        ("set_env_", "a symbolic link"),
        ("set_output_", "a symbolic link"),
        ("add_path_", "a FIFO"),
    ] {
        let named: Vec<_> = warnings
            .iter()
            .filter(|w| w.contains(&format!("_runner_file_commands/{name}")))
            .collect();
        assert_eq!(named.len(), 1, "one warning for {name}: {warnings:#?}");
        assert!(named[0].contains(kind), "{}", named[0]);
    }
    // Files that are not this step's file commands are never read at all.
    assert!(
        !warnings
            .iter()
            .any(|w| w.contains("dir-link") || w.contains("relative-link")),
        "{warnings:#?}"
    );
    assert!(
        !t.runner
            .temp()
            .join("_runner_file_commands/dir-link")
            .exists()
    );
    t.assert_contained();
    t.assert_next_step_runs();
    t.assert_contained();
}

#[test]
fn the_file_command_folder_replaced_by_a_link_is_refused_and_repaired() {
    let t = Target::new("atk-dirs");
    // The whole folder becomes a link to a folder that exists in every container (/tmp): the
    // copy back refuses it; the next copy in must not write the runner's files through it
    // (into the archiver's own /tmp) but replace it by a real folder.
    let step = t.step(
        "rm -rf /__w/_temp/_runner_file_commands\n\
         ln -s /tmp /__w/_temp/_runner_file_commands\n",
    );
    assert_eq!(step.run.code, 0, "{:#?}", step.run);
    let warnings = step.run.warnings();
    assert_eq!(warnings.len(), 1, "{warnings:#?}");
    assert!(
        warnings[0].contains("\"_runner_file_commands\": a symbolic link"),
        "{}",
        warnings[0]
    );
    assert!(
        std::fs::symlink_metadata(t.runner.temp().join("_runner_file_commands"))
            .unwrap()
            .is_dir()
    );
    t.assert_contained();
    let next = t.step(
        "test -L /__w/_temp/_runner_file_commands && echo still a link\n\
         ls /tmp | grep -c set_output_ || true\n",
    );
    assert_eq!(next.run.code, 0, "{:#?}", next.run);
    assert_eq!(next.run.stdout, "0\n", "{:#?}", next.run);
    t.assert_contained();
    t.assert_next_step_runs();
}

#[test]
fn a_replaced_tar_in_the_job_container_is_never_used() {
    let t = Target::new("atk-tar");
    // The step stages a crafted archive (a link to the runner's secret over a file command,
    // an extra file) and replaces the job image's tar by a script that prints it whatever it is
    // asked, and leaves a trace when it runs.
    let step = t.step(
        "mkdir -p /tmp/craft/_runner_file_commands\n\
         for f in /__w/_temp/_runner_file_commands/set_output_*; do\n\
           ln -s \"$RUNNER_SECRET\" \"/tmp/craft/_runner_file_commands/${f##*/}\"\n\
         done\n\
         echo crafted > /tmp/craft/_runner_file_commands/pwned\n\
         (cd /tmp/craft && busybox tar cf /tmp/crafted.tar _runner_file_commands)\n\
         rm -f /bin/tar\n\
         printf '#!/bin/sh\\ntouch /__w/.fake-tar-ran\\ncat /tmp/crafted.tar\\n' > /bin/tar\n\
         chmod 755 /bin/tar\n\
         head -n 1 /bin/tar\n",
    );
    assert_eq!(step.run.code, 0, "{:#?}", step.run);
    // The fake tar is in place for whoever runs `/bin/tar` in the job container...
    assert_eq!(step.run.stdout, "#!/bin/sh\n", "{:#?}", step.run);
    assert!(step.run.warnings().is_empty(), "{:#?}", step.run);
    // ... and the hook is not one of them: its archive never reached the runner.
    let fc = t.runner.temp().join("_runner_file_commands");
    assert!(!fc.join("pwned").exists(), "the crafted archive was used");
    t.assert_contained();
    // Copies in and out of the next steps still work, with the job's tar still replaced.
    let next = t.step(
        "rm -f /__w/.fake-tar-ran\n\
         echo 'v=1' >> \"$GITHUB_OUTPUT\"\n\
         cat /github/workflow/event.json\n",
    );
    assert_eq!(next.run.code, 0, "{:#?}", next.run);
    assert_eq!(next.output, "v=1\n");
    assert_eq!(next.run.stdout, r#"{"action":"test"}"#);
    let check = t.step("test -e /__w/.fake-tar-ran && echo fake tar ran || echo clean\n");
    assert_eq!(check.run.stdout, "clean\n", "{:#?}", check.run);
    assert!(!fc.join("pwned").exists(), "the crafted archive was used");
    t.assert_contained();
    t.assert_next_step_runs();
}

#[test]
fn a_job_image_without_tar_works_in_copy_mode() {
    let t = Target::new("atk-notar");
    let step = t.step("rm -f /bin/tar\ntest ! -e /bin/tar\n");
    assert_eq!(step.run.code, 0, "{:#?}", step.run);
    // Something new on the runner's side reaches the pod, and file commands come back.
    std::fs::write(t.runner.temp().join("_github_home/new.txt"), "fresh\n").unwrap();
    let next = t.step("cat /github/home/new.txt\necho 'k=v' >> \"$GITHUB_ENV\"\n");
    assert_eq!(next.run.code, 0, "{:#?}", next.run);
    assert_eq!(next.run.stdout, "fresh\n");
    assert_eq!(next.env, "k=v\n");
}

#[test]
fn step_scripts_are_private_on_the_runner_and_leave_the_pod_after_the_step() {
    let t = Target::new("atk-script");
    let list = "ls -l /__w/_temp | grep k8s-hook- || true\n";
    let first = t.step(list);
    assert_eq!(first.run.code, 0, "{:#?}", first.run);
    // While the step runs, its own script is there, and only it: 0600 on the runner, in the
    // pod readable by the owner and the pod's fsGroup only (never executable: run as
    // `sh <file>`).
    let lines: Vec<&str> = first.run.stdout.lines().collect();
    assert_eq!(lines.len(), 1, "{:#?}", first.run);
    assert!(lines[0].starts_with("-rw-rw----"), "{}", lines[0]);
    let second = t.step(list);
    let lines: Vec<&str> = second.run.stdout.lines().collect();
    assert_eq!(
        lines.len(),
        1,
        "the previous script stayed: {:#?}",
        second.run
    );
    // And nothing of the hook's scripts is left on the runner.
    let left: Vec<_> = std::fs::read_dir(t.runner.temp())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("k8s-hook-"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn a_non_root_job_user_can_use_what_the_archiver_brings_in() {
    // The archiver, not the job's own tar, writes the pod's files now: a job container running
    // as another user (here 2000, only the pods' fsGroup in common) must still read the 0600
    // step script and write the workspace and its file commands.
    let mut runner = Runner::new("atk-nonroot");
    runner.use_template("spec:\n  containers:\n    - name: $job\n      securityContext:\n        runAsUser: 2000\n        runAsGroup: 2000\n");
    let mut job = container(&testenv().image(Image::Busybox));
    job["workingDirectory"] = json!("/__w/repo/repo");
    let (run, state) = runner.prepare(Some(job), vec![]);
    run.ok();
    let step = runner.script(
        &state,
        "id -u\ncat README.md\necho made > by-2000\necho 'v=1' >> \"$GITHUB_OUTPUT\"\n",
        &[],
    );
    assert_eq!(step.run.code, 0, "{:#?}", step.run);
    assert_eq!(step.run.stdout, "2000\n# repo\n");
    assert_eq!(step.output, "v=1\n");
    let next = runner.script(&state, "cat by-2000\n", &[]);
    assert_eq!(next.run.stdout, "made\n", "{:#?}", next.run);
}

#[test]
fn a_temp_folder_leading_out_of_the_volume_is_not_archived() {
    let t = Target::new("atk-temp");
    // `_temp` itself becomes a link to a folder of the container's own file system: packing
    // the file commands through it would archive the archiver's /tmp. The hook refuses (a
    // failed step, never an open one), and the next copy in repairs `_temp`.
    let step = t.step(
        "mkdir -p /tmp/_runner_file_commands\n\
         echo crafted > /tmp/_runner_file_commands/pwned\n\
         mv /__w/_temp /__w/_temp-real\n\
         ln -s /tmp /__w/_temp\n",
    );
    assert_ne!(step.run.code, 0, "{:#?}", step.run);
    let errors = step.run.errors();
    assert_eq!(errors.len(), 1, "{:#?}", step.run);
    assert!(errors[0].contains("leads out of /__w"), "{}", errors[0]);
    assert!(!t.runner.temp().join("_runner_file_commands/pwned").exists());
    t.assert_contained();
    t.assert_next_step_runs();
}
