//! The admission's tests: examples, the DRF paper's allocation, and a
//! property test against a plain reference.

use super::*;
use crate::resources::{GpuRequest, Resources};
use crate::task::Gang;

fn task(id: u64, cpu_milli: u64) -> TaskSpec {
    TaskSpec::new(TaskId(id), Resources::new(cpu_milli, 1))
}

fn cpus(cores: u64) -> Amounts {
    Amounts {
        cpu_milli: cores * 1_000,
        memory_mib: 1 << 30,
        gpu_milli: 0,
    }
}

#[test]
fn paths_name_every_queue_above() {
    let above: Vec<&str> = path("org/team/user").collect();
    assert_eq!(above, ["org/team/user", "org/team", "org"]);
    assert_eq!(path("org").collect::<Vec<_>>(), ["org"]);
}

#[test]
fn bad_queues_and_tasks_are_refused_by_name() {
    let mut admission = Admission::new();
    for bad in ["", "a//b", "/a", "a b", &"x/".repeat(16).to_string()] {
        let err = admission.add_queue(QueueSpec::new(bad)).unwrap_err();
        assert!(matches!(err, Error::InvalidQueue { .. }), "{bad:?}: {err}");
    }
    let err = admission
        .add_queue(QueueSpec::new("a").with_weight(0.0))
        .unwrap_err();
    assert!(err.to_string().contains("weight"), "{err}");
    admission
        .add_queue(QueueSpec::new("a").with_max(Limits::cpu_milli(2_000)))
        .unwrap();
    let err = admission.add_queue(QueueSpec::new("a")).unwrap_err();
    assert_eq!(err, Error::DuplicateQueue { queue: "a".into() });
    let err = admission.submit("b", &task(1, 1)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "task t-1 names queue \"b\", which is not declared"
    );
    admission.add_queue(QueueSpec::new("a/b")).unwrap();
    let err = admission.submit("a/b", &task(2, 3_000)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "task t-2 asks for cpu_milli 3000, more than queue a allows at most (2000)"
    );
    admission.submit("a/b", &task(3, 1_000)).unwrap();
    let err = admission.submit("a", &task(3, 1_000)).unwrap_err();
    assert_eq!(err, Error::DuplicateTask { task: TaskId(3) });
}

#[test]
fn a_parent_maximum_bounds_its_children_together() {
    let mut admission = Admission::new();
    admission
        .add_queue(QueueSpec::new("org").with_max(Limits::cpu_milli(5_000)))
        .unwrap();
    admission.add_queue(QueueSpec::new("org/a")).unwrap();
    admission.add_queue(QueueSpec::new("org/b")).unwrap();
    for id in 0..6 {
        let queue = if id % 2 == 0 { "org/a" } else { "org/b" };
        admission.submit(queue, &task(id, 1_000)).unwrap();
    }
    let admitted = admission.admit(cpus(100));
    assert_eq!(admitted.len(), 5);
    assert_eq!(admission.usage("org").unwrap().cpu_milli, 5_000);
    let waiting = admission.why_waiting(TaskId(5), cpus(100)).unwrap();
    assert_eq!(
        waiting,
        "queue org is at its maximum: cpu_milli 6000 with this task > 5000"
    );
    assert!(admission.ended(TaskId(0)));
    assert_eq!(admission.admit(cpus(100))[0], TaskId(5));
    assert!(!admission.ended(TaskId(99)));
}

#[test]
fn a_waiting_task_is_told_how_many_wait_ahead_of_it() {
    let mut admission = Admission::new();
    admission.add_queue(QueueSpec::new("q")).unwrap();
    for (id, priority) in [(1, 0), (2, 1), (3, 0), (4, 1)] {
        let spec = task(id, 1_000).with_priority(Priority(priority));
        admission.submit("q", &spec).unwrap();
    }
    let why = |admission: &Admission, id| admission.why_waiting(TaskId(id), cpus(100)).unwrap();
    // Higher priority first, then submission order: 2, 4, 1, 3.
    assert_eq!(
        why(&admission, 2),
        "first in queue q: admitted at the next round"
    );
    assert_eq!(why(&admission, 1), "2 tasks ahead of it in queue q");
    assert_eq!(why(&admission, 3), "3 tasks ahead of it in queue q");
    assert!(admission.ended(TaskId(4)));
    assert_eq!(why(&admission, 3), "2 tasks ahead of it in queue q");
    assert_eq!(admission.waiting("q"), 3);
    assert_eq!(
        admission.admit(cpus(100)),
        [TaskId(2), TaskId(1), TaskId(3)]
    );
}

/// Queue `a`'s tasks ask for <1 CPU, 4 GiB>, `b`'s for <3 CPUs,
/// 1 GiB>; `n` of each wait.
fn papers_queues(weight_b: f64, n: u64) -> Admission {
    let mut admission = Admission::new();
    admission.add_queue(QueueSpec::new("a")).unwrap();
    let b = QueueSpec::new("b").with_weight(weight_b);
    admission.add_queue(b).unwrap();
    for id in 0..n {
        let a = TaskSpec::new(TaskId(id), Resources::new(1_000, 4_096));
        admission.submit("a", &a).unwrap();
        let b = TaskSpec::new(TaskId(1_000 + id), Resources::new(3_000, 1_024));
        admission.submit("b", &b).unwrap();
    }
    admission
}

#[test]
fn the_drf_papers_example_gives_its_allocation() {
    // Ghodsi et al.'s example: 9 CPUs and 18 GB; user A's tasks need
    // <1 CPU, 4 GB>, B's <3 CPUs, 1 GB>. DRF gives A three tasks and B
    // two, each a dominant share of 2/3.
    let mut admission = papers_queues(1.0, 10);
    let capacity = Amounts {
        cpu_milli: 9_000,
        memory_mib: 18 * 1_024,
        gpu_milli: 0,
    };
    let admitted = admission.admit(capacity);
    let from = |q: u64| admitted.iter().filter(|t| t.0 / 1_000 == q).count();
    assert_eq!((from(0), from(1)), (3, 2));
    for queue in ["a", "b"] {
        let share = admission.usage(queue).unwrap().dominant_share(capacity);
        assert!((share - 2.0 / 3.0).abs() < 1e-9, "{queue}: {share}");
    }
}

#[test]
fn weights_scale_the_fair_share() {
    // B weighs twice A: B's dominant share settles at twice A's (to
    // within one task), and the binding resource is used up.
    let mut admission = papers_queues(2.0, 100);
    let capacity = Amounts {
        cpu_milli: 90_000,
        memory_mib: 180 * 1_024,
        gpu_milli: 0,
    };
    admission.admit(capacity);
    let share = |q: &str| admission.usage(q).unwrap().dominant_share(capacity);
    let (a, b) = (share("a"), share("b"));
    let one_task = 4.0 / 180.0;
    assert!((b / 2.0 - a).abs() <= one_task, "a {a} b {b}");
    let cpu = admission.usage("a").unwrap().cpu_milli + admission.usage("b").unwrap().cpu_milli;
    assert!(cpu > 87_000, "{cpu}");
}

#[test]
fn inside_a_queue_priority_then_submission_order() {
    let mut admission = Admission::new();
    admission
        .add_queue(QueueSpec::new("q").with_max(Limits::cpu_milli(1_000)))
        .unwrap();
    admission.submit("q", &task(1, 1_000)).unwrap();
    admission.submit("q", &task(2, 1_000)).unwrap();
    let urgent = task(3, 1_000).with_priority(Priority::HIGHEST);
    admission.submit("q", &urgent).unwrap();
    let mut order = Vec::new();
    for _ in 0..3 {
        let [next] = admission.admit(cpus(8)).try_into().unwrap();
        order.push(next.0);
        admission.ended(next);
    }
    assert_eq!(order, [3, 1, 2]);
}

#[test]
fn a_restored_admission_goes_on_as_the_saved_one() {
    let mut admission = hierarchy();
    for id in 0..40 {
        let queue = QUEUES[(id % 5) as usize];
        let spec = task(id, 500 + (id % 4) * 500).with_priority(Priority((id % 3) as u8));
        admission.submit(queue, &spec).unwrap();
    }
    // A gang larger than the cluster waits too: its name is saved with
    // its members.
    for id in 100..102 {
        let member = task(id, 5_000).with_gang(Gang::new("g", 2));
        admission.submit("free", &member).unwrap();
    }
    let capacity = cpus(9);
    let first = admission.admit(capacity);
    assert!(!first.is_empty());
    admission.ended(first[0]);
    let json = serde_json::to_string(&admission.snapshot()).unwrap();
    let mut restored = Admission::restore(serde_json::from_str(&json).unwrap()).unwrap();
    let again = serde_json::to_string(&restored.snapshot()).unwrap();
    assert_eq!(again, json);
    for queue in QUEUES {
        assert_eq!(restored.usage(queue), admission.usage(queue));
    }
    // Both admit the same tasks in the same order from here.
    assert_eq!(restored.admit(capacity), admission.admit(capacity));
    // A state naming a queue not declared is refused.
    let mut state = admission.snapshot();
    state
        .admitted
        .push((TaskId(999), "nowhere".into(), Amounts::default()));
    let err = Admission::restore(state).unwrap_err();
    assert!(matches!(err, Error::UnknownQueue { .. }), "{err}");
}

#[test]
fn a_parent_declared_later_counts_what_its_children_hold() {
    let mut admission = Admission::new();
    admission.add_queue(QueueSpec::new("org/a")).unwrap();
    for id in 0..4 {
        admission.submit("org/a", &task(id, 1_000)).unwrap();
    }
    assert_eq!(admission.admit(cpus(2)).len(), 2);
    let org = QueueSpec::new("org").with_max(Limits::cpu_milli(3_000));
    admission.add_queue(org).unwrap();
    assert_eq!(admission.usage("org").unwrap().cpu_milli, 2_000);
    // Room in the cluster for all; the parent's maximum lets one more in.
    assert_eq!(admission.admit(cpus(100)).len(), 1);
    assert_eq!(admission.waiting("org/a"), 1);
}

#[test]
fn a_flood_of_small_tasks_does_not_starve_a_large_one() {
    let mut admission = Admission::new();
    admission.add_queue(QueueSpec::new("flood")).unwrap();
    admission.add_queue(QueueSpec::new("large")).unwrap();
    for id in 0..100 {
        admission.submit("flood", &task(id, 1_000)).unwrap();
    }
    let capacity = cpus(10);
    let mut running: Vec<TaskId> = admission.admit(capacity);
    assert_eq!(running.len(), 10);
    admission.submit("large", &task(1_000, 8_000)).unwrap();
    // Flood tasks end one by one: the freed CPU waits for the large task
    // (the fairer queue) instead of going to the next flood task.
    let mut rounds = 0;
    loop {
        let ended = running.remove(0);
        admission.ended(ended);
        rounds += 1;
        let admitted = admission.admit(capacity);
        if admitted.contains(&TaskId(1_000)) {
            break;
        }
        assert!(admitted.is_empty(), "round {rounds}: {admitted:?}");
        assert!(rounds < 10);
    }
    assert_eq!(rounds, 8);
}

/// `first` (if any), then `owner`, promised 4 cores, then `borrower`,
/// which has taken the whole cluster of 10 cores.
fn borrowed_out(first: Option<&str>) -> Admission {
    let mut admission = Admission::new();
    if let Some(first) = first {
        admission.add_queue(QueueSpec::new(first)).unwrap();
    }
    let guarantee = Limits::cpu_milli(4_000).with_memory_mib(1 << 20);
    admission
        .add_queue(QueueSpec::new("owner").with_guarantee(guarantee))
        .unwrap();
    admission.add_queue(QueueSpec::new("borrower")).unwrap();
    for id in 0..10 {
        admission.submit("borrower", &task(id, 1_000)).unwrap();
    }
    assert_eq!(admission.admit(cpus(10)).len(), 10);
    admission
}

fn admitted_ids(admission: &mut Admission) -> Vec<TaskId> {
    admission.admit(cpus(10))
}

#[test]
fn a_task_within_its_guarantee_goes_ahead_of_a_fairer_queue_waiting_for_room() {
    let mut admission = borrowed_out(Some("large"));
    // "large" holds nothing, as "owner" does, and is declared first: the
    // fairer queue, its task waiting for room.
    admission.submit("large", &task(100, 2_000)).unwrap();
    admission.submit("owner", &task(200, 1_000)).unwrap();
    assert_eq!(admitted_ids(&mut admission), [TaskId(200)]);
    assert!(admission.is_waiting(TaskId(100)));
}

#[test]
fn a_task_within_its_guarantee_goes_ahead_of_its_own_queues_first() {
    let mut admission = borrowed_out(None);
    // The owner's first task is beyond its guarantee and waits for room;
    // the one behind it is within the guarantee and goes.
    admission.submit("owner", &task(100, 6_000)).unwrap();
    admission.submit("owner", &task(101, 2_000)).unwrap();
    assert_eq!(admitted_ids(&mut admission), [TaskId(101)]);
    assert!(admission.is_waiting(TaskId(100)));
    // Beyond the guarantee nothing more goes: a third task waits too.
    admission.submit("owner", &task(102, 3_000)).unwrap();
    assert!(admitted_ids(&mut admission).is_empty());
}

#[derive(Debug, Clone)]
enum Op {
    Submit {
        queue: usize,
        cpu: u64,
        memory: u64,
        gpu: u64,
        priority: u8,
    },
    Admit,
    End {
        pick: usize,
    },
}

fn op() -> impl proptest::strategy::Strategy<Value = Op> {
    use proptest::prelude::*;
    prop_oneof![
        (0..QUEUES.len(), 1..5u64, 1..5u64, 0..3u64, 0..3u8).prop_map(
            |(queue, cpu, memory, gpu, priority)| Op::Submit {
                queue,
                cpu: cpu * 500,
                memory: memory * 512,
                gpu: gpu * 450,
                priority
            }
        ),
        Just(Op::Admit),
        any::<usize>().prop_map(|pick| Op::End { pick }),
    ]
}

/// A hierarchy with maxima at two levels and a queue without any.
const QUEUES: [&str; 5] = ["org", "org/a", "org/b", "lab/x", "free"];

fn hierarchy() -> Admission {
    let mut admission = Admission::new();
    let org = Limits::cpu_milli(6_000).with_gpu_milli(2_000);
    admission
        .add_queue(QueueSpec::new("org").with_max(org))
        .unwrap();
    admission
        .add_queue(QueueSpec::new("org/a").with_weight(2.0))
        .unwrap();
    let b = Limits::cpu_milli(3_000).with_memory_mib(4_096);
    admission
        .add_queue(QueueSpec::new("org/b").with_max(b))
        .unwrap();
    let x = Limits::NONE.with_memory_mib(3_072);
    admission
        .add_queue(QueueSpec::new("lab/x").with_max(x))
        .unwrap();
    admission.add_queue(QueueSpec::new("free")).unwrap();
    admission
}

/// What admission should admit, worked out the plain way: again and
/// again, the queues in order of the weighted dominant share of what
/// their subtree holds (then path); the first whose first waiting task is
/// within every maximum on its path admits it if the cluster has room,
/// else (when the task could fit an empty cluster) nothing is admitted.
fn reference_admit(
    admission: &Admission,
    live: &[TaskId],
    waiting: &[TaskId],
    submitted: &BTreeMap<TaskId, (&str, TaskSpec)>,
    capacity: Amounts,
) -> Vec<TaskId> {
    let (mut live, mut waiting) = (live.to_vec(), waiting.to_vec());
    let amounts = |t: &TaskId| Amounts::of(&submitted[t].1);
    let held = |queue: &str, live: &[TaskId]| {
        live.iter()
            .filter(|t| path(submitted[*t].0).any(|p| p == queue))
            .fold(Amounts::default(), |sum, t| sum.plus(amounts(t)))
    };
    let fits = |a: Amounts| {
        a.cpu_milli <= capacity.cpu_milli
            && a.memory_mib <= capacity.memory_mib
            && a.gpu_milli <= capacity.gpu_milli
    };
    let mut out = Vec::new();
    loop {
        let total = live
            .iter()
            .fold(Amounts::default(), |sum, t| sum.plus(amounts(t)));
        let mut queues: Vec<(f64, &str)> = QUEUES
            .iter()
            .map(|&q| {
                let weight = admission.queue(q).unwrap().weight;
                (held(q, &live).dominant_share(capacity) / weight, q)
            })
            .collect();
        // Ties: the first declared (the hierarchy declares in QUEUES' order).
        let declared = |q: &str| QUEUES.iter().position(|d| *d == q);
        queues.sort_by(|a, b| a.0.total_cmp(&b.0).then(declared(a.1).cmp(&declared(b.1))));
        let mut chosen = None;
        for (_, queue) in queues {
            let head = waiting
                .iter()
                .filter(|t| submitted[*t].0 == queue)
                .min_by_key(|t| (Reverse(submitted[*t].1.priority), t.0));
            let Some(&head) = head else { continue };
            let more = amounts(&head);
            let within = path(queue).all(|p| {
                admission
                    .queue(p)
                    .is_none_or(|q| q.max.exceeded(held(p, &live).plus(more)).is_none())
            });
            if !within {
                continue;
            }
            if fits(total.plus(more)) {
                chosen = Some(head);
            }
            if fits(total.plus(more)) || fits(more) {
                break;
            }
        }
        let Some(chosen) = chosen else {
            return out;
        };
        out.push(chosen);
        waiting.retain(|t| *t != chosen);
        live.push(chosen);
    }
}

proptest::proptest! {
    /// Whatever is submitted, admitted and ended: each round admits
    /// what the plain reference works out (fairest queue first,
    /// priority then submission order inside one), every queue's usage
    /// is the recount of the admitted tasks below it, no queue passes
    /// its maximum, the cluster is never over-admitted, and once
    /// everything admitted ends, every task waiting gets admitted.
    #[test]
    fn queues_stay_within_their_maxima(ops in proptest::collection::vec(op(), 1..120)) {
        let capacity = Amounts { cpu_milli: 10_000, memory_mib: 12_288, gpu_milli: 3_000 };
        let mut admission = hierarchy();
        let mut next = 0u64;
        let mut submitted: BTreeMap<TaskId, (&str, TaskSpec)> = BTreeMap::new();
        let mut admitted: Vec<TaskId> = Vec::new();
        let mut live: Vec<TaskId> = Vec::new();
        let mut waiting: Vec<TaskId> = Vec::new();
        let mut withdrawn = 0;
        let admit = |admission: &mut Admission, admitted: &mut Vec<TaskId>, live: &mut Vec<TaskId>,
                     waiting: &mut Vec<TaskId>, submitted: &BTreeMap<TaskId, (&str, TaskSpec)>| {
            let expected = reference_admit(admission, live, waiting, submitted, capacity);
            let batch: Vec<TaskId> = admission.admit(capacity);
            proptest::prop_assert_eq!(&batch, &expected);
            waiting.retain(|t| !batch.contains(t));
            admitted.extend(&batch);
            live.extend(&batch);
            Ok(())
        };
        for op in ops {
            match op {
                Op::Submit { queue, cpu, memory, gpu, priority } => {
                    let mut spec = TaskSpec::new(TaskId(next), Resources::new(cpu, memory))
                        .with_priority(Priority(priority));
                    if gpu > 0 {
                        spec = spec.with_gpu(GpuRequest::shared(gpu as u32));
                    }
                    next += 1;
                    match admission.submit(QUEUES[queue], &spec) {
                        Ok(()) => {
                            waiting.push(spec.id);
                            submitted.insert(spec.id, (QUEUES[queue], spec));
                        }
                        Err(Error::OverQuota { .. }) => {}
                        Err(other) => proptest::prop_assert!(false, "{}", other),
                    }
                }
                Op::Admit => admit(&mut admission, &mut admitted, &mut live, &mut waiting, &submitted)?,
                Op::End { pick } => {
                    // An admitted task ends, or a waiting one is withdrawn.
                    let pick = pick % (live.len() + waiting.len()).max(1);
                    let task = if pick < live.len() {
                        Some(live.swap_remove(pick))
                    } else if pick - live.len() < waiting.len() {
                        withdrawn += 1;
                        Some(waiting.remove(pick - live.len()))
                    } else {
                        None
                    };
                    if let Some(task) = task {
                        proptest::prop_assert!(admission.ended(task));
                        proptest::prop_assert!(!admission.ended(task));
                    }
                }
            }
            let mut total = Amounts::default();
            for queue in QUEUES {
                let recount = live.iter()
                    .filter(|t| path(submitted[t].0).any(|p| p == queue))
                    .fold(Amounts::default(), |sum, t| sum.plus(Amounts::of(&submitted[t].1)));
                proptest::prop_assert_eq!(admission.usage(queue), Some(recount));
                let max = admission.queue(queue).unwrap().max;
                proptest::prop_assert!(max.exceeded(recount).is_none(), "{} over: {:?}", queue, recount);
            }
            for t in &live {
                total = total.plus(Amounts::of(&submitted[t].1));
            }
            proptest::prop_assert!(total.cpu_milli <= capacity.cpu_milli);
            proptest::prop_assert!(total.memory_mib <= capacity.memory_mib);
            proptest::prop_assert!(total.gpu_milli <= capacity.gpu_milli);
        }
        // Drain: everything admitted ends, and whatever waits comes in.
        for _ in 0..submitted.len() + 1 {
            for task in live.drain(..) {
                proptest::prop_assert!(admission.ended(task));
            }
            admit(&mut admission, &mut admitted, &mut live, &mut waiting, &submitted)?;
        }
        proptest::prop_assert_eq!(admitted.len() + withdrawn, submitted.len());
        for queue in QUEUES {
            proptest::prop_assert_eq!(admission.waiting(queue), 0);
        }
    }
}

#[test]
fn a_gangs_members_are_admitted_together_or_not_at_all() {
    let mut admission = Admission::new();
    let team = QueueSpec::new("team").with_max(Limits::cpu_milli(5_000));
    admission.add_queue(team).unwrap();
    let gang = Gang::new("g", 3);
    admission
        .submit("team", &task(1, 2_000).with_gang(gang.clone()))
        .unwrap();
    admission.submit("team", &task(2, 1_000)).unwrap();
    for id in [3, 4] {
        admission
            .submit("team", &task(id, 2_000).with_gang(gang.clone()))
            .unwrap();
    }
    // The gang asks for 6 cores together, over the queue's 5: none of it
    // goes, and no task behind it.
    assert!(admission.admit(cpus(64)).is_empty());
    assert_eq!(admission.usage("team").unwrap().cpu_milli, 0);

    let mut admission = Admission::new();
    let team = QueueSpec::new("team").with_max(Limits::cpu_milli(6_000));
    admission.add_queue(team).unwrap();
    admission
        .submit("team", &task(1, 2_000).with_gang(gang.clone()))
        .unwrap();
    admission.submit("team", &task(2, 1_000)).unwrap();
    for id in [3, 4] {
        admission
            .submit("team", &task(id, 2_000).with_gang(gang.clone()))
            .unwrap();
    }
    let ids: Vec<u64> = admission.admit(cpus(64)).iter().map(|t| t.0).collect();
    assert_eq!(ids, [1, 3, 4], "the gang whole; task 2 waits for room");
    assert_eq!(admission.usage("team").unwrap().cpu_milli, 6_000);
}
