//! An agent that drives the FoodPanda example end to end.
//!
//! ```text
//! cargo run -p agentgate --example agent_client [-- http://127.0.0.1:8000]
//! ```

#[path = "shared/client_script.rs"]
mod client_script;

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let url = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "http://127.0.0.1:8000".into());
    match client_script::run(&url, &mut std::io::stdout()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("Error: {err}");
            ExitCode::FAILURE
        }
    }
}
