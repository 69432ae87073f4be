//! Moves and evictions: live migration where the backend can, and the
//! runs stopped to make way.

use std::sync::Arc;

use lepton_core::backend::{Backend, Handle};
use lepton_core::{Assignment, Run};
use tracing::{info, info_span, warn, Instrument};

use crate::parallel::in_parallel;
use crate::Controller;

impl Controller {
    /// The running run an assignment moves, and its backend, when that
    /// backend can live-migrate it to the assignment's node.
    fn live_move(&self, assignment: &Assignment) -> Option<(Handle, Arc<dyn Backend>)> {
        let run = assignment.moves_from()?;
        let from = self.runs.get(&run.task).filter(|h| h.run == run)?;
        let backend = self.backend_of(from.node)?;
        backend
            .can_migrate_to(assignment.node)
            .then(|| (from.clone(), backend))
    }

    /// Stops what assignments evict, except the runs that move live.
    /// Returns the runs stopped.
    pub(crate) async fn evict(&mut self, assignments: &[Assignment]) -> Vec<Handle> {
        let mut evicted = Vec::new();
        for assignment in assignments {
            let moving = self.live_move(assignment).map(|(from, _)| from.run);
            for &run in &assignment.evicts {
                if Some(run) != moving {
                    evicted.extend(self.stop_run(run, Some(assignment.run())).await);
                }
            }
        }
        evicted
    }

    /// Stops `run` if it is a current run (to make way for `for_run`);
    /// returns its handle.
    pub(crate) async fn stop_run(&mut self, run: Run, for_run: Option<Run>) -> Option<Handle> {
        if self.runs.get(&run.task)?.run != run {
            return None;
        }
        let handle = self.runs.remove(&run.task)?;
        let backend = self.backend_of(handle.node)?;
        let span = info_span!("evict", run = %run, for_run = ?for_run);
        if let Err(error) = backend.stop(&handle).instrument(span).await {
            warn!(%handle, %error, "could not stop an evicted run; stopped later as an orphan");
        }
        Some(handle)
    }

    /// Live-migrates the moves whose backend can (after [`evict`](Self::evict)
    /// made room), at most `max_concurrent_launches` at once. Returns the
    /// runs moved and the assignments left to launch: the others, and the
    /// moves whose migration failed, their old run stopped and added to
    /// `evicted`.
    pub(crate) async fn migrate(
        &mut self,
        assignments: Vec<Assignment>,
        evicted: &mut Vec<Handle>,
    ) -> (Vec<Handle>, Vec<Assignment>) {
        let mut rest = Vec::new();
        let mut moves = Vec::new();
        for assignment in assignments {
            let live = self
                .live_move(&assignment)
                .and_then(|found| Some((found, self.launch_of(&assignment)?)));
            match live {
                Some(((from, backend), launch)) => moves.push((assignment, from, backend, launch)),
                None => rest.push(assignment),
            }
        }
        let results = in_parallel(
            moves,
            self.config.max_concurrent_launches,
            |(_, from, backend, launch)| {
                let (from, backend, launch) = (from.clone(), Arc::clone(backend), launch.clone());
                let span =
                    info_span!("migrate", from = %from.run, run = %launch.run, node = %launch.node);
                async move { backend.migrate(&from, &launch).await }.instrument(span)
            },
        )
        .await;
        let mut migrated = Vec::new();
        for ((assignment, from, _, _), result) in results {
            let error = match result {
                Some(Ok(handle)) => {
                    info!(%from, %handle, "migrated live");
                    self.runs.insert(handle.run.task, handle.clone());
                    migrated.push(handle);
                    continue;
                }
                Some(Err(error)) => error.to_string(),
                None => "the backend panicked in migrate".to_owned(),
            };
            warn!(%from, %error, "live migration failed; the run restarts instead");
            evicted.extend(self.stop_run(from.run, Some(assignment.run())).await);
            rest.push(assignment);
        }
        (migrated, rest)
    }
}
