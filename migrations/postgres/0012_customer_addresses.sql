-- One customer, several addresses (issue 20): `address` is another
-- address of the customer known by `customer` (the address that stands
-- for the person). An address absent here stands for itself. Set by an
-- agent's `#merge-customer ADDRESS` or `guichet customers merge`.
CREATE TABLE customer_addresses (
    address    TEXT PRIMARY KEY,
    customer   TEXT NOT NULL,
    linked_at  TIMESTAMPTZ NOT NULL,
    linked_by  TEXT NOT NULL
);
CREATE INDEX customer_addresses_customer ON customer_addresses(customer);
