//! Every real-world message of the corpus (`../shared/corpus`, listed in
//! its index.tsv) goes through the whole ingest pipeline against a fresh
//! SQLite store: none makes it fail, each is stored exactly once, and a
//! second pass over all of them stores nothing new.
//!
//! The corpus holds GPL/AGPL files that are not copied into this
//! repository; when it is absent this test says so and passes, except under
//! CI (env `CI` set), where its absence is a failure.

mod corpus;

use std::collections::HashSet;
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use guichet::mail::inbound::Inbound;
use guichet::mail::templates::Templates;
use guichet::store::{CountedTable, Store};
use guichet::workers::Ctx;
use guichet::workers::ingest::{Options, Outcome, Source, ingest};

/// The corpus files that are whole messages (not bare bodies or TNEF).
fn corpus_messages(dir: &std::path::Path) -> Vec<PathBuf> {
    let index = std::fs::read_to_string(dir.join("index.tsv")).unwrap();
    index
        .lines()
        .skip(1)
        .filter_map(|line| {
            let cols: Vec<&str> = line.split('\t').collect();
            (cols.get(2) == Some(&"rfc822")).then(|| dir.join(cols[0]))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_corpus_message_is_ingested_once_and_none_fails() {
    let Some(corpus) = corpus::dir() else { return };
    let files = corpus_messages(&corpus);
    assert!(
        files.len() > 1000,
        "index.tsv lists {} messages",
        files.len()
    );
    let tmp = tempfile::tempdir().unwrap();
    let s = corpus::offline_settings(tmp.path(), "");
    let store = Store::connect(&s.database.url).await.unwrap();
    store.migrate().await.unwrap();
    let templates = Templates::load(None).unwrap();
    let now: DateTime<Utc> = "2026-11-25T12:00:00Z".parse().unwrap();
    let ctx = Ctx {
        settings: &s,
        store: &store,
        templates: &templates,
        now,
    };

    let mut keys = HashSet::new();
    let (mut tickets, mut seen, mut unplaced) = (0, 0, 0);
    for path in &files {
        let raw = std::fs::read(path).unwrap();
        keys.insert(Inbound::parse(&raw).dedup_key);
        let (outcome, _) = ingest(&ctx, &raw, &Source::default(), Options::default())
            .await
            .unwrap_or_else(|e| panic!("{}: {e:#}", path.display()));
        match outcome {
            Outcome::Ticket { .. } => tickets += 1,
            Outcome::AlreadySeen => seen += 1,
            Outcome::Unplaced { .. } => unplaced += 1,
        }
    }
    let stored = store.count(CountedTable::RawMessages).await.unwrap();
    println!(
        "corpus: {} messages, {} distinct, {tickets} placed in tickets, {unplaced} stored outside tickets (bounces, robots, broken), {seen} duplicates of another file",
        files.len(),
        keys.len()
    );
    assert_eq!(
        stored as usize,
        keys.len(),
        "each distinct message stored exactly once"
    );
    assert_eq!(tickets + unplaced, keys.len());

    // a second pass: every message is already seen
    for path in &files {
        let raw = std::fs::read(path).unwrap();
        let (outcome, _) = ingest(&ctx, &raw, &Source::default(), Options::default())
            .await
            .unwrap();
        assert_eq!(outcome, Outcome::AlreadySeen, "{}", path.display());
    }
    assert_eq!(
        store.count(CountedTable::RawMessages).await.unwrap(),
        stored
    );
}
