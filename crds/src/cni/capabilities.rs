//! Capabilities a CNI configuration declares (`"capabilities": {"ips": true}`), for the spec's
//! rule that a requested capability must be declared by some plugin of the chain.

use std::collections::BTreeSet;

use serde_json::Value;

/// The capabilities declared `true` by a config: by each plugin of a `plugins` list, or by the
/// top level of a single-plugin config. Anything that is not an object declares nothing.
pub fn declared_capabilities(config: &Value) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut add = |plugin: &Value| {
        if let Some(caps) = plugin.get("capabilities").and_then(Value::as_object) {
            out.extend(
                caps.iter()
                    .filter(|(_, v)| v.as_bool() == Some(true))
                    .map(|(k, _)| k.clone()),
            );
        }
    };
    match config.get("plugins").and_then(Value::as_array) {
        Some(plugins) => plugins.iter().for_each(&mut add),
        None => add(config),
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn list_and_single_configs() {
        let list = json!({"plugins":[{"type":"macvlan","capabilities":{"ips":true,"mac":false}},{"type":"tuning","capabilities":{"mac":true}}]});
        assert_eq!(
            declared_capabilities(&list).into_iter().collect::<Vec<_>>(),
            vec!["ips", "mac"]
        );
        let single = json!({"type":"static","capabilities":{"ips":true}});
        assert!(declared_capabilities(&single).contains("ips"));
        assert!(declared_capabilities(&json!("x")).is_empty());
    }
}
