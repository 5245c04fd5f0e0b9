//! Two runners at once on one engine: each sees and removes only its own objects. Also covers
//! `ACTIONS_RUNNER_NETWORK_DRIVER=host` and Alpine detection.
#![cfg(feature = "e2e")]

mod support;

use serde_json::json;
use support::{Runner, container, inspect, testenv};
use testenv::Image;

#[test]
fn two_runners_at_once_do_not_touch_each_other() {
    let env = testenv();
    let a = Runner::new("iso-a");
    let mut b = Runner::new("iso-b");
    b.extra_env.push((
        "ACTIONS_RUNNER_NETWORK_DRIVER".to_owned(),
        "host".to_owned(),
    ));

    let job_a = {
        let mut j = container(&env.image(Image::Busybox));
        j["systemMountVolumes"] = a.job_mounts();
        j
    };
    let job_b = {
        let mut j = container(&env.image(Image::AlpineLike));
        j["systemMountVolumes"] = b.job_mounts();
        j
    };
    let svc = container(&env.image(Image::Healthy));
    let (ra, rb) = std::thread::scope(|s| {
        let ta = s.spawn(|| {
            a.call(
                "prepare_job",
                json!({"container": job_a, "services": [svc]}),
                None,
            )
        });
        let tb = s.spawn(|| {
            b.call(
                "prepare_job",
                json!({"container": job_b, "services": []}),
                None,
            )
        });
        (ta.join().unwrap().ok(), tb.join().unwrap().ok())
    });
    let (sa, sb) = (ra.json()["state"].clone(), rb.json()["state"].clone());
    assert_eq!(ra.json()["isAlpine"], json!(false));
    assert_eq!(
        rb.json()["isAlpine"],
        json!(true),
        "AlpineLike has ID=alpine"
    );
    assert_eq!(rb.json()["context"]["container"]["network"], json!("host"));
    assert_eq!(sb["networkCreated"], json!(false));
    assert_eq!(a.containers().len(), 2);
    assert_eq!(a.networks().len(), 1);
    assert_eq!(b.containers().len(), 1);
    assert!(b.networks().is_empty());

    // A second prepare_job of runner A removes A's leftovers, and only A's.
    let again = a
        .call(
            "prepare_job",
            json!({"container": {"image": env.image(Image::Busybox)}, "services": []}),
            None,
        )
        .ok();
    assert!(again.stderr.contains("leftover"), "{}", again.stderr);
    assert_eq!(a.containers().len(), 1);
    assert_eq!(a.networks().len(), 1);
    let b_id = sb["container"].as_str().unwrap();
    assert_eq!(inspect(b_id, "{{.State.Running}}"), "true");

    // A's cleanup leaves B running; B still runs steps.
    a.call("cleanup_job", json!({}), Some(&again.json()["state"]))
        .ok();
    assert!(a.containers().is_empty());
    assert!(a.networks().is_empty());
    assert_eq!(inspect(b_id, "{{.State.Running}}"), "true");
    let step = b
        .script_step(
            &sb,
            "echo still-here; cat /etc/os-release | grep ^ID=",
            json!({}),
            json!([]),
        )
        .ok();
    assert_eq!(step.stdout, "still-here\nID=alpine\n");

    // B's cleanup with B's state; the host network is not B's to remove.
    b.call("cleanup_job", json!({}), Some(&sb)).ok();
    assert!(b.containers().is_empty());
    let _ = sa;
}
