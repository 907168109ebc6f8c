//! Workload kinds whose pod template carries the network annotations, and where that template is.
//! `multusctl` and the admission webhook both check the template, so the mistake is caught when
//! the Deployment is applied, not when its ReplicaSet silently fails to create pods.

/// Kind → path of its pod template (plain field names from the object's root).
const POD_TEMPLATES: &[(&str, &[&str])] = &[
    ("Deployment", &["spec", "template"]),
    ("StatefulSet", &["spec", "template"]),
    ("DaemonSet", &["spec", "template"]),
    ("ReplicaSet", &["spec", "template"]),
    ("ReplicationController", &["spec", "template"]),
    ("Job", &["spec", "template"]),
    ("CronJob", &["spec", "jobTemplate", "spec", "template"]),
];

/// Where a workload `kind` keeps its pod template; `None` for kinds without one (a Pod is its own
/// template).
pub fn pod_template_path(kind: &str) -> Option<&'static [&'static str]> {
    POD_TEMPLATES
        .iter()
        .find(|(k, _)| *k == kind)
        .map(|(_, path)| *path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cronjobs_nest_their_template_and_pods_have_none() {
        assert_eq!(
            pod_template_path("CronJob"),
            Some(&["spec", "jobTemplate", "spec", "template"][..])
        );
        assert_eq!(
            pod_template_path("Deployment"),
            Some(&["spec", "template"][..])
        );
        assert_eq!(pod_template_path("Pod"), None);
        assert_eq!(pod_template_path("Service"), None);
    }
}
