//! A pod's metadata from the path of its container's log, as the kubelet lays them out:
//! `…/<namespace>_<pod>_<uid>/<container>/<restart>.log`. No API call: every entry of
//! `kubernetes_logs` gets `namespace`, `pod`, `pod_uid` and `container` even with the API
//! server out of reach. A path of another shape adds nothing.

use std::path::Path;

use crate::event::Metadata;

/// `namespace`, `pod`, `pod_uid` and `container` from a kubelet log path:
/// `…/<namespace>_<pod>_<uid>/<container>/<restart>.log`.
pub(super) fn pod_metadata(path: &Path, metadata: &mut Metadata) {
    let text = path.to_string_lossy();
    let parts: Vec<&str> = text.rsplit('/').take(3).collect();
    let [_file, container, pod_dir] = parts[..] else {
        return;
    };
    let mut fields = pod_dir.splitn(3, '_');
    let (Some(namespace), Some(pod), Some(uid)) = (fields.next(), fields.next(), fields.next())
    else {
        return;
    };
    metadata.insert("namespace", namespace.to_string());
    metadata.insert("pod", pod.to_string());
    metadata.insert("pod_uid", uid.to_string());
    metadata.insert("container", container.to_string());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Value;

    fn metadata_of(path: &str) -> Vec<(String, String)> {
        let mut metadata = Metadata::with_capacity(4);
        pod_metadata(Path::new(path), &mut metadata);
        ["namespace", "pod", "pod_uid", "container"]
            .iter()
            .filter_map(|key| {
                let text = metadata.get(key).and_then(Value::as_str_lossy)?;
                Some((key.to_string(), text.into_owned()))
            })
            .collect()
    }

    #[test]
    fn a_kubelet_path_names_the_pod_and_container() {
        let path = "/var/log/pods/shop_checkout-7d9f6c-x2x8q_0a1b2c3d-4e5f-6789-abcd-ef0123456789/checkout/0.log";
        let expected = [
            ("namespace", "shop"),
            ("pod", "checkout-7d9f6c-x2x8q"),
            ("pod_uid", "0a1b2c3d-4e5f-6789-abcd-ef0123456789"),
            ("container", "checkout"),
        ];
        let expected: Vec<(String, String)> = expected
            .iter()
            .map(|(key, value)| (key.to_string(), value.to_string()))
            .collect();
        assert_eq!(metadata_of(path), expected);
    }

    #[test]
    fn other_paths_add_nothing() {
        for path in [
            "/var/log/syslog",
            "app.log",
            "/var/log/pods/not-a-pod-dir/app/0.log",
        ] {
            assert!(metadata_of(path).is_empty(), "{path}");
        }
    }
}
