//! The configuration Multus hands a delegate for a NetworkAttachmentDefinition (multi-net-spec
//! §3.4.2): the NAD's `spec.config` with the NAD's name injected as `name` when the config has
//! none, or an empty one (nad-client treats both alike). Everything else is kept as written.

use serde_json::Value;

use super::config::{ConfigError, NetworkConfigList};
use crate::NetworkAttachmentDefinition;

/// Give a configuration document `network_name` if its `name` is absent or the empty string,
/// before it is parsed (a list without `name` does not parse). Anything that is not an object, or
/// a `name` of another type, is left for the parser to report.
pub fn inject_network_name(config: &mut Value, network_name: &str) {
    if let Value::Object(map) = config {
        let missing = match map.get("name") {
            None => true,
            Some(Value::String(s)) => s.is_empty(),
            Some(_) => false,
        };
        if missing {
            map.insert("name".into(), Value::String(network_name.to_owned()));
        }
    }
}

/// Read `config` (either form) with `network_name` injected as its name if it has none.
pub fn with_network_name(
    config: &str,
    network_name: &str,
) -> Result<NetworkConfigList, ConfigError> {
    let mut value: Value = serde_json::from_str(config).map_err(ConfigError::json)?;
    inject_network_name(&mut value, network_name);
    NetworkConfigList::from_value_any(value)
}

/// The delegate configuration of a NAD: `None` when the NAD has no config (Multus then looks for
/// a CNI file named after the NAD in its `confDir`), otherwise its config with the name injected.
pub fn effective_delegate_config(
    nad: &NetworkAttachmentDefinition,
) -> Option<Result<NetworkConfigList, ConfigError>> {
    let config = nad.config()?;
    let name = nad.metadata.name.as_deref().unwrap_or_default();
    Some(with_network_name(config, name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn nad(name: &str, config: Option<&str>) -> NetworkAttachmentDefinition {
        let mut n = NetworkAttachmentDefinition::new(name, Default::default());
        n.spec.config = config.map(str::to_owned);
        n
    }

    fn value(list: &NetworkConfigList) -> Value {
        serde_json::from_str(&list.to_json_string()).unwrap()
    }

    #[test]
    fn injects_the_nad_name_when_absent_or_empty() {
        let n = nad(
            "storage-net",
            Some(r#"{"cniVersion":"1.0.0","type":"macvlan","master":"eth1"}"#),
        );
        let list = effective_delegate_config(&n).unwrap().unwrap();
        assert_eq!(list.name(), "storage-net");
        assert_eq!(
            value(&list),
            json!({"cniVersion":"1.0.0","type":"macvlan","master":"eth1","name":"storage-net"})
        );
        let n = nad("a", Some(r#"{"name":"","plugins":[{"type":"bridge"}]}"#));
        let list = effective_delegate_config(&n).unwrap().unwrap();
        assert_eq!(
            value(&list),
            json!({"name":"a","plugins":[{"type":"bridge"}]})
        );
    }

    #[test]
    fn keeps_a_name_that_is_there() {
        let n = nad("a", Some(r#"{"name":"other","type":"macvlan"}"#));
        assert_eq!(
            effective_delegate_config(&n).unwrap().unwrap().name(),
            "other"
        );
    }

    #[test]
    fn no_config_means_look_on_disk_and_bad_config_is_an_error() {
        assert!(effective_delegate_config(&nad("a", None)).is_none());
        assert!(effective_delegate_config(&nad("a", Some("  "))).is_none());
        assert!(
            effective_delegate_config(&nad("a", Some("{")))
                .unwrap()
                .is_err()
        );
        assert!(
            effective_delegate_config(&nad("a", Some(r#"{"name":"x"}"#)))
                .unwrap()
                .is_err()
        );
    }
}
