//! Small helpers with no home of their own and no dependencies inside the crate.

/// FNV-1a, 64-bit: a hash that must not change across restarts, versions or machines (which std's
/// `DefaultHasher` does not promise). Experiment variants and cluster lock keys are derived from
/// it. Five lines do not justify a dependency.
pub fn stable_hash(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_is_fnv1a() {
        // Reference values of 64-bit FNV-1a.
        assert_eq!(stable_hash(""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(stable_hash("a"), 0xaf63_dc4c_8601_ec8c);
    }
}
