//! kubesim performance figures (benchmark, not a test): `cargo bench -p kubesim --bench perf`.
//! Each kubesim figure comes with a baseline measured in the same run directly on the Docker
//! Engine (bollard), and the ratio.

use std::time::{Duration, Instant};

use bollard::Docker;
use bollard::exec::{CreateExecOptions, StartExecResults};
use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::{CreateContainerOptions, RemoveContainerOptions};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, AttachParams, DeleteParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kubesim::testing::Sim;
use serde_json::json;
use tokio::io::AsyncReadExt;

const THROUGHPUT_BYTES: u64 = 256 * 1024 * 1024;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

async fn raw_exec(docker: &Docker, id: &str, cmd: &[&str]) -> u64 {
    let e = docker
        .create_exec(
            id,
            CreateExecOptions {
                attach_stdout: Some(true),
                attach_stderr: Some(true),
                cmd: Some(cmd.to_vec()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let mut n = 0u64;
    if let StartExecResults::Attached { mut output, .. } =
        docker.start_exec(&e.id, None).await.unwrap()
    {
        while let Some(Ok(o)) = output.next().await {
            n += o.into_bytes().len() as u64;
        }
    }
    loop {
        let i = docker.inspect_exec(&e.id).await.unwrap();
        if i.running != Some(true) {
            break;
        }
    }
    n
}

async fn kube_exec(pods: &Api<Pod>, name: &str, cmd: &[&str]) -> u64 {
    kube_exec_buf(pods, name, cmd, None).await
}

/// `buf`: kube's AttachParams::max_stdout_buf_size (kube's default pipe is 1 KiB).
async fn kube_exec_buf(pods: &Api<Pod>, name: &str, cmd: &[&str], buf: Option<usize>) -> u64 {
    let mut ap = AttachParams::default().stdout(true).stderr(true);
    if let Some(b) = buf {
        ap = ap.max_stdout_buf_size(b);
    }
    let mut p = pods.exec(name, cmd.to_vec(), &ap).await.unwrap();
    let mut so = p.stdout().unwrap();
    let mut se = p.stderr().unwrap();
    let st = p.take_status().unwrap();
    let count = async move {
        let mut buf = vec![0u8; 1 << 16];
        let mut n = 0u64;
        while let Ok(r) = so.read(&mut buf).await {
            if r == 0 {
                break;
            }
            n += r as u64;
        }
        n
    };
    let mut err = Vec::new();
    let (n, _, st) = tokio::join!(count, se.read_to_end(&mut err), st);
    assert_eq!(st.unwrap().status.as_deref(), Some("Success"));
    n
}

fn pod(name: &str, image: &str) -> Pod {
    serde_json::from_value(json!({"metadata": {"name": name}, "spec": {"restartPolicy": "Never",
        "terminationGracePeriodSeconds": 0,
        "containers": [{"name": "main", "image": image, "imagePullPolicy": "Never", "command": ["sleep", "1000"]}]}}))
    .unwrap()
}

#[tokio::main]
async fn main() {
    testenv::ensure().await.expect("testenv");
    let image = testenv::local_tag(testenv::Image::Busybox).to_string();
    let sim = Sim::start(Default::default()).await.expect("kubesim");
    let kc = Kubeconfig::read_from(sim.kubeconfig_path()).unwrap();
    let cfg = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .unwrap();
    let client = kube::Client::try_from(cfg).unwrap();
    let ns = sim.create_namespace().unwrap();
    let pods: Api<Pod> = Api::namespaced(client, &ns);
    let docker = Docker::connect_with_local_defaults()
        .unwrap()
        .negotiate_version()
        .await
        .unwrap();

    // 1. pod create -> Running (image present) vs raw create+start of 2 containers (sandbox + app)
    let mut sim_times = Vec::new();
    for i in 0..8 {
        let name = format!("bench-{i}");
        let t0 = Instant::now();
        pods.create(&PostParams::default(), &pod(&name, &image))
            .await
            .unwrap();
        sim.wait_for_pod(&ns, &name, Duration::from_secs(60), |p| {
            (p["status"]["phase"] == "Running").then_some(Ok(()))
        })
        .await
        .unwrap();
        sim_times.push(t0.elapsed());
    }
    let mut raw_times = Vec::new();
    for i in 0..8 {
        let t0 = Instant::now();
        let mut ids = Vec::new();
        let mut sandbox = String::new();
        for (j, mode) in [None, Some("sandbox")].into_iter().enumerate() {
            let body = ContainerCreateBody {
                image: Some(image.clone()),
                cmd: Some(vec!["sleep".into(), "1000".into()]),
                labels: Some([("kubesim.bench".to_string(), "1".to_string())].into()),
                host_config: Some(HostConfig {
                    network_mode: mode.map(|_| format!("container:{sandbox}")),
                    ..Default::default()
                }),
                ..Default::default()
            };
            let opts = CreateContainerOptions {
                name: Some(format!("kubesim-bench-{}-{i}-{j}", std::process::id())),
                ..Default::default()
            };
            let id = docker.create_container(Some(opts), body).await.unwrap().id;
            docker.start_container(&id, None).await.unwrap();
            if j == 0 {
                sandbox = id.clone();
            }
            ids.push(id);
        }
        raw_times.push(t0.elapsed());
        for id in ids.iter().rev() {
            docker
                .remove_container(
                    id,
                    Some(RemoveContainerOptions {
                        force: true,
                        ..Default::default()
                    }),
                )
                .await
                .unwrap();
        }
    }
    let (s, r) = (median(sim_times), median(raw_times));
    println!(
        "pod create -> Running: kubesim median {:.0} ms; raw docker create+start x2 median {:.0} ms; ratio {:.2}",
        ms(s),
        ms(r),
        ms(s) / ms(r)
    );

    // 2. exec `true` round trip
    let id = sim.kubelet_container_id(&ns, "bench-0", "main").unwrap();
    for _ in 0..3 {
        kube_exec(&pods, "bench-0", &["true"]).await;
        raw_exec(&docker, &id, &["true"]).await;
    }
    let mut k = Vec::new();
    let mut d = Vec::new();
    for _ in 0..30 {
        let t0 = Instant::now();
        kube_exec(&pods, "bench-0", &["true"]).await;
        k.push(t0.elapsed());
        let t0 = Instant::now();
        raw_exec(&docker, &id, &["true"]).await;
        d.push(t0.elapsed());
    }
    let (k, d) = (median(k), median(d));
    println!(
        "exec `true` round trip: kubesim (kube client, websocket) median {:.1} ms; raw docker exec (bollard) median {:.1} ms; ratio {:.2}",
        ms(k),
        ms(d),
        ms(k) / ms(d)
    );

    // 3. exec stdout throughput
    let cmd = format!("head -c {THROUGHPUT_BYTES} /dev/zero");
    let cmd = ["sh", "-c", cmd.as_str()];
    let mut best_k = f64::MAX;
    let mut best_kb = f64::MAX;
    let mut best_d = f64::MAX;
    for _ in 0..3 {
        let t0 = Instant::now();
        assert_eq!(kube_exec(&pods, "bench-0", &cmd).await, THROUGHPUT_BYTES);
        best_k = best_k.min(t0.elapsed().as_secs_f64());
        let t0 = Instant::now();
        assert_eq!(
            kube_exec_buf(&pods, "bench-0", &cmd, Some(256 * 1024)).await,
            THROUGHPUT_BYTES
        );
        best_kb = best_kb.min(t0.elapsed().as_secs_f64());
        let t0 = Instant::now();
        assert_eq!(raw_exec(&docker, &id, &cmd).await, THROUGHPUT_BYTES);
        best_d = best_d.min(t0.elapsed().as_secs_f64());
    }
    let mb = THROUGHPUT_BYTES as f64 / 1024.0 / 1024.0;
    println!(
        "exec stdout throughput ({mb:.0} MiB): raw docker exec (bollard) {:.0} MiB/s; kubesim via kube with max_stdout_buf_size 256 KiB {:.0} MiB/s ({:.2}x the time); with kube's default 1 KiB pipe {:.0} MiB/s ({:.2}x)",
        mb / best_d,
        mb / best_kb,
        best_kb / best_d,
        mb / best_k,
        best_k / best_d
    );
    for i in 0..8 {
        let _ = pods
            .delete(
                &format!("bench-{i}"),
                &DeleteParams::default().grace_period(0),
            )
            .await;
    }
    sim.shutdown().await;
}
