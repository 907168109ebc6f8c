//! Server-assigned metadata: uids, timestamps, generated names.

use std::{
    hash::{BuildHasher, Hasher},
    sync::atomic::{AtomicU64, Ordering},
};

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// 64 random bits: the standard library's per-process random hash keys, mixed with a counter.
fn random_u64() -> u64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.finish()
}

/// A random (version 4 layout) UUID.
pub fn uid() -> String {
    let (a, b) = (random_u64(), random_u64());
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0x0fff,
        ((b >> 48) & 0x3fff) | 0x8000,
        b & 0xffff_ffff_ffff
    )
}

/// The suffix alphabet the real server uses for `generateName` (no vowels, no confusable digits).
const SUFFIX_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

pub fn generated_name(prefix: &str) -> String {
    let mut r = random_u64();
    let mut name = prefix.to_owned();
    for _ in 0..5 {
        name.push(char::from(
            SUFFIX_ALPHABET[(r % SUFFIX_ALPHABET.len() as u64) as usize],
        ));
        r /= SUFFIX_ALPHABET.len() as u64;
    }
    name
}

/// Now, in the RFC 3339 form with second precision that `metav1.Time` uses.
pub fn now() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uids_and_names_are_fresh() {
        assert_ne!(uid(), uid());
        assert_eq!(uid().len(), 36);
        let n = generated_name("web-");
        assert_eq!(n.len(), 9);
        assert!(n.starts_with("web-"));
        assert_eq!(now().len(), 20);
    }
}
