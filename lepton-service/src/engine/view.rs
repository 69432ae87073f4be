//! The [`View`] the API reads, and how it lists tasks a page at a time.
//!
//! Next to the tasks by id, the view keeps the ids of all tasks and of each
//! state's tasks in id order (`BTreeSet`s). A page is a walk of at most
//! `limit` ids from its cursor in one of those sets — O(log n + limit),
//! whatever the number of tasks — and a state's count is its set's length.
//! A task moves between sets only when its state changes; the step
//! refreshes only the tasks whose state changed (the scheduler's
//! `take_changes`), so an idle service with a long queue does no work.
//! The tests hold the walk against a plain scan of every task.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Bound;

use lepton::TaskId;

use super::{NodeView, TaskView};

/// The states the API shows.
pub(crate) const STATES: [&str; 5] = ["queued", "running", "completed", "failed", "cancelled"];

/// What the API reads: the service's state after the latest step.
#[derive(Debug, Default)]
pub(crate) struct View {
    /// Every task accepted, by id; changed through [`View::insert`].
    pub(crate) tasks: HashMap<TaskId, TaskView>,
    /// The ids of every task, in order.
    ids: BTreeSet<u64>,
    /// The ids of each state's tasks, in order, by [`STATES`]' index.
    by_state: [BTreeSet<u64>; STATES.len()],
    /// Queued tasks by priority.
    queued_by_priority: BTreeMap<u8, usize>,
    /// The nodes.
    pub(crate) nodes: Vec<NodeView>,
    /// The policy in use.
    pub(crate) policy: String,
    /// Tasks waiting in the queue.
    pub(crate) queue_len: usize,
    /// The tenant queues.
    pub(crate) queues: Vec<super::QueueView>,
}

/// The direction a page walks the task ids in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Order {
    /// Oldest (smallest id) first.
    #[default]
    Ascending,
    /// Newest (largest id) first.
    Descending,
}

/// Which tasks a page holds: those in `state` (any, without), walking the
/// ids in `order` from just past `after`, at most `limit` of them.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct PageRequest {
    /// An index into [`STATES`], or every state.
    pub(crate) state: Option<usize>,
    pub(crate) order: Order,
    /// The cursor: the page starts with the first id past it in `order`.
    pub(crate) after: Option<u64>,
    /// The most tasks on the page; every one that matches without.
    pub(crate) limit: Option<usize>,
}

/// One page of tasks.
#[derive(Debug)]
pub(crate) struct Page<'a> {
    pub(crate) tasks: Vec<&'a TaskView>,
    /// The cursor of the next page (the last task's id) when more tasks
    /// follow this page; `None` at the end.
    pub(crate) next: Option<u64>,
}

/// The index of `state` in [`STATES`].
pub(crate) fn state_index(state: &str) -> Option<usize> {
    STATES.iter().position(|known| *known == state)
}

impl View {
    /// Adds a task or replaces what it showed, keeping the indexes.
    pub(crate) fn insert(&mut self, task: TaskView) {
        let id = TaskId(task.id);
        let state = state_index(task.state);
        debug_assert!(state.is_some(), "a task in state {:?}", task.state);
        let queued = state_index("queued");
        if let Some(old) = self
            .tasks
            .get(&id)
            .filter(|old| state_index(old.state) == queued)
        {
            if let Some(count) = self.queued_by_priority.get_mut(&old.priority) {
                *count -= 1;
                if *count == 0 {
                    self.queued_by_priority.remove(&old.priority);
                }
            }
        }
        if state == queued {
            *self.queued_by_priority.entry(task.priority).or_default() += 1;
        }
        match self.tasks.get(&id).map(|old| state_index(old.state)) {
            Some(old) if old == state => {}
            Some(old) => {
                if let Some(old) = old {
                    self.by_state[old].remove(&task.id);
                }
                if let Some(state) = state {
                    self.by_state[state].insert(task.id);
                }
            }
            None => {
                self.ids.insert(task.id);
                if let Some(state) = state {
                    self.by_state[state].insert(task.id);
                }
            }
        }
        self.tasks.insert(id, task);
    }

    /// How many tasks are queued at each priority, lowest first.
    pub(crate) fn queued_by_priority(&self) -> Vec<(u8, usize)> {
        self.queued_by_priority
            .iter()
            .map(|(&priority, &count)| (priority, count))
            .collect()
    }

    /// How many tasks are in each state, in [`STATES`]' order.
    pub(crate) fn counts(&self) -> [(&'static str, usize); 5] {
        std::array::from_fn(|i| (STATES[i], self.by_state[i].len()))
    }

    /// The page `request` asks for: a walk of the index it names, costing
    /// the page's length and not the number of tasks.
    pub(crate) fn page(&self, request: PageRequest) -> Page<'_> {
        let ids = match request.state {
            Some(state) => &self.by_state[state],
            None => &self.ids,
        };
        let walk: Box<dyn Iterator<Item = &u64>> = match (request.order, request.after) {
            (Order::Ascending, None) => Box::new(ids.iter()),
            (Order::Ascending, Some(after)) => {
                Box::new(ids.range((Bound::Excluded(after), Bound::Unbounded)))
            }
            (Order::Descending, None) => Box::new(ids.iter().rev()),
            (Order::Descending, Some(after)) => Box::new(ids.range(..after).rev()),
        };
        let limit = request.limit.unwrap_or(usize::MAX);
        let mut walk = walk.filter_map(|id| self.tasks.get(&TaskId(*id)));
        let tasks: Vec<&TaskView> = walk.by_ref().take(limit).collect();
        let next = match tasks.last() {
            Some(last) if walk.next().is_some() => Some(last.id),
            _ => None,
        };
        Page { tasks, next }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(id: u64, state: &'static str) -> TaskView {
        TaskView {
            id,
            name: None,
            state,
            priority: 128,
            queue: None,
            attempts: 0,
            node: None,
            limits: None,
            reasons: Vec::new(),
        }
    }

    #[test]
    fn the_view_keeps_its_counts_as_tasks_change() {
        let mut view = View::default();
        view.insert(task(1, "queued"));
        view.insert(task(2, "queued"));
        view.insert(task(1, "running"));
        view.insert(task(2, "failed"));
        view.insert(task(3, "completed"));
        view.insert(task(1, "completed"));
        assert_eq!(
            view.counts(),
            [
                ("queued", 0),
                ("running", 0),
                ("completed", 2),
                ("failed", 1),
                ("cancelled", 0)
            ]
        );
        assert!(view.queued_by_priority().is_empty());
        view.insert(task(4, "queued"));
        view.insert(TaskView {
            priority: 7,
            ..task(5, "queued")
        });
        assert_eq!(view.counts()[0], ("queued", 2));
        assert_eq!(view.queued_by_priority(), [(7, 1), (128, 1)]);
        view.insert(task(4, "running"));
        assert_eq!(view.queued_by_priority(), [(7, 1)]);
    }

    /// The page a plain scan of every task finds: the twin of
    /// [`View::page`] (and what listing cost before the view was indexed).
    fn scanned(view: &View, request: PageRequest) -> (Vec<u64>, Option<u64>) {
        let mut ids: Vec<u64> = view
            .tasks
            .values()
            .filter(|t| request.state.is_none_or(|s| t.state == STATES[s]))
            .map(|t| t.id)
            .collect();
        ids.sort_unstable();
        if request.order == Order::Descending {
            ids.reverse();
        }
        let past = |id: &u64| match (request.order, request.after) {
            (_, None) => true,
            (Order::Ascending, Some(after)) => *id > after,
            (Order::Descending, Some(after)) => *id < after,
        };
        let rest: Vec<u64> = ids.into_iter().filter(past).collect();
        let limit = request.limit.unwrap_or(usize::MAX);
        let page: Vec<u64> = rest.iter().copied().take(limit).collect();
        let next = (rest.len() > page.len())
            .then(|| page.last().copied())
            .flatten();
        (page, next)
    }

    fn ids(page: &Page<'_>) -> Vec<u64> {
        page.tasks.iter().map(|t| t.id).collect()
    }

    #[test]
    fn pages_walk_a_state_from_their_cursor_both_ways() {
        let mut view = View::default();
        for id in 1..=10 {
            view.insert(task(id, if id % 3 == 0 { "failed" } else { "queued" }));
        }
        let failed = state_index("failed");
        let first = view.page(PageRequest {
            state: failed,
            limit: Some(2),
            ..PageRequest::default()
        });
        assert_eq!((ids(&first), first.next), (vec![3, 6], Some(6)));
        let last = view.page(PageRequest {
            state: failed,
            after: first.next,
            limit: Some(2),
            ..PageRequest::default()
        });
        assert_eq!((ids(&last), last.next), (vec![9], None));
        let newest = view.page(PageRequest {
            order: Order::Descending,
            after: Some(9),
            limit: Some(3),
            ..PageRequest::default()
        });
        assert_eq!((ids(&newest), newest.next), (vec![8, 7, 6], Some(6)));
        // A task that fails leaves the queued index and joins the failed.
        view.insert(task(1, "failed"));
        let failed_now = view.page(PageRequest {
            state: failed,
            ..PageRequest::default()
        });
        assert_eq!(ids(&failed_now), vec![1, 3, 6, 9]);
        assert_eq!(view.counts()[0], ("queued", 6));
        let none = view.page(PageRequest {
            limit: Some(0),
            ..PageRequest::default()
        });
        assert_eq!((ids(&none), none.next), (vec![], None));
    }

    proptest::proptest! {
        #[test]
        fn a_page_is_what_a_scan_of_every_task_finds(
            changes in proptest::collection::vec((0u64..40, 0usize..5), 0..120),
            state in proptest::option::of(0usize..5),
            descending: bool,
            after in proptest::option::of(0u64..45),
            limit in proptest::option::of(0usize..12),
        ) {
            let mut view = View::default();
            for (id, state) in changes {
                view.insert(task(id, STATES[state]));
            }
            let request = PageRequest {
                state,
                order: if descending { Order::Descending } else { Order::Ascending },
                after,
                limit,
            };
            let page = view.page(request);
            proptest::prop_assert_eq!((ids(&page), page.next), scanned(&view, request));
            for (i, (state, count)) in view.counts().into_iter().enumerate() {
                proptest::prop_assert_eq!(state, STATES[i]);
                let scanned = view.tasks.values().filter(|t| t.state == state).count();
                proptest::prop_assert_eq!(count, scanned);
            }
        }
    }

    /// A page of one state among 100,000 tasks costs its own length: the
    /// indexed walk against the scan of every task the listing did before
    /// (the fastest of several runs of each, so that a busy machine does not
    /// decide it). `cargo test --release -p lepton-service page_cost --
    /// --nocapture` prints the figures.
    #[test]
    fn a_page_costs_its_length_not_the_number_of_tasks() {
        use std::time::{Duration, Instant};
        const TASKS: u64 = 100_000;
        let mut view = View::default();
        for id in 0..TASKS {
            let state = match id % 100 {
                0 => "failed",
                1..=9 => "queued",
                _ => "completed",
            };
            view.insert(task(id, state));
        }
        let request = PageRequest {
            state: state_index("failed"),
            order: Order::Descending,
            after: Some(TASKS / 2),
            limit: Some(100),
        };
        let fastest = |runs: usize, work: &dyn Fn() -> usize| -> Duration {
            (0..runs)
                .map(|_| {
                    let started = Instant::now();
                    std::hint::black_box(work());
                    started.elapsed()
                })
                .min()
                .unwrap_or_default()
        };
        let indexed = fastest(50, &|| view.page(request).tasks.len());
        let scan = fastest(5, &|| scanned(&view, request).0.len());
        let counts = fastest(50, &|| view.counts().len());
        println!(
            "page_cost with {TASKS} tasks: one page of 100 failed tasks {indexed:?} indexed, \
             {scan:?} by a scan of every task; counts {counts:?}"
        );
        assert_eq!(view.page(request).tasks.len(), 100);
        assert!(
            indexed * 20 < scan,
            "a page took {indexed:?}, a scan of every task {scan:?}"
        );
    }
}
