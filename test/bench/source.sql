/*
 * source.sql: the partner file of the move scenarios (fresh.sql,
 * parallel_setup.sql) as a table named :src of :rows rows (id, email,
 * amount, currency, ordered_at, note, all but id as text), keys all
 * distinct, 5% of the rows bad: an amount that is no number, an unknown
 * currency, a date that does not exist (one in 60 each).  Included with \ir.
 */
CREATE TABLE :src AS
SELECT g AS id,
	   'user' || g || '@example.com' AS email,
	   CASE WHEN g % 60 = 0 THEN 'n/a' ELSE (g % 100000)::text || '.' || lpad((g % 100)::text, 2, '0') END AS amount,
	   CASE WHEN g % 60 = 20 THEN 'EURO' ELSE (ARRAY['USD', 'EUR', 'GBP'])[1 + g % 3] END AS currency,
	   CASE WHEN g % 60 = 40 THEN '2024-02-30 10:00:00+00'
			ELSE to_char(timestamp '2024-01-01' + (g % 31536000) * interval '1 second',
						 'YYYY-MM-DD HH24:MI:SS') || '+00' END AS ordered_at,
	   'note ' || g AS note
  FROM generate_series(1, :rows) g;
