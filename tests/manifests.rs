//! The deployment files: every Kubernetes manifest parses as YAML, names a pinned image, probes
//! `/health` on the API port, mounts logs and config read-only, and embeds a pipeline that is
//! exactly the example config of the same name (which validates). There is no cluster or
//! Docker engine on the development machines, so this is as far as a test can go here.

use std::path::Path;
use std::process::Command;

use yaml_rust2::{Yaml, YamlLoader};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn documents(name: &str) -> Vec<Yaml> {
    let text = std::fs::read_to_string(root().join("conf/kubernetes").join(name)).unwrap();
    YamlLoader::load_from_str(&text).unwrap_or_else(|error| panic!("{name} is not YAML: {error}"))
}

fn workloads(docs: &[Yaml]) -> Vec<&Yaml> {
    docs.iter()
        .filter(|doc| {
            matches!(
                doc["kind"].as_str(),
                Some("Deployment" | "DaemonSet" | "StatefulSet")
            )
        })
        .collect()
}

#[test]
fn every_manifest_parses_and_its_containers_are_pinned_probed_and_read_only_where_they_read() {
    for name in [
        "daemonset.yaml",
        "aggregator.yaml",
        "rbac.yaml",
        "sidecar.yaml",
    ] {
        let docs = documents(name);
        assert!(!docs.is_empty(), "{name}");
        for doc in &docs {
            assert!(
                doc["apiVersion"].as_str().is_some() && doc["kind"].as_str().is_some(),
                "{name}: {doc:?}"
            );
        }
        for workload in workloads(&docs) {
            let spec = &workload["spec"]["template"]["spec"];
            let containers = spec["containers"].as_vec().expect("containers");
            for container in containers {
                let image = container["image"]
                    .as_str()
                    .expect("every container names an image");
                assert!(
                    image.contains(':') && !image.ends_with(":latest"),
                    "{name}: image `{image}` is pinned"
                );
                if container["name"].as_str() != Some("tailfix") {
                    continue;
                }
                for probe in ["livenessProbe", "readinessProbe"] {
                    assert_eq!(
                        container[probe]["httpGet"]["path"].as_str(),
                        Some("/health"),
                        "{name}: {probe}"
                    );
                    assert_eq!(
                        container[probe]["httpGet"]["port"].as_i64(),
                        Some(9598),
                        "{name}: {probe}"
                    );
                }
                assert!(
                    container["resources"]["limits"]["memory"]
                        .as_str()
                        .is_some(),
                    "{name}: memory limit"
                );
                for mount in container["volumeMounts"].as_vec().expect("mounts") {
                    let volume = mount["name"].as_str().unwrap();
                    if matches!(volume, "pods" | "app-logs" | "config") {
                        assert_eq!(
                            mount["readOnly"].as_bool(),
                            Some(true),
                            "{name}: {volume} is mounted read-only"
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn the_daemonset_reads_the_node_pod_logs_and_the_rbac_reads_pods_only() {
    let docs = documents("daemonset.yaml");
    let daemonset = workloads(&docs)[0];
    assert_eq!(daemonset["kind"].as_str(), Some("DaemonSet"));
    let volumes = daemonset["spec"]["template"]["spec"]["volumes"]
        .as_vec()
        .unwrap();
    let pods = volumes
        .iter()
        .find(|v| v["name"].as_str() == Some("pods"))
        .unwrap();
    assert_eq!(pods["hostPath"]["path"].as_str(), Some("/var/log/pods"));
    let rbac = documents("rbac.yaml");
    let role = rbac
        .iter()
        .find(|d| d["kind"].as_str() == Some("ClusterRole"))
        .unwrap();
    let rules = role["rules"].as_vec().unwrap();
    assert_eq!(rules.len(), 1);
    assert_eq!(
        rules[0]["resources"].as_vec().unwrap(),
        &vec![Yaml::String("pods".into())]
    );
    let verbs: Vec<&str> = rules[0]["verbs"]
        .as_vec()
        .unwrap()
        .iter()
        .filter_map(Yaml::as_str)
        .collect();
    assert_eq!(verbs, vec!["get", "list", "watch"]);
    let aggregator = documents("aggregator.yaml");
    let deployment = workloads(&aggregator)[0];
    let env = deployment["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_vec()
        .unwrap();
    assert!(
        env.iter()
            .any(|e| e["valueFrom"]["secretKeyRef"]["name"].as_str() == Some("tailfix-token")),
        "token from a Secret"
    );
}

#[test]
fn embedded_pipelines_are_the_example_configs_and_validate() {
    for (manifest, example) in [
        ("daemonset.yaml", "daemonset-agent.toml"),
        ("aggregator.yaml", "aggregator.toml"),
        ("sidecar.yaml", "sidecar.toml"),
    ] {
        let docs = documents(manifest);
        let config_map = docs
            .iter()
            .find(|d| d["kind"].as_str() == Some("ConfigMap"))
            .unwrap();
        let embedded = config_map["data"]["tailfix.toml"].as_str().unwrap();
        let file = std::fs::read_to_string(root().join("conf/examples").join(example)).unwrap();
        assert_eq!(embedded, file, "{manifest} embeds conf/examples/{example}");
        // With the token the manifests give it from their Secret.
        let output = Command::new(env!("CARGO_BIN_EXE_tailfix"))
            .args(["validate", "-c"])
            .arg(root().join("conf/examples").join(example))
            .env("TAILFIX_TOKEN", "a-long-enough-shared-token")
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{example}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

#[test]
fn the_dockerfile_is_multi_stage_non_root_with_a_health_check() {
    let dockerfile = std::fs::read_to_string(root().join("Dockerfile")).unwrap();
    let stages: Vec<&str> = dockerfile
        .lines()
        .filter(|l| l.starts_with("FROM "))
        .collect();
    assert_eq!(stages.len(), 2);
    assert!(
        stages.iter().all(|from| !from.contains(":latest")
            && from.split_whitespace().nth(1).unwrap().contains(':'))
    );
    assert!(dockerfile.contains("USER 10001"));
    assert!(dockerfile.contains("HEALTHCHECK") && dockerfile.contains("\"health\""));
    assert!(dockerfile.contains("--mount=type=cache"));
}

#[test]
fn tailfix_health_reports_a_running_agent() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let address = format!("127.0.0.1:{port}");
    let unhealthy = Command::new(env!("CARGO_BIN_EXE_tailfix"))
        .args(["health", "--address", &address])
        .output()
        .unwrap();
    assert!(!unhealthy.status.success(), "nothing listens yet");
    let udp = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    std::fs::write(
        dir.path().join("c.toml"),
        format!(
            "[agent]\ndata_dir = \"data\"\n[api]\naddress = \"{address}\"\n[sources.in]\ntype = \"socket\"\nmode = \"udp\"\naddress = \"127.0.0.1:{udp}\"\n[sinks.out]\ntype = \"blackhole\"\ninputs = [\"in\"]\n"
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_tailfix"))
        .args(["run", "-c", "c.toml"])
        .current_dir(dir.path())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    let healthy = loop {
        let status = Command::new(env!("CARGO_BIN_EXE_tailfix"))
            .args(["health", "--address", &address])
            .output()
            .unwrap()
            .status;
        if status.success() || started.elapsed() > std::time::Duration::from_secs(20) {
            break status.success();
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    let _ = child.kill();
    let _ = child.wait();
    assert!(healthy);
}
