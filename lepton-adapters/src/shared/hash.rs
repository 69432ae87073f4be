//! A stable hash for the names and ids the backends derive from text.

/// FNV-1a, 64 bits: a stable hash of `bytes` for names and ids derived
/// from text (the same on every machine and run, unlike std's hasher).
pub(crate) fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}
