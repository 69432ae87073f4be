//! The simulator: real traces and synthetic workloads replayed through the
//! real scheduler, in virtual time.

mod fill;
mod rng;
mod trace;

pub use fill::{fill_arrivals, run_fill, FillConfig, FillPoint, FillResult};
pub use rng::SimRng;
pub use trace::{read_openb_nodes, read_openb_pods, TracePod};
