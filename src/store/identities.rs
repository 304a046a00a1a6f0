//! One customer, several addresses (issue 20). A person known by one
//! address (their *key*) may write from others; `customer_addresses` maps
//! each other address to the key. An address without a row is its own key.
//! Addresses are kept lower-cased. The merge is transitive: merging two
//! people who each have addresses leaves one key for all of them.

use anyhow::Result;
use chrono::{DateTime, Utc};

use super::{Store, Tx};

/// What a merge did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Merged {
    /// `alias` (and the addresses it stood for) now belong to `key`.
    Linked { key: String, moved: u64 },
    /// They were one customer already.
    AlreadyOne { key: String },
}

impl Tx {
    /// The address that stands for the person writing from `address`.
    pub async fn customer_key(&mut self, address: &str) -> Result<String> {
        let address = address.to_lowercase();
        let key: Option<String> = on_db!(tx self, c => {
            sqlx::query_scalar("SELECT customer FROM customer_addresses WHERE address = $1")
                .bind(&address)
                .fetch_optional(&mut *c)
                .await
        })?;
        Ok(key.unwrap_or(address))
    }

    /// Are these two addresses one customer?
    pub async fn same_customer(&mut self, a: &str, b: &str) -> Result<bool> {
        if a.eq_ignore_ascii_case(b) {
            return Ok(true);
        }
        Ok(self.customer_key(a).await? == self.customer_key(b).await?)
    }

    /// Makes `alias` (with every address that stood for the same person)
    /// an address of the customer `primary` stands for.
    pub async fn merge_customers(
        &mut self,
        primary: &str,
        alias: &str,
        by: &str,
        now: DateTime<Utc>,
    ) -> Result<Merged> {
        let key = self.customer_key(primary).await?;
        let old = self.customer_key(alias).await?;
        if key == old {
            return Ok(Merged::AlreadyOne { key });
        }
        // the alias's person, all their addresses, move under `key`
        let moved = on_db!(tx self, c => {
            sqlx::query("UPDATE customer_addresses SET customer = $1, linked_at = $2, linked_by = $3 WHERE customer = $4")
                .bind(&key)
                .bind(now)
                .bind(by)
                .bind(&old)
                .execute(&mut *c)
                .await
                .map(|r| r.rows_affected())
        })?;
        on_db!(tx self, c => {
            sqlx::query(
                "INSERT INTO customer_addresses (address, customer, linked_at, linked_by) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (address) DO UPDATE SET customer = excluded.customer, \
                 linked_at = excluded.linked_at, linked_by = excluded.linked_by",
            )
            .bind(&old)
            .bind(&key)
            .bind(now)
            .bind(by)
            .execute(&mut *c)
            .await
            .map(|_| ())
        })?;
        Ok(Merged::Linked {
            key,
            moved: moved + 1,
        })
    }

    /// Takes `address` out of its customer: it stands for itself again.
    /// When it was the key of others, the first of them becomes their key.
    /// Returns whether anything changed.
    pub async fn split_customer(&mut self, address: &str) -> Result<bool> {
        let address = address.to_lowercase();
        let gone = on_db!(tx self, c => {
            sqlx::query("DELETE FROM customer_addresses WHERE address = $1")
                .bind(&address)
                .execute(&mut *c)
                .await
                .map(|r| r.rows_affected())
        })?;
        let others: Vec<String> = on_db!(tx self, c => {
            sqlx::query_scalar("SELECT address FROM customer_addresses WHERE customer = $1 ORDER BY address")
                .bind(&address)
                .fetch_all(&mut *c)
                .await
        })?;
        if let Some(new_key) = others.first() {
            on_db!(tx self, c => {
                sqlx::query("DELETE FROM customer_addresses WHERE address = $1")
                    .bind(new_key)
                    .execute(&mut *c)
                    .await
                    .map(|_| ())
            })?;
            on_db!(tx self, c => {
                sqlx::query("UPDATE customer_addresses SET customer = $1 WHERE customer = $2")
                    .bind(new_key)
                    .bind(&address)
                    .execute(&mut *c)
                    .await
                    .map(|_| ())
            })?;
        }
        Ok(gone > 0 || !others.is_empty())
    }
}

impl Store {
    /// Every address of the person writing from `address`, their key first.
    pub async fn addresses_of_customer(&self, address: &str) -> Result<Vec<String>> {
        let address = address.to_lowercase();
        let key: Option<String> = on_db!(pool self, p => {
            sqlx::query_scalar("SELECT customer FROM customer_addresses WHERE address = $1")
                .bind(&address)
                .fetch_optional(p)
                .await
        })?;
        let key = key.unwrap_or(address);
        let mut all: Vec<String> = on_db!(pool self, p => {
            sqlx::query_scalar("SELECT address FROM customer_addresses WHERE customer = $1 ORDER BY address")
                .bind(&key)
                .fetch_all(p)
                .await
        })?;
        all.insert(0, key);
        Ok(all)
    }

    /// Every address → key row, for `stats` (one person, one customer).
    pub async fn customer_keys(&self) -> Result<Vec<(String, String)>> {
        Ok(on_db!(pool self, p => {
            sqlx::query_as::<_, (String, String)>("SELECT address, customer FROM customer_addresses")
                .fetch_all(p)
                .await
        })?)
    }
}
