-- A column neither grouped nor aggregated.
SELECT host, value, avg(value) FROM cpu_usage_percent GROUP BY host
