//! A placement decision allocates nothing: first fit, best fit and spread
//! choose their node, through a `Box<dyn Policy>`, without touching the heap.
//! A counting global allocator (this test binary only) checks it. The
//! free-key index's upkeep is not the decision's: reservations leave it to
//! the next search that reads the index (B-tree inserts may allocate, as
//! they did in the reservations before), so the decisions are counted on a
//! cluster whose index has caught up.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use lepton::policies::by_name;
use lepton::rng::SeededRng;
use lepton::sim::{synthetic_nodes, synthetic_task};
use lepton::{ClusterState, Policy};

/// The system allocator, counting allocations.
struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded unchanged to the system allocator; the
// counter has no effect on memory.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller's contract is passed on as is.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract is passed on as is.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn select_does_not_allocate() {
    let mut cluster = ClusterState::new();
    for node in synthetic_nodes(2_000, 5) {
        cluster.add_node(node).unwrap();
    }
    let mut rng = SeededRng::new(9);
    // Fill part of the cluster so the indexes have work to do.
    let mut filler = by_name("firstfit").unwrap();
    for id in 0..3_000 {
        let task = synthetic_task(id, &mut rng);
        if let Some(placement) = filler.decide(&task, &cluster) {
            cluster.reserve(&task, &placement).unwrap();
        }
    }
    let probes: Vec<_> = (10_000..10_200)
        .map(|id| synthetic_task(id, &mut rng))
        .collect();
    // The fill's deferred index upkeep, done by one search.
    cluster.feasible(&probes[0], None).tightest_fit();
    for name in ["firstfit", "bestfit", "spread"] {
        let mut policy: Box<dyn Policy> = by_name(name).unwrap();
        let before = ALLOCATIONS.load(Ordering::Relaxed);
        let mut placed = 0;
        for task in &probes {
            placed += usize::from(policy.select(&cluster.feasible(task, None)).is_some());
        }
        let allocations = ALLOCATIONS.load(Ordering::Relaxed) - before;
        assert!(
            placed > 0,
            "{name} placed nothing: the test would prove nothing"
        );
        assert_eq!(
            allocations, 0,
            "{name} allocated {allocations} times in 200 decisions"
        );
    }
}
