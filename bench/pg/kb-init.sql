-- A knowledge-base database for bench/pg-evolve.sh: documents with prose bodies, chunks
-- with real[] embeddings, entities and relations (pgbench tables are added by pgbench -i).
-- Deterministic: every random() follows setseed(). psql variable: docs.
SELECT setseed(0.5);
-- Words from a vocabulary of 4,000, each a fixed slice of md5 of its number.
CREATE FUNCTION prose(n int) RETURNS text LANGUAGE sql VOLATILE AS
$$ SELECT string_agg(substr(md5(w::text), 1 + w % 5, 3 + w % 8), ' ')
   FROM (SELECT floor(random() * 4000)::int AS w FROM generate_series(1, n)) s $$;
CREATE FUNCTION embedding() RETURNS real[] LANGUAGE sql VOLATILE AS
$$ SELECT array_agg(round((random() * 2 - 1)::numeric, 6)::real) FROM generate_series(1, 48) $$;

CREATE TABLE documents (
	id bigserial PRIMARY KEY,
	title text NOT NULL,
	body text NOT NULL,
	version int NOT NULL DEFAULT 1,
	updated_at timestamptz NOT NULL
);
CREATE TABLE chunks (
	id bigserial PRIMARY KEY,
	doc_id bigint NOT NULL REFERENCES documents ON DELETE CASCADE,
	ord int NOT NULL,
	content text NOT NULL,
	embedding real[] NOT NULL
);
CREATE INDEX chunks_doc ON chunks (doc_id);
CREATE TABLE entities (
	id serial PRIMARY KEY,
	name text UNIQUE NOT NULL,
	kind text NOT NULL,
	description text
);
CREATE TABLE relations ( -- no key: written in physical order in every mode
	src int NOT NULL REFERENCES entities ON DELETE CASCADE,
	dst int NOT NULL REFERENCES entities ON DELETE CASCADE,
	kind text NOT NULL,
	weight real NOT NULL
);

INSERT INTO documents (title, body, updated_at)
SELECT prose(6), prose(300 + (g % 7) * 60), '2026-01-01'::timestamptz + g * interval '1 minute'
FROM generate_series(1, :docs) g;
INSERT INTO chunks (doc_id, ord, content, embedding)
SELECT d.id, k, substr(d.body, 1 + (k - 1) * 800, 800), embedding()
FROM documents d, generate_series(1, 3) k;
INSERT INTO entities (name, kind, description)
SELECT 'entity-' || g, (ARRAY['person', 'org', 'topic', 'place'])[1 + g % 4], prose(20)
FROM generate_series(1, :docs / 4) g;
INSERT INTO relations
SELECT 1 + floor(random() * (:docs / 4))::int, 1 + floor(random() * (:docs / 4))::int,
       (ARRAY['mentions', 'part_of', 'related'])[1 + g % 3], random()::real
FROM generate_series(1, :docs / 2) g;
