//! What the example agent does, written to `out` (shared by the example and the tests).

use std::io::Write;

use agentgate::client::{AgentClient, ClientError};
use serde_json::json;

fn line(out: &mut dyn Write, text: String) -> Result<(), ClientError> {
    writeln!(out, "{text}").map_err(|err| ClientError::Transport(err.to_string()))
}

pub async fn run(url: &str, out: &mut dyn Write) -> Result<(), ClientError> {
    let client = AgentClient::builder()
        .agent_id("food-ordering-agent-v1")
        .api_key("demo-key")
        .build()?;
    let site = client.discover(url).await?;
    line(out, format!("Discovered: {site:?}"))?;

    line(out, "=== Intent: search_restaurants ===".into())?;
    let results = site
        .call_intent(
            "search_restaurants",
            json!({"query": "pizza", "location": "Berlin"}),
        )
        .await?;
    line(out, format!("Results: {results}"))?;

    line(out, "=== Flow: order_food (server-orchestrated) ===".into())?;
    let mut session = site.flow("order_food")?.start().await?;
    line(
        out,
        format!(
            "Session started: {}, next: {:?}",
            session.session_id(),
            session.allowed_next_steps()
        ),
    )?;
    let restaurants = session
        .step("search", json!({"query": "pizza", "location": "Berlin"}))
        .await?;
    line(out, format!("Restaurants: {restaurants}"))?;
    let menu = session
        .step("select_restaurant", json!({"restaurant_id": "r1"}))
        .await?;
    line(out, format!("Menu items: {menu}"))?;
    let order = session
        .step(
            "checkout",
            json!({"items": [{"item_id": "m1", "quantity": 2}], "delivery_address": "Alexanderplatz 1, Berlin"}),
        )
        .await?;
    line(out, format!("Order placed: {order}"))?;
    line(out, format!("Flow complete: {}", session.is_complete()))?;

    line(
        out,
        "=== Flow: track_delivery (client-orchestrated) ===".into(),
    )?;
    let track = site.flow("track_delivery")?;
    let order_id = order["order_id"].as_str().unwrap_or("ORD-001").to_string();
    let tracking = track
        .call_step("initiate", json!({"order_id": order_id}))
        .await?;
    line(out, format!("Tracking started: {tracking}"))?;
    let status = track
        .call_step(
            "get_status",
            json!({"tracking_id": tracking["tracking_id"]}),
        )
        .await?;
    line(out, format!("Status: {status}"))?;
    Ok(())
}
