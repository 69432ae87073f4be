//! What no scheduler can change in a world: which runs fail part-way, the
//! earliest each task could end, and the cheapest the work could cost —
//! the floor the strategies are measured against.

use std::collections::BTreeMap;

use lepton_core::model::GPU_MILLI_PER_GPU;
use lepton_core::rng::SeededRng;
use lepton_core::scheduler::{RetryPolicy, SchedulerConfig};
use lepton_core::{NodeSpec, Run};

use super::{FleetWorld, Pool, ScenarioTask};

/// Whether `run` fails part-way: the same runs fail under every strategy.
pub(super) fn fails(seed: u64, run: Run, rate: f64) -> bool {
    let mut rng = SeededRng::new(
        seed ^ run.task.0.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ u64::from(run.attempt) << 48,
    );
    rng.uniform() < rate
}

/// How long a run of `task` lasts, minutes: half-way and a minute when it
/// fails.
pub(super) fn run_length(task: &ScenarioTask, fails: bool) -> u64 {
    if fails {
        1 + task.duration_min / 2
    } else {
        task.duration_min
    }
}

/// A task's runs as the world has them, with no scheduler in the way:
/// started on arrival, each failing run started again as soon as its retry
/// delay allows (at the next minute at the earliest).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Floor {
    /// When it ends at the earliest; `None` when every run its retry
    /// budget allows fails part-way.
    pub(super) end: Option<u64>,
    /// Minutes of its runs together, the failed ones included.
    pub(super) work_min: u64,
}

/// The floor of `task` in `world` (its seed and failure rate), retried as
/// the scheduler's default retry policy for its kind allows.
pub(super) fn floor(world: &FleetWorld, task: &ScenarioTask) -> Floor {
    let config = SchedulerConfig::default();
    let retry: &RetryPolicy = config.retry(task.spec.kind);
    let (seed, rate) = (world.config.seed, world.config.failure_rate);
    let mut start = task.arrival_min;
    let mut work_min = 0;
    for attempt in 1.. {
        let run = Run {
            task: task.spec.id,
            attempt,
        };
        let failed = fails(seed, run, rate);
        let length = run_length(task, failed);
        work_min += length;
        if !failed {
            return Floor {
                end: Some(start + length),
                work_min,
            };
        }
        if !retry.allows(attempt) {
            break;
        }
        start += length + retry.delay_after(attempt).as_secs().div_ceil(60).max(1);
    }
    Floor {
        end: None,
        work_min,
    }
}

/// A lower bound on what any strategy pays for `world`'s work, USD: the
/// cheapest mix of VM-minutes of the world's shapes whose capacity covers
/// every task's requests for as long as its runs last (CPU, memory,
/// storage, GPUs), as a linear programme — fractional VMs, no
/// fragmentation, no start-up, no idle time. Any schedule's powered
/// capacity covers its running requests minute by minute, so it pays at
/// least this (a cover's cost is convex and scales with the demand, so the
/// sum over minutes is at least the cover of the sum). Owned VMs count as
/// free and unlimited, which makes the bound loose for fleets that have
/// them.
pub fn lower_bound_cost(world: &FleetWorld) -> f64 {
    // Resource-minutes of the work: CPU (cores), memory and storage
    // (GiB), GPUs.
    let mut work = [0.0f64; 4];
    for task in &world.tasks {
        let minutes = floor(world, task).work_min as f64;
        for (total, amount) in work.iter_mut().zip(requests(task)) {
            *total += amount * minutes;
        }
    }
    let shapes: Vec<([f64; 4], f64)> = shapes(world, |_| true).collect();
    cheapest_cover(&work, &shapes)
}

/// The cost of the cheapest capacity that holds, minute by minute, what
/// the tasks request as they would run with no scheduler in the way
/// (each started on arrival and run for its floor's work, USD): the
/// owned VMs' capacity, free but limited, first, the rest covered by the
/// cheapest mix of the other shapes (fractional, spot open to every task,
/// no start-up, no idle time). Fleets with owned VMs (the hybrid cloud)
/// get this rather than [`lower_bound_cost`], which counts owned capacity
/// as unlimited. It bounds strategies that start work as soon as they
/// can; one that held work back for owned capacity to free up could pay
/// less (and miss deadlines).
pub fn floor_cover_cost(world: &FleetWorld) -> f64 {
    let mut changes: BTreeMap<u64, [f64; 4]> = BTreeMap::new();
    for task in &world.tasks {
        let minutes = floor(world, task).work_min;
        let amount = requests(task);
        for (minute, sign) in [(task.arrival_min, 1.0), (task.arrival_min + minutes, -1.0)] {
            let change = changes.entry(minute).or_default();
            for (total, amount) in change.iter_mut().zip(amount) {
                *total += sign * amount;
            }
        }
    }
    let mut owned = [0.0f64; 4];
    for (node, shape) in &world.fleet {
        if world.shapes[*shape].pool == Pool::Owned {
            for (total, amount) in owned.iter_mut().zip(capacity(node)) {
                *total += amount;
            }
        }
    }
    let priced: Vec<([f64; 4], f64)> = shapes(world, |pool| pool != Pool::Owned).collect();
    let mut demand = [0.0f64; 4];
    let mut cost = 0.0;
    let mut changes = changes.into_iter().peekable();
    while let Some((minute, change)) = changes.next() {
        for (now, change) in demand.iter_mut().zip(change) {
            *now += change;
        }
        let Some(&(next, _)) = changes.peek() else {
            break;
        };
        let mut rest = [0.0f64; 4];
        for r in 0..4 {
            rest[r] = (demand[r] - owned[r]).max(0.0);
        }
        cost += cheapest_cover(&rest, &priced) * (next - minute) as f64;
    }
    cost
}

/// What `task` requests: CPU (cores), memory and storage (GiB), GPUs.
fn requests(task: &ScenarioTask) -> [f64; 4] {
    let request = &task.spec.request;
    [
        request.cpu_milli as f64 / 1_000.0,
        request.memory_mib as f64 / 1_024.0,
        request.storage_gib as f64,
        task.spec.gpu.total_milli() as f64 / f64::from(GPU_MILLI_PER_GPU),
    ]
}

/// The capacity of `node`, as [`requests`] counts.
fn capacity(node: &NodeSpec) -> [f64; 4] {
    [
        node.capacity.cpu_milli as f64 / 1_000.0,
        node.capacity.memory_mib as f64 / 1_024.0,
        node.capacity.storage_gib as f64,
        f64::from(node.gpus.count),
    ]
}

/// Each shape of a pool `keep` admits: its capacity (from its first VM)
/// and price per minute.
fn shapes<'a>(
    world: &'a FleetWorld,
    keep: impl Fn(Pool) -> bool + 'a,
) -> impl Iterator<Item = ([f64; 4], f64)> + 'a {
    world
        .shapes
        .iter()
        .enumerate()
        .filter(move |(_, shape)| keep(shape.pool))
        .filter_map(|(index, shape)| {
            let (node, _) = world.fleet.iter().find(|(_, s)| *s == index)?;
            Some((capacity(node), shape.price_per_hour / 60.0))
        })
}

/// min Σ price·x over x ≥ 0 with Σ capacity·x ≥ `demand` per resource,
/// solved through its dual: max demand·y over y ≥ 0 with capacity·y ≤
/// price per shape, whose optimum is at a vertex — where as many of those
/// constraints as there are resources hold with equality. Resources no
/// shape has are left out (no task can ask for them: it would fit
/// nowhere).
fn cheapest_cover(demand: &[f64; 4], shapes: &[([f64; 4], f64)]) -> f64 {
    let resources: Vec<usize> = (0..4)
        .filter(|&r| shapes.iter().any(|(capacity, _)| capacity[r] > 0.0))
        .collect();
    let n = resources.len();
    // Constraints as (row over the kept resources, bound): shapes, then
    // y_r ≥ 0 written as −y_r ≤ 0.
    let mut rows: Vec<(Vec<f64>, f64)> = shapes
        .iter()
        .map(|(capacity, price)| (resources.iter().map(|&r| capacity[r]).collect(), *price))
        .collect();
    for i in 0..n {
        let mut row = vec![0.0; n];
        row[i] = -1.0;
        rows.push((row, 0.0));
    }
    let demand: Vec<f64> = resources.iter().map(|&r| demand[r]).collect();
    let mut best = 0.0f64;
    for subset in subsets(rows.len(), n) {
        let a: Vec<Vec<f64>> = subset.iter().map(|&i| rows[i].0.clone()).collect();
        let b: Vec<f64> = subset.iter().map(|&i| rows[i].1).collect();
        let Some(y) = solve(a, b) else {
            continue;
        };
        let feasible = rows.iter().all(|(row, bound)| {
            let lhs: f64 = row.iter().zip(&y).map(|(a, y)| a * y).sum();
            lhs <= bound + 1e-9 * bound.abs().max(1.0)
        });
        if feasible {
            best = best.max(demand.iter().zip(&y).map(|(d, y)| d * y).sum());
        }
    }
    best
}

/// Every `k`-element subset of `0..n`, in order.
fn subsets(n: usize, k: usize) -> Vec<Vec<usize>> {
    let mut all = Vec::new();
    let mut current = Vec::with_capacity(k);
    fn walk(start: usize, n: usize, k: usize, current: &mut Vec<usize>, all: &mut Vec<Vec<usize>>) {
        if current.len() == k {
            all.push(current.clone());
            return;
        }
        for i in start..n {
            current.push(i);
            walk(i + 1, n, k, current, all);
            current.pop();
        }
    }
    walk(0, n, k, &mut current, &mut all);
    all
}

/// Solves the square system `a·x = b` by Gaussian elimination with
/// partial pivoting; `None` when it is singular.
fn solve(mut a: Vec<Vec<f64>>, mut b: Vec<f64>) -> Option<Vec<f64>> {
    let n = b.len();
    for col in 0..n {
        let pivot = (col..n).max_by(|&i, &j| a[i][col].abs().total_cmp(&a[j][col].abs()))?;
        if a[pivot][col].abs() < 1e-12 {
            return None;
        }
        a.swap(col, pivot);
        b.swap(col, pivot);
        let pivot_row = a[col].clone();
        for row in col + 1..n {
            let factor = a[row][col] / pivot_row[col];
            for (x, p) in a[row].iter_mut().zip(&pivot_row).skip(col) {
                *x -= factor * p;
            }
            b[row] -= factor * b[col];
        }
    }
    let mut x = vec![0.0; n];
    for row in (0..n).rev() {
        let sum: f64 = (row + 1..n).map(|k| a[row][k] * x[k]).sum();
        x[row] = (b[row] - sum) / a[row][row];
    }
    Some(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_shape_covers_its_scarcest_resource() {
        // 4 cores, 16 GiB at 1 USD a minute: 10 core-minutes and 20
        // GiB-minutes need 2.5 VM-minutes (cores bind).
        let shapes = [([4.0, 16.0, 0.0, 0.0], 1.0)];
        assert!((cheapest_cover(&[10.0, 20.0, 0.0, 0.0], &shapes) - 2.5).abs() < 1e-9);
    }

    #[test]
    fn the_cheapest_mix_of_shapes_is_found() {
        // A: 8 cores, 8 GiB for 1; B: 2 cores, 32 GiB for 1. Demand 16
        // cores and 64 GiB: x_A = 1.6, x_B = 1.6 covers both exactly,
        // 3.2; A alone needs 8 (memory), B alone 8 (cores).
        let shapes = [([8.0, 8.0, 0.0, 0.0], 1.0), ([2.0, 32.0, 0.0, 0.0], 1.0)];
        let cost = cheapest_cover(&[16.0, 64.0, 0.0, 0.0], &shapes);
        assert!((cost - 3.2).abs() < 1e-9, "{cost}");
    }

    #[test]
    fn gpus_need_the_gpu_shape() {
        // 2 GPU-minutes on a 1-GPU, 8-core shape at 3, the CPU work on a
        // 16-core shape at 1; the GPU VMs' cores count too.
        let shapes = [([8.0, 64.0, 0.0, 1.0], 3.0), ([16.0, 32.0, 0.0, 0.0], 1.0)];
        let cost = cheapest_cover(&[40.0, 0.0, 0.0, 2.0], &shapes);
        // 2 GPU VM-minutes (6, 16 cores) + 24 cores on the CPU shape (1.5).
        assert!((cost - 7.5).abs() < 1e-9, "{cost}");
    }
}
