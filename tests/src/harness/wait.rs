//! Waiting for a condition with a timeout, instead of sleeping and hoping.

use std::{future::Future, time::Duration};

use crate::Error;

/// How often a condition is checked again.
const POLL: Duration = Duration::from_millis(25);

/// Poll `check` until it yields a value, or fail with what was awaited after `timeout`.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> Result<T, Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return Ok(v);
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(Error::WaitTimedOut {
                what: what.to_owned(),
                seconds: timeout.as_secs_f64(),
            });
        }
        tokio::time::sleep(POLL).await;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    #[tokio::test]
    async fn returns_the_value_once_the_condition_holds_and_times_out_otherwise() {
        let n = AtomicU32::new(0);
        let v = wait_for("three polls", Duration::from_secs(5), || async {
            (n.fetch_add(1, Ordering::SeqCst) >= 2).then_some(7)
        })
        .await
        .unwrap();
        assert_eq!(v, 7);
        let err = wait_for("never", Duration::from_millis(60), || async { None::<()> })
            .await
            .unwrap_err();
        assert_eq!(err.to_string(), "timed out after 0.1s waiting for never");
    }
}
