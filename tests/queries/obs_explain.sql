-- EXPLAIN: the series the index chose, blocks pruned by time and by value,
-- what is left to read. Nothing is decoded.
EXPLAIN SELECT avg(value) FROM cpu_usage_percent
WHERE host = 'api-01' AND ts >= '2024-01-01T01:00:00Z' AND ts < '2024-01-01T01:10:00Z'
