//! `plan capacity` (being built: issue 5).

use crate::input::Loaded;
use crate::Failure;

#[derive(Debug, clap::Args)]
pub struct CapacityArgs {}

pub fn run(_loaded: &Loaded, _options: &CapacityArgs) -> Result<(), Failure> {
    Err(Failure::Input("plan capacity is not built yet".to_string()))
}
