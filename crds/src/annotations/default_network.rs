//! `v1.multus-cni.io/default-network`: Multus' per-pod replacement of the cluster network.
//!
//! Same grammar as the networks annotation (either form), but exactly one element, and a missing
//! namespace means Multus' `multusNamespace` rather than the pod's (resolved by the caller with
//! [`NetworkSelection::namespace_or`]).

use super::networks::{NetworkSelection, SelectionParseError, parse_networks};

/// Why a default-network value cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DefaultNetworkError {
    #[error(transparent)]
    Parse(#[from] SelectionParseError),
    #[error("names no network")]
    Empty,
    #[error("names {count} networks; a pod has exactly one default network")]
    TooMany { count: usize },
}

/// Parse the annotation value into its one selection.
pub fn parse_default_network(value: &str) -> Result<NetworkSelection<'_>, DefaultNetworkError> {
    let mut selections = parse_networks(value)?;
    match selections.len() {
        0 => Err(DefaultNetworkError::Empty),
        1 => Ok(selections.remove(0)),
        count => Err(DefaultNetworkError::TooMany { count }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_element_in_either_form() {
        let sel = parse_default_network("calico-alt").unwrap();
        assert_eq!(sel.name, "calico-alt");
        assert_eq!(sel.namespace_or("kube-system"), "kube-system");
        let sel = parse_default_network(
            r#"[{"name":"calico-alt","namespace":"net","interface":"eth9"}]"#,
        )
        .unwrap();
        assert_eq!(sel.namespace_or("kube-system"), "net");
        assert_eq!(sel.requested_interface(), Some("eth9"));
    }

    #[test]
    fn none_or_several_elements_are_errors() {
        assert_eq!(parse_default_network(" "), Err(DefaultNetworkError::Empty));
        assert_eq!(
            parse_default_network("a,b"),
            Err(DefaultNetworkError::TooMany { count: 2 })
        );
        assert!(matches!(
            parse_default_network("a/b/c"),
            Err(DefaultNetworkError::Parse(_))
        ));
    }
}
