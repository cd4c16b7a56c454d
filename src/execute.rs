//! `plan execute`, `plan status`, `plan rollback` (being built: issue 6).

use crate::input::Loaded;
use crate::Failure;

#[derive(Debug, clap::Args)]
pub struct ExecuteArgs {}
#[derive(Debug, clap::Args)]
pub struct StatusArgs {}
#[derive(Debug, clap::Args)]
pub struct RollbackArgs {}

pub fn run(_loaded: &Loaded, _options: &ExecuteArgs) -> Result<(), Failure> {
    Err(Failure::Input("plan execute is not built yet".to_string()))
}
pub fn status(_loaded: &Loaded, _options: &StatusArgs) -> Result<(), Failure> {
    Err(Failure::Input("plan status is not built yet".to_string()))
}
pub fn rollback(_loaded: &Loaded, _options: &RollbackArgs) -> Result<(), Failure> {
    Err(Failure::Input("plan rollback is not built yet".to_string()))
}
