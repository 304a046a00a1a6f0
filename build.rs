//! `sqlx::migrate!` embeds `migrations/` when the crate compiles, and
//! cargo does not watch that folder by itself: without this, a migration
//! added to an already built tree was left out until some Rust file
//! changed.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
