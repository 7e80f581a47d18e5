//! The FoodPanda example site: the reference example's names and fixed data, so client
//! scripts written for it run against this one too. Shared by the example binary and tests.

use std::sync::Arc;

use agentgate::server::{
    AgentApp, Auth, BuildError, Context, Flow, HandlerError, Intent, SessionStore, Step,
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The key the example accepts.
pub const DEMO_KEY: &str = "demo-key";

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Restaurant {
    pub id: String,
    pub name: String,
    pub cuisine: String,
    pub rating: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct MenuItem {
    pub id: String,
    pub name: String,
    pub price: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct CartItem {
    pub item_id: String,
    pub quantity: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct OrderConfirmation {
    pub order_id: String,
    pub status: String,
    pub estimated_minutes: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct TrackingInfo {
    pub tracking_id: String,
    pub order_id: String,
    pub status: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct StatusUpdate {
    pub tracking_id: String,
    pub status: String,
    pub estimated_arrival: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct SearchArgs {
    /// What to eat, e.g. "pizza"
    pub query: String,
    /// City
    pub location: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct SelectArgs {
    pub restaurant_id: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct CheckoutArgs {
    pub items: Vec<CartItem>,
    pub delivery_address: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct InitiateArgs {
    pub order_id: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct StatusArgs {
    pub tracking_id: String,
}

fn restaurant(id: &str, name: &str, cuisine: &str, rating: f64) -> Restaurant {
    Restaurant {
        id: id.into(),
        name: name.into(),
        cuisine: cuisine.into(),
        rating,
    }
}

fn restaurants() -> Vec<Restaurant> {
    vec![
        restaurant("r1", "Pizza Palace", "Italian", 4.5),
        restaurant("r2", "Burger Barn", "American", 4.2),
    ]
}

async fn search_restaurants(
    _ctx: Context,
    _args: SearchArgs,
) -> Result<Vec<Restaurant>, HandlerError> {
    Ok(restaurants())
}

async fn search(ctx: Context, args: SearchArgs) -> Result<Vec<Restaurant>, HandlerError> {
    ctx.set("query", &args.query);
    ctx.set("location", &args.location);
    Ok(restaurants().into_iter().take(1).collect())
}

async fn select_restaurant(ctx: Context, args: SelectArgs) -> Result<Vec<MenuItem>, HandlerError> {
    ctx.set("restaurant_id", &args.restaurant_id);
    Ok(vec![
        MenuItem {
            id: "m1".into(),
            name: "Margherita".into(),
            price: 12.5,
        },
        MenuItem {
            id: "m2".into(),
            name: "Pepperoni".into(),
            price: 14.0,
        },
    ])
}

async fn checkout(ctx: Context, args: CheckoutArgs) -> Result<OrderConfirmation, HandlerError> {
    if args.items.is_empty() {
        return Err(HandlerError::invalid_input(
            "an order needs at least one item",
        ));
    }
    ctx.set("delivery_address", &args.delivery_address);
    Ok(OrderConfirmation {
        order_id: "ORD-001".into(),
        status: "confirmed".into(),
        estimated_minutes: 35,
    })
}

async fn initiate(_ctx: Context, args: InitiateArgs) -> Result<TrackingInfo, HandlerError> {
    Ok(TrackingInfo {
        tracking_id: "TRK-001".into(),
        order_id: args.order_id,
        status: "preparing".into(),
    })
}

async fn get_status(_ctx: Context, args: StatusArgs) -> Result<StatusUpdate, HandlerError> {
    Ok(StatusUpdate {
        tracking_id: args.tracking_id,
        status: "on_the_way".into(),
        estimated_arrival: "18:45".into(),
    })
}

/// The FoodPanda agent API, keeping server-flow sessions in `store`.
pub fn app(store: Arc<dyn SessionStore>) -> Result<AgentApp, BuildError> {
    AgentApp::builder("FoodPanda")
        .description("Food delivery platform — agent-native API")
        .version("1.0")
        .auth(Auth::api_key("X-API-Key", [DEMO_KEY]))
        .shared_session_store(store)
        .intent(Intent::new(
            "search_restaurants",
            "Search restaurants by query and city",
            search_restaurants,
        ))
        .flow(
            Flow::server("order_food", "End-to-end food ordering")
                .step(Step::entry("search", "Search for restaurants", search))
                .step(Step::after(
                    "select_restaurant",
                    "search",
                    "View menu for a selected restaurant",
                    select_restaurant,
                ))
                .step(Step::after(
                    "checkout",
                    "select_restaurant",
                    "Place the order",
                    checkout,
                )),
        )
        .flow(
            Flow::client("track_delivery", "Track a placed order")
                .step(Step::entry(
                    "initiate",
                    "Start tracking — returns a tracking_id",
                    initiate,
                ))
                .step(Step::after(
                    "get_status",
                    "initiate",
                    "Get current delivery status",
                    get_status,
                )),
        )
        .build()
}

/// The site's own web page, to show that mounting leaves it alone.
pub async fn home() -> axum::response::Html<&'static str> {
    axum::response::Html(
        "<h1>FoodPanda</h1><p>Order food the usual way — or let your agent do it.</p>",
    )
}
