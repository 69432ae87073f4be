//! [`GpuSlots`]: which GPUs of a node a task holds.

use std::ops::Deref;

use serde::{Deserialize, Serialize};
use smallvec::SmallVec;

/// Indexes of GPUs inside one node, in the order they were chosen.
///
/// Reads as a slice of `u32` (it derefs to `[u32]`); up to eight indexes
/// are kept inline, without allocating.
///
/// ```
/// use lepton_core::cluster::GpuSlots;
///
/// let gpus: GpuSlots = [0, 3].into_iter().collect();
/// assert_eq!(&gpus[..], &[0, 3]);
/// assert!(GpuSlots::new().is_empty());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct GpuSlots(SmallVec<[u32; 8]>);

impl GpuSlots {
    /// No GPU.
    pub fn new() -> Self {
        GpuSlots::default()
    }

    /// The indexes as a slice.
    pub fn as_slice(&self) -> &[u32] {
        &self.0
    }

    pub(crate) fn extend(&mut self, indexes: impl IntoIterator<Item = u32>) {
        self.0.extend(indexes);
    }
}

impl Deref for GpuSlots {
    type Target = [u32];

    fn deref(&self) -> &[u32] {
        &self.0
    }
}

impl FromIterator<u32> for GpuSlots {
    fn from_iter<I: IntoIterator<Item = u32>>(indexes: I) -> Self {
        GpuSlots(indexes.into_iter().collect())
    }
}

impl<'a> IntoIterator for &'a GpuSlots {
    type Item = &'a u32;
    type IntoIter = std::slice::Iter<'a, u32>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}
