-- One day of a knowledge base (bench/pg-evolve.sh): edits inside ~2% of the bodies with
-- their chunks re-embedded, ~1% new documents, ~0.5% deleted, entities and relations
-- changing. psql variable: day. VACUUM and pgbench traffic run beside it.
SELECT setseed(:day / 1000.0);
CREATE TEMP TABLE edited AS SELECT id FROM documents WHERE random() < 0.02;
UPDATE documents d
SET body = overlay(d.body PLACING prose(10) FROM 1 + floor(random() * greatest(length(d.body) - 80, 1))::int FOR 50),
    version = version + 1, updated_at = updated_at + interval '1 day'
FROM edited e WHERE d.id = e.id;
UPDATE chunks c SET content = substr(d.body, 1 + (c.ord - 1) * 800, 800), embedding = embedding()
FROM edited e, documents d WHERE c.doc_id = e.id AND d.id = e.id;
WITH n AS (
	INSERT INTO documents (title, body, updated_at)
	SELECT prose(6), prose((300 + (g % 7) * 60)::int), '2026-02-01'::timestamptz + :day * interval '1 day' + g * interval '1 second'
	FROM generate_series(1, (SELECT count(*) / 100 FROM documents)) g
	RETURNING id, body)
INSERT INTO chunks (doc_id, ord, content, embedding)
SELECT n.id, k, substr(n.body, 1 + (k - 1) * 800, 800), embedding() FROM n, generate_series(1, 3) k;
DELETE FROM documents WHERE random() < 0.005;
UPDATE entities SET description = prose(20) WHERE random() < 0.01;
INSERT INTO entities (name, kind, description)
SELECT 'entity-d' || :day || '-' || g, 'topic', prose(20) FROM generate_series(1, (SELECT count(*) / 100 FROM entities)) g;
DELETE FROM relations WHERE random() < 0.005;
INSERT INTO relations
SELECT e1.id, e2.id, 'mentions', random()::real
FROM (SELECT id FROM entities WHERE random() < 0.01) e1 JOIN LATERAL (SELECT id FROM entities OFFSET floor(random() * 100) LIMIT 1) e2 ON true;
