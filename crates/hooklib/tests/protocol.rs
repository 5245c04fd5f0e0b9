//! The runner's JSON, both ways: every documented example parses, round trips keep every field,
//! and responses serialize to exactly what the runner reads.

use hooklib::{
    Command, ContainerInfo, InputError, JobContext, PrepareJobResponse, Request, ServiceInfo,
    StateResponse, parse_input,
};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::Path;

/// The examples of PROTOCOL.md §8, verbatim.
const PROTOCOL_EXAMPLES: [&str; 4] = [
    r#"{"command":"prepare_job","responseFile":"/home/runner/_work/_temp/_runner_hook_responses/0b6f8d2e.json","state":null,"args":{"container":{"image":"node:22-bookworm","dockerfile":null,"entryPointArgs":[],"entryPoint":null,"workingDirectory":"/__w/shop/shop","createOptions":"--cpus 2","registry":null,"environmentVariables":{"HOME":"/github/home","NODE_ENV":"test"},"portMappings":["3000"],"systemMountVolumes":[{"userProvidedValue":null,"sourceVolumePath":"/home/runner/_work","targetVolumePath":"/__w","readOnly":false},{"userProvidedValue":null,"sourceVolumePath":"/home/runner/externals","targetVolumePath":"/__e","readOnly":true}],"userMountVolumes":[]},"services":[{"image":"postgres:16","dockerfile":null,"entryPointArgs":[],"entryPoint":null,"workingDirectory":null,"createOptions":"--health-cmd \"pg_isready -U postgres\" --health-interval 2s --health-retries 20","registry":null,"environmentVariables":{"POSTGRES_PASSWORD":"pw"},"portMappings":["5432:5432"],"systemMountVolumes":[],"userMountVolumes":[]}]}}"#,
    r#"{"command":"run_script_step","responseFile":"/home/runner/_work/_temp/_runner_hook_responses/7c1e.json","state":{"jobPod":"runner-x-workflow"},"args":{"entryPoint":"bash","entryPointArgs":["--noprofile","--norc","-e","-o","pipefail","/__w/_temp/5d2a.sh"],"environmentVariables":{"GITHUB_WORKSPACE":"/__w/shop/shop","GITHUB_ENV":"/__w/_temp/_runner_file_commands/set_env_5d2a","CI":"true"},"prependPath":["/__w/_tool/node/22.1.0/x64/bin"],"workingDirectory":"/__w/shop/shop"}}"#,
    r#"{"command":"run_container_step","responseFile":"/home/runner/_work/_temp/_runner_hook_responses/9a.json","state":{"jobPod":"runner-x-workflow"},"args":{"image":null,"dockerfile":"/home/runner/_work/_actions/acme/lint-action/v2/Dockerfile","entryPointArgs":["--strict"],"entryPoint":null,"workingDirectory":"/github/workspace","createOptions":null,"registry":null,"environmentVariables":{"INPUT_PATH":"src","GITHUB_OUTPUT":"/github/file_commands/set_output_9a"},"portMappings":[],"systemMountVolumes":[],"userMountVolumes":[]}}"#,
    r#"{"command":"cleanup_job","responseFile":"/home/runner/_work/_temp/_runner_hook_responses/ff.json","args":{},"state":{"jobPod":"runner-x-workflow"}}"#,
];

fn examples_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples")
}

fn example_files() -> Vec<(String, String)> {
    let mut files: Vec<_> = std::fs::read_dir(examples_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read_to_string(&p).unwrap())
        })
        .collect();
    files.sort();
    files
}

#[test]
fn every_example_parses_and_round_trips_every_field() {
    let mut all: Vec<(String, String)> = PROTOCOL_EXAMPLES
        .iter()
        .enumerate()
        .map(|(i, s)| (format!("PROTOCOL.md example {i}"), (*s).to_owned()))
        .collect();
    let files = example_files();
    assert!(
        files.len() >= 5,
        "examples/ should hold one input per command"
    );
    all.extend(files);
    let mut seen = std::collections::HashSet::new();
    for (name, text) in all {
        let input = parse_input(text.as_bytes()).unwrap_or_else(|e| panic!("{name}: {e}"));
        seen.insert(input.request.command());
        let original: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            input.to_json(),
            original,
            "{name}: round trip lost or changed a field"
        );
        let again = parse_input(input.to_json().to_string().as_bytes()).unwrap();
        assert_eq!(again, input, "{name}");
    }
    for c in Command::ALL {
        assert!(seen.contains(&c), "no example for {c}");
    }
}

#[test]
fn typed_fields_come_through() {
    let input = parse_input(PROTOCOL_EXAMPLES[0].as_bytes()).unwrap();
    assert_eq!(input.state, None);
    let Request::PrepareJob(args) = input.request else {
        panic!("not prepare_job")
    };
    let job = args.container.unwrap();
    assert_eq!(job.image.as_deref(), Some("node:22-bookworm"));
    assert_eq!(job.environment_variables["NODE_ENV"], "test");
    assert!(job.system_mount_volumes[1].read_only);
    assert_eq!(job.system_mount_volumes[1].target_volume_path, "/__e");
    assert_eq!(args.services[0].port_mappings, ["5432:5432"]);
}

#[test]
fn env_keys_keep_their_case_and_nulls_are_accepted() {
    let text = r#"{"command":"run_container_step","responseFile":"/r","state":null,"args":{"image":"a","dockerfile":null,"entryPointArgs":null,"entryPoint":null,"workingDirectory":null,"createOptions":null,"registry":null,"environmentVariables":{"path":"lower","PATH":"upper","MiXeD":"x"},"portMappings":null,"systemMountVolumes":null,"userMountVolumes":null,"someFutureField":{"nested":true}}}"#;
    let Request::RunContainerStep(c) = parse_input(text.as_bytes()).unwrap().request else {
        panic!()
    };
    let keys: Vec<_> = c.environment_variables.keys().cloned().collect();
    assert_eq!(keys, ["MiXeD", "PATH", "path"]);
    assert!(c.entry_point_args.is_empty() && c.port_mappings.is_empty());
}

#[test]
fn prepend_path_accepts_an_old_runners_string() {
    let mk = |pp: &str| {
        format!(
            r#"{{"command":"run_script_step","responseFile":"/r","state":null,"args":{{"entryPoint":"sh","entryPointArgs":["-e","/x.sh"],"environmentVariables":{{}},"prependPath":{pp},"workingDirectory":"/w"}}}}"#
        )
    };
    let get = |pp: &str| match parse_input(mk(pp).as_bytes()).unwrap().request {
        Request::RunScriptStep(a) => a,
        _ => panic!(),
    };
    assert_eq!(get(r#"["/a","/b"]"#).prepend_path, ["/a", "/b"]);
    assert_eq!(get(r#""/old/bin""#).prepend_path, ["/old/bin"]);
    assert!(get(r#""""#).prepend_path.is_empty());
    assert!(get("null").prepend_path.is_empty());
    assert_eq!(
        get(r#"["/a","/b"]"#).path_with("/usr/bin:/bin"),
        "/a:/b:/usr/bin:/bin"
    );
    // empty strings in entryPointArgs are kept for script steps
    let text = mk("[]").replace(r#"["-e","/x.sh"]"#, r#"["-e","","/x.sh"]"#);
    let Request::RunScriptStep(a) = parse_input(text.as_bytes()).unwrap().request else {
        panic!()
    };
    assert_eq!(a.entry_point_args, ["-e", "", "/x.sh"]);
}

#[test]
fn registry_password_never_prints() {
    let text = std::fs::read_to_string(examples_dir().join("prepare_job.json")).unwrap();
    let input = parse_input(text.as_bytes()).unwrap();
    let debug = format!("{input:?}");
    assert!(!debug.contains("ghp_exampleTokenNotReal"), "{debug}");
    let Request::PrepareJob(a) = input.request else {
        panic!()
    };
    let reg = a.container.unwrap().registry.unwrap();
    assert_eq!(
        reg.password.unwrap().expose(),
        "ghp_exampleTokenNotReal0000000000"
    );
    assert_eq!(reg.server_url.as_deref(), Some("ghcr.io"));
}

#[test]
fn docker_hub_when_server_url_is_empty() {
    let reg = |url: Option<&str>| hooklib::Registry {
        server_url: url.map(str::to_owned),
        ..Default::default()
    };
    assert_eq!(reg(Some("")).server(), "https://index.docker.io/v1/");
    assert_eq!(reg(None).server(), "https://index.docker.io/v1/");
    assert_eq!(reg(Some("ghcr.io")).server(), "ghcr.io");
}

#[test]
fn prepare_job_response_is_exactly_what_the_runner_reads() {
    let mut ports = BTreeMap::new();
    ports.insert("5432".to_owned(), "49153".to_owned());
    let response = PrepareJobResponse {
        state: json!({"jobPod": "runner-x-workflow"}),
        context: JobContext {
            container: Some(ContainerInfo {
                id: "abc".into(),
                network: "net".into(),
            }),
            services: vec![
                ServiceInfo {
                    id: "def".into(),
                    network: "net".into(),
                    ports,
                },
                ServiceInfo {
                    id: "ghi".into(),
                    network: "net".into(),
                    ports: BTreeMap::new(),
                },
            ],
        },
        is_alpine: true,
    };
    assert_eq!(
        serde_json::to_string(&response).unwrap(),
        r#"{"state":{"jobPod":"runner-x-workflow"},"context":{"container":{"id":"abc","network":"net"},"services":[{"id":"def","network":"net","ports":{"5432":"49153"}},{"id":"ghi","network":"net","ports":{}}]},"isAlpine":true}"#
    );
    let services_only = PrepareJobResponse {
        state: json!({}),
        context: JobContext {
            container: None,
            services: vec![],
        },
        is_alpine: false,
    };
    assert_eq!(
        serde_json::to_string(&services_only).unwrap(),
        r#"{"state":{},"context":{"services":[]},"isAlpine":false}"#
    );
    assert_eq!(
        serde_json::to_string(&StateResponse {
            state: json!({"a": 1})
        })
        .unwrap(),
        r#"{"state":{"a":1}}"#
    );
}

fn err(text: &str) -> InputError {
    parse_input(text.as_bytes()).expect_err(text)
}

#[test]
fn bad_input_gets_a_distinct_error_each() {
    assert!(matches!(err(""), InputError::Empty));
    assert!(matches!(err("  \n"), InputError::Empty));
    assert!(matches!(
        err(r#"{"command":"prepare_job","#),
        InputError::Syntax(_)
    ));
    assert!(matches!(
        err(r#"{"command":"cleanup_job","responseFile":"/r","args":{}} {}"#),
        InputError::Trailing { line: 1, .. }
    ));
    assert!(
        matches!(err(r#"{"command":"make_coffee","responseFile":"/r","args":{}}"#),
        InputError::UnknownCommand(c) if c == "make_coffee")
    );
    assert!(matches!(
        parse_input(&[b'{', 0xff]),
        Err(InputError::NotUtf8(1))
    ));
    match err(
        r#"{"command":"prepare_job","responseFile":"/r","args":{"container":null,"services":[{"image":"a","portMappings":[80]}]}}"#,
    ) {
        InputError::Field { path, message } => {
            assert_eq!(path, "args.services[0].portMappings[0]");
            assert!(message.contains("expected a string"), "{message}");
        }
        e => panic!("{e:?}"),
    }
    match err(r#"{"command":"prepare_job","args":{}}"#) {
        InputError::Field { message, .. } => assert!(message.contains("responseFile"), "{message}"),
        e => panic!("{e:?}"),
    }
    match err(r#"{"command":"run_script_step","responseFile":"/r","args":{"entryPointArgs":[]}}"#) {
        InputError::Field { message, .. } => assert!(message.contains("entryPoint"), "{message}"),
        e => panic!("{e:?}"),
    }
    // every message is one line
    for text in ["", "{", "[1]", r#"{"command":1}"#, "{} {}"] {
        let msg = err(text).to_string();
        assert!(!msg.contains('\n'), "{msg}");
    }
}

#[test]
fn a_byte_order_mark_is_tolerated() {
    let text = format!("\u{feff}{}\n", PROTOCOL_EXAMPLES[3]);
    assert_eq!(
        parse_input(text.as_bytes()).unwrap().request,
        Request::CleanupJob
    );
}
