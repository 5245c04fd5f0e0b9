use super::*;

fn check(options: &str, work: Option<&Path>) -> Result<(), String> {
    let o = CreateOptions::parse(Some(options)).unwrap();
    check_options(&o, work).map_err(|e| e.to_string())
}

#[test]
fn every_privileged_option_is_refused_with_its_name_and_the_setting() {
    let work = tempfile::tempdir().unwrap();
    let w = Some(work.path());
    for (options, named) in [
        ("--privileged", "`--privileged`"),
        ("--cap-add SYS_ADMIN", "`--cap-add SYS_ADMIN`"),
        ("--cap-add=ALL", "`--cap-add ALL`"),
        ("--pid host", "`--pid host`"),
        ("--pid container:other", "`--pid container:other`"),
        ("--ipc=host", "`--ipc host`"),
        ("--userns host", "`--userns host`"),
        ("--device /dev/kmsg", "`--device /dev/kmsg`"),
        ("--gpus all", "`--gpus`"),
        (
            "--security-opt seccomp=unconfined",
            "`--security-opt seccomp=unconfined`",
        ),
        (
            "--security-opt apparmor=unconfined",
            "`--security-opt apparmor=unconfined`",
        ),
        (
            "--security-opt label=disable",
            "`--security-opt label=disable`",
        ),
        (
            "--security-opt systempaths=unconfined",
            "`--security-opt systempaths=unconfined`",
        ),
        ("-v /etc:/host-etc", "`--volume /etc:/host-etc`"),
        ("--volume=/:/host:ro", "`--volume /:/host:ro`"),
        (
            "--mount type=bind,source=/var/run,target=/x",
            "`--mount source=/var/run`",
        ),
        (
            "--mount type=volume,source=v,target=/x,volume-opt=type=none,volume-opt=o=bind,volume-opt=device=/etc",
            "`--mount volume-driver/volume-opt`",
        ),
    ] {
        let e = check(options, w).unwrap_err();
        assert!(
            e.starts_with(&format!("container option {named} is refused")),
            "{options}: {e}"
        );
        assert!(
            e.ends_with("(ACTIONS_RUNNER_CONTAINER_HOOKS_DOCKER_REFUSE_PRIVILEGED=true)"),
            "{e}"
        );
    }
}

#[test]
fn ordinary_options_pass() {
    let work = tempfile::tempdir().unwrap();
    std::fs::create_dir(work.path().join("cache")).unwrap();
    let inside = work.path().join("cache").display().to_string();
    let fresh = work.path().join("not/yet/there").display().to_string();
    for options in [
        "--cpus 2 --memory 1g --health-cmd true --cap-drop ALL --user 1000",
        "--security-opt no-new-privileges --security-opt=no-new-privileges:true",
        "--ipc private --ipc=shareable --init --read-only --tmpfs /run",
        "-v named:/data -v /anonymous --mount type=volume,source=v,target=/v",
        "--mount type=tmpfs,target=/t",
        &format!(
            "-v {inside}:/cache -v {fresh}:/fresh --mount type=bind,source={inside},target=/c"
        ),
    ] {
        assert_eq!(check(options, Some(work.path())), Ok(()), "{options}");
    }
}

#[test]
fn host_paths_are_resolved_before_they_are_judged() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    std::os::unix::fs::symlink("/etc", w.join("link")).unwrap();
    let via_link = format!("{}/link/ssl", w.display());
    assert!(!inside_work(&via_link, Some(w)), "a link planted in _work");
    assert!(!inside_work(&format!("{}/../x", w.display()), Some(w)));
    assert!(!inside_work("relative/path", Some(w)));
    assert!(inside_work(&format!("{}/a/b", w.display()), Some(w)));
    assert!(inside_work(&w.display().to_string(), Some(w)));
    assert!(!inside_work(&format!("{}/a", w.display()), None));
    let e = check(&format!("-v {via_link}:/x"), Some(w)).unwrap_err();
    assert!(e.contains("is outside the runner's work directory"), "{e}");
    let e = check("-v /srv:/x", None).unwrap_err();
    assert!(e.contains("RUNNER_TEMP is not set"), "{e}");
}

#[test]
fn user_volumes_outside_work_are_refused_and_the_socket_is_withheld() {
    let work = tempfile::tempdir().unwrap();
    let mount = |source: &str, target: &str| Mount {
        user_provided_value: Some(format!("{source}:{target}")),
        source_volume_path: Some(source.into()),
        target_volume_path: target.into(),
        read_only: false,
    };
    let inside = work.path().join("x").display().to_string();
    assert_eq!(
        check_user_mounts(
            &[mount("named", "/n"), mount(&inside, "/x")],
            Some(work.path())
        ),
        Ok(())
    );
    let e = check_user_mounts(&[mount("/root/.ssh", "/ssh")], Some(work.path()))
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("container option `volumes: /root/.ssh:/ssh` is refused"),
        "{e}"
    );

    let mut spec = hooklib::Container {
        system_mount_volumes: vec![
            mount("/var/run/docker.sock", "/var/run/docker.sock"),
            mount("/run/user/1000/engine.sock", "/var/run/docker.sock"),
            mount(&inside, "/__w"),
        ],
        ..Default::default()
    };
    assert!(withhold_docker_socket(
        &mut spec,
        Some("/run/user/1000/engine.sock")
    ));
    assert_eq!(spec.system_mount_volumes.len(), 1);
    assert_eq!(spec.system_mount_volumes[0].target_volume_path, "/__w");
    assert!(!withhold_docker_socket(&mut spec, None));
}
