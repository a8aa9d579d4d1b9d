-- A plain scan: every column of one metric, first rows in (series, time) order.
-- Without ORDER BY, reading stops once LIMIT rows are out.
SELECT * FROM cpu_usage_percent LIMIT 5
