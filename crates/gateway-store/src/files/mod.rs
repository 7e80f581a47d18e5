//! Records kept as files of the workspace, in the layout Agent Gateway 0.2.13 used: agents'
//! memories as markdown ([`MemoryFiles`]).

mod markdown;
mod memories;
mod scope;

pub use memories::MemoryFiles;
