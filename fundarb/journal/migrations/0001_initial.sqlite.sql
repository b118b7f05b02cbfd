-- fundarb journal, schema 1 (SQLite). Applied in one transaction by fundarb.journal.migrations.

CREATE TABLE journal (
    seq         INTEGER PRIMARY KEY,          -- assigned by the writer: 1, 2, 3, ... no gaps
    ts_ms       INTEGER NOT NULL,
    kind        TEXT    NOT NULL,             -- codec tag of the payload's class
    position_id TEXT,
    payload     BLOB    NOT NULL,             -- orjson bytes, exactly as encoded
    crc         INTEGER NOT NULL              -- zlib.crc32(payload)
);
CREATE INDEX journal_position ON journal (position_id, seq) WHERE position_id IS NOT NULL;

-- append-only: rows are never rewritten or removed
CREATE TRIGGER journal_no_update BEFORE UPDATE ON journal
BEGIN SELECT RAISE(ABORT, 'the journal is append-only'); END;
CREATE TRIGGER journal_no_delete BEFORE DELETE ON journal
BEGIN SELECT RAISE(ABORT, 'the journal is append-only'); END;

CREATE TABLE positions (
    position_id TEXT PRIMARY KEY,
    state       TEXT,
    first_seq   INTEGER NOT NULL,
    last_seq    INTEGER NOT NULL,
    last_kind   TEXT    NOT NULL,
    updated_ms  INTEGER NOT NULL
);

CREATE TABLE orders (
    client_order_id TEXT PRIMARY KEY,
    position_id     TEXT,
    instrument      TEXT,
    side            TEXT,
    quantity        TEXT,                     -- decimals as exact text
    price           TEXT,
    status          TEXT,
    filled_qty      TEXT,
    venue_order_id  TEXT,
    first_seq       INTEGER NOT NULL,
    last_seq        INTEGER NOT NULL,
    updated_ms      INTEGER NOT NULL
);
CREATE INDEX orders_position ON orders (position_id);

CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value BLOB    NOT NULL,
    ts_ms INTEGER NOT NULL
);
