//! The createOptions table: every supported flag, the API fields it becomes, and the errors.

use super::*;
use bollard::models::ContainerCreateBody;
use serde_json::{Value, json};

/// Parses `options` and applies them to an empty body; returns the body as JSON.
fn applied(options: &str) -> Value {
    let opts = CreateOptions::parse(Some(options))
        .unwrap_or_else(|e| panic!("{options:?} should parse: {e}"));
    let mut body = ContainerCreateBody::default();
    opts.apply(&mut body);
    serde_json::to_value(&body).unwrap()
}

#[test]
fn supported_flags_table() {
    let ns = 1_000_000_000i64;
    let table: Vec<(&str, Value)> = vec![
        (
            "--cpus 1.5",
            json!({"HostConfig": {"NanoCpus": 1_500_000_000i64}}),
        ),
        ("--cpus=2", json!({"HostConfig": {"NanoCpus": 2 * ns}})),
        (
            "--memory 512m",
            json!({"HostConfig": {"Memory": 512 << 20}}),
        ),
        ("-m 1g", json!({"HostConfig": {"Memory": 1i64 << 30}})),
        ("-m1g", json!({"HostConfig": {"Memory": 1i64 << 30}})),
        ("-m=1g", json!({"HostConfig": {"Memory": 1i64 << 30}})),
        (
            "--memory-swap -1",
            json!({"HostConfig": {"MemorySwap": -1}}),
        ),
        (
            "--memory-swap 2g",
            json!({"HostConfig": {"MemorySwap": 2i64 << 30}}),
        ),
        (
            "--memory-reservation 256m",
            json!({"HostConfig": {"MemoryReservation": 256 << 20}}),
        ),
        (
            "--shm-size 2g",
            json!({"HostConfig": {"ShmSize": 2i64 << 30}}),
        ),
        ("--user 1001:1001", json!({"User": "1001:1001"})),
        ("-u root", json!({"User": "root"})),
        ("--workdir /src", json!({"WorkingDir": "/src"})),
        ("-w /src", json!({"WorkingDir": "/src"})),
        ("--env A=1 -e B=x=y", json!({"Env": ["A=1", "B=x=y"]})),
        (
            "-e \"GREETING=Mona the Octocat\"",
            json!({"Env": ["GREETING=Mona the Octocat"]}),
        ),
        ("--entrypoint /bin/sh", json!({"Entrypoint": ["/bin/sh"]})),
        ("--entrypoint ''", json!({"Entrypoint": [""]})),
        ("--hostname build", json!({"Hostname": "build"})),
        ("-h build", json!({"Hostname": "build"})),
        (
            "--add-host db:10.1.2.3",
            json!({"HostConfig": {"ExtraHosts": ["db:10.1.2.3"]}}),
        ),
        (
            "--add-host=db=10.1.2.3",
            json!({"HostConfig": {"ExtraHosts": ["db:10.1.2.3"]}}),
        ),
        ("--privileged", json!({"HostConfig": {"Privileged": true}})),
        (
            "--privileged=false",
            json!({"HostConfig": {"Privileged": false}}),
        ),
        (
            "--cap-add NET_ADMIN --cap-add SYS_PTRACE",
            json!({"HostConfig": {"CapAdd": ["NET_ADMIN", "SYS_PTRACE"]}}),
        ),
        (
            "--cap-drop ALL",
            json!({"HostConfig": {"CapDrop": ["ALL"]}}),
        ),
        (
            "--device /dev/fuse",
            json!({"HostConfig": {"Devices": [{"PathOnHost": "/dev/fuse", "PathInContainer": "/dev/fuse", "CgroupPermissions": "rwm"}]}}),
        ),
        (
            "--ulimit nofile=1024:2048",
            json!({"HostConfig": {"Ulimits": [{"Name": "nofile", "Soft": 1024, "Hard": 2048}]}}),
        ),
        (
            "--tmpfs /run:rw,size=64m",
            json!({"HostConfig": {"Tmpfs": {"/run": "rw,size=64m"}}}),
        ),
        (
            "--tmpfs /tmp",
            json!({"HostConfig": {"Tmpfs": {"/tmp": ""}}}),
        ),
        (
            "-v /host/cache:/cache:ro",
            json!({"HostConfig": {"Binds": ["/host/cache:/cache:ro"]}}),
        ),
        (
            "--volume cache:/cache",
            json!({"HostConfig": {"Binds": ["cache:/cache"]}}),
        ),
        ("-v /scratch", json!({"Volumes": {"/scratch": {}}})),
        (
            "--mount type=bind,source=/src,target=/dst,readonly",
            json!({"HostConfig": {"Mounts": [{"Type": "bind", "Source": "/src", "Target": "/dst", "ReadOnly": true}]}}),
        ),
        (
            "--mount type=tmpfs,dst=/t,tmpfs-size=1m,tmpfs-mode=1777",
            json!({"HostConfig": {"Mounts": [{"Type": "tmpfs", "Target": "/t", "TmpfsOptions": {"SizeBytes": 1 << 20, "Mode": 0o1777}}]}}),
        ),
        (
            "--mount source=data,target=/data,volume-nocopy",
            json!({"HostConfig": {"Mounts": [{"Type": "volume", "Source": "data", "Target": "/data", "VolumeOptions": {"NoCopy": true}}]}}),
        ),
        (
            "--security-opt seccomp=unconfined",
            json!({"HostConfig": {"SecurityOpt": ["seccomp=unconfined"]}}),
        ),
        ("--init", json!({"HostConfig": {"Init": true}})),
        ("--ipc host", json!({"HostConfig": {"IpcMode": "host"}})),
        (
            "--label team=ci -l flag",
            json!({"Labels": {"team": "ci", "flag": ""}}),
        ),
        (
            "--dns 1.1.1.1 --dns-search corp --dns-option ndots:2",
            json!({"HostConfig": {"Dns": ["1.1.1.1"], "DnsSearch": ["corp"], "DnsOptions": ["ndots:2"]}}),
        ),
        (
            "--read-only",
            json!({"HostConfig": {"ReadonlyRootfs": true}}),
        ),
        (
            "--sysctl net.core.somaxconn=1024",
            json!({"HostConfig": {"Sysctls": {"net.core.somaxconn": "1024"}}}),
        ),
        ("--platform linux/amd64", json!({})),
        (
            "--gpus all",
            json!({"HostConfig": {"DeviceRequests": [{"Driver": "", "Count": -1, "Capabilities": [["gpu"]]}]}}),
        ),
        (
            "--gpus 2",
            json!({"HostConfig": {"DeviceRequests": [{"Driver": "", "Count": 2, "Capabilities": [["gpu"]]}]}}),
        ),
        (
            "--gpus '\"device=0,1\",capabilities=compute'",
            json!({"HostConfig": {"DeviceRequests": [{"Driver": "", "DeviceIDs": ["0", "1"], "Capabilities": [["compute", "gpu"]]}]}}),
        ),
        (
            "--health-cmd \"redis-cli ping\" --health-interval 10s --health-timeout 5s --health-retries 5 --health-start-period 1m",
            json!({"Healthcheck": {"Test": ["CMD-SHELL", "redis-cli ping"], "Interval": 10 * ns, "Timeout": 5 * ns, "Retries": 5, "StartPeriod": 60 * ns}}),
        ),
        (
            "--health-interval 2s",
            json!({"Healthcheck": {"Interval": 2 * ns}}),
        ),
        (
            "--no-healthcheck",
            json!({"Healthcheck": {"Test": ["NONE"]}}),
        ),
        (
            "--cpu-shares 512 --cpuset-cpus 0-1 --pids-limit 100",
            json!({"HostConfig": {"CpuShares": 512, "CpusetCpus": "0-1", "PidsLimit": 100}}),
        ),
        (
            "--group-add docker --pid host --userns host",
            json!({"HostConfig": {"GroupAdd": ["docker"], "PidMode": "host", "UsernsMode": "host"}}),
        ),
        (
            "--stop-signal SIGINT --stop-timeout 5",
            json!({"StopSignal": "SIGINT", "StopTimeout": 5}),
        ),
        ("-it", json!({"Tty": true, "OpenStdin": true})),
        ("--expose 9000", json!({"ExposedPorts": {"9000/tcp": {}}})),
        (
            "-p 127.0.0.1:8080:80",
            json!({"ExposedPorts": {"80/tcp": {}}, "HostConfig": {"PortBindings": {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8080"}]}}}),
        ),
        (
            "--log-driver json-file --log-opt max-size=10m",
            json!({"HostConfig": {"LogConfig": {"Type": "json-file", "Config": {"max-size": "10m"}}}}),
        ),
        (
            "--oom-kill-disable",
            json!({"HostConfig": {"OomKillDisable": true}}),
        ),
        ("", json!({})),
        ("   ", json!({})),
    ];
    for (options, want) in table {
        let mut got = applied(options);
        // An empty HostConfig is always written; drop it when the row expects none.
        if got["HostConfig"] == json!({}) && want.get("HostConfig").is_none() {
            got.as_object_mut().unwrap().remove("HostConfig");
        }
        assert_eq!(got, want, "options {options:?}");
    }
}

#[test]
fn platform_and_aliases_are_kept_for_the_builder() {
    let o = CreateOptions::parse(Some(
        "--platform linux/arm64 --network-alias db --network-alias pg",
    ))
    .unwrap();
    assert_eq!(o.platform.as_deref(), Some("linux/arm64"));
    assert_eq!(o.network_aliases, ["db", "pg"]);
}

#[test]
fn errors_table() {
    let table: Vec<(&str, &str)> = vec![
        (
            "--frobnicate",
            "unsupported container option `--frobnicate`",
        ),
        (
            "--frobnicate=1",
            "unsupported container option `--frobnicate`",
        ),
        ("-Z", "unsupported container option `-Z`"),
        ("-iZ", "unsupported container option `-Z`"),
        ("--name db", "`--name` cannot be used"),
        ("--network host", "ACTIONS_RUNNER_NETWORK_DRIVER"),
        ("--rm", "`--rm` cannot be used"),
        ("-d", "`-d` cannot be used"),
        ("--memory", "`--memory` needs a value"),
        (
            "--memory lots",
            "invalid value for container option `--memory`",
        ),
        ("--cpus 0", "positive number of CPUs"),
        ("--cpus abc", "invalid value for container option `--cpus`"),
        ("--health-interval 10", "is not a duration"),
        ("--health-retries -1", "must not be negative"),
        ("--ulimit nofile", "is not name=soft[:hard]"),
        ("-e FOO", "FOO\" has no value"),
        ("--sysctl x", "is not name=value"),
        (
            "--label com.github.actions.container-hooks.runner=x",
            "is set by the hook",
        ),
        (
            "--no-healthcheck --health-cmd true",
            "conflicts with the --health-* options",
        ),
        ("--mount type=bind,target=/x", "a bind mount needs a source"),
        ("--mount type=weird,target=/x", "unsupported mount type"),
        ("--gpus count=x", "is not a number"),
        ("-v relative", "is not source:target"),
        ("--tmpfs run", "is not an absolute path"),
        ("postgres", "unexpected argument \"postgres\""),
        ("--health-cmd \"unbalanced", "unbalanced quotes"),
        ("--privileged=maybe", "is not true or false"),
        ("-p 80/xyz", "unknown protocol"),
    ];
    for (options, want) in table {
        let err = CreateOptions::parse(Some(options))
            .expect_err(options)
            .to_string();
        assert!(
            err.contains(want),
            "{options:?}: {err:?} should contain {want:?}"
        );
        assert!(!err.contains('\n'), "one line: {err:?}");
    }
}

#[test]
fn unknown_flag_lists_the_supported_ones() {
    let err = CreateOptions::parse(Some("--bogus"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("--cpus") && err.contains("--health-cmd"),
        "{err}"
    );
}

#[test]
fn options_override_hook_values_but_not_its_labels() {
    let mut body = ContainerCreateBody {
        env: Some(vec!["A=hook".into(), "B=keep".into()]),
        working_dir: Some("/hook".into()),
        labels: Some([("team".to_owned(), "hook".to_owned())].into()),
        ..Default::default()
    };
    CreateOptions::parse(Some("-e A=opt -w /opt -l team=opt"))
        .unwrap()
        .apply(&mut body);
    assert_eq!(body.env.unwrap(), ["A=opt", "B=keep"]);
    assert_eq!(body.working_dir.as_deref(), Some("/opt"));
    assert_eq!(body.labels.unwrap()["team"], "hook");
}

#[test]
fn seccomp_profile_files_are_read() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("profile.json");
    std::fs::write(&path, r#"{"defaultAction":"SCMP_ACT_ALLOW"}"#).unwrap();
    let mut o =
        CreateOptions::parse(Some(&format!("--security-opt seccomp={}", path.display()))).unwrap();
    o.load_seccomp_profiles().unwrap();
    assert_eq!(
        o.host.security_opt,
        [r#"seccomp={"defaultAction":"SCMP_ACT_ALLOW"}"#]
    );
    let mut missing = CreateOptions::parse(Some("--security-opt seccomp=/nope.json")).unwrap();
    assert!(
        missing
            .load_seccomp_profiles()
            .unwrap_err()
            .to_string()
            .contains("/nope.json")
    );
}
