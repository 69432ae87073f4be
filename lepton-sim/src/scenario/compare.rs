//! The scenarios' contestants: the baselines and Lepton, set up the same
//! way on the same generated world for the `lepton demo` command, the
//! tests and any program that wants the comparison.
//!
//! Edge ([`compare_edge`]): nearest site first, cloud only, by task class,
//! and Lepton (objective-aware, learning each site's demand: see [`EdgeStrategy`]).
//!
//! Hybrid cloud ([`compare_hybrid`]): on-premises first then on demand,
//! the spot rule a Kubernetes operator would set, and Lepton (the same
//! tiers, but flexible tasks may run on spot VMs, whose revoked work it
//! runs again, and the warm spare capacity above); all release idle cloud
//! VMs as in the data center.
//!
//! Data center ([`compare_datacenter`]), six baselines and Lepton:
//! - **traditional**: static round robin ([`RoundRobin`]) over every VM,
//!   every VM powered all day, no preemption;
//! - **kubernetes**: kube-scheduler's default resource scoring, least
//!   allocated plus balanced allocation ([`KubeResources::DEFAULT`]), with
//!   a cluster-autoscaler-like scale-down (a VM idle for 10 minutes is
//!   released, and started again, ready 3 minutes later, when tasks wait);
//!   no preemption (kube-scheduler preempts by default, but here that
//!   restarts the victims and adds deadline misses: the baseline takes the
//!   stronger setting);
//! - **kubernetes-binpack**: the same with most-allocated scoring
//!   ([`KubeResources::BINPACK`]), the bin packing Kubernetes documents;
//! - **kubernetes-binpack-overprovisioned**: that plus over-provisioning
//!   with placeholder pods, sized exactly as Lepton's spare;
//! - **karpenter**: most-allocated scoring with Karpenter's consolidation
//!   ([`Consolidation`]: empty VMs removed, VMs whose tasks fit elsewhere
//!   drained or replaced by cheaper ones);
//! - **karpenter-overprovisioned**: that plus placeholder capacity, as
//!   Karpenter users keep warm VMs;
//! - **Lepton**: lifetime-aware packing ([`LifetimeAware`], lifetimes
//!   learned online; or the policy given), the same start-up rules, empty
//!   VMs released as its tuning says, and warm spare capacity, restored as
//!   it is used.
//!
//! Every knob is tuned per scenario ([`Tuning`]); the data center on the
//! DLRM trace ([`compare_trace`]) runs the same seven strategies.

use std::sync::Arc;

use serde::{Serialize, Serializer};

use lepton_core::Policy;
use lepton_policies::{KubeResources, LifetimeAware, PolicyContext, RoundRobin};

use super::{
    floor_cover_cost, lower_bound_cost, run_datacenter, run_edge, AutoscalerRules, Consolidation,
    DatacenterConfig, EdgeConfig, EdgeReport, EdgeStrategy, EdgeWorld, FleetWorld, HybridConfig,
    Spare, Strategy, StrategyReport, TierPolicy, TraceWindow,
};
use crate::{lifetime_history, DlrmInstance, Error, TraceLifetimes};

/// The knobs of the data-center strategies, as tuned for one scenario:
/// each the cheapest of nine settings whose avoidable deadline misses (or,
/// on the trace, start-objective violations) stay within 0.05 % of the
/// tasks, on tuning seeds or days only (`cargo run --release --example
/// tune_datacenter`; docs/SCENARIOS.md lists every setting tried).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Tuning {
    /// kubernetes' scale-down: the autoscaler's rules, or (`None`)
    /// releasing a VM idle for `idle_release_min`.
    pub kubernetes: Option<AutoscalerRules>,
    /// kubernetes-binpack's scale-down, the same choice.
    pub binpack: Option<AutoscalerRules>,
    /// kubernetes-binpack-overprovisioned's placeholder capacity.
    pub overprovisioned: Spare,
    /// karpenter's consolidation.
    pub karpenter: Consolidation,
    /// karpenter-overprovisioned's consolidation and placeholder capacity
    /// (Karpenter with over-provisioning, as its users keep warm capacity).
    pub karpenter_overprovisioned: (Consolidation, Spare),
    /// Lepton's spare capacity.
    pub lepton: Spare,
    /// Lepton's release of emptied VMs: `None` releases a VM idle for
    /// `idle_release_min`; consolidation without disruption (only empty
    /// VMs go) releases it sooner.
    pub lepton_release: Option<Consolidation>,
    /// Lepton's spare by forecast demand (the factor; see
    /// [`Strategy::spare_forecast`]), in place of `lepton`.
    pub lepton_spare_forecast: Option<f64>,
}

/// The synthetic data center's tuning, on seeds 101–103: idle release for
/// both Kubernetes baselines; 0.5 % of each shape, at least two VMs, of
/// spare for the over-provisioned baseline; for karpenter, empty VMs
/// removed a minute after they empty, nothing with tasks disrupted (and
/// with over-provisioning, its 0.5 % spare, at least two VMs); for
/// Lepton, the same release and, as spare, half the VMs its forecast
/// expects to be taken into use during a start-up, with no fixed floor.
pub const DATACENTER_TUNING: Tuning = Tuning {
    kubernetes: None,
    binpack: None,
    overprovisioned: Spare {
        share: 0.005,
        min: 2,
    },
    karpenter: Consolidation {
        after_min: 1,
        replace: false,
        evict: false,
    },
    karpenter_overprovisioned: (
        Consolidation {
            after_min: 1,
            replace: false,
            evict: false,
        },
        Spare {
            share: 0.005,
            min: 2,
        },
    ),
    lepton: Spare::NONE,
    lepton_release: Some(Consolidation {
        after_min: 1,
        replace: false,
        evict: false,
    }),
    lepton_spare_forecast: Some(0.5),
};

/// Lepton's spare by forecast at each size the synthetic data center was
/// tuned at (seeds 101–103, the same procedure at every size): no spare
/// at 100 VMs (the forecast, rounded up, keeps a VM of each of five
/// shapes), half its expectation at 300 and 1,000, all of it at 3,000.
/// Every baseline keeps its 1,000-VM setting at every size.
const LEPTON_SPARE_BY_SIZE: [(usize, Option<f64>); 4] = [
    (100, None),
    (300, Some(0.5)),
    (1_000, Some(0.5)),
    (3_000, Some(1.0)),
];

/// The synthetic data center's tuning for a fleet of `vms`: that of the
/// nearest size it was tuned at, by ratio (10,000 VMs was not tuned, its
/// runs being too long, and takes 3,000's); [`DATACENTER_TUNING`] at
/// 1,000 VMs.
pub fn datacenter_tuning(vms: usize) -> Tuning {
    let distance = |size: usize| (vms.max(1) as f64 / size as f64).ln().abs();
    let nearest = LEPTON_SPARE_BY_SIZE
        .iter()
        .min_by(|a, b| distance(a.0).total_cmp(&distance(b.0)));
    Tuning {
        lepton_spare_forecast: nearest.map_or(DATACENTER_TUNING.lepton_spare_forecast, |s| s.1),
        ..DATACENTER_TUNING
    }
}

/// The DLRM trace's tuning, on days 0–15 only: no setting of the two
/// Kubernetes baselines or of karpenter keeps its violations within the
/// bound, so each keeps its fewest (idle release; the autoscaler unneeded
/// 10 min, no delay after add, evicting; consolidation after 15 min,
/// do-not-disrupt); karpenter with over-provisioning, consolidation after
/// 5 min with a 0.25 % spare, at least one VM. Lepton releases emptied VMs after a minute and keeps
/// a fixed 0.25 % spare, at least one VM: the forecast's spare alone
/// starts 122–123 instances late, and on top of that floor it saves
/// nothing.
pub const TRACE_TUNING: Tuning = Tuning {
    kubernetes: None,
    binpack: Some(AutoscalerRules {
        unneeded_min: 10,
        delay_after_add_min: 0,
        evict: true,
    }),
    overprovisioned: Spare {
        share: 0.0025,
        min: 1,
    },
    karpenter: Consolidation {
        after_min: 15,
        replace: false,
        evict: false,
    },
    karpenter_overprovisioned: (
        Consolidation {
            after_min: 5,
            replace: false,
            evict: false,
        },
        Spare {
            share: 0.0025,
            min: 1,
        },
    ),
    lepton: Spare {
        share: 0.0025,
        min: 1,
    },
    lepton_release: Some(Consolidation {
        after_min: 1,
        replace: false,
        evict: false,
    }),
    lepton_spare_forecast: None,
};

/// The spare capacity of the hybrid cloud's spot strategies (Lepton's and
/// the spot rule's): 1 % of each shape, at least five VMs, chosen on the
/// hybrid cloud's seeds 101–103 (docs/SCENARIOS.md).
pub const HYBRID_SPARE: Spare = Spare {
    share: 0.01,
    min: 5,
};

/// How large a fleet scenario's run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Size {
    /// VMs in the fleet (the pool the strategies may power).
    pub vms: usize,
    /// Tasks.
    pub tasks: usize,
    /// Hours of arrivals.
    pub hours: u64,
    /// The days of the trace, for a trace's data center.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub window: Option<TraceWindow>,
}

/// A fleet scenario (the data center, the hybrid cloud) under its
/// strategies, set up by `C`.
#[derive(Debug, Clone)]
pub struct FleetComparison<C> {
    /// `"datacenter"`, `"datacenter-trace"` or `"hybrid"`.
    pub scenario: &'static str,
    /// The seed.
    pub seed: u64,
    /// The settings.
    pub config: C,
    /// How large the run is.
    pub size: Size,
    /// The baselines, in the order their comparison lists them (the one
    /// the scenario was first written against first).
    pub baselines: Vec<StrategyReport>,
    /// Lepton.
    pub lepton: StrategyReport,
    /// What no strategy can pay less than, USD: [`lower_bound_cost`] in
    /// the data centers; in the hybrid cloud, whose owned capacity that
    /// programme would count as unlimited, [`floor_cover_cost`] (the
    /// cheapest cover of the work as it would run started on arrival).
    pub lower_bound_cost: Option<f64>,
    /// Lepton against the best baseline: the cheapest of those that serve
    /// as well as Lepton (no more avoidable deadline misses and no more
    /// start-objective violations), or, when none does, the cheapest.
    pub vs_best_baseline: Versus,
    /// Lepton against each baseline, in their order.
    pub vs_baselines: Vec<Versus>,
    /// On a trace, how well lifetimes are predicted there, when measured
    /// ([`TraceLifetimes::measure`]); `None` otherwise.
    pub lifetimes: Option<TraceLifetimes>,
}

/// The data center under every strategy.
pub type DatacenterComparison = FleetComparison<DatacenterConfig>;

/// The hybrid cloud under its strategies.
pub type HybridComparison = FleetComparison<HybridConfig>;

impl<C> FleetComparison<C> {
    /// Lepton against each of the baselines and the cheapest of them.
    fn new(
        scenario: &'static str,
        seed: u64,
        config: C,
        size: Size,
        mut reports: Vec<StrategyReport>,
        lower_bound_cost: Option<f64>,
    ) -> Self {
        // The strategies run baselines first, Lepton last.
        let lepton = reports.pop().expect("Lepton's report");
        let baselines = reports;
        let versus = |baseline| Versus::of(&lepton, baseline, lower_bound_cost);
        let vs_baselines: Vec<Versus> = baselines.iter().map(versus).collect();
        let cheaper =
            |best: &'_ StrategyReport, r: &'_ StrategyReport| -> bool { r.cost < best.cost };
        let best = vs_baselines
            .iter()
            .zip(&baselines)
            .filter(|(v, _)| v.avoidable_misses_delta >= 0 && v.slo_violations_delta >= 0)
            .map(|(_, baseline)| baseline)
            .reduce(|best, r| if cheaper(best, r) { r } else { best })
            .or_else(|| {
                baselines
                    .iter()
                    .reduce(|best, r| if cheaper(best, r) { r } else { best })
            });
        // `N` is never 0 here; an empty comparison would be against nothing.
        let vs_best_baseline = versus(best.unwrap_or(&lepton));
        FleetComparison {
            scenario,
            seed,
            config,
            size,
            baselines,
            lepton,
            lower_bound_cost,
            vs_best_baseline,
            vs_baselines,
            lifetimes: None,
        }
    }

    /// The baseline named `name`.
    pub fn baseline(&self, name: &str) -> Option<&StrategyReport> {
        self.baselines.iter().find(|report| report.policy == name)
    }

    /// Every strategy, the baselines first.
    pub fn strategies(&self) -> impl Iterator<Item = &StrategyReport> {
        self.baselines.iter().chain([&self.lepton])
    }
}

/// Lepton against one baseline.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Versus {
    /// The baseline's name.
    pub baseline: String,
    /// Lepton's utilization over the baseline's, minus 1, %.
    pub utilization_gain_pct: f64,
    /// 1 minus Lepton's cost over the baseline's, %.
    pub cost_reduction_pct: f64,
    /// Lepton's avoidable deadline misses minus the baseline's.
    pub avoidable_misses_delta: i64,
    /// Lepton's start-objective violations minus the baseline's.
    pub slo_violations_delta: i64,
    /// How much of the baseline's distance to the lower bound Lepton
    /// closes: (baseline's cost − Lepton's) / (baseline's cost − the
    /// bound), %; negative when Lepton costs more; `None` without a bound.
    pub gap_closed_pct: Option<f64>,
}

impl Versus {
    /// Lepton against `baseline`, the gap measured to `lower_bound_cost`.
    pub fn of(
        lepton: &StrategyReport,
        baseline: &StrategyReport,
        lower_bound_cost: Option<f64>,
    ) -> Versus {
        let gap = |bound: f64| baseline.cost - bound;
        let avoidable =
            |r: &StrategyReport| r.deadline_misses.saturating_sub(r.unavoidable_misses) as i64;
        Versus {
            baseline: baseline.policy.clone(),
            utilization_gain_pct: (lepton.utilization_pct / baseline.utilization_pct - 1.0) * 100.0,
            cost_reduction_pct: (1.0 - lepton.cost / baseline.cost) * 100.0,
            avoidable_misses_delta: avoidable(lepton) - avoidable(baseline),
            slo_violations_delta: lepton.slo_violations as i64 - baseline.slo_violations as i64,
            gap_closed_pct: lower_bound_cost
                .filter(|&bound| gap(bound) > 0.0)
                .map(|bound| (baseline.cost - lepton.cost) / gap(bound) * 100.0),
        }
    }
}

/// The data-center strategies: the six baselines, and Lepton placing
/// with `lepton_policy` named `lepton_name`, their knobs set by `tuning`.
pub fn datacenter_strategies(
    lepton_name: &str,
    lepton_policy: Box<dyn Policy>,
    tuning: &Tuning,
) -> ([Strategy; 6], Strategy) {
    let kube = |name: &str, policy: KubeResources, spare: Spare| {
        Strategy::releasing(name, Box::new(policy), spare)
    };
    let scaled = |autoscaler, strategy: Strategy| Strategy {
        autoscaler,
        ..strategy
    };
    let baselines = [
        Strategy {
            name: "traditional".into(),
            policy: Box::new(RoundRobin::default()),
            release_idle: false,
            autoscaler: None,
            consolidation: None,
            preemption: false,
            spare: Spare::NONE,
            spare_forecast: None,
            use_spot: false,
        },
        scaled(
            tuning.kubernetes,
            kube("kubernetes", KubeResources::DEFAULT, Spare::NONE),
        ),
        scaled(
            tuning.binpack,
            kube("kubernetes-binpack", KubeResources::BINPACK, Spare::NONE),
        ),
        kube(
            "kubernetes-binpack-overprovisioned",
            KubeResources::BINPACK,
            tuning.overprovisioned,
        ),
        Strategy {
            consolidation: Some(tuning.karpenter),
            ..kube("karpenter", KubeResources::BINPACK, Spare::NONE)
        },
        Strategy {
            consolidation: Some(tuning.karpenter_overprovisioned.0),
            ..kube(
                "karpenter-overprovisioned",
                KubeResources::BINPACK,
                tuning.karpenter_overprovisioned.1,
            )
        },
    ];
    let lepton = Strategy {
        consolidation: tuning.lepton_release,
        spare_forecast: tuning.lepton_spare_forecast,
        ..Strategy::releasing(
            format!("lepton ({lepton_name})"),
            lepton_policy,
            tuning.lepton,
        )
    };
    (baselines, lepton)
}

/// Runs the data center of `config` under every strategy, Lepton with the
/// `lifetime` policy.
///
/// # Errors
/// [`Error`] for settings out of range.
pub fn compare_datacenter(config: &DatacenterConfig) -> Result<DatacenterComparison, Error> {
    compare_datacenter_with(config, LifetimeAware::NAME, Box::new(LifetimeAware::new()))
}

/// [`compare_datacenter`] with Lepton placing by `policy`.
///
/// # Errors
/// As [`compare_datacenter`].
pub fn compare_datacenter_with(
    config: &DatacenterConfig,
    name: &str,
    policy: Box<dyn Policy>,
) -> Result<DatacenterComparison, Error> {
    compare_fleet(&FleetWorld::generate(config)?, name, policy)
}

/// The data-center strategies on `world` — the built-in data center or a
/// user's own ([`FleetWorld::from_workload`]) — Lepton placing by `policy`,
/// each strategy tuned for the fleet's size ([`datacenter_tuning`]).
///
/// # Errors
/// Errors of the simulation (none are expected for valid worlds).
pub fn compare_fleet(
    world: &FleetWorld,
    name: &str,
    policy: Box<dyn Policy>,
) -> Result<DatacenterComparison, Error> {
    let tuning = datacenter_tuning(world.fleet.len());
    let (baselines, lepton) = datacenter_strategies(name, policy, &tuning);
    let reports = run_all(world, baselines.into_iter().chain([lepton]))?;
    let size = size_of(world, None);
    Ok(FleetComparison::new(
        "datacenter",
        world.config.seed,
        world.config,
        size,
        reports,
        Some(lower_bound_cost(world)),
    ))
}

/// The data-center strategies on the DLRM trace's `window`
/// ([`FleetWorld::from_dlrm`]; `datacenter-trace`), their knobs tuned on
/// days 0–15 ([`TRACE_TUNING`]), Lepton placing by `policy`.
///
/// # Errors
/// Errors of the simulation (none are expected for valid worlds).
pub fn compare_trace(
    world: &FleetWorld,
    window: TraceWindow,
    name: &str,
    policy: Box<dyn Policy>,
) -> Result<DatacenterComparison, Error> {
    let (baselines, lepton) = datacenter_strategies(name, policy, &TRACE_TUNING);
    let reports = run_all(world, baselines.into_iter().chain([lepton]))?;
    Ok(FleetComparison::new(
        "datacenter-trace",
        world.config.seed,
        world.config,
        size_of(world, Some(window)),
        reports,
        Some(lower_bound_cost(world)),
    ))
}

/// `lepton demo --scenario datacenter-trace`: [`compare_trace`] on
/// `world` (made from `instances` with [`FleetWorld::from_dlrm`]), Lepton
/// placing by the policy `name` built from `context` with the lifetimes of
/// the instances that ended before `window` as its history (what a
/// scheduler there would know), and the trace's lifetime accuracy measured
/// from the window's first day.
///
/// # Errors
/// An unknown policy, and the simulation's errors.
pub fn compare_dlrm(
    world: &FleetWorld,
    instances: &[DlrmInstance],
    window: TraceWindow,
    name: &str,
    context: &PolicyContext,
) -> Result<DatacenterComparison, Error> {
    let context = PolicyContext {
        lifetimes: Some(Arc::new(lifetime_history(instances, window))),
        ..context.clone()
    };
    let policy = lepton_policies::build(name, &context)?;
    let mut comparison = compare_trace(world, window, name, policy)?;
    comparison.lifetimes = Some(TraceLifetimes::measure(instances, window.first_day));
    Ok(comparison)
}

/// Runs each of `strategies` on `world`, side by side on their own
/// threads (each run is deterministic and alone with its scheduler), and
/// returns their reports in order.
fn run_all(
    world: &FleetWorld,
    strategies: impl IntoIterator<Item = Strategy>,
) -> Result<Vec<StrategyReport>, Error> {
    std::thread::scope(|scope| {
        let runs: Vec<_> = strategies
            .into_iter()
            .map(|strategy| scope.spawn(move || run_datacenter(world, strategy)))
            .collect();
        runs.into_iter()
            .map(|run| match run.join() {
                Ok(report) => report,
                Err(panic) => std::panic::resume_unwind(panic),
            })
            .collect()
    })
}

/// The size of `world`'s run.
fn size_of(world: &FleetWorld, window: Option<TraceWindow>) -> Size {
    Size {
        vms: world.fleet.len(),
        tasks: world.tasks.len(),
        hours: world.config.hours,
        window,
    }
}

/// The edge scenario under its strategies.
#[derive(Debug, Clone)]
pub struct EdgeComparison {
    /// `"edge"`.
    pub scenario: &'static str,
    /// The seed.
    pub seed: u64,
    /// The settings.
    pub config: EdgeConfig,
    /// The baselines: nearest site first, everything in the cloud, and
    /// placement by task class.
    pub baselines: Vec<EdgeReport>,
    /// Lepton.
    pub lepton: EdgeReport,
}

impl EdgeComparison {
    /// Every strategy, the baselines first.
    pub fn strategies(&self) -> impl Iterator<Item = &EdgeReport> {
        self.baselines.iter().chain([&self.lepton])
    }

    /// The baseline named `name`.
    pub fn baseline(&self, name: &str) -> Option<&EdgeReport> {
        self.baselines.iter().find(|report| report.policy == name)
    }
}

/// Runs the edge scenario of `config` under nearest-site-first,
/// cloud-only, class-aware and Lepton (see [`EdgeStrategy`]).
///
/// # Errors
/// [`Error`] for settings out of range.
pub fn compare_edge(config: &EdgeConfig) -> Result<EdgeComparison, Error> {
    let world = EdgeWorld::generate(config)?;
    let baselines = [
        EdgeStrategy::NearestSite,
        EdgeStrategy::CloudOnly,
        EdgeStrategy::ClassAware,
    ]
    .into_iter()
    .map(|strategy| run_edge(&world, strategy))
    .collect::<Result<Vec<_>, _>>()?;
    Ok(EdgeComparison {
        scenario: "edge",
        seed: config.seed,
        config: *config,
        baselines,
        lepton: run_edge(&world, EdgeStrategy::Lepton)?,
    })
}

/// Runs the hybrid cloud of `config` under its strategies:
/// - **on-prem first**: owned VMs, then on demand, never spot, best fit
///   inside a tier; cloud VMs started for waiting tasks and released when
///   idle;
/// - **spot-rule**: what a Kubernetes operator sets — owned, then spot
///   for flexible tasks (a spot taint only they tolerate), then on demand
///   (preferred node affinity), kube-scheduler's most-allocated scoring
///   inside a tier, and the same spare as Lepton;
/// - **Lepton**: the same tiers with best fit inside them and the spare.
///
/// # Errors
/// [`Error`] for settings out of range.
pub fn compare_hybrid(config: &HybridConfig) -> Result<HybridComparison, Error> {
    let world = FleetWorld::hybrid(config)?;
    let strategy = |name: &str, policy: TierPolicy, spare: Spare| Strategy {
        use_spot: policy.use_spot,
        ..Strategy::releasing(name, Box::new(policy), spare)
    };
    let on_prem = TierPolicy {
        use_spot: false,
        kube: None,
    };
    let spot_rule = TierPolicy {
        use_spot: true,
        kube: Some(KubeResources::BINPACK),
    };
    let lepton = TierPolicy {
        use_spot: true,
        kube: None,
    };
    let strategies = [
        strategy("on-prem first", on_prem, Spare::NONE),
        strategy("spot-rule", spot_rule, HYBRID_SPARE),
        strategy("lepton", lepton, HYBRID_SPARE),
    ];
    let reports = run_all(&world, strategies)?;
    let size = size_of(&world, None);
    Ok(FleetComparison::new(
        "hybrid",
        config.seed,
        *config,
        size,
        reports,
        Some(floor_cover_cost(&world)),
    ))
}

/// A strategy's report as the JSON lists it: with its role.
#[derive(Serialize)]
struct Entry<'a, R> {
    role: &'static str,
    #[serde(flatten)]
    report: &'a R,
}

/// The baselines, then Lepton, each with its role.
fn entries<'a, R>(baselines: &'a [R], lepton: &'a R) -> Vec<Entry<'a, R>> {
    let baselines = baselines.iter().map(|report| Entry {
        role: "baseline",
        report,
    });
    baselines
        .chain([Entry {
            role: "lepton",
            report: lepton,
        }])
        .collect()
}

impl<C: Serialize> Serialize for FleetComparison<C> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        /// What the JSON holds (see docs/SCENARIOS.md).
        #[derive(Serialize)]
        struct Json<'a, C> {
            scenario: &'static str,
            seed: u64,
            config: &'a C,
            size: &'a Size,
            #[serde(skip_serializing_if = "Option::is_none")]
            lower_bound_cost_usd: Option<f64>,
            strategies: Vec<Entry<'a, StrategyReport>>,
            lepton_vs_best_baseline: &'a Versus,
            lepton_vs_baselines: &'a [Versus],
            #[serde(skip_serializing_if = "Option::is_none")]
            lifetimes: Option<&'a TraceLifetimes>,
        }
        Json {
            scenario: self.scenario,
            seed: self.seed,
            config: &self.config,
            size: &self.size,
            lower_bound_cost_usd: self.lower_bound_cost,
            strategies: entries(&self.baselines, &self.lepton),
            lepton_vs_best_baseline: &self.vs_best_baseline,
            lepton_vs_baselines: &self.vs_baselines,
            lifetimes: self.lifetimes.as_ref(),
        }
        .serialize(serializer)
    }
}

impl Serialize for EdgeComparison {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct EdgeSize {
            sites: usize,
            nodes: usize,
            tasks: usize,
            hours: u64,
        }
        #[derive(Serialize)]
        struct EdgeJson<'a> {
            scenario: &'static str,
            seed: u64,
            config: &'a EdgeConfig,
            size: EdgeSize,
            /// 0: every task may queue at the owned sites (see
            /// docs/SCENARIOS.md); objective violations are the price.
            lower_bound_cost_usd: f64,
            strategies: Vec<Entry<'a, EdgeReport>>,
        }
        let c = &self.config;
        EdgeJson {
            scenario: self.scenario,
            seed: self.seed,
            config: c,
            size: EdgeSize {
                sites: c.sites,
                nodes: c.sites * c.nodes_per_site + c.cloud_nodes,
                tasks: c.tasks,
                hours: c.hours,
            },
            lower_bound_cost_usd: 0.0,
            strategies: entries(&self.baselines, &self.lepton),
        }
        .serialize(serializer)
    }
}
