//! Bounded, ordered concurrency for backend calls.

use std::collections::HashMap;
use std::future::Future;

use tokio::task::JoinSet;

/// Runs `work` on every item, at most `limit` (at least one) at once, each
/// in a task of its own. Returns every item with its result, in the order
/// of `items` whatever order they finish in, so that what the caller does
/// with the results (events to the scheduler) is deterministic; `None` for
/// work that panicked, so that no item is lost.
pub(crate) async fn in_parallel<T, R, F, Fut>(
    items: Vec<T>,
    limit: usize,
    work: F,
) -> Vec<(T, Option<R>)>
where
    F: Fn(&T) -> Fut,
    Fut: Future<Output = R> + Send + 'static,
    R: Send + 'static,
{
    let mut results: Vec<Option<R>> = items.iter().map(|_| None).collect();
    let mut positions = HashMap::new();
    let mut in_flight = JoinSet::new();
    let mut next = 0;
    loop {
        while in_flight.len() < limit.max(1) && next < items.len() {
            positions.insert(in_flight.spawn(work(&items[next])).id(), next);
            next += 1;
        }
        match in_flight.join_next_with_id().await {
            None => break,
            Some(Ok((id, result))) => {
                if let Some(&at) = positions.get(&id) {
                    results[at] = Some(result);
                }
            }
            // A panic leaves the item's result `None`.
            Some(Err(_)) => {}
        }
    }
    items.into_iter().zip(results).collect()
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn in_parallel_keeps_every_item_in_order_and_the_limit() {
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let results = in_parallel((0..10).collect(), 3, |&item: &u32| {
            let (running, most) = (Arc::clone(&running), Arc::clone(&most));
            async move {
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                // Later items finish first: the results must not follow.
                tokio::time::sleep(Duration::from_millis(u64::from(20 - item))).await;
                running.fetch_sub(1, Ordering::SeqCst);
                assert!(item != 4, "work for item 4 panics");
                item * 10
            }
        })
        .await;
        let expected: Vec<(u32, Option<u32>)> = (0..10)
            .map(|item| (item, (item != 4).then_some(item * 10)))
            .collect();
        assert_eq!(results, expected);
        assert_eq!(most.load(Ordering::SeqCst), 3);
    }
}
