//! Conditions: built so that an unchanged condition keeps its `lastTransitionTime` and compares
//! equal, which is what lets the reconcilers skip writes when nothing changed.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;

/// A condition, keeping the previous transition time when the status did not change.
pub fn condition(
    type_: &str,
    status: bool,
    reason: &str,
    message: String,
    generation: Option<i64>,
    previous: &[Condition],
) -> Condition {
    let status = if status { "True" } else { "False" };
    let last = previous
        .iter()
        .find(|c| c.type_ == type_ && c.status == status)
        .map(|c| c.last_transition_time.clone())
        .unwrap_or_else(|| Time(Timestamp::now()));
    Condition {
        type_: type_.to_owned(),
        status: status.to_owned(),
        reason: reason.to_owned(),
        message,
        observed_generation: generation,
        last_transition_time: last,
    }
}

/// Whether `desired` says the same as `current` (every condition type, status, reason, message,
/// generation and time).
pub fn same(current: &[Condition], desired: &[Condition]) -> bool {
    desired.len() == current.len()
        && desired.iter().all(|d| {
            current.iter().any(|c| {
                c.type_ == d.type_
                    && c.status == d.status
                    && c.reason == d.reason
                    && c.message == d.message
                    && c.observed_generation == d.observed_generation
                    && c.last_transition_time == d.last_transition_time
            })
        })
}
