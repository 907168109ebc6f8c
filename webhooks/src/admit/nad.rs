//! NetworkAttachmentDefinitions: the NAD rules of `multus-crds`, plus the warning about IPAM
//! ranges overlapping other NADs on the same link.

use multus_crds::NetworkAttachmentDefinition;
use multus_crds::rules::nad::validate_nad;

use super::{ipam, unreadable, verdict_from};
use crate::context::Context;
use crate::review::{ReviewRequest, Verdict};

const WHAT: &str = "NetworkAttachmentDefinition";

pub fn validate(ctx: &Context, req: &ReviewRequest<'_>) -> Verdict {
    let Some(raw) = req.object.filter(|_| !req.is_delete()) else {
        return Verdict::allow();
    };
    // Straight into the typed NAD; only an object without `spec` (which `from_value` accepts)
    // or a malformed one takes the slower way through a JSON tree.
    let nad = match serde_json::from_str::<NetworkAttachmentDefinition>(raw.get()) {
        Ok(nad) => nad,
        Err(_) => match serde_json::from_str(raw.get())
            .and_then(NetworkAttachmentDefinition::from_value)
        {
            Ok(nad) => nad,
            Err(e) => return unreadable(WHAT, &e),
        },
    };
    let found = validate_nad(&nad);
    let mut verdict = verdict_from(WHAT, &req.object_ref(), &found);
    if verdict.is_allowed()
        && let Some(fp) = nad.config().and_then(ipam::footprint)
    {
        let namespace = req
            .namespace
            .as_deref()
            .or(nad.metadata.namespace.as_deref())
            .unwrap_or_default();
        let name = nad.metadata.name.as_deref().unwrap_or_default();
        verdict
            .warnings
            .extend(ctx.read_nads().overlap_warnings(namespace, name, &fp));
    }
    verdict
}
