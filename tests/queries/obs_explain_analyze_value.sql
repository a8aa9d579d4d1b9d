-- EXPLAIN ANALYZE: value > 70 prunes every block whose max is 70 or less.
EXPLAIN ANALYZE SELECT host, count(*) FROM cpu_usage_percent WHERE value > 70 GROUP BY host
