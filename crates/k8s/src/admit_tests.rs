//! Hostile archives against the admission policy: each is built with `tar::Builder` or raw
//! headers, admitted into a runner-like folder, and the folder and its surroundings are checked.

use super::*;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use tar::{Builder, Header};

const ROOT: &str = "_runner_file_commands";

/// A runner-like layout: `<tmp>/outside/secret` (a runner file that must never be read or
/// written) and `<tmp>/_temp/_runner_file_commands` (the destination's root).
struct Runner {
    dir: tempfile::TempDir,
}

impl Runner {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("outside")).unwrap();
        fs::write(dir.path().join("outside/secret"), "runner secret\n").unwrap();
        fs::create_dir_all(dir.path().join("_temp").join(ROOT)).unwrap();
        Self { dir }
    }
    fn temp(&self) -> PathBuf {
        self.dir.path().join("_temp")
    }
    fn outside(&self) -> PathBuf {
        self.dir.path().join("outside")
    }
    fn fc(&self, name: &str) -> PathBuf {
        self.temp().join(ROOT).join(name)
    }
    /// Admits `archive` with `limits`; returns the result and the refusals.
    fn admit_with(
        &self,
        archive: &[u8],
        limits: Limits,
    ) -> (Result<Admitted, AdmitError>, Vec<Refusal>) {
        let mut refused = Vec::new();
        let r = admit(archive, &self.temp(), Path::new(ROOT), limits, &mut |r| {
            refused.push(r.clone());
        });
        (r, refused)
    }
    fn admit(&self, archive: &[u8]) -> (Admitted, Vec<Refusal>) {
        let (r, refused) = self.admit_with(archive, Limits::FILE_COMMANDS);
        (r.unwrap(), refused)
    }
    /// Nothing outside `_temp` changed, and `_temp` holds no link, FIFO or device anywhere.
    fn assert_contained(&self) {
        let names: Vec<_> = fs::read_dir(self.outside())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["secret"], "something was written outside _temp");
        assert_eq!(
            fs::read_to_string(self.outside().join("secret")).unwrap(),
            "runner secret\n"
        );
        fn walk(dir: &Path) {
            for e in fs::read_dir(dir).unwrap() {
                let e = e.unwrap();
                let t = fs::symlink_metadata(e.path()).unwrap().file_type();
                assert!(
                    t.is_file() || t.is_dir(),
                    "{} is neither a file nor a folder",
                    e.path().display()
                );
                if t.is_file() {
                    let text = fs::read(e.path()).unwrap();
                    assert!(
                        !String::from_utf8_lossy(&text).contains("runner secret"),
                        "{} holds runner content",
                        e.path().display()
                    );
                }
                if t.is_dir() {
                    walk(&e.path());
                }
            }
        }
        walk(&self.temp());
    }
}

fn finish(b: Builder<Vec<u8>>) -> Vec<u8> {
    b.into_inner().unwrap()
}

fn file_header(size: u64, mode: u32) -> Header {
    let mut h = Header::new_gnu();
    h.set_entry_type(EntryType::Regular);
    h.set_size(size);
    h.set_mode(mode);
    h
}

fn add_file(b: &mut Builder<Vec<u8>>, path: &str, data: &[u8], mode: u32) {
    let mut h = file_header(data.len() as u64, mode);
    b.append_data(&mut h, path, data).unwrap();
}

fn add_dir(b: &mut Builder<Vec<u8>>, path: &str, mode: u32) {
    let mut h = Header::new_gnu();
    h.set_entry_type(EntryType::Directory);
    h.set_size(0);
    h.set_mode(mode);
    b.append_data(&mut h, path, io::empty()).unwrap();
}

fn add_link(b: &mut Builder<Vec<u8>>, kind: EntryType, path: &str, target: &str) {
    let mut h = Header::new_gnu();
    h.set_entry_type(kind);
    h.set_size(0);
    h.set_mode(0o777);
    b.append_link(&mut h, path, target).unwrap();
}

/// An entry with a raw name (the builder refuses `..` and absolute names).
fn add_raw(b: &mut Builder<Vec<u8>>, name: &[u8], data: &[u8]) {
    let mut h = file_header(data.len() as u64, 0o644);
    let gnu = h.as_gnu_mut().unwrap();
    gnu.name = [0; 100];
    gnu.name[..name.len()].copy_from_slice(name);
    h.set_cksum();
    b.append(&h, data).unwrap();
}

fn add_special(b: &mut Builder<Vec<u8>>, kind: EntryType, path: &str) {
    let mut h = Header::new_gnu();
    h.set_entry_type(kind);
    h.set_size(0);
    h.set_mode(0o666);
    b.append_data(&mut h, path, io::empty()).unwrap();
}

fn mode(p: &Path) -> u32 {
    fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
}

#[test]
fn files_and_folders_are_admitted_with_masked_modes() {
    let r = Runner::new();
    let mut b = Builder::new(Vec::new());
    add_dir(&mut b, ROOT, 0o7777);
    add_file(
        &mut b,
        &format!("{ROOT}/set_output_1"),
        b"name=value\n",
        0o600,
    );
    add_file(&mut b, &format!("{ROOT}/run"), b"#!/bin/sh\n", 0o4755);
    add_dir(&mut b, &format!("./{ROOT}/sub/"), 0o2777);
    add_file(&mut b, &format!("{ROOT}/sub/x"), b"x", 0o6777);
    let (done, refused) = r.admit(&finish(b));
    assert!(refused.is_empty(), "{refused:?}");
    assert_eq!(
        done,
        Admitted {
            entries: 5,
            refused: 0,
            bytes: 22
        }
    );
    assert_eq!(
        fs::read_to_string(r.fc("set_output_1")).unwrap(),
        "name=value\n"
    );
    assert_eq!(mode(&r.fc("set_output_1")), 0o644);
    assert_eq!(mode(&r.fc("run")), 0o755);
    assert_eq!(mode(&r.fc("sub")), 0o755);
    assert_eq!(mode(&r.fc("sub/x")), 0o755);
    r.assert_contained();
}

#[test]
fn links_to_runner_files_folders_and_the_token_are_refused() {
    let r = Runner::new();
    // The runner pre-created its file-command files.
    fs::write(r.fc("step_summary_1"), "").unwrap();
    let mut b = Builder::new(Vec::new());
    add_dir(&mut b, ROOT, 0o755);
    let secret = r.outside().join("secret");
    let token = "/var/run/secrets/kubernetes.io/serviceaccount/token";
    for (name, target) in [
        ("step_summary_1", secret.to_str().unwrap()),
        ("set_env_1", r.outside().to_str().unwrap()),
        ("set_output_1", token),
        ("relative", "../../outside/secret"),
    ] {
        add_link(
            &mut b,
            EntryType::Symlink,
            &format!("{ROOT}/{name}"),
            target,
        );
    }
    // Then a file through the folder link just refused: lands in a real folder, not outside.
    add_file(&mut b, &format!("{ROOT}/set_env_1/planted"), b"p", 0o644);
    let (done, refused) = r.admit(&finish(b));
    let names: Vec<_> = refused
        .iter()
        .map(|x| (x.path.as_str(), x.reason))
        .collect();
    assert_eq!(
        names,
        [
            ("_runner_file_commands/step_summary_1", Reason::Symlink),
            ("_runner_file_commands/set_env_1", Reason::Symlink),
            ("_runner_file_commands/set_output_1", Reason::Symlink),
            ("_runner_file_commands/relative", Reason::Symlink),
        ]
    );
    assert_eq!(done.refused, 4);
    // The runner's own file is untouched (still empty), and no link appeared.
    assert_eq!(fs::read_to_string(r.fc("step_summary_1")).unwrap(), "");
    assert!(!r.fc("set_output_1").exists());
    assert!(fs::symlink_metadata(r.fc("set_env_1")).unwrap().is_dir());
    assert_eq!(fs::read(r.fc("set_env_1/planted")).unwrap(), b"p");
    r.assert_contained();
}

#[test]
fn a_hard_link_to_a_runner_file_is_refused() {
    let r = Runner::new();
    let mut b = Builder::new(Vec::new());
    let secret = r.outside().join("secret");
    add_link(
        &mut b,
        EntryType::Link,
        &format!("{ROOT}/set_output_1"),
        secret.to_str().unwrap(),
    );
    add_link(
        &mut b,
        EntryType::Link,
        &format!("{ROOT}/set_env_1"),
        "../outside/secret",
    );
    let (_, refused) = r.admit(&finish(b));
    assert_eq!(refused.len(), 2);
    assert!(refused.iter().all(|x| x.reason == Reason::HardLink));
    assert!(!r.fc("set_output_1").exists());
    r.assert_contained();
}

#[test]
fn devices_fifos_and_other_types_are_refused() {
    let r = Runner::new();
    let mut b = Builder::new(Vec::new());
    add_special(&mut b, EntryType::Fifo, &format!("{ROOT}/fifo"));
    add_special(&mut b, EntryType::Char, &format!("{ROOT}/null"));
    add_special(&mut b, EntryType::Block, &format!("{ROOT}/sda"));
    add_special(&mut b, EntryType::new(b'V'), &format!("{ROOT}/label"));
    let (done, refused) = r.admit(&finish(b));
    let reasons: Vec<_> = refused.iter().map(|x| x.reason).collect();
    assert_eq!(
        reasons,
        [
            Reason::Fifo,
            Reason::Device,
            Reason::Device,
            Reason::OtherType(b'V')
        ]
    );
    assert_eq!(done.entries, 0);
    r.assert_contained();
}

#[test]
fn dot_dot_absolute_and_outside_the_root_are_refused() {
    let r = Runner::new();
    let mut b = Builder::new(Vec::new());
    add_raw(
        &mut b,
        b"_runner_file_commands/../../outside/secret",
        b"pwned",
    );
    add_raw(&mut b, b"../outside/new", b"pwned");
    let abs = r.outside().join("abs");
    add_raw(&mut b, abs.to_str().unwrap().as_bytes(), b"pwned");
    add_raw(&mut b, b"_github_home/.bashrc", b"pwned");
    add_raw(&mut b, b"./", b"");
    add_raw(&mut b, b"_runner_file_commands_evil/x", b"pwned");
    let (done, refused) = r.admit(&finish(b));
    let reasons: Vec<_> = refused.iter().map(|x| x.reason).collect();
    assert_eq!(
        reasons,
        [
            Reason::ParentDir,
            Reason::ParentDir,
            Reason::Absolute,
            Reason::OutsideRoot,
            Reason::Empty,
            Reason::OutsideRoot,
        ]
    );
    assert_eq!(done.entries, 0);
    assert!(!r.temp().join("_github_home").exists());
    r.assert_contained();
}

#[test]
fn a_file_through_a_folder_link_on_the_runner_is_refused() {
    let r = Runner::new();
    std::os::unix::fs::symlink(r.outside(), r.fc("d")).unwrap();
    let mut b = Builder::new(Vec::new());
    add_file(&mut b, &format!("{ROOT}/d/secret"), b"overwritten", 0o644);
    add_file(&mut b, &format!("{ROOT}/d/new"), b"new", 0o644);
    add_dir(&mut b, &format!("{ROOT}/d"), 0o755);
    add_dir(&mut b, &format!("{ROOT}/d/sub"), 0o755);
    let (done, refused) = r.admit(&finish(b));
    assert_eq!(done.entries, 0);
    assert!(refused.iter().all(|x| x.reason == Reason::LinkOnPath));
    assert_eq!(refused.len(), 4);
    // The runner's link stays; nothing went through it.
    fs::remove_file(r.fc("d")).unwrap();
    r.assert_contained();
}

#[test]
fn links_and_fifos_already_on_the_runner_are_replaced_not_written_through() {
    let r = Runner::new();
    let secret = r.outside().join("secret");
    std::os::unix::fs::symlink(&secret, r.fc("set_output_1")).unwrap();
    std::os::unix::fs::symlink("/nonexistent/dangling", r.fc("set_env_1")).unwrap();
    let fifo = r.fc("step_summary_1");
    assert!(
        std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    // A hard link of a runner file sitting in the folder: replaced, the other name unchanged.
    fs::hard_link(&secret, r.fc("add_path_1")).unwrap();
    let mut b = Builder::new(Vec::new());
    for name in ["set_output_1", "set_env_1", "step_summary_1", "add_path_1"] {
        add_file(&mut b, &format!("{ROOT}/{name}"), b"from the step\n", 0o644);
    }
    let (done, refused) = r.admit(&finish(b));
    assert!(refused.is_empty(), "{refused:?}");
    assert_eq!(done.entries, 4);
    for name in ["set_output_1", "set_env_1", "step_summary_1", "add_path_1"] {
        let m = fs::symlink_metadata(r.fc(name)).unwrap();
        assert!(
            m.file_type().is_file() && !m.file_type().is_fifo(),
            "{name}"
        );
        assert_eq!(m.nlink(), 1, "{name}");
        assert_eq!(
            fs::read_to_string(r.fc(name)).unwrap(),
            "from the step\n",
            "{name}"
        );
    }
    r.assert_contained();
}

#[test]
fn a_file_where_the_runner_has_a_folder_is_refused() {
    let r = Runner::new();
    fs::create_dir(r.fc("keep")).unwrap();
    fs::write(r.fc("keep/inside"), "runner's").unwrap();
    fs::write(r.fc("plain"), "runner's").unwrap();
    let mut b = Builder::new(Vec::new());
    add_file(&mut b, &format!("{ROOT}/keep"), b"x", 0o644);
    add_dir(&mut b, &format!("{ROOT}/plain"), 0o755);
    let (_, refused) = r.admit(&finish(b));
    let reasons: Vec<_> = refused.iter().map(|x| x.reason).collect();
    assert_eq!(reasons, [Reason::KindClash, Reason::LinkOnPath]);
    assert_eq!(fs::read_to_string(r.fc("keep/inside")).unwrap(), "runner's");
    assert_eq!(fs::read_to_string(r.fc("plain")).unwrap(), "runner's");
}

fn small() -> Limits {
    Limits {
        max_bytes: 1000,
        max_entries: 10,
        bytes_setting: COPY_BACK_MAX_BYTES,
        entries_setting: COPY_BACK_MAX_ENTRIES,
    }
}

#[test]
fn the_entry_cap_is_a_clear_error() {
    let r = Runner::new();
    let mut b = Builder::new(Vec::new());
    for i in 0..11 {
        add_file(&mut b, &format!("{ROOT}/f{i}"), b"x", 0o644);
    }
    let (res, _) = r.admit_with(&finish(b), small());
    let e = res.unwrap_err();
    assert!(matches!(e, AdmitError::TooMany { limit: 10, .. }), "{e}");
    assert!(e.to_string().contains(COPY_BACK_MAX_ENTRIES), "{e}");
    // Refused entries count too: a flood of links cannot get around the cap.
    let mut b = Builder::new(Vec::new());
    for i in 0..11 {
        add_link(&mut b, EntryType::Symlink, &format!("{ROOT}/l{i}"), "/");
    }
    let (res, refused) = r.admit_with(&finish(b), small());
    assert!(matches!(res, Err(AdmitError::TooMany { .. })));
    assert_eq!(refused.len(), 10);
}

#[test]
fn the_byte_cap_is_checked_before_writing() {
    let r = Runner::new();
    let mut b = Builder::new(Vec::new());
    add_file(&mut b, &format!("{ROOT}/a"), &[b'a'; 600], 0o644);
    add_file(&mut b, &format!("{ROOT}/b"), &[b'b'; 600], 0o644);
    let (res, _) = r.admit_with(&finish(b), small());
    let e = res.unwrap_err();
    assert!(
        matches!(&e, AdmitError::TooLarge { limit: 1000, size: 600, path, .. } if path.ends_with("/b")),
        "{e}"
    );
    assert!(e.to_string().contains(COPY_BACK_MAX_BYTES), "{e}");
    assert_eq!(fs::read(r.fc("a")).unwrap().len(), 600);
    assert!(!r.fc("b").exists(), "the entry over the cap was written");
}

/// A GNU sparse entry declaring 10 GiB with one 512-byte block of data at its end.
fn sparse_10_gib(path: &str) -> Vec<u8> {
    let real: u64 = 10 << 30;
    let mut h = Header::new_gnu();
    h.set_path(path).unwrap();
    h.set_entry_type(EntryType::GNUSparse);
    h.set_mode(0o644);
    h.set_size(512);
    let gnu = h.as_gnu_mut().unwrap();
    gnu.set_real_size(real);
    gnu.sparse[0].set_offset(real - 512);
    gnu.sparse[0].set_length(512);
    h.set_cksum();
    let mut out = h.as_bytes().to_vec();
    out.extend_from_slice(&[b'z'; 512]);
    out.extend_from_slice(&[0; 1024]);
    out
}

#[test]
fn a_sparse_10_gib_entry_hits_the_byte_cap_by_its_declared_size() {
    let r = Runner::new();
    let archive = sparse_10_gib(&format!("{ROOT}/set_output_1"));
    let (res, _) = r.admit_with(&archive, Limits::FILE_COMMANDS);
    let e = res.unwrap_err();
    assert!(
        matches!(e, AdmitError::TooLarge { size, .. } if size == 10 << 30),
        "{e}"
    );
    assert!(!r.fc("set_output_1").exists(), "data was written");
    r.assert_contained();
}

#[test]
fn a_truncated_or_garbage_archive_is_an_error_not_a_success() {
    let r = Runner::new();
    let mut b = Builder::new(Vec::new());
    add_file(&mut b, &format!("{ROOT}/a"), &[b'a'; 2000], 0o644);
    let full = finish(b);
    let (res, _) = r.admit_with(&full[..1200], Limits::FILE_COMMANDS);
    assert!(matches!(res, Err(AdmitError::Io(_))), "{res:?}");
    let (res, _) = r.admit_with(&[0x41; 1024], Limits::FILE_COMMANDS);
    assert!(matches!(res, Err(AdmitError::Io(_))), "{res:?}");
}

#[test]
fn the_stream_is_bounded_even_when_headers_lie() {
    let r = Runner::new();
    // An endless run of headers of zero-size entries refused one by one stops at the entry cap;
    // an endless stream of bytes stops at the stream cap.
    let endless = io::repeat(b'x');
    let mut refused = 0;
    let res = admit(endless, &r.temp(), Path::new(ROOT), small(), &mut |_| {
        refused += 1
    });
    assert!(res.is_err());
}

#[test]
fn refusals_name_the_entry() {
    let x = Refusal {
        path: "_runner_file_commands/set_env_1".into(),
        reason: Reason::Symlink,
    };
    assert_eq!(
        x.to_string(),
        "skipped \"_runner_file_commands/set_env_1\": a symbolic link (only regular files and folders are copied back)"
    );
}
