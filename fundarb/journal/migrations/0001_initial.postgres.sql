-- fundarb journal, schema 1 (PostgreSQL). Applied in one transaction by fundarb.journal.migrations.

CREATE TABLE journal (
    seq         BIGINT PRIMARY KEY,           -- assigned by the writer: 1, 2, 3, ... no gaps
    ts_ms       BIGINT NOT NULL,
    kind        TEXT   NOT NULL,              -- codec tag of the payload's class
    position_id TEXT,
    payload     BYTEA  NOT NULL,              -- orjson bytes, exactly as encoded
    crc         BIGINT NOT NULL               -- zlib.crc32(payload)
);
CREATE INDEX journal_position ON journal (position_id, seq) WHERE position_id IS NOT NULL;

-- append-only: rows are never rewritten or removed
CREATE FUNCTION journal_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the journal is append-only';
END $$;
CREATE TRIGGER journal_no_change BEFORE UPDATE OR DELETE ON journal
    FOR EACH ROW EXECUTE FUNCTION journal_refuse_change();
CREATE TRIGGER journal_no_truncate BEFORE TRUNCATE ON journal
    FOR EACH STATEMENT EXECUTE FUNCTION journal_refuse_change();

CREATE TABLE positions (
    position_id TEXT PRIMARY KEY,
    state       TEXT,
    first_seq   BIGINT NOT NULL,
    last_seq    BIGINT NOT NULL,
    last_kind   TEXT   NOT NULL,
    updated_ms  BIGINT NOT NULL
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
    first_seq       BIGINT NOT NULL,
    last_seq        BIGINT NOT NULL,
    updated_ms      BIGINT NOT NULL
);
CREATE INDEX orders_position ON orders (position_id);

CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value BYTEA  NOT NULL,
    ts_ms BIGINT NOT NULL
);

-- One statement, hence one round trip and one atomic commit, per write: the rows plus the
-- projection upserts (at most one row per key: the writer collapses them first).
CREATE FUNCTION journal_append(
    p_seq bigint[], p_ts bigint[], p_kind text[], p_pid text[], p_payload bytea[], p_crc bigint[],
    q_pid text[], q_state text[], q_seq bigint[], q_kind text[], q_ts bigint[],
    o_cid text[], o_pid text[], o_inst text[], o_side text[], o_qty text[], o_price text[],
    o_status text[], o_filled text[], o_void text[], o_seq bigint[], o_ts bigint[]
) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO journal (seq, ts_ms, kind, position_id, payload, crc)
        SELECT * FROM unnest(p_seq, p_ts, p_kind, p_pid, p_payload, p_crc);
    IF cardinality(q_pid) > 0 THEN
        INSERT INTO positions AS t (position_id, state, first_seq, last_seq, last_kind, updated_ms)
            SELECT u.pid, u.state, u.seq, u.seq, u.kind, u.ts
            FROM unnest(q_pid, q_state, q_seq, q_kind, q_ts) AS u(pid, state, seq, kind, ts)
        ON CONFLICT (position_id) DO UPDATE SET
            state = COALESCE(excluded.state, t.state),
            last_seq = excluded.last_seq,
            last_kind = excluded.last_kind,
            updated_ms = excluded.updated_ms;
    END IF;
    IF cardinality(o_cid) > 0 THEN
        INSERT INTO orders AS t (client_order_id, position_id, instrument, side, quantity, price, status,
                                 filled_qty, venue_order_id, first_seq, last_seq, updated_ms)
            SELECT u.cid, u.pid, u.inst, u.side, u.qty, u.price, u.status, u.filled, u.void, u.seq, u.seq, u.ts
            FROM unnest(o_cid, o_pid, o_inst, o_side, o_qty, o_price, o_status, o_filled, o_void, o_seq, o_ts)
                AS u(cid, pid, inst, side, qty, price, status, filled, void, seq, ts)
        ON CONFLICT (client_order_id) DO UPDATE SET
            position_id = COALESCE(excluded.position_id, t.position_id),
            instrument = COALESCE(excluded.instrument, t.instrument),
            side = COALESCE(excluded.side, t.side),
            quantity = COALESCE(excluded.quantity, t.quantity),
            price = COALESCE(excluded.price, t.price),
            status = COALESCE(excluded.status, t.status),
            filled_qty = COALESCE(excluded.filled_qty, t.filled_qty),
            venue_order_id = COALESCE(excluded.venue_order_id, t.venue_order_id),
            last_seq = excluded.last_seq,
            updated_ms = excluded.updated_ms;
    END IF;
END $$;
