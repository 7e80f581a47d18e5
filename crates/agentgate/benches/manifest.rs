//! How long building an agentgate app takes (flow validation, schemas from Rust types, the
//! manifest and its ETag) for the FoodPanda example, and serialising its manifest.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};

#[path = "../examples/shared/foodpanda.rs"]
#[allow(dead_code)]
mod foodpanda;

fn bench(c: &mut Criterion) {
    let store: Arc<dyn agentgate::server::SessionStore> =
        Arc::new(agentgate::server::MemorySessionStore::default());
    c.bench_function("build the FoodPanda app (manifest + schemas)", |b| {
        b.iter(|| foodpanda::app(Arc::clone(&store)).unwrap())
    });
    let app = foodpanda::app(Arc::clone(&store)).unwrap();
    c.bench_function("serialise the FoodPanda manifest", |b| {
        b.iter(|| serde_json::to_vec(app.manifest()).unwrap())
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
