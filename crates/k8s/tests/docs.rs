//! The operator documentation is checked against the code, so it cannot rot:
//!
//! - `examples/rbac.yaml` (and every Role-like block and the permission table of the docs)
//!   grants exactly the permissions the RBAC preflight checks;
//! - the pod templates of `examples/` and `docs/` type-check as Kubernetes objects field by
//!   field (an unknown or misspelt field fails), and so does every Kubernetes object in a YAML
//!   block of `docs/`; every YAML and JSON block parses;
//! - the ARC values of `examples/arc/` give the hook valid settings (copy mode and volume mode,
//!   the service account of `examples/rbac.yaml`, the template ConfigMap), and `docs/arc.md`
//!   shows them as they are;
//! - `docs/reference.md` lists every environment variable the hooks' sources name, names none
//!   they do not read, and states the code's defaults;
//! - `docs/errors.md` holds every `#[error]` message of the hooks;
//! - the links of the operator pages resolve.

mod docs_support;

use container_hooks_k8s::{
    BuildSettings, Builder, ClusterSource, Heartbeat, LAUNCHER_DIR_VAR, Settings,
};
use docs_support::objects::{
    check_attach_addon, check_object, check_rules, is_template, preflight, runner_env, strict,
    yaml_docs, yaml_file,
};
use docs_support::{
    anchors, code_spans, docs, format_fragments, in_order, links, read, root, sole_code, sources,
    split_fences, table_rows, upper_words,
};
use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::core::v1::{PersistentVolumeClaimSpec, PodSpec, PodTemplateSpec};
use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

/// The operator pages this test owns the links of.
const OPERATOR_PAGES: [&str; 7] = [
    "docs/README.md",
    "docs/quickstart.md",
    "docs/arc.md",
    "docs/pod-templates.md",
    "docs/reference.md",
    "docs/errors.md",
    "docs/migrating.md",
];

/// Sources whose variable names and error messages the reference pages cover.
const HOOK_SOURCES: [&str; 6] = [
    "crates/hooklib/src",
    "crates/docker/src",
    "crates/k8s/src",
    "crates/buildctx/src",
    "bins/docker-hook/src",
    "bins/k8s-hook/src",
];

/// Variables in `docs/reference.md` that no hook source names, and who reads them.
const READ_ELSEWHERE: [(&str, &str); 1] = [("ACTIONS_RUNNER_REQUIRE_JOB_CONTAINER", "the runner")];

#[test]
fn rbac_manifest_grants_exactly_the_preflight_permissions() {
    let docs = yaml_file("examples/rbac.yaml");
    let kinds: Vec<&str> = docs.iter().map(|d| d["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["ServiceAccount", "Role", "RoleBinding"]);
    let sa: ServiceAccount = strict("ServiceAccount", &docs[0]);
    let role: Role = strict("Role", &docs[1]);
    let binding: RoleBinding = strict("RoleBinding", &docs[2]);
    let optional = check_rules("examples/rbac.yaml", role.rules.as_deref().unwrap());
    assert_eq!(
        optional,
        docs_support::objects::optional(),
        "examples/rbac.yaml grants every optional permission, in a rule of its own"
    );
    let ns = sa.metadata.namespace.clone().unwrap();
    assert_eq!(role.metadata.namespace.as_ref(), Some(&ns));
    assert_eq!(binding.metadata.namespace.as_ref(), Some(&ns));
    assert_eq!(binding.role_ref.kind, "Role");
    assert_eq!(Some(&binding.role_ref.name), role.metadata.name.as_ref());
    let subjects = binding.subjects.unwrap();
    assert_eq!(subjects.len(), 1);
    assert_eq!(subjects[0].kind, "ServiceAccount");
    assert_eq!(Some(&subjects[0].name), sa.metadata.name.as_ref());
    assert_eq!(subjects[0].namespace.as_ref(), Some(&ns));
}

#[test]
fn rbac_in_the_docs_matches_the_preflight() {
    let mut checked = 0;
    for (path, md) in docs() {
        let (blocks, prose) = split_fences(&md);
        for b in blocks.iter().filter(|b| b.lang == "yaml") {
            for v in yaml_docs(&b.text) {
                if v.get("rules").is_some() && v.get("kind").is_none() {
                    let rules: Vec<PolicyRule> = strict(&path, &v["rules"]);
                    let at = format!("{path}:{}", b.line);
                    if rules
                        .iter()
                        .all(|r| r.resources == Some(vec!["pods/attach".into()]))
                    {
                        check_attach_addon(&at, &rules);
                    } else {
                        drop(check_rules(&at, &rules));
                    }
                    checked += 1;
                }
            }
        }
        // A permission table: | `pods/exec` | get, create | … |
        let table: BTreeSet<(String, String)> = table_rows(&prose)
            .iter()
            .filter(|cells| cells.len() >= 2)
            .filter_map(|cells| {
                let res = sole_code(&cells[0])?;
                let verbs: Vec<&str> = cells[1].split(',').map(str::trim).collect();
                let known = ["pods", "pods/exec", "pods/log", "pods/attach", "secrets"];
                known.contains(&res).then(|| {
                    verbs
                        .into_iter()
                        .map(|v| (v.to_owned(), res.to_owned()))
                        .collect::<Vec<_>>()
                })
            })
            .flatten()
            .collect();
        if !table.is_empty() {
            assert_eq!(table, preflight(), "{path}: the permission table");
            checked += 1;
        }
    }
    assert!(checked >= 2, "the docs show the Role's rules and the table");
}

#[test]
fn pod_templates_type_check() {
    for rel in [
        "examples/pod-template.yaml",
        "examples/arc/pod-template.yaml",
    ] {
        let docs = yaml_file(rel);
        assert_eq!(docs.len(), 1, "{rel}");
        assert!(is_template(&docs[0]), "{rel} is a pod template");
        let t: PodTemplateSpec = strict(rel, &docs[0]);
        for c in t.spec.unwrap().containers {
            if c.name.starts_with('$') {
                assert!(c.image.is_none(), "{rel}: {} takes no image", c.name);
            } else {
                assert!(
                    c.image.is_some(),
                    "{rel}: side-car {} needs an image",
                    c.name
                );
            }
        }
    }
}

#[test]
fn every_block_in_the_docs_parses_and_objects_type_check() {
    let mut templates = 0;
    let mut objects = 0;
    for (path, md) in docs() {
        let (blocks, _) = split_fences(&md);
        for b in &blocks {
            let at = format!("{path}:{}", b.line);
            match b.lang.as_str() {
                "yaml" | "yml" => {
                    for v in yaml_docs(&b.text) {
                        if is_template(&v) {
                            strict::<PodTemplateSpec>(&at, &v);
                            templates += 1;
                        } else if check_object(&at, &v) {
                            objects += 1;
                        }
                    }
                }
                "json" => {
                    let v: Value = serde_json::from_str(&b.text)
                        .unwrap_or_else(|e| panic!("{at}: not JSON: {e}"));
                    if v.get("command").is_some() {
                        hooklib::parse_input(b.text.trim().as_bytes())
                            .unwrap_or_else(|e| panic!("{at}: not a hook input: {e}"));
                    } else if v.is_array() && path.ends_with("pod-templates.md") {
                        let _: json_patch::Patch = serde_json::from_value(v)
                            .unwrap_or_else(|e| panic!("{at}: not an RFC 6902 patch: {e}"));
                    }
                }
                _ => {}
            }
        }
    }
    assert!(templates >= 8, "pod templates in the docs: {templates}");
    assert!(objects >= 1, "Kubernetes objects in the docs: {objects}");
}

#[test]
fn arc_values_give_the_hook_valid_settings() {
    let rbac = yaml_file("examples/rbac.yaml");
    let account = rbac[0]["metadata"]["name"].as_str().unwrap();
    let arc_md = read("docs/arc.md");
    let (blocks, _) = split_fences(&arc_md);
    let shown: Vec<Value> = blocks
        .iter()
        .filter(|b| b.lang == "yaml")
        .flat_map(|b| yaml_docs(&b.text))
        .collect();
    let shell: String = blocks
        .iter()
        .filter(|b| b.lang == "sh")
        .map(|b| b.text.replace("\\\n", " "))
        .collect();
    for (rel, mode, volume) in [
        (
            "examples/arc/values-kubernetes-copy.yaml",
            "kubernetes-novolume",
            false,
        ),
        (
            "examples/arc/values-kubernetes-volume.yaml",
            "kubernetes",
            true,
        ),
    ] {
        let values = yaml_file(rel).remove(0);
        assert!(shown.contains(&values), "docs/arc.md shows {rel} as it is");
        assert_eq!(values["containerMode"]["type"], mode, "{rel}");
        assert!(values["githubConfigUrl"].is_string() && values["githubConfigSecret"].is_string());
        let spec: PodSpec = strict(rel, &values["template"]["spec"]);
        assert_eq!(spec.service_account_name.as_deref(), Some(account), "{rel}");
        let runner = spec.containers.iter().find(|c| c.name == "runner").unwrap();
        let own = runner.env.iter().flatten();
        assert!(
            own.clone()
                .all(|e| e.name != "ACTIONS_RUNNER_CONTAINER_HOOKS"),
            "{rel}: the chart's hook path is the overlay's"
        );
        let env = runner_env(&values, &spec);
        let hook = std::path::Path::new(&env["ACTIONS_RUNNER_CONTAINER_HOOKS"]);
        let folder = if volume { "k8s" } else { "k8s-novolume" };
        assert_eq!(
            hook,
            std::path::Path::new("/home/runner")
                .join(folder)
                .join("index.js")
        );
        // What the launcher adds: its own folder.
        let launcher_dir = hook.parent().unwrap().display().to_string();
        let settings = Settings::from_lookup(|k| match k {
            LAUNCHER_DIR_VAR => Some(launcher_dir.clone()),
            k => env.get(k).cloned(),
        })
        .unwrap_or_else(|e| panic!("{rel}: {e}"));
        assert_eq!(settings.volume_mode(), volume, "{rel}");
        assert_eq!(Some(&settings.runner_image), runner.image.as_ref(), "{rel}");
        if volume {
            let claim: PersistentVolumeClaimSpec = strict(
                rel,
                &values["containerMode"]["kubernetesModeWorkVolumeClaim"],
            );
            assert!(claim.access_modes.is_some() && claim.resources.is_some());
            // The chart's ephemeral volume `work` gets the claim <pod>-work.
            let pod = &env["ACTIONS_RUNNER_POD_NAME"];
            assert_eq!(settings.claim_name, Some(format!("{pod}-work")), "{rel}");
        }
        if let Some(template) = &settings.template {
            let mounts = runner.volume_mounts.as_deref().unwrap_or_default();
            let mount = mounts
                .iter()
                .find(|m| template.starts_with(&m.mount_path))
                .unwrap_or_else(|| panic!("{rel}: nothing mounted at {}", template.display()));
            let volume = spec
                .volumes
                .iter()
                .flatten()
                .find(|v| v.name == mount.name)
                .unwrap();
            let cm = volume.config_map.as_ref().unwrap().name.clone();
            let key = template.file_name().unwrap().to_string_lossy();
            let create =
                format!("create configmap {cm} --from-file={key}=examples/arc/pod-template.yaml");
            assert!(
                shell
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ")
                    .contains(&create),
                "docs/arc.md tells how to create the ConfigMap: {create}"
            );
            let template = yaml_file("examples/arc/pod-template.yaml").remove(0);
            assert!(
                shown.contains(&template),
                "docs/arc.md shows the pod template"
            );
        }
    }
}

#[test]
fn quickstart_shows_the_runner_dockerfile_as_it_is() {
    let strip = |t: &str| -> Vec<String> {
        t.lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(str::to_owned)
            .collect()
    };
    let example = strip(&read("examples/runner.Dockerfile"));
    let (blocks, _) = split_fences(&read("docs/quickstart.md"));
    let shown: Vec<_> = blocks.iter().filter(|b| b.lang == "dockerfile").collect();
    assert_eq!(shown.len(), 1);
    assert_eq!(strip(&shown[0].text), example);
    assert!(
        example.contains(&"ADD container-hooks-overlay.tar.gz /".to_owned()),
        "the Dockerfile adds the overlay of `cargo xtask dist` at /"
    );
}

/// `docs/reference.md`'s variables: name → (default cell, effect cell).
fn reference() -> BTreeMap<String, (String, String)> {
    let (_, prose) = split_fences(&read("docs/reference.md"));
    let mut vars = BTreeMap::new();
    for cells in table_rows(&prose) {
        if let Some(name) = sole_code(&cells[0])
            && name
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        {
            assert_eq!(cells.len(), 3, "{name}: | variable | default | effect |");
            let old = vars.insert(name.to_owned(), (cells[1].clone(), cells[2].clone()));
            assert!(old.is_none(), "{name} is listed twice");
        }
    }
    assert!(vars.len() > 20, "{vars:?}");
    vars
}

fn is_setting(word: &str) -> bool {
    word.starts_with("ACTIONS_")
        || word.starts_with("RUNNER_")
        || word.starts_with("KUBERNETES_SERVICE_")
        || word.starts_with("DOCKER_")
        || word == "KUBECONFIG"
        || word == "CONTAINER_HOOKS_LOG"
}

#[test]
fn reference_lists_exactly_the_variables_of_the_code() {
    let vars = reference();
    let src = sources(&HOOK_SOURCES);
    // Format placeholders (`{RUNNER_POD_LABEL}`) name constants, not variables.
    let texts: Vec<String> = src
        .strings
        .iter()
        .map(|s| format_fragments(s).join(" "))
        .collect();
    let named: BTreeSet<&str> = texts.iter().flat_map(|s| upper_words(s)).collect();
    let missing: Vec<_> = named
        .iter()
        .filter(|w| is_setting(w) && !w.ends_with('_') && !vars.contains_key(**w))
        .collect();
    assert!(missing.is_empty(), "docs/reference.md lacks {missing:?}");
    for name in vars.keys() {
        let elsewhere = READ_ELSEWHERE.iter().find(|(n, _)| n == name);
        match elsewhere {
            Some((_, who)) => assert!(
                !named.contains(name.as_str()),
                "{name} is named by the hooks now: drop it from READ_ELSEWHERE ({who})"
            ),
            None => assert!(
                named.contains(name.as_str()),
                "docs/reference.md lists {name}, which no hook source names"
            ),
        }
    }
}

#[test]
fn reference_states_the_code_defaults() {
    let vars = reference();
    let default_of = |name: &str| -> &str {
        &vars
            .get(name)
            .unwrap_or_else(|| panic!("{name} is not in docs/reference.md"))
            .0
    };
    let says = |name: &str, value: &str| {
        let cell = default_of(name);
        assert!(
            code_spans(cell).iter().any(|s| s == value),
            "{name}: the default `{value}` is not stated in {cell:?}"
        );
    };
    let s = Settings::new("runner", ClusterSource::None);
    says("ACTIONS_RUNNER_IMAGE", &s.runner_image);
    says(
        "ACTIONS_RUNNER_PREPARE_JOB_TIMEOUT_SECONDS",
        &s.prepare_timeout.as_secs().to_string(),
    );
    let hb = Heartbeat::default();
    says(
        "ACTIONS_RUNNER_HEARTBEAT_PERIOD_MS",
        &hb.period.as_millis().to_string(),
    );
    says(
        "ACTIONS_RUNNER_HEARTBEAT_DEADLINE_MS",
        &hb.deadline.as_millis().to_string(),
    );
    says(
        "ACTIONS_RUNNER_USE_KUBE_SCHEDULER",
        &s.use_kube_scheduler.to_string(),
    );
    let b = BuildSettings::default();
    says(
        "ACTIONS_RUNNER_CONTAINER_HOOKS_K8S_BUILDER",
        b.builder.name(),
    );
    says("ACTIONS_RUNNER_CONTAINER_HOOKS_K8S_BUILDER_IMAGE", &b.image);
    says(
        "ACTIONS_RUNNER_CONTAINER_HOOKS_K8S_BUILDER_IMAGE",
        Builder::BuildKit.default_image(),
    );
    says(
        "ACTIONS_RUNNER_CONTAINER_HOOKS_K8S_BUILD_TIMEOUT_SECONDS",
        &b.timeout.as_secs().to_string(),
    );
    says(
        "ACTIONS_RUNNER_CONTAINER_HOOKS_K8S_BUILD_CACHE",
        &b.cache.to_string(),
    );
    // Optional settings are unset by default, and say so.
    for name in [
        "ACTIONS_RUNNER_CLAIM_NAME",
        "ACTIONS_RUNNER_CONTAINER_HOOK_TEMPLATE",
        "ACTIONS_RUNNER_CONTAINER_HOOK_TEMPLATE_PATCH",
        "ACTIONS_RUNNER_CONTAINER_HOOKS_K8S_REGISTRY_SECRET_NAME",
    ] {
        assert!(default_of(name).starts_with("unset"), "{name}");
    }
    assert!(s.claim_name.is_none() && s.template.is_none() && s.template_patch.is_none());
    assert!(b.secret_name.is_none() && b.registry_host.is_none());
}

#[test]
fn errors_page_holds_every_error_message() {
    let md = read("docs/errors.md");
    let (_, prose) = split_fences(&md);
    let spans = code_spans(&prose);
    let src = sources(&HOOK_SOURCES);
    let mut checked = 0;
    let mut missing = Vec::new();
    for (file, fmt) in &src.error_formats {
        let fragments = format_fragments(fmt);
        if fragments.iter().all(|f| f.len() < 3) {
            continue; // "{0}", "{op}: {message}": the parts carry the text
        }
        checked += 1;
        if !spans.iter().any(|s| in_order(s, &fragments)) {
            missing.push(format!("{file}: {fmt:?}"));
        }
    }
    assert!(checked > 60, "only {checked} messages found");
    assert!(
        missing.is_empty(),
        "docs/errors.md lacks:\n{}",
        missing.join("\n")
    );
    // A message built outside #[error]: the Dockerfile action without a registry.
    let not_configured = BuildSettings::default().target().unwrap_err();
    assert!(
        spans.iter().any(|s| s == not_configured),
        "{not_configured}"
    );
}

#[test]
fn operator_pages_links_resolve() {
    for page in OPERATOR_PAGES {
        let md = read(page);
        let (_, prose) = split_fences(&md);
        let dir = root().join(page).parent().unwrap().to_owned();
        for link in links(&prose) {
            if link.starts_with("http://") || link.starts_with("https://") {
                continue;
            }
            let (file, anchor) = link.split_once('#').unwrap_or((&link, ""));
            let target = if file.is_empty() {
                root().join(page)
            } else {
                dir.join(file)
            };
            assert!(target.exists(), "{page}: link {link} points nowhere");
            if !anchor.is_empty() {
                let text = std::fs::read_to_string(&target).unwrap();
                assert!(
                    anchors(&text).iter().any(|a| a == anchor),
                    "{page}: link {link}: no such heading"
                );
            }
        }
    }
}

#[test]
fn the_docs_index_lists_every_page() {
    let index = read("docs/README.md");
    for (path, _) in docs() {
        let name = path.trim_start_matches("docs/");
        if name != "README.md" {
            assert!(
                index.contains(&format!("]({name})")),
                "docs/README.md lacks {name}"
            );
        }
    }
    for page in OPERATOR_PAGES {
        assert!(
            read("README.md").contains(&format!("]({page})")),
            "README.md lacks {page}"
        );
    }
}
