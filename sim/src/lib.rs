//! The digital twin: runs a plan and fault schedules over the model, explores every placement.

mod collect;
mod cursor;
pub mod expect;
pub mod explore;
pub mod memo;
pub mod policy;
pub mod recovery;
pub mod run;
pub mod search;
pub mod step;
