-- Group by exact timestamp (ts) with ORDER BY ts DESC.
SELECT ts, count(*), max(value) FROM up GROUP BY ts ORDER BY ts DESC LIMIT 3
